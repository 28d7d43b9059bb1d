import type { ViewDef } from '../config/registry.js';
import type { Version } from './record.js';

/** A record's address: its view and its key bytes (keys.ts). */
export interface RecordRef {
  readonly view: ViewDef;
  readonly key: Buffer;
}

export interface RecordWrite extends RecordRef {
  /** Versions to merge in, in write order. */
  readonly versions: readonly Version[];
}

/** A record another process committed to the shared L3: its ref and its new bytes. */
export interface PeerWrite extends RecordRef {
  readonly record: Uint8Array;
}

/**
 * The durable store (L3): the source of truth for this process. Records come
 * back encoded in the view's current schema.
 */
export interface FeatureStore {
  getRecords(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Merges versions into their records and prunes history past retention, all
   * writes in one atomic batch. Returns the new record bytes, one per write.
   */
  applyWrites(writes: readonly RecordWrite[], nowMs: number): Promise<Uint8Array[]>;
  /** Every record's ref, in key order, for views still in the registry. */
  recordRefs(): AsyncIterable<RecordRef>;
  /**
   * Only where other processes write to the same L3 (--workers): the listener
   * hears of their commits before their callers are answered, so a cache
   * above can learn the keys and records. One listener; it runs synchronously.
   */
  onPeerWrites?(listener: (writes: readonly PeerWrite[]) => void): void;
  close(): Promise<void>;
}
