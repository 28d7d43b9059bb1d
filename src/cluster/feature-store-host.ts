import { ownedL3Imports, type ImportRunner } from '../batch/import-runner.js';
import type { ImportReport } from '../batch/snapshot-import.js';
import type { Registry } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { FeatureStore, PublishedSnapshot, RecordRef } from '../storage/feature-store.js';
import type { SnapshotStore } from '../storage/snapshot-store.js';
import { writtenBytes } from '../storage/stored-record.js';
import type { IpcEndpoint } from '../util/ipc-endpoint.js';
import { fromWireRef, toWireRef, wireView, type PrimaryMethods, type WireRecord, type WireRef, type WorkerMethods } from './protocol.js';

/** Refs per batch of a worker's key stream: few enough that one message stays small, many enough that a rebuild is not chatty. */
const REFS_BATCH = 10_000;

type WorkerEndpoint = IpcEndpoint<WorkerMethods, PrimaryMethods>;

/**
 * The primary's side of L3 over IPC (workers use RemoteFeatureStore): one
 * store, opened once, serves every worker. After committing a worker's write
 * it hands the new records to every other worker and waits for their acks
 * (at most `peerAckTimeoutMs`) before answering: a write acknowledged to a
 * client is then readable through any worker. Snapshot imports run here too,
 * and a published one reaches every worker before the caller hears of it.
 */
export class FeatureStoreHost {
  private readonly store: FeatureStore;
  private readonly registry: Registry;
  private readonly logger: Logger;
  private readonly peerAckTimeoutMs: number;
  private readonly imports: ImportRunner;
  private readonly workers = new Map<number, WorkerEndpoint>();
  /** Open key streams, by worker id and the worker's stream number. */
  private readonly streams = new Map<string, AsyncIterator<RecordRef>>();

  constructor(options: { store: FeatureStore & SnapshotStore; registry: Registry; logger: Logger; peerAckTimeoutMs: number; importLimits: { retentionMs: number; maxVersions: number } }) {
    this.store = options.store;
    this.registry = options.registry;
    this.logger = options.logger;
    this.peerAckTimeoutMs = options.peerAckTimeoutMs;
    // Keys go to every worker as they are staged; the IPC channel keeps order, so each has them before it hears of the publish.
    this.imports = ownedL3Imports(options.store, options.importLimits, (keys) => void this.tellWorkers(() => true, 'l3.expect-keys', { keys: [...keys] }));
  }

  /** Serves L3 to a worker; from now on it is also told of the other workers' writes (even before it reads its first key). */
  attach(workerId: number, worker: WorkerEndpoint): void {
    this.workers.set(workerId, worker);
    worker.serve('l3.get', ({ refs }) => this.store.getRecords(refs.map((ref) => fromWireRef(this.registry, ref))));
    worker.serve('l3.write', async ({ writes, nowMs }) => {
      const records = await this.store.applyWrites(
        writes.map((write) => ({ ...write, ...fromWireRef(this.registry, write) })),
        nowMs,
      );
      // Bytes only cross to the workers.
      const bytes = records.map(writtenBytes);
      await this.tellWorkers((id) => id !== workerId, 'l3.peer-writes', { records: writes.map((write, index): WireRecord => ({ view: write.view, key: write.key, record: bytes[index]! })) });
      return bytes;
    });
    worker.serve('snapshot.import', ({ view, paths, cutoffMs, importId }) => this.importSnapshot(worker, { view, paths, cutoffMs }, importId));
    worker.serve('l3.refs', ({ stream }) => this.nextRefs(workerId, stream));
    worker.serve('l3.generations', () =>
      Object.fromEntries(
        [...this.registry.views.values()]
          .filter((view) => view.batch !== undefined)
          .map((view) => [view.name, this.publishedSnapshot(view.name)]),
      ),
    );
    worker.serve('l3.refs-close', ({ stream }) => {
      this.closeStream(`${workerId}:${stream}`);
      return null;
    });
  }

  /** Forgets a worker that exited: its streams close and no write waits for it any more. */
  detach(workerId: number): void {
    this.workers.delete(workerId);
    for (const key of [...this.streams.keys()]) if (key.startsWith(`${workerId}:`)) this.closeStream(key);
  }

  /** Closes the streams still open; the store itself belongs to the caller. */
  close(): void {
    for (const key of [...this.streams.keys()]) this.closeStream(key);
  }

  /** Tells the workers `to` picks, and waits for their acks (at most the ack timeout). */
  private async tellWorkers<M extends 'l3.peer-writes' | 'l3.expect-keys' | 'l3.published'>(to: (id: number) => boolean, method: M, args: WorkerMethods[M]['args']): Promise<void> {
    const peers = [...this.workers].filter(([id]) => to(id));
    await Promise.all(
      peers.map(([id, peer]) =>
        peer.call(method, args, this.peerAckTimeoutMs).catch((error: Error) => {
          // A worker that is stuck or exiting must not hold everyone's writes (or an import); it may serve this one late.
          this.logger.warn('a worker did not acknowledge in time; going on without it', { worker: id, method, error: error.message });
        }),
      ),
    );
  }

  /** A worker's snapshot import: run here, where L3 is; answered once every worker reads the new generation. */
  private async importSnapshot(caller: WorkerEndpoint, { view, paths, cutoffMs }: { view: string; paths: string[]; cutoffMs: number | undefined }, importId: number): Promise<ImportReport> {
    const present = new Set(this.workers.keys());
    const report = await this.imports({
      view: wireView(this.registry, view),
      paths,
      cutoffMs,
      onProgress: (progress) => void caller.call('snapshot.progress', { importId, progress }).catch(() => undefined),
    });
    if (!report.published) return report;
    // A worker (re)started during the import missed the keys staged before it came: it gets them all.
    const late = (id: number): boolean => !present.has(id);
    if ([...this.workers.keys()].some(late)) {
      let keys: Buffer[] = [];
      for await (const ref of this.store.recordRefs()) {
        if (ref.view.name !== view) continue;
        keys.push(ref.key);
        if (keys.length < REFS_BATCH) continue;
        await this.tellWorkers(late, 'l3.expect-keys', { keys });
        keys = [];
      }
      await this.tellWorkers(late, 'l3.expect-keys', { keys });
    }
    await this.tellWorkers(() => true, 'l3.published', { view, snapshot: this.publishedSnapshot(view) });
    return report;
  }

  private publishedSnapshot(view: string): PublishedSnapshot {
    return { generation: this.store.publishedGeneration(view), cutoffMs: this.store.snapshotCutoff(view) };
  }

  private async nextRefs(workerId: number, stream: number): Promise<{ refs: WireRef[]; done: boolean }> {
    const key = `${workerId}:${stream}`;
    let iterator = this.streams.get(key);
    if (iterator === undefined) {
      iterator = this.store.recordRefs()[Symbol.asyncIterator]();
      this.streams.set(key, iterator);
    }
    const refs: WireRef[] = [];
    while (refs.length < REFS_BATCH) {
      const next = await iterator.next();
      if (next.done === true) {
        this.streams.delete(key);
        return { refs, done: true };
      }
      refs.push(toWireRef(next.value));
    }
    return { refs, done: false };
  }

  private closeStream(key: string): void {
    const iterator = this.streams.get(key);
    this.streams.delete(key);
    void iterator?.return?.().catch((error: Error) => this.logger.warn('closing an L3 key stream failed', { error: error.message }));
  }
}
