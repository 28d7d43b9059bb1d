/**
 * importSnapshot in process, against a LevelStore: what it stages for files
 * in which entities repeat — within a chunk, across chunks (more rows than a
 * reader's 16 384-row chunk) and across files — is, record for record, what
 * encodeRecord makes of each entity's rows merged in file order; and what
 * it reports when staging stops.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import { importSnapshot } from '../../src/batch/snapshot-import.js';
import { compileRegistry } from '../../src/config/registry.js';
import { generationPrefix, recordKey } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';
import type { SnapshotStore } from '../../src/storage/snapshot-store.js';
import { encodeRecord, mergeVersions, type Version } from '../../src/storage/record.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { encodeTypedValue, NULL_VALUE } from '../../src/values/value-codec.js';

const scratch = mkdtempSync(join(tmpdir(), 'strata-staging-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const registry = compileRegistry(
  `entities:
  card: { join_key: card_id }
feature_views:
  daily:
    entities: [card]
    ttl: 0
    source: { type: batch }
    features: { amount: double, segment: string }
`,
  'registry.yaml',
);
const view = registry.views.get('daily')!;
const DAY = 86_400_000;
const NOW = 1_790_000_000_000;
const RETENTION = 30 * DAY;

interface Row {
  card_id: string;
  event_timestamp: number;
  created_timestamp: number | null;
  amount: number | null;
  segment: string;
}

function rows(count: number, entities: number, seed: number): Row[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, index) => {
    const id = Math.floor(random() * entities);
    return {
      // Some keys past ASCII, some longer than 127 bytes.
      card_id: id % 7 === 0 ? `kärte-${id}` : id % 11 === 0 ? `${'c'.repeat(130)}-${id}` : `card-${id}`,
      // Few distinct event and created times, so versions tie and replace each other.
      event_timestamp: NOW - DAY * Math.floor(random() * 3),
      // Missing in some rows: those count as created now.
      created_timestamp: random() < 0.2 ? null : NOW - 1_000 * Math.floor(random() * 3),
      amount: random() < 0.1 ? null : index,
      segment: `seg-${index % 5}`,
    };
  });
}

function ndjson(name: string, data: readonly Row[]): string {
  const path = join(scratch, name);
  writeFileSync(path, `${data.map((row) => JSON.stringify(row)).join('\n')}\n`);
  return path;
}

/** Each entity's rows as versions, in file order, merged as the importer must: newest event time first, ties to the newer created time, then the later row. */
function expectedRecords(data: readonly Row[]): Map<string, Uint8Array> {
  const byEntity = new Map<string, Version[]>();
  for (const row of data) {
    const version: Version = {
      eventTs: row.event_timestamp,
      createdTs: row.created_timestamp ?? NOW,
      slots: [row.amount === null ? NULL_VALUE : encodeTypedValue({ type: 'double', value: row.amount }), encodeTypedValue({ type: 'string', value: row.segment })],
    };
    byEntity.set(row.card_id, [...(byEntity.get(row.card_id) ?? []), version]);
  }
  const records = new Map<string, Uint8Array>();
  for (const [id, versions] of byEntity) {
    records.set(id, encodeRecord(view.schemaFingerprint, NOW * 1000, 2, mergeVersions([], versions, NOW, RETENTION, 100)));
  }
  return records;
}

async function importAndRead(paths: string[]) {
  const dataDir = mkdtempSync(join(scratch, 'data-'));
  const store = await LevelStore.open({ dataDir, registry, retentionMs: RETENTION, maxVersions: 100, maxEvents: 100 });
  let report;
  try {
    report = await importSnapshot({ view, paths, store, retentionMs: RETENTION, maxVersions: 100, nowMs: NOW });
  } finally {
    await store.close();
  }
  const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const prefix = generationPrefix(view.name, report.generation);
  const stored = new Map<string, string>();
  for await (const [key, value] of db.iterator({ gte: prefix, lt: generationPrefix(view.name, report.generation + 1) })) stored.set(key.toString('hex'), value.toString('hex'));
  await db.close();
  return { report, stored, keyOf: (id: string) => recordKey(prefix, ['string'], [id]).toString('hex') };
}

describe('snapshot import of entities that repeat', () => {
  it('merges the rows of an entity within a chunk, across chunks and across files into the record encodeRecord makes of them', async () => {
    const first = rows(40_000, 12_000, 1);
    const second = rows(9_000, 15_000, 2);
    const { report, stored, keyOf } = await importAndRead([ndjson('first.ndjson', first), ndjson('second.ndjson', second)]);
    const expected = expectedRecords([...first, ...second]);
    expect(report, report.reason).toMatchObject({ published: true, rows: 49_000, entities: expected.size });
    expect(stored.size).toBe(expected.size);
    const mismatches = [...expected].filter(([id, bytes]) => stored.get(keyOf(id)) !== Buffer.from(bytes).toString('hex')).map(([id]) => id);
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('stages a file of distinct entities as one version each', async () => {
    const data = rows(20_000, 1e12, 3);
    const { report, stored, keyOf } = await importAndRead([ndjson('distinct.ndjson', data)]);
    const expected = expectedRecords(data);
    expect(report).toMatchObject({ published: true, entities: expected.size });
    expect([...expected].every(([id, bytes]) => stored.get(keyOf(id)) === Buffer.from(bytes).toString('hex'))).toBe(true);
  });

  it('names file:row and column of a bad value or a missing join key past the first chunk', async () => {
    const data = rows(20_000, 1e12, 4);
    (data[18_000] as unknown as Record<string, unknown>).amount = 'lots';
    const bad = await importAndRead([ndjson('bad-value.ndjson', data)]);
    expect(bad.report.published).toBe(false);
    expect(bad.report.reason).toMatch(/bad-value\.ndjson:row 18000 column amount: .*expected double.*"lots"/);
    expect(bad.stored.size).toBe(0);

    const keyless = rows(20_000, 1e12, 5);
    delete (keyless[17_000] as Partial<Row>).card_id;
    const missing = await importAndRead([ndjson('keyless.ndjson', keyless)]);
    expect(missing.report.reason).toMatch(/keyless\.ndjson:row 17000 column card_id: join key card_id is missing/);
  });

  it('reports a file that cannot be opened before staging anything, and the next import, on the worker the failed one kept, stages all of its own rows', async () => {
    const absent = join(scratch, 'absent.ndjson');
    const failed = await importAndRead([absent]);
    expect(failed.report).toMatchObject({ published: false, rows: 0, files: [] });
    expect(failed.report.reason).toMatch(new RegExp(`^${absent}: cannot open: ENOENT`));

    const data = rows(20_000, 1e12, 6);
    const next = await importAndRead([ndjson('after-failure.ndjson', data)]);
    expect(next.report).toMatchObject({ published: true, rows: 20_000, entities: expectedRecords(data).size });
  });

  it('never discards a generation once it is published, whatever fails after the switch', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const level = await LevelStore.open({ dataDir, registry, retentionMs: RETENTION, maxVersions: 100, maxEvents: 100 });
    const failedAfterSwitch = new Error('failed after the switch');
    // The store as importSnapshot sees it, its publish failing once the generation is published.
    const store: SnapshotStore = {
      beginGeneration: (name) => level.beginGeneration(name),
      putStaged: (records) => level.putStaged(records),
      getStaged: (keys) => level.getStaged(keys),
      publish: async (name, generation, cutoffMs) => {
        await level.publish(name, generation, cutoffMs);
        throw failedAfterSwitch;
      },
      discard: (name, generation) => level.discard(name, generation),
      publishedGeneration: (name) => level.publishedGeneration(name),
      snapshotCutoff: (name) => level.snapshotCutoff(name),
      onPublish: (listener) => level.onPublish(listener),
    };
    const data = rows(100, 1e12, 7);
    try {
      await expect(importSnapshot({ view, paths: [ndjson('published.ndjson', data)], store, retentionMs: RETENTION, maxVersions: 100, nowMs: NOW })).rejects.toBe(failedAfterSwitch);
      expect(level.publishedGeneration(view.name)).toBe(1);
      const expected = expectedRecords(data);
      const stored = await level.getStaged([...expected.keys()].map((id) => recordKey(generationPrefix(view.name, 1), ['string'], [id])));
      expect(stored.map((bytes) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('hex')))).toEqual([...expected.values()].map((bytes) => Buffer.from(bytes).toString('hex')));
    } finally {
      await level.close();
    }
  });
});
