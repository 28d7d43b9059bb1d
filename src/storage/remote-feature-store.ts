import { fromWireRef, toWireRef, type PrimaryMethods, type WireWrite, type WorkerMethods } from '../cluster-protocol.js';
import type { Registry } from '../config/registry.js';
import { ERROR_CATALOGUE, StrataError, type ErrorCode } from '../errors.js';
import type { IpcEndpoint } from '../util/ipc-endpoint.js';
import type { FeatureStore, PeerWrite, PublishedSnapshot, RecordRef, RecordWrite } from './feature-store.js';

/** A failed L3 call as the client should see it: the primary's error code when it sent one (a LevelDB failure is STRATA_STORAGE_UNAVAILABLE there too). */
function storeError(error: unknown): StrataError {
  const { message, code } = error as Error & { code?: string };
  return new StrataError(code !== undefined && code in ERROR_CATALOGUE ? (code as ErrorCode) : 'STRATA_STORAGE_UNAVAILABLE', `L3 (in the primary process): ${message}`, { cause: error });
}

/**
 * L3 in a worker of `strata serve --workers N`: the primary process owns the
 * LevelDB (only one process may open it) and answers these calls over IPC
 * (src/storage/feature-store-host.ts). The primary also forwards the records
 * other workers commit, before their callers hear back: they reach the
 * onPeerWrites listener.
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
  private generations: Readonly<Record<string, PublishedSnapshot>> = {};

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
      throw storeError(error);
    });
  }

  publishedGeneration(view: string): number {
    return this.generations[view]?.generation ?? 0;
  }

  snapshotCutoff(view: string): number {
    return this.generations[view]?.cutoffMs ?? 0;
  }

  /** Never called: snapshots are imported only where one process owns L3 (the admin endpoint refuses under --workers). */
  onPublish(): void {}

  onPeerWrites(listener: (writes: readonly PeerWrite[]) => void): void {
    this.peerListener = listener;
    const early = this.earlyPeerWrites;
    this.earlyPeerWrites = [];
    if (early.length > 0) listener(early);
  }

  /** Nothing to release: the primary owns L3 and closes it after every worker stopped. */
  async close(): Promise<void> {}
}
