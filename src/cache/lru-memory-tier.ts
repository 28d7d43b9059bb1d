import { LRUCache } from 'lru-cache';
import type { Metrics } from '../observability/metrics.js';
import type { StoredRecord } from '../storage/feature-store.js';
import { FeatureRecord } from '../storage/record.js';
import { FrequencySketch } from './frequency-sketch.js';
import { RecordSlabs } from './record-slabs.js';
import { type Cached, type MemoryTier } from './tiers.js';

/**
 * Per-entry cost beyond the record itself: the key string's header, the
 * LRU's map entry and its index/ttl arrays. Measured with --expose-gc over
 * 100k entries (test/unit/lru-memory-tier.test.ts keeps it honest).
 */
const ENTRY_OVERHEAD_BYTES = 200;
/**
 * Revisions announced by invalidations and uncached writes, remembered for
 * the keys most recently announced: a read that fetched the previous record
 * from L2 or L3 just before the write must not put it back afterwards.
 * Such a read lasts at most the L2 timeout, by which time thousands of
 * newer invalidations have not come in on any real write rate.
 */
const REMEMBERED_INVALIDATIONS = 10_000;
/** A guess of the smallest typical entry (a record of a few features in a slab: ~400 B), to size the frequency sketch for as many entries as the budget could hold. */
const SMALL_ENTRY_BYTES = 384;
/**
 * Heap cost of a feature record whose bytes are in a slab: the object and
 * its two views (no buffer of its own), and its place in the slab's set.
 */
const SLAB_RECORD_OVERHEAD = 240;
/** Share of slab bytes that may hold released records before a slab is compacted; each slab record is charged for it up front. */
const SLAB_IDLE_SHARE = 0.1;
/** A slab: 1/64 of the budget within these bounds (compacting one copies at most this much, on the thread that serves). */
const SLAB_MIN_BYTES = 16 * 1024;
const SLAB_MAX_BYTES = 256 * 1024;

/**
 * L1 on lru-cache, bounded by an estimate of the resident bytes each entry
 * holds (record bytes + offset tables + objects + their native bookkeeping +
 * key), never by count, so memory stays near the budget whatever the size of
 * the records.
 *
 * Staleness (with L2; `maxStalenessMs` 0 means no L2, entries live until
 * evicted): other replicas' writes arrive as invalidations (see
 * SharedTier). While the subscription is live an entry cannot have missed
 * one, so it lives until evicted or invalidated (a fixed 60 s age limit
 * held the loadtest's Zipf run to 65 % L1 hits, against 85 % without: every
 * entry read less than once a minute was fetched again). While invalidations
 * may go unheard (before the first subscription, or from the moment it is
 * lost), new entries live at most `maxStalenessMs` and the older ones are
 * all dropped that long after the loss, unless the subscription resumes
 * first, which drops them anyway.
 *
 * Admission (TinyLFU): once L1 is full, a record read from L2 or L3 comes in
 * only if it was asked for more often lately than the entry it would evict
 * first, so one-off reads do not push out entries read many times.
 * bench:l1, Zipf(0.99) over 1M keys with room for 10 %: 76.6 % hits with
 * plain LRU, 80.0 % with admission. Writes always come in: what was just
 * written is what gets read.
 *
 * Memory (RecordSlabs): a feature record that comes in is moved into a
 * shared slab, so it costs its bytes, three heap objects and a share of
 * idle slab space instead of a buffer of its own (a heap object and ~180 B
 * native). A 128 MiB budget holds 122k of the loadtest's 50-feature records
 * with slabs, 105k without, and resident memory grows by 126 MiB filling it
 * (filled under --expose-gc; test/unit/lru-memory-tier.test.ts keeps the
 * ratio for small records).
 */
export class LruMemoryTier implements MemoryTier {
  private readonly cache: LRUCache<string, Cached>;
  private readonly metrics: Metrics;
  /** Key → the newest revision an invalidation announced for it; insertion-ordered, oldest dropped first. */
  private readonly announced = new Map<string, number>();
  private readonly frequencies: FrequencySketch;
  private readonly slabs: RecordSlabs;
  private readonly budgetBytes: number;
  private readonly maxStalenessMs: number;
  /**
   * How entries are set: without expiry while invalidations are live (a
   * per-entry ttl of 0 never expires), else with the cache's ttl,
   * maxStalenessMs. Two objects made once, not one per set (lru-cache writes
   * a `status` field into them, so they are not frozen).
   */
  private readonly expiring: LRUCache.SetOptions<string, Cached, unknown> = {};
  private readonly lasting: LRUCache.SetOptions<string, Cached, unknown> = { ttl: 0 };
  private setOptions = this.expiring;
  private dropAfterLoss: NodeJS.Timeout | undefined;
  private lastingAfterResume: NodeJS.Timeout | undefined;
  private readonly resumeGraceMs: number;

  /**
   * `resumeGraceMs`: how long after invalidations resume entries still
   * expire. An L2 read sent before the subscription resumed may have been
   * answered before the writes whose messages were lost; it lands within the
   * L2 read timeout (plus any event-loop stall), and must not last for good.
   */
  constructor(options: { budgetBytes: number; maxStalenessMs: number; resumeGraceMs?: number; metrics: Metrics }) {
    const ttl = options.maxStalenessMs > 0 ? { ttl: options.maxStalenessMs, ttlResolution: 1 } : {};
    this.metrics = options.metrics;
    this.budgetBytes = options.budgetBytes;
    this.maxStalenessMs = options.maxStalenessMs;
    this.resumeGraceMs = options.resumeGraceMs ?? 0;
    // Four slots per entry the budget could hold: the counters of kept entries rarely share a slot.
    this.frequencies = new FrequencySketch((4 * options.budgetBytes) / SMALL_ENTRY_BYTES);
    const slabBytes = Math.min(SLAB_MAX_BYTES, Math.max(SLAB_MIN_BYTES, Math.floor(options.budgetBytes / 64 / 1024) * 1024));
    this.slabs = new RecordSlabs({ slabBytes, maxIdleShare: SLAB_IDLE_SHARE });
    this.cache = new LRUCache<string, Cached>({
      maxSize: options.budgetBytes,
      // An entry larger than an eighth of the budget would evict too much to earn its place.
      maxEntrySize: Math.max(1, Math.floor(options.budgetBytes / 8)),
      sizeCalculation: (entry, id) => this.entryBytes(entry, id),
      dispose: (entry) => {
        if (entry instanceof FeatureRecord) this.slabs.release(entry);
      },
      ...ttl,
      updateAgeOnGet: false,
      // So rkeys() starts at the true LRU end: with false it walks past every stale entry
      // first, O(entries) per admission once L1 is older than the ttl, which held the loop
      // for seconds in the loadtest (Zipf, 1M entities). Reads and peeks pass false.
      allowStale: true,
    });
  }

  get(id: string): Cached | undefined {
    this.frequencies.increment(id);
    return this.cache.get(id, { allowStale: false });
  }

  peek(id: string): Cached | undefined {
    return this.cache.peek(id, { allowStale: false });
  }

  offer(id: string, entry: Cached): void {
    const current = this.cache.peek(id, { allowStale: false });
    if (current !== undefined && current.revision > entry.revision) return;
    if (this.announced.size > 0 && entry.revision < (this.announced.get(id) ?? -Infinity)) return;
    if (current === undefined && !this.admits(id, entry)) {
      this.metrics.l1Refused.inc();
      return;
    }
    this.store(id, entry);
  }

  /** Sets an entry, its bytes moved into a slab first when it is a feature record small enough. */
  private store(id: string, entry: Cached): void {
    const inSlab = this.inSlab(entry);
    if (inSlab) this.slabs.adopt(entry);
    this.cache.set(id, entry, this.setOptions);
    if (this.cache.peek(id, { allowStale: true }) === entry) return;
    // Not kept (lru-cache refuses an entry over its size limits): its slab space is idle from now, and
    // a read that raced this write must not put back what it found before it (an ABSENT fits easily).
    if (inSlab) this.slabs.release(entry);
    this.announce(id, entry.revision);
  }

  private inSlab(entry: Cached): entry is FeatureRecord {
    return entry instanceof FeatureRecord && entry.footprint <= this.slabs.maxFootprint;
  }

  /** What an entry holds in memory: see ENTRY_OVERHEAD_BYTES, SLAB_RECORD_OVERHEAD. */
  private entryBytes(entry: Cached, id: string): number {
    const held = this.inSlab(entry) ? Math.ceil(entry.footprint / (1 - SLAB_IDLE_SHARE)) + SLAB_RECORD_OVERHEAD : entry.memoryBytes;
    return held + id.length + ENTRY_OVERHEAD_BYTES;
  }

  /**
   * Whether a new entry may come in: while there is room, yes; then if the
   * next to be evicted is stale (worth nothing), or asked for less often.
   */
  private admits(id: string, entry: Cached): boolean {
    if (this.cache.calculatedSize + this.entryBytes(entry, id) <= this.budgetBytes) return true;
    const victim = this.cache.rkeys().next();
    if (victim.done === true || this.cache.getRemainingTTL(victim.value) <= 0) return true;
    return this.frequencies.frequency(id) > this.frequencies.frequency(victim.value);
  }

  set(id: string, entry: Cached): void {
    this.store(id, entry);
  }

  update(id: string, entry: StoredRecord): void {
    if (this.cache.has(id)) this.store(id, entry);
    else this.announce(id, entry.revision);
  }

  invalidate(id: string, revision: number): void {
    const current = this.cache.peek(id, { allowStale: false });
    if (current !== undefined && current.revision < revision) this.cache.delete(id);
    this.announce(id, revision);
  }

  /** Refuses offers of `id` older than `revision` from now on (while it stays among the most recent announced). */
  private announce(id: string, revision: number): void {
    if (revision <= (this.announced.get(id) ?? -Infinity)) return;
    this.announced.delete(id);
    this.announced.set(id, revision);
    if (this.announced.size > REMEMBERED_INVALIDATIONS) this.announced.delete(this.announced.keys().next().value!);
  }

  invalidationsResumed(): void {
    this.stopTimers();
    this.clear();
    if (this.maxStalenessMs === 0) return;
    if (this.resumeGraceMs === 0) this.setOptions = this.lasting;
    else {
      this.lastingAfterResume = setTimeout(() => (this.setOptions = this.lasting), this.resumeGraceMs);
      this.lastingAfterResume.unref();
    }
  }

  invalidationsLost(): void {
    if (this.setOptions !== this.lasting && this.lastingAfterResume === undefined) return;
    this.stopTimers();
    this.setOptions = this.expiring;
    this.dropAfterLoss = setTimeout(() => this.clear(), this.maxStalenessMs);
    this.dropAfterLoss.unref();
  }

  /** Slabs first: the releases clearing the cache makes then find nothing to compact. */
  private clear(): void {
    this.slabs.clear();
    this.cache.clear();
  }

  private stopTimers(): void {
    clearTimeout(this.dropAfterLoss);
    clearTimeout(this.lastingAfterResume);
    this.dropAfterLoss = undefined;
    this.lastingAfterResume = undefined;
  }

  get bytes(): number {
    return this.cache.calculatedSize;
  }

  get entries(): number {
    return this.cache.size;
  }

  /** Publishes size gauges; called on scrape rather than per request. */
  observe(): void {
    this.metrics.l1Bytes.set(this.bytes);
    this.metrics.l1Entries.set(this.entries);
  }
}
