import type { ImportRequest } from '../batch/import-runner.js';
import type { ImportProgress, ImportReport } from '../batch/snapshot-import.js';
import type { Registry } from '../config/registry.js';
import { ERROR_CATALOGUE, StrataError, type ErrorCode } from '../errors.js';
import type { FeatureStore, PeerWrite, PublishedSnapshot, RecordRef, RecordWrite } from '../storage/feature-store.js';
import type { IpcEndpoint, RemoteCallError } from '../util/ipc-endpoint.js';
import { fromWireRef, toWireRef, type PrimaryMethods, type WireWrite, type WorkerMethods } from './protocol.js';

/**
 * A failed call to the primary as the client should see it: the primary's
 * error code and field when it sent them (a LevelDB failure is
 * STRATA_STORAGE_UNAVAILABLE there too); a closed channel is L3 unavailable.
 */
function primaryError(error: unknown, context: string): StrataError {
  const { message, code, field } = error as RemoteCallError;
  return new StrataError(code !== undefined && code in ERROR_CATALOGUE ? (code as ErrorCode) : 'STRATA_STORAGE_UNAVAILABLE', `${context}${message}`, { field, cause: error });
}

/**
 * L3 in a worker of `strata serve --workers N`: the primary process owns the
 * LevelDB (only one process may open it) and answers these calls over IPC
 * (src/cluster/feature-store-host.ts). The primary also forwards the records
 * other workers commit, before their callers hear back: they reach the
 * onPeerWrites listener. Snapshot imports run in the primary too; their
 * staged keys and publishes reach every worker (onExpectedKeys, onPublish).
 */
export class RemoteFeatureStore implements FeatureStore {
  private readonly primary: IpcEndpoint<PrimaryMethods, WorkerMethods>;
  private readonly registry: Registry;
  private peerListener: ((writes: readonly PeerWrite[]) => void) | undefined;
  /**
   * Peer writes that arrived before anything listened: while this worker is
   * still reading L3's keys to build its bloom gate, it must not lose the keys
   * written meanwhile. Handed to the listener when it subscribes.
   */
  private earlyPeerWrites: PeerWrite[] = [];
  private nextStream = 1;
  private generations: Record<string, PublishedSnapshot> = {};
  private readonly publishListeners: ((view: string, generation: number) => void)[] = [];
  private expectedKeysListener: ((keys: readonly Buffer[]) => void) | undefined;
  /** As early peer writes: keys of a snapshot being staged while this worker still builds its bloom gate. */
  private earlyExpectedKeys: Buffer[] = [];
  private nextImport = 1;
  /** Progress listeners of this worker's imports under way, by import id. */
  private readonly importProgress = new Map<number, (progress: ImportProgress) => void>();

  /** Connects to the primary's L3 and learns the published snapshot generations. */
  static async connect(primary: IpcEndpoint<PrimaryMethods, WorkerMethods>, registry: Registry): Promise<RemoteFeatureStore> {
    const store = new RemoteFeatureStore(primary, registry);
    store.generations = await store.call('l3.generations', null);
    return store;
  }

  constructor(primary: IpcEndpoint<PrimaryMethods, WorkerMethods>, registry: Registry) {
    this.primary = primary;
    this.registry = registry;
    primary.serve('l3.peer-writes', ({ records }) => {
      const writes = records.map((wire): PeerWrite => ({ ...fromWireRef(registry, wire), record: wire.record }));
      if (this.peerListener === undefined) this.earlyPeerWrites.push(...writes);
      else this.peerListener(writes);
      return null;
    });
    primary.serve('l3.expect-keys', ({ keys }) => {
      if (this.expectedKeysListener === undefined) this.earlyExpectedKeys.push(...keys);
      else this.expectedKeysListener(keys);
      return null;
    });
    primary.serve('l3.published', ({ view, snapshot }) => {
      this.generations[view] = snapshot;
      for (const listener of this.publishListeners) listener(view, snapshot.generation);
      return null;
    });
    primary.serve('snapshot.progress', ({ importId, progress }) => {
      this.importProgress.get(importId)?.(progress);
      return null;
    });
  }

  /** A snapshot import, run by the primary (it owns L3); resolves once every worker reads what it published. */
  async importSnapshot({ view, paths, cutoffMs, onProgress }: ImportRequest): Promise<ImportReport> {
    const importId = this.nextImport++;
    this.importProgress.set(importId, onProgress);
    try {
      return await this.primary.call('snapshot.import', { view: view.name, paths: [...paths], cutoffMs, importId });
    } catch (error) {
      // The primary's refusal as it made it: it speaks of the request, not of L3.
      throw primaryError(error, '');
    } finally {
      this.importProgress.delete(importId);
    }
  }

  async getRecords(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[]> {
    if (refs.length === 0) return [];
    return this.call('l3.get', { refs: refs.map(toWireRef) });
  }

  applyWrites(writes: readonly RecordWrite[], nowMs: number): Promise<Uint8Array[]> {
    const wire = writes.map(({ view, ...write }): WireWrite => ({ ...write, view: view.name }));
    return this.call('l3.write', { writes: wire, nowMs });
  }

  async *recordRefs(): AsyncIterable<RecordRef> {
    const stream = this.nextStream++;
    let done = false;
    try {
      while (!done) {
        const batch = await this.call('l3.refs', { stream });
        done = batch.done;
        for (const ref of batch.refs) yield fromWireRef(this.registry, ref);
      }
    } finally {
      if (!done) void this.primary.call('l3.refs-close', { stream }).catch(() => undefined);
    }
  }

  private call<M extends keyof PrimaryMethods>(method: M, args: PrimaryMethods[M]['args']): Promise<PrimaryMethods[M]['result']> {
    return this.primary.call(method, args).catch((error: unknown) => {
      throw primaryError(error, 'L3 (in the primary process): ');
    });
  }

  publishedGeneration(view: string): number {
    return this.generations[view]?.generation ?? 0;
  }

  snapshotCutoff(view: string): number {
    return this.generations[view]?.cutoffMs ?? 0;
  }

  /** Publishes reach every worker from the primary (l3.published) before the import's caller hears of them. */
  onPublish(listener: (view: string, generation: number) => void): void {
    this.publishListeners.push(listener);
  }

  onExpectedKeys(listener: (keys: readonly Buffer[]) => void): void {
    this.expectedKeysListener = listener;
    const early = this.earlyExpectedKeys;
    this.earlyExpectedKeys = [];
    if (early.length > 0) listener(early);
  }

  onPeerWrites(listener: (writes: readonly PeerWrite[]) => void): void {
    this.peerListener = listener;
    const early = this.earlyPeerWrites;
    this.earlyPeerWrites = [];
    if (early.length > 0) listener(early);
  }

  /** Nothing to release: the primary owns L3 and closes it after every worker stopped. */
  async close(): Promise<void> {}
}
