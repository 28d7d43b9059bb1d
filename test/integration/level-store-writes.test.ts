import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUNDLED_REGISTRY } from '../../src/config/options.js';
import { loadRegistry } from '../../src/config/registry.js';
import { EventLog, type IncomingEvent } from '../../src/storage/event-log.js';
import type { EventWrite } from '../../src/storage/feature-store.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';
import { writtenBytes } from '../../src/storage/stored-record.js';

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
