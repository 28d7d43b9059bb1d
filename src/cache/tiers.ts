import type { RecordRef, StoredRecord } from '../storage/feature-store.js';

/**
 * What a cache tier knows about a key: a record, or ABSENT (looked up below
 * and found nowhere), or undefined (not cached).
 */
export const ABSENT = Object.freeze({ revision: -1, memoryBytes: 0 });
export type Cached = StoredRecord | typeof ABSENT;

/** L1: in-process, synchronous, bounded by bytes. Keys are the latin1 string of the record key. */
export interface MemoryTier {
  get(id: string): Cached | undefined;
  /** As get, for scans: the ask is not counted toward admission, and the entry is not made recent. */
  peek(id: string): Cached | undefined;
  /** Stores `entry` unless the tier already holds a newer revision of it (a racing write got there first). */
  offer(id: string, entry: Cached): void;
  /** Stores `entry` whatever the tier holds: for this process's own writes, which are the newest by definition. */
  set(id: string, entry: Cached): void;
  /**
   * This process wrote `entry` as the ingester does: an entry the tier holds
   * (ABSENT included) is replaced; a key it does not hold stays out, so the
   * thousands of entities a stream step touches do not push out what reads
   * keep hot. Either way an older record offered later (a read that raced
   * the write) is refused.
   */
  update(id: string, entry: StoredRecord): void;
  /**
   * Another process wrote `revision` of the record: drop an older entry, and
   * refuse older ones offered later (a read that raced the write).
   */
  invalidate(id: string, revision: number): void;
  /**
   * Invalidations flow again after a gap: drops every entry (some may have
   * been missed), and entries live until evicted or invalidated from now on.
   */
  invalidationsResumed(): void;
  /** Invalidations may go unheard from now: every entry lives at most the staleness bound from here. */
  invalidationsLost(): void;
  readonly bytes: number;
  readonly entries: number;
}

export interface InvalidationListener {
  invalidate(key: Buffer, revision: number): void;
  resumed(): void;
  lost(): void;
}

/** L2: shared between processes, asynchronous, may be down. Never throws: an unavailable tier answers undefined (reads) or false (put). */
export interface SharedTier {
  /**
   * Record bytes per ref (undefined for a miss), or undefined as a whole when
   * the tier could not answer (down, timed out): not knowing is no miss, so
   * callers must not conclude a record is absent, nor build on nothing.
   */
  getMany(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[] | undefined>;
  /** As getMany, for a write that builds on what L2 holds (stream ingestion): patient, and ordered with put. */
  getManyForWrite(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[] | undefined>;
  /** Fills after a lower-tier read: only where the key is absent, so it never overwrites a newer write. */
  fill(refs: readonly RecordRef[], records: readonly Uint8Array[]): void;
  /** Deletes entries (ones that could not be decoded). Best effort. */
  discard(refs: readonly RecordRef[]): void;
  /**
   * Write-through after an L3 commit, with the shared bloom bits of the
   * written keys. Written records do not expire in L2 (fills do): replicas
   * rely on L2 for what they did not write. Every replica is told the keys
   * and revisions written (see onInvalidation). False when not stored.
   */
  put(refs: readonly RecordRef[], records: readonly Uint8Array[], bloomOffsets: readonly number[]): Promise<boolean>;
  /** Resolves true once connected, false after `timeoutMs`. */
  waitUntilReady(timeoutMs: number): Promise<boolean>;
  /** The shared bloom bits every replica publishes (see BloomGate); undefined when unreadable, or unchanged since the last fetch. */
  fetchBloom(): Promise<Uint8Array | undefined>;
  /** ORs a whole filter into the shared bloom bits. */
  mergeBloom(bits: Uint8Array): Promise<void>;
  /** The server's run id (changes when Redis restarts); undefined when unreachable. */
  runId(): Promise<string | undefined>;
  /** Called on every (re)connection. */
  onReady(listener: () => void): void;
  /**
   * Subscribes to the writes of every replica (this one's included).
   * `invalidate` gets each written key with its new revision; `resumed` is
   * called whenever the subscription (re)starts, since writes made while it
   * was down were not delivered; `lost` when it is known down (connection
   * closed, or a ping on it unanswered), after which writes go unheard until
   * `resumed`.
   */
  onInvalidation(listener: InvalidationListener): void;
  readonly ready: boolean;
  close(): Promise<void>;
}
