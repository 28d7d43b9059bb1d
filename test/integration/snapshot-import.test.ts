import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import { generationPrefix } from '../../src/storage/keys.js';
import { cleanEnv } from '../support/process-helpers.js';
import { importSnapshotFiles, STRATA_CLI as CLI } from '../support/snapshot-cli.js';
import { startTestServer } from '../support/strata.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI as `npm start` runs it: from the build, its import worker a .js module (npm test builds it first). */
const BUILT_CLI = [join(ROOT, 'dist/cli/main.js')];
const scratch = mkdtempSync(join(tmpdir(), 'strata-snapshot-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const REGISTRY = join(scratch, 'registry.yaml');
writeFileSync(
  REGISTRY,
  `entities:
  card: { join_key: card_id }
feature_views:
  card_daily:
    entities: [card]
    ttl: 0
    source:
      type: batch
      columns: { chargebacks_90d: cb_90d }
      audit: { min_rows: 2, max_null_rate: { avg_ticket: 0.5 } }
    features:
      avg_ticket: double
      chargebacks_90d: int64
      segment: string
`,
);
const DAY = 86_400_000;
const NOW = Date.now();

interface Row {
  card_id: string;
  event_timestamp: number | string;
  avg_ticket: number | null | string;
  cb_90d: number;
  segment: string;
}

const rows = (count: number, version: number): Row[] =>
  Array.from({ length: count }, (_, index) => ({ card_id: `card-${index}`, event_timestamp: NOW - DAY + version, avg_ticket: index * 1.5 + version, cb_90d: index % 3, segment: `seg-${version}` }));

function ndjson(name: string, data: readonly Row[]): string {
  const path = join(scratch, name);
  writeFileSync(path, data.map((row) => JSON.stringify(row)).join('\n') + '\n');
  return path;
}

function importFiles(dataDir: string, ...files: string[]) {
  return importFilesWith(CLI, dataDir, ...files);
}

function importFilesWith(cli: readonly string[], dataDir: string, ...files: string[]) {
  return importSnapshotFiles({ registry: REGISTRY, dataDir, view: 'card_daily', files, cli });
}

/** What a server on the data dir answers for these cards (started and stopped around the read: L3 admits one process). */
async function served(dataDir: string, cards: readonly string[]) {
  const server = await startTestServer({ registry: REGISTRY }, { dataDir, keepData: true });
  try {
    const { status, json } = await server.http('/get-online-features', {
      features: ['card_daily:avg_ticket', 'card_daily:chargebacks_90d', 'card_daily:segment'],
      entities: { card_id: cards },
    });
    expect(status).toBe(200);
    // The Feast shape: results[0] is the join key, then one column per feature.
    const names = (json.metadata as { feature_names: string[] }).feature_names;
    const results = json.results as { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
    return Object.fromEntries(names.map((name, index) => [name, { values: results[index]!.values, statuses: results[index]!.statuses, eventMs: results[index]!.event_timestamps.map((iso) => Date.parse(iso)) }]));
  } finally {
    await server.stop();
  }
}

describe('strata snapshot import: write → audit → publish', () => {
  const cards = ['card-0', 'card-1', 'card-7', 'card-499', 'card-never'];

  it('publishes a snapshot, then replaces it whole with the next one', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const first = importFiles(dataDir, ndjson('v1.ndjson', rows(500, 1)));
    expect(first.status, first.stderr).toBe(0);
    expect(first.report).toMatchObject({ view: 'card_daily', published: true, rows: 500, entities: 500, generation: 1 });
    const before = await served(dataDir, cards);
    expect(before.avg_ticket!.values).toEqual([1, 2.5, 11.5, 749.5, null]);
    expect(before.chargebacks_90d!.values.slice(0, 4).map(Number)).toEqual([0, 1, 1, 1]);
    expect(before.segment!.statuses).toEqual(['PRESENT', 'PRESENT', 'PRESENT', 'PRESENT', 'NOT_FOUND']);

    // The next snapshot has fewer cards: those it lacks are gone once it is published.
    const second = importFiles(dataDir, ndjson('v2.ndjson', rows(100, 2)));
    expect(second.status, second.stderr).toBe(0);
    expect(second.report).toMatchObject({ published: true, generation: 2 });
    const after = await served(dataDir, cards);
    expect(after.segment!.values).toEqual(['seg-2', 'seg-2', 'seg-2', null, null]);
    expect(after.segment!.statuses).toEqual(['PRESENT', 'PRESENT', 'PRESENT', 'NOT_FOUND', 'NOT_FOUND']);
  });

  it('imports from the build too, and names a bad value its worker met there', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const imported = importFilesWith(BUILT_CLI, dataDir, ndjson('built.ndjson', rows(40_000, 1)));
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.report).toMatchObject({ published: true, rows: 40_000, entities: 40_000 });
    expect((await served(dataDir, cards)).avg_ticket!.values).toEqual([1, 2.5, 11.5, 749.5, null]);

    const wrongType = rows(40_000, 2);
    wrongType[39_000]!.avg_ticket = 'lots';
    const typed = importFilesWith(BUILT_CLI, dataDir, ndjson('built-wrong-type.ndjson', wrongType));
    expect(typed.status).toBe(1);
    expect(String(typed.report!.reason)).toMatch(/^[^ ]*built-wrong-type\.ndjson:row 39000 column avg_ticket: expected double.*"lots"/);
  });

  it('keeps the previous generation serving, with identical answers, when a file has a wrong type or fails the null-rate audit', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    expect(importFiles(dataDir, ndjson('good.ndjson', rows(50, 1))).status).toBe(0);
    const before = await served(dataDir, cards);

    const wrongType = rows(50, 2);
    wrongType[17]!.avg_ticket = 'lots';
    const typed = importFiles(dataDir, ndjson('wrong-type.ndjson', wrongType));
    expect(typed.status).toBe(1);
    expect(typed.report).toMatchObject({ published: false });
    expect(String(typed.report!.reason)).toMatch(/^[^ ]*wrong-type\.ndjson:row 17 column avg_ticket: expected double.*"lots"/);

    const nulls = rows(50, 3).map((row, index) => (index % 3 === 0 ? row : { ...row, avg_ticket: null }));
    const nullRate = importFiles(dataDir, ndjson('nulls.ndjson', nulls));
    expect(nullRate.status).toBe(1);
    expect(String(nullRate.report!.reason)).toMatch(/feature avg_ticket: 66\.00 % of values are null, more than the 50\.00 %/);

    const tooFew = importFiles(dataDir, ndjson('one.ndjson', rows(1, 4)));
    expect(String(tooFew.report!.reason)).toMatch(/1 rows, fewer than the 2/);

    expect(await served(dataDir, cards)).toEqual(before);
  });

  it('survives an import killed with SIGKILL halfway: the old generation serves, and the next import clears what it left', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    expect(importFiles(dataDir, ndjson('base.ndjson', rows(50, 1))).status).toBe(0);
    const before = await served(dataDir, cards);

    const big = ndjson('big.ndjson', rows(400_000, 5));
    const child = spawn(process.execPath, [...CLI, 'snapshot', 'import', '--registry', REGISTRY, '--data-dir', dataDir, '--view', 'card_daily', '--progress-interval', '100ms', big], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Killed once it reports rows staged, well before the end.
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // ProgressMeter's line (NDJSON states no total up front).
        if (/^strata snapshot import card_daily: [\d,]+ rows, [\d,]+ rows\/s$/m.test(stderr)) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then(() => reject(new Error(`import ended before it was killed: ${stderr}`)));
    });
    await exited;

    const staged = async (generation: number): Promise<number> => {
      const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      let count = 0;
      for await (const _key of db.keys({ gte: generationPrefix('card_daily', generation), lt: generationPrefix('card_daily', generation + 1) })) count++;
      await db.close();
      return count;
    };
    expect(await staged(2)).toBeGreaterThan(0);
    expect(await served(dataDir, cards)).toEqual(before);

    const next = importFiles(dataDir, ndjson('after.ndjson', rows(20, 6)));
    expect(next.report).toMatchObject({ published: true, generation: 3 });
    expect(await staged(2)).toBe(0);
    expect((await served(dataDir, ['card-3'])).segment!.values).toEqual(['seg-6']);
  });

  it('reads CSV and maps renamed columns', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const csv = join(scratch, 'daily.csv');
    writeFileSync(csv, 'card_id,event_timestamp,avg_ticket,cb_90d,segment\ncard-1,2026-11-01T00:00:00Z,12.5,2,"retail, small"\ncard-2,2026-11-01T00:00:00Z,,0,""\n');
    const result = importFiles(dataDir, csv);
    expect(result.status, result.stderr).toBe(0);
    const columns = await served(dataDir, ['card-1', 'card-2']);
    expect(columns.avg_ticket!.values).toEqual([12.5, null]);
    expect(columns.chargebacks_90d!.values.map(Number)).toEqual([2, 0]);
    expect(columns.segment!.values).toEqual(['retail, small', '']);
    expect(columns.segment!.eventMs).toEqual([Date.parse('2026-11-01T00:00:00Z'), Date.parse('2026-11-01T00:00:00Z')]);
  });

  it('takes created_timestamp from the NDJSON rows that have it, whatever the first line holds', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const base = { card_id: 'card-1', event_timestamp: NOW - DAY, cb_90d: 0, segment: 's' };
    // Two rows at one event time: the newer created time wins, the one without counts as made at import.
    const first = importFiles(dataDir, ndjson('created.ndjson', [{ ...base, avg_ticket: 1 }, { ...base, card_id: 'card-2', avg_ticket: 2 }] as Row[]));
    expect(first.status, first.stderr).toBe(0);
    const mixed = ndjson('mixed-created.ndjson', [{ ...base, avg_ticket: 1 }, { ...base, avg_ticket: 3, created_timestamp: NOW + DAY }, { ...base, card_id: 'card-2', avg_ticket: 2 }] as Row[]);
    const second = importFiles(dataDir, mixed);
    expect(second.status, second.stderr).toBe(0);
    expect((await served(dataDir, ['card-1', 'card-2'])).avg_ticket!.values).toEqual([3, 2]);
  });

  it('refuses an NDJSON snapshot that lacks a feature column, rather than publish it as NULLs', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    expect(importFiles(dataDir, ndjson('spelt.ndjson', rows(50, 1))).status).toBe(0);
    const before = await served(dataDir, cards);

    // segment's max_null_rate is the default 1: only the missing column stops this one.
    const misspelt = rows(50, 2).map(({ segment, ...row }) => ({ ...row, segmnet: segment }));
    const path = ndjson('misspelt.ndjson', misspelt as unknown as Row[]);
    const result = importFiles(dataDir, path);
    expect(result.status).toBe(1);
    expect(result.report).toMatchObject({ published: false });
    expect(result.report!.reason).toBe(`segment: ${path}: has no column "segment" (none of its 50 rows has the key)`);
    expect(await served(dataDir, cards)).toEqual(before);
  });
});

describe('strata snapshot import --cutoff', () => {
  const registry = join(scratch, 'tiles-registry.yaml');
  writeFileSync(
    registry,
    `entities:
  card: { join_key: card_id }
feature_views:
  card_spend:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    batch: { tile: 1h }
    aggregations:
      n_2d: { fn: count, window: 2d }
`,
  );
  const tiles = join(scratch, 'tiles.ndjson');
  writeFileSync(tiles, `${JSON.stringify({ card_id: 'a', event_timestamp: Date.UTC(2026, 0, 1, 1), n_2d: 3 })}\n`);
  const importTiles = (cutoff: string, env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [...CLI, 'snapshot', 'import', '--registry', registry, '--data-dir', mkdtempSync(join(scratch, 'data-')), '--view', 'card_spend', '--json', '--cutoff', cutoff, tiles], {
      cwd: ROOT,
      env: cleanEnv(env),
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('reads a cutoff without a zone as UTC, as the files\' timestamps are, whatever the machine\'s zone', () => {
    // Read as local time in +05:30, it would be off the hour grid.
    const result = importTiles('2026-01-01T01:00:00', { TZ: 'Asia/Kolkata' });
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ published: true, cutoff: '2026-01-01T01:00:00.000Z' });
  });

  it.each(['Jan 1 2026 01:00', '2026-01-01T01:00:00 UTC', '1767229200000'])('refuses the cutoff %j, naming the flag', (cutoff) => {
    const result = importTiles(cutoff);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`--cutoff: ${JSON.stringify(cutoff)} is not an ISO 8601 time`);
  });
});
