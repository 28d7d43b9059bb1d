import type { ViewDef } from '../config/registry.js';
import type { EventLog, IncomingEvent } from './event-log.js';
import type { FeatureRecord, Version } from './record.js';

/** What a record key holds, decoded: versions of a push view's features, or a stream view's events. */
export type StoredRecord = FeatureRecord | EventLog;

/**
 * A record a write produced: its bytes, or for an event log the log as the
 * merge wrote it, which a store in this process hands back so that nobody
 * reads its header again.
 */
export type WrittenRecord = Uint8Array | EventLog;

/** A record's address: its view and its key bytes (keys.ts). */
export interface RecordRef {
  readonly view: ViewDef;
  readonly key: Buffer;
  /** The key's latin1 string (its L1 id), when the caller has it already: a write need not make it again. */
  readonly id?: string;
}

/** Versions of a push view's features to merge in, in write order. */
export interface VersionWrite extends RecordRef {
  readonly versions: readonly Version[];
}

/** Events of a stream view's entity to add, in arrival order. */
export interface EventWrite extends RecordRef {
  readonly events: readonly IncomingEvent[];
  /**
   * A copy of the record from the shared tier (L2), when there is one: the
   * merge builds on whichever of it and L3's copy has the newer revision, so
   * an ingester taking over a partition continues from the state the previous
   * owner left in L2.
   */
  readonly shared?: Uint8Array;
}

export type RecordWrite = VersionWrite | EventWrite;

export function isEventWrite(write: RecordWrite): write is EventWrite {
  return 'events' in write;
}

/** A record another process committed to the shared L3: its ref and its new bytes. */
export interface PeerWrite extends RecordRef {
  readonly record: Uint8Array;
}

/** A view's published snapshot: its generation, and the end of the newest tile it covers (0 without tiles). */
export interface PublishedSnapshot {
  readonly generation: number;
  readonly cutoffMs: number;
}

/** Which snapshot generation of each view with a batch half reads address (see SnapshotStore and keys.ts). */
export interface GenerationSource {
  /** 0 before a view's first import. */
  publishedGeneration(view: string): number;
  /** The end of the newest tile a stream view's published snapshot covers (events up to it are in its tiles); 0 without one. */
  snapshotCutoff(view: string): number;
  onPublish(listener: (view: string, generation: number) => void): void;
}

/**
 * The durable store (L3): the source of truth for this process. Records come
 * back encoded in the view's current schema.
 */
export interface FeatureStore extends GenerationSource {
  getRecords(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Merges versions (or events) into their records and prunes history past
   * retention, all writes in one atomic batch. Returns the new records, one
   * per write.
   */
  applyWrites(writes: readonly RecordWrite[], nowMs: number): Promise<WrittenRecord[]>;
  /** Every record's ref, in key order, for views still in the registry. */
  recordRefs(): AsyncIterable<RecordRef>;
  /**
   * Only where other processes write to the same L3 (--workers): the listener
   * hears of their commits before their callers are answered, so a cache
   * above can learn the keys and records. One listener; it runs synchronously.
   */
  onPeerWrites?(listener: (writes: readonly PeerWrite[]) => void): void;
  /**
   * Only where another process imports snapshots into the shared L3
   * (--workers): keys of a generation being staged, heard before its
   * publish, for a bloom gate to learn. One listener.
   */
  onExpectedKeys?(listener: (keys: readonly Buffer[]) => void): void;
  /**
   * Only a local L3: the bloom gate the last clean close saved, handed out
   * once. Every open removes it from disk first, so after a crash, or after
   * another process opened this L3 (an import), there is none.
   */
  takeSavedBloomGate?(): Buffer | undefined;
  /** Only a local L3: kept for the next open; call last, once no write can follow. */
  saveBloomGate?(bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}
