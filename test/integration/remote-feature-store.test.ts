import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PrimaryMethods, WorkerMethods } from '../../src/cluster/protocol.js';
import { loadRegistry } from '../../src/config/registry.js';
import { StrataError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import type { PeerWrite, RecordWrite } from '../../src/storage/feature-store.js';
import { FeatureStoreHost } from '../../src/cluster/feature-store-host.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';
import { FeatureRecord } from '../../src/storage/record.js';
import { RemoteFeatureStore } from '../../src/cluster/remote-feature-store.js';
import { encodeTypedValue } from '../../src/values/value-codec.js';
import { IpcEndpoint, type IpcChannel } from '../../src/util/ipc-endpoint.js';
import { FIXTURE_REGISTRY } from '../support/strata.js';

const registry = loadRegistry(FIXTURE_REGISTRY);
const storeStats = registry.views.get('store_stats')!;
const storeKey = (id: number): Buffer => recordKey(recordKeyPrefix('store_stats'), ['int64'], [id]);
const revenueWrite = (id: number, revenue: number, eventTs = 1_000): RecordWrite => ({
  view: storeStats,
  key: storeKey(id),
  versions: [{ eventTs, createdTs: eventTs, slots: [encodeTypedValue({ type: 'double', value: revenue })] }],
});

/**
 * Two in-process channel ends that behave like a cluster IPC channel with
 * 'advanced' serialization: asynchronous, messages copied through v8's
 * serializer. `mute` drops what the primary sends (a stuck worker).
 */
function channelPair(options: { mute?: boolean } = {}): { primarySide: IpcChannel; workerSide: IpcChannel; disconnect(): void } {
  const listeners = { primary: [] as ((message: unknown) => void)[], worker: [] as ((message: unknown) => void)[] };
  const closers: (() => void)[] = [];
  let connected = true;
  const end = (to: 'primary' | 'worker', dropped: boolean): IpcChannel => ({
    send: (message, failed) => {
      if (!connected) return failed(new Error('channel closed'));
      if (dropped) return;
      const copy = deserialize(serialize(message));
      setImmediate(() => listeners[to].forEach((listener) => listener(copy)));
    },
    onMessage: (listener) => void listeners[to === 'primary' ? 'worker' : 'primary'].push(listener),
    onClose: (listener) => void closers.push(listener),
  });
  return {
    primarySide: end('worker', options.mute === true),
    workerSide: end('primary', false),
    disconnect: () => {
      connected = false;
      closers.forEach((close) => close());
    },
  };
}

describe('RemoteFeatureStore over IPC to a FeatureStoreHost', () => {
  let dataDir: string;
  let level: LevelStore;
  let host: FeatureStoreHost;
  let logs: string[];
  let nextWorkerId: number;

  /** A worker's L3, attached to the host like a forked worker would be. */
  const connectWorker = (options: { mute?: boolean } = {}) => {
    const pair = channelPair(options);
    const workerId = nextWorkerId++;
    host.attach(workerId, new IpcEndpoint<WorkerMethods, PrimaryMethods>(pair.primarySide));
    const store = new RemoteFeatureStore(new IpcEndpoint<PrimaryMethods, WorkerMethods>(pair.workerSide), registry);
    return { store, disconnect: pair.disconnect, workerId };
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'strata-remote-'));
    level = await LevelStore.open({ dataDir, registry, retentionMs: 7 * 86_400_000, maxVersions: 100, maxEvents: 1_000 });
    logs = [];
    host = new FeatureStoreHost({ store: level, registry, logger: createLogger('debug', (line) => void logs.push(line)), peerAckTimeoutMs: 100, importLimits: { retentionMs: 7 * 86_400_000, maxVersions: 100 } });
    nextWorkerId = 1;
  });

  afterEach(async () => {
    host.close();
    await level.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('commits a write in the shared L3 and tells the other workers before answering the writer', async () => {
    const writer = connectWorker();
    const reader = connectWorker();
    const events: string[] = [];
    const heard: PeerWrite[] = [];
    reader.store.onPeerWrites((writes) => {
      events.push('peer');
      heard.push(...writes);
    });
    writer.store.onPeerWrites(() => events.push('writer heard its own write'));
    const [record] = await writer.store.applyWrites([revenueWrite(5, 12.5)], 10_000);
    events.push('answered');

    expect(events).toEqual(['peer', 'answered']);
    expect(heard).toHaveLength(1);
    expect(heard[0]!.view).toBe(storeStats);
    expect(heard[0]!.key.equals(storeKey(5))).toBe(true);
    expect(Buffer.from(heard[0]!.record).equals(Buffer.from(record!))).toBe(true);
    const [read, missing] = await reader.store.getRecords([{ view: storeStats, key: storeKey(5) }, { view: storeStats, key: storeKey(6) }]);
    expect(FeatureRecord.decode(read!).revision).toBe(FeatureRecord.decode(record!).revision);
    expect(missing).toBeUndefined();
  });

  it('keeps the peer writes a starting worker receives until its cache subscribes', async () => {
    const writer = connectWorker();
    const starting = connectWorker();
    await writer.store.applyWrites([revenueWrite(1, 1), revenueWrite(2, 2)], 10_000);
    const heard: PeerWrite[] = [];
    starting.store.onPeerWrites((writes) => heard.push(...writes));
    expect(heard.map((write) => write.key.equals(storeKey(1)) || write.key.equals(storeKey(2)))).toEqual([true, true]);
  });

  it('streams every record ref in batches, and a stream given up early does not stop the next one', async () => {
    const count = 25_000;
    await level.applyWrites(Array.from({ length: count }, (_, id) => revenueWrite(id, id)), 10_000);
    const worker = connectWorker();
    for await (const ref of worker.store.recordRefs()) {
      expect(ref.view).toBe(storeStats);
      break;
    }
    let streamed = 0;
    for await (const ref of worker.store.recordRefs()) {
      expect(ref.view).toBe(storeStats);
      streamed++;
    }
    expect(streamed).toBe(count);
  });

  it('answers the writer after the ack timeout when another worker is stuck', async () => {
    const writer = connectWorker();
    const stuck = connectWorker({ mute: true });
    const started = Date.now();
    await writer.store.applyWrites([revenueWrite(3, 3)], 10_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(logs.join('')).toContain(`"worker":${stuck.workerId}`);
    // Once the stuck worker is gone, writes no longer wait for it.
    host.detach(stuck.workerId);
    const again = Date.now();
    await writer.store.applyWrites([revenueWrite(3, 4, 2_000)], 10_000);
    expect(Date.now() - again).toBeLessThan(90);
  });

  it('fails calls with STRATA_STORAGE_UNAVAILABLE once the primary is gone', async () => {
    const worker = connectWorker();
    worker.disconnect();
    const failure = await worker.store.getRecords([{ view: storeStats, key: storeKey(1) }]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StrataError);
    expect((failure as StrataError).code).toBe('STRATA_STORAGE_UNAVAILABLE');
  });
});

describe('snapshot imports through the primary', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'strata-remote-import-'));
  const registryFile = join(scratch, 'registry.yaml');
  writeFileSync(registryFile, 'entities:\n  card: { join_key: card_id }\nfeature_views:\n  card_daily:\n    entities: [card]\n    ttl: 0\n    source: { type: batch }\n    features:\n      segment: string\n');
  const batchRegistry = loadRegistry(registryFile);
  const rows = 60_000;
  const file = join(scratch, 'cards.ndjson');
  writeFileSync(file, Array.from({ length: rows }, (_, index) => `${JSON.stringify({ card_id: `card-${index}`, event_timestamp: 1_000, segment: 's' })}\n`).join(''));

  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('gives a worker that starts during an import every staged key and the new generation before the caller is answered', async () => {
    const level = await LevelStore.open({ dataDir: join(scratch, 'data'), registry: batchRegistry, retentionMs: 86_400_000, maxVersions: 10, maxEvents: 1_000 });
    const host = new FeatureStoreHost({ store: level, registry: batchRegistry, logger: createLogger('error'), peerAckTimeoutMs: 1_000, importLimits: { retentionMs: 86_400_000, maxVersions: 10 } });
    const attach = (workerId: number) => {
      const pair = channelPair();
      host.attach(workerId, new IpcEndpoint<WorkerMethods, PrimaryMethods>(pair.primarySide));
      const store = new RemoteFeatureStore(new IpcEndpoint<PrimaryMethods, WorkerMethods>(pair.workerSide), batchRegistry);
      const expected = new Set<string>();
      store.onExpectedKeys((keys) => keys.forEach((key) => expected.add(key.toString('latin1'))));
      const published: number[] = [];
      store.onPublish((_view, generation) => published.push(generation));
      return { store, expected, published };
    };
    try {
      const caller = attach(1);
      let late: ReturnType<typeof attach> | undefined;
      const report = await caller.store.importSnapshot({
        view: batchRegistry.views.get('card_daily')!,
        paths: [file],
        cutoffMs: undefined,
        onProgress: () => void (late ??= attach(2)),
      });
      expect(report).toMatchObject({ published: true, rows, generation: 1 });
      expect(late).toBeDefined();
      for (const worker of [caller, late!]) {
        expect(worker.expected.size).toBe(rows);
        expect(worker.published).toEqual([1]);
        expect(worker.store.publishedGeneration('card_daily')).toBe(1);
      }
    } finally {
      host.close();
      await level.close();
    }
  });
});
