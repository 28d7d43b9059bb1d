import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUNDLED_REGISTRY } from '../../src/config/options.js';
import { compileRegistry, loadRegistry, type ViewDef } from '../../src/config/registry.js';
import { EVENT_LOG_FORMAT, EventLog, type IncomingEvent } from '../../src/storage/event-log.js';
import type { EventWrite, VersionWrite } from '../../src/storage/feature-store.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';
import { recordRevision, writtenBytes } from '../../src/storage/stored-record.js';
import { encodeTypedValue } from '../../src/values/value-codec.js';

const registry = loadRegistry(BUNDLED_REGISTRY);
const cardTxn = registry.views.get('card_txn')!;
const columns = (cardTxn.source as { columns: readonly string[] }).columns;
const NOW = 1_700_000_000_000;
const cardKey = (card: string): Buffer => recordKey(recordKeyPrefix('card_txn'), ['string'], [card]);
const txn = (offset: number): IncomingEvent => ({ ts: NOW - 60_000 + offset, values: columns.map(() => null), origin: { partition: 0, offset } });
const write = (card: string, ...events: IncomingEvent[]): EventWrite => ({ view: cardTxn, key: cardKey(card), events });

/** LevelStore's writes are read-modify-write of whole records; these check they overlap without losing one another's events. */
describe('LevelStore writes in flight together', () => {
  let dataDir: string;
  let store: LevelStore;

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'strata-level-writes-'));
    store = await LevelStore.open({ dataDir, registry, retentionMs: 7 * 86_400_000, maxVersions: 100, maxEvents: 10_000 });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const eventCount = async (card: string): Promise<number> => {
    const [bytes] = await store.getRecords([{ view: cardTxn, key: cardKey(card) }]);
    return bytes === undefined ? 0 : EventLog.decode(bytes).length;
  };

  it('keeps every event when many writes of one key run at once, beside writes of other keys', async () => {
    const writes = Array.from({ length: 60 }, (_, index) => store.applyWrites([write('shared', txn(index)), write(`own-${index}`, txn(index))], NOW));
    await Promise.all(writes);
    expect(await eventCount('shared')).toBe(60);
    for (let index = 0; index < 60; index += 7) expect(await eventCount(`own-${index}`)).toBe(1);
  });

  it('runs a key\'s writes in the order they were made: the last result holds them all', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, index) => store.applyWrites([write('ordered', txn(index))], NOW)));
    expect(results.map(([record]) => EventLog.decode(writtenBytes(record!)).length)).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
  });

  it('lets later writes of a key go on after one of them fails', async () => {
    const pushView = [...registry.views.values()].find((view) => view.source.type !== 'stream')!;
    const invalid: EventWrite = { view: pushView, key: cardKey('failing'), events: [txn(0)] };
    const first = store.applyWrites([write('failing', txn(1))], NOW);
    const failed = store.applyWrites([invalid], NOW);
    const after = store.applyWrites([write('failing', txn(2))], NOW);
    await first;
    await expect(failed).rejects.toMatchObject({ code: 'STRATA_INTERNAL' });
    await after;
    expect(await eventCount('failing')).toBe(2);
  });
});

/** The registry changed a view's source type under the same name: its records in L3 are of the other kind. */
describe('LevelStore writes after a view changed its source type', () => {
  const ENTITIES = 'entities:\n  card: { join_key: card_id }\n';
  const PUSHED = `${ENTITIES}feature_views:\n  card_activity:\n    entities: [card]\n    ttl: 1d\n    source: { type: push }\n    features:\n      limit: double\n`;
  const STREAMED = `${ENTITIES}feature_views:\n  card_activity:\n    entities: [card]\n    ttl: 1d\n    source: { type: stream, topic: card.events, format: json, key: card_id, timestamp_field: ts }\n    aggregations:\n      txn_count_1h: { fn: count, window: 1h }\n`;
  const activityKey = recordKey(recordKeyPrefix('card_activity'), ['string'], ['card-1']);
  let dataDir: string;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'strata-level-kinds-'));
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Opens L3 in dataDir under the registry `yaml`, runs `use`, closes it. */
  const withStore = async <T>(yaml: string, use: (store: LevelStore, view: ViewDef) => Promise<T>): Promise<T> => {
    const changed = compileRegistry(yaml, 'registry.yaml');
    const store = await LevelStore.open({ dataDir, registry: changed, retentionMs: 7 * 86_400_000, maxVersions: 100, maxEvents: 10_000 });
    try {
      return await use(store, changed.views.get('card_activity')!);
    } finally {
      await store.close();
    }
  };
  const pushWrite = (view: ViewDef): VersionWrite => ({ view, key: activityKey, versions: [{ eventTs: NOW, createdTs: NOW, slots: [encodeTypedValue({ type: 'double', value: 2_500 })] }] });
  const eventWrite = (view: ViewDef): EventWrite => ({ view, key: activityKey, events: [{ ts: NOW, values: [], origin: undefined }] });

  it.each([
    ['push to stream', PUSHED, STREAMED, pushWrite, eventWrite],
    ['stream to push', STREAMED, PUSHED, eventWrite, pushWrite],
  ] as const)('%s: the first write replaces the record of the other kind, with a newer revision', async (_what, before, after, writeBefore, writeAfter) => {
    const [old] = await withStore(before, (store, view) => store.applyWrites([writeBefore(view)], NOW));
    const [replaced] = await withStore(after, (store, view) => store.applyWrites([writeAfter(view)], NOW));
    const kind = (record: Uint8Array): string => (record[0] === EVENT_LOG_FORMAT ? 'event log' : 'versioned');
    expect(kind(writtenBytes(replaced!))).not.toBe(kind(writtenBytes(old!)));
    expect(recordRevision(writtenBytes(replaced!))).toBeGreaterThan(recordRevision(writtenBytes(old!)));
  });
});
