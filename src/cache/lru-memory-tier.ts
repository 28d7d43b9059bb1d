import { LRUCache } from 'lru-cache';
import type { Metrics } from '../observability/metrics.js';
import type { StoredRecord } from '../storage/feature-store.js';
import { FrequencySketch } from './frequency-sketch.js';
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
/** A guess of the smallest typical entry, to size the frequency sketch for as many entries as the budget could hold. */
const SMALL_ENTRY_BYTES = 512;

/**
 * L1 on lru-cache, bounded by an estimate of the heap bytes each entry holds
 * (record bytes + offset tables + object headers + key), never by count, so
 * memory stays near the budget whatever the size of the records.
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
 */
export class LruMemoryTier implements MemoryTier {
  private readonly cache: LRUCache<string, Cached>;
  private readonly metrics: Metrics;
  /** Key → the newest revision an invalidation announced for it; insertion-ordered, oldest dropped first. */
  private readonly announced = new Map<string, number>();
  private readonly frequencies: FrequencySketch;
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
    this.cache = new LRUCache<string, Cached>({
      maxSize: options.budgetBytes,
      // An entry larger than an eighth of the budget would evict too much to earn its place.
      maxEntrySize: Math.max(1, Math.floor(options.budgetBytes / 8)),
      sizeCalculation: entryBytes,
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

  offer(id: string, entry: Cached): void {
    const current = this.cache.peek(id, { allowStale: false });
    if (current !== undefined && current.revision > entry.revision) return;
    if (this.announced.size > 0 && entry.revision < (this.announced.get(id) ?? -Infinity)) return;
    if (current === undefined && !this.admits(id, entry)) {
      this.metrics.l1Refused.inc();
      return;
    }
    this.cache.set(id, entry, this.setOptions);
  }

  /**
   * Whether a new entry may come in: while there is room, yes; then if the
   * next to be evicted is stale (worth nothing), or asked for less often.
   */
  private admits(id: string, entry: Cached): boolean {
    if (this.cache.calculatedSize + entryBytes(entry, id) <= this.budgetBytes) return true;
    const victim = this.cache.rkeys().next();
    if (victim.done === true || this.cache.getRemainingTTL(victim.value) <= 0) return true;
    return this.frequencies.frequency(id) > this.frequencies.frequency(victim.value);
  }

  set(id: string, entry: Cached): void {
    this.cache.set(id, entry, this.setOptions);
  }

  update(id: string, entry: StoredRecord): void {
    if (this.cache.has(id)) this.cache.set(id, entry, this.setOptions);
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
    this.cache.clear();
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
    this.dropAfterLoss = setTimeout(() => this.cache.clear(), this.maxStalenessMs);
    this.dropAfterLoss.unref();
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

function entryBytes(entry: Cached, id: string): number {
  return entry.memoryBytes + id.length + ENTRY_OVERHEAD_BYTES;
}
