/**
 * Keys whose L2 write-through could not happen are re-published from L3.
 * L2 here is a scripted SharedTier (Strata's own interface) so a put can be
 * held while a write races it; L3 is the real LevelStore.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TieredRecordStore } from '../../src/cache/tiered-record-store.js';
import type { SharedTier } from '../../src/cache/tiers.js';
import { BUNDLED_REGISTRY } from '../../src/config/options.js';
import { loadRegistry } from '../../src/config/registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { EventWrite, RecordRef } from '../../src/storage/feature-store.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';

const registry = loadRegistry(BUNDLED_REGISTRY);
const cardTxn = registry.views.get('card_txn')!;
const columns = (cardTxn.source as { columns: readonly string[] }).columns;
const NOW = 1_700_000_000_000;
const key = recordKey(recordKeyPrefix('card_txn'), ['string'], ['card-1']);
const id = key.toString('latin1');
const txn = (offset: number): EventWrite & { id: string } => ({
  view: cardTxn,
  key,
  id,
  events: [{ ts: NOW - 60_000 + offset, values: columns.map(() => null), origin: { partition: 0, offset } }],
});

/** An L2 that is up or down on command, and whose puts wait while `held` is set. */
class ScriptedSharedTier implements SharedTier {
  ready = true;
  held: Promise<void> | undefined;
  puts = 0;
  readonly stored = new Map<string, Buffer>();

  async put(refs: readonly RecordRef[], records: readonly Uint8Array[]): Promise<boolean> {
    this.puts++;
    await this.held;
    refs.forEach((ref, index) => this.stored.set(ref.key.toString('latin1'), Buffer.from(records[index]!)));
    return true;
  }

  async getMany(): Promise<undefined> {
    return undefined;
  }

  async getManyForWrite(): Promise<undefined> {
    return undefined;
  }

  fill(): void {}
  discard(): void {}

  async waitUntilReady(): Promise<boolean> {
    return this.ready;
  }

  async fetchBloom(): Promise<undefined> {
    return undefined;
  }

  async mergeBloom(): Promise<void> {}

  async runId(): Promise<string> {
    return 'one-run';
  }

  onReady(): void {}
  onInvalidation(): void {}
  async close(): Promise<void> {}
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('re-publishing to L2', () => {
  let dataDir: string;
  let l3: LevelStore;
  let l2: ScriptedSharedTier;
  let store: TieredRecordStore;

  /** Opens L3 in dataDir and the tiers over it, with `l2`. */
  const openTiers = async (): Promise<void> => {
    l3 = await LevelStore.open({ dataDir, registry, retentionMs: 7 * 86_400_000, maxVersions: 100, maxEvents: 10_000 });
    store = await TieredRecordStore.open({
      l1: undefined,
      l2,
      l3,
      views: [...registry.views.keys()],
      bloomCapacity: 1_000,
      bloomSyncMs: 60_000,
      metrics: new Metrics({ processMetrics: false }),
      logger: createLogger('error', () => undefined),
    });
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'strata-republish-'));
    l2 = new ScriptedSharedTier();
    await openTiers();
  });

  afterEach(async () => {
    l2.held = undefined;
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const inL3 = async (): Promise<Buffer> => Buffer.from((await l3.getRecords([{ view: cardTxn, key }]))[0]!);

  it('keeps a key queued when it is written again while its older record is being published', async () => {
    l2.ready = false;
    await store.write([txn(1)], NOW);
    let release = (): void => undefined;
    l2.held = new Promise((resolve) => (release = resolve));
    l2.ready = true;
    await until(() => l2.puts === 1, 'the re-publish of the first record starts');
    // Written while that put is in flight, and queued (L2 is down for it): L3 now holds a newer record.
    l2.ready = false;
    await store.write([txn(2)], NOW);
    release();
    l2.held = undefined;
    l2.ready = true;
    const newest = await inL3();
    await until(() => l2.stored.get(id)?.equals(newest) === true, 'L2 holds the newest record');
  });

  it('publishes what is still queued on a clean stop', async () => {
    l2.ready = false;
    await store.write([txn(1)], NOW);
    const written = await inL3();
    l2.ready = true;
    await store.close();
    expect(l2.stored.get(id)?.equals(written)).toBe(true);
    await openTiers();
  });
});
