import type { ViewDef } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { StrataError } from '../errors.js';
import type { EventWrite, FeatureStore, GenerationSource, PeerWrite, RecordRef, RecordWrite, StoredRecord } from '../storage/feature-store.js';
import { CorruptRecordError } from '../storage/record.js';
import { decodeStoredRecord, openWrittenRecord, writtenBytes } from '../storage/stored-record.js';
import { BloomGate } from './bloom-gate.js';
import { ABSENT, type MemoryTier, type SharedTier } from './tiers.js';

/** Most keys remembered for re-publishing to L2; beyond it they are dropped (and counted). */
const MAX_UNPUBLISHED = 100_000;
const REPUBLISH_BATCH = 1_000;
/** Write-throughs waiting for L2 at most; beyond, written keys are queued for re-publishing. */
const MAX_PENDING_PUBLISHES = 64;
/** How long a clean stop goes on publishing the keys still queued: no batch starts after it (one under way may take an L2 write timeout more). */
const CLOSE_REPUBLISH_MS = 5_000;

/** A record to look up, by view and L1 id (the latin1 string of its record key). */
export interface RecordLookup {
  readonly view: ViewDef;
  readonly id: string;
}

export interface TierReadOptions {
  /** False leaves L1 and L2 as they were (hits below L1 are not copied upward). */
  readonly promote?: boolean;
  /**
   * Filled with the positions of lookups no tier could answer for sure: L2
   * did not answer and L3 holds no record. Where stream state reaches this
   * process only through L2 (a replica of the scaled-out topology), those
   * read as never written although they may not be.
   */
  readonly unreadable?: number[];
}

/** A lookup that went past L1: with its key bytes and its position in the request. */
interface Miss extends RecordRef {
  readonly id: string;
  readonly index: number;
}

export interface TieredRecordStoreOptions {
  readonly l1: MemoryTier | undefined;
  readonly l2: SharedTier | undefined;
  readonly l3: FeatureStore;
  /** The registry's view names: a saved bloom gate is used only if it was built over all of them. */
  readonly views: readonly string[];
  readonly bloomCapacity: number;
  /** How often the shared bloom bits are read back from L2. */
  readonly bloomSyncMs: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Read-through over the tiers: L1 → bloom gate → L2 → L3, each tier asked
 * once per request for all the keys the tier above missed, and every hit
 * promoted upward (L3 → L2 and L1, L2 → L1). Writes go to L3 first (the
 * truth), then through to L1 and, without holding the caller, to L2.
 */
export class TieredRecordStore {
  private readonly l1: MemoryTier | undefined;
  private readonly l2: SharedTier | undefined;
  private readonly l3: FeatureStore;
  private readonly gate: BloomGate;
  private readonly views: readonly string[];
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private bloomSync: NodeJS.Timeout | undefined;
  /**
   * Every L2 write runs on this chain, in L3 commit order, and a re-publish
   * reads L3 inside it: so L2 never ends up holding an older record than the
   * last one written through.
   */
  private publishChain: Promise<unknown> = Promise.resolve();
  /** Keys whose L2 write-through failed: L2 lacks them or holds an older record. Re-published from L3. */
  private readonly unpublished = new Map<string, RecordRef & { readonly id: string }>();
  private republishTimer: NodeJS.Timeout | undefined;
  private pendingPublishes = 0;
  /** The Redis run id last connected to: a change means Redis restarted, maybe empty. */
  private redisRunId: string | undefined;
  private closed = false;

  private constructor(options: TieredRecordStoreOptions, gate: BloomGate) {
    this.l1 = options.l1;
    this.l2 = options.l2;
    this.l3 = options.l3;
    this.gate = gate;
    this.views = options.views;
    this.metrics = options.metrics;
    this.logger = options.logger;
  }

  /** Publishes this process's keys on every L2 (re)connection and reads everyone's back periodically. */
  private shareBloom(l2: SharedTier, intervalMs: number): void {
    const pull = async (): Promise<void> => {
      const bits = await l2.fetchBloom();
      if (bits !== undefined) this.gate.mergeShared(bits);
    };
    l2.onReady(() => {
      const snapshot = this.gate.sharedSnapshot();
      if (snapshot === undefined) return;
      l2.mergeBloom(snapshot)
        .then(pull)
        .catch((error: Error) => this.logger.warn('bloom publish failed', { error: error.message }));
      void this.republishAllIfRedisRestarted(l2);
    });
    this.bloomSync = setInterval(() => void pull().catch((error: Error) => this.logger.warn('bloom sync failed', { error: error.message })), intervalMs);
    this.bloomSync.unref();
  }

  /** Other replicas' writes reach L1 as invalidations; whenever some may have been missed, L1 starts over. */
  private followInvalidations(l2: SharedTier): void {
    const l1 = this.l1;
    if (l1 === undefined) return;
    l2.onInvalidation({
      invalidate: (key, revision) => l1.invalidate(key.toString('latin1'), revision),
      resumed: () => {
        l1.invalidationsResumed();
        this.logger.info('l1 cleared: the l2 invalidation subscription (re)started');
      },
      lost: () => {
        l1.invalidationsLost();
        this.logger.warn('l2 invalidation subscription lost; l1 entries now live at most --l1-max-staleness');
      },
    });
  }

  /**
   * Restores the bloom gate the last clean close saved, or rebuilds it from
   * every record key in L3 before the first read: one pass counts the keys
   * to size the gate, a second adds them. Holding the keys for one pass
   * instead kept ~435 MiB of RSS for good after start with 1M keys (the
   * loadtest's dataset), against ~45 MiB. A restored gate spares both passes
   * over every key in L3, the whole of a large store's start-up time. (It did
   * not lower the loadtest's peak RSS: 466 MiB on L1-hot against 458.)
   */
  static async open(options: TieredRecordStoreOptions): Promise<TieredRecordStore> {
    const gate = TieredRecordStore.restoreGate(options) ?? (await TieredRecordStore.rebuildGate(options));
    options.metrics.bloomKeys.set(gate.size);
    const store = new TieredRecordStore(options, gate);
    if (options.l2 !== undefined) {
      store.shareBloom(options.l2, options.bloomSyncMs);
      store.followInvalidations(options.l2);
    }
    options.l3.onPeerWrites?.((writes) => store.learnPeerWrites(writes));
    options.l3.onExpectedKeys?.((keys) => store.expectKeys(keys));
    return store;
  }

  private static restoreGate(options: TieredRecordStoreOptions): BloomGate | undefined {
    const saved = options.l3.takeSavedBloomGate?.();
    if (saved === undefined) return undefined;
    const started = Date.now();
    let gate: BloomGate | undefined;
    try {
      gate = BloomGate.restore(saved, options.views, options.bloomCapacity, options.l2 === undefined ? undefined : options.bloomCapacity);
    } catch (error) {
      options.logger.warn('the saved bloom gate is unreadable; rebuilding it from L3', { error: (error as Error).message });
      return undefined;
    }
    if (gate === undefined) options.logger.info('the saved bloom gate does not fit this registry or --bloom-capacity; rebuilding it from L3');
    else options.logger.info('bloom gate restored from the last clean stop', { keys: gate.size, ms: Date.now() - started });
    return gate;
  }

  private static async rebuildGate(options: TieredRecordStoreOptions): Promise<BloomGate> {
    const started = Date.now();
    let count = 0;
    for await (const _ref of options.l3.recordRefs()) count++;
    const gate = new BloomGate(Math.max(options.bloomCapacity, count * 2), options.l2 === undefined ? undefined : options.bloomCapacity);
    for await (const ref of options.l3.recordRefs()) gate.add(ref.key);
    options.logger.info('bloom gate rebuilt from L3', { keys: gate.size, ms: Date.now() - started });
    return gate;
  }

  /**
   * Another process's commits to the L3 this one shares (--workers): the gate
   * learns the keys and L1 the records before that write is acknowledged, so
   * no read here can miss it. An offer, not a set: a newer record may be here
   * already. Then an invalidation of what is older: when admission refused
   * the record, a read that raced the write must still not bring back what
   * it found before.
   */
  private learnPeerWrites(writes: readonly PeerWrite[]): void {
    for (const write of writes) {
      this.gate.add(write.key);
      if (this.l1 === undefined) continue;
      const id = write.key.toString('latin1');
      const record = decodeStoredRecord(write.record);
      this.l1.offer(id, record);
      this.l1.invalidate(id, record.revision);
    }
    this.metrics.bloomKeys.set(this.gate.size);
  }

  /** Which snapshot generation of each batch view is read: L3's. */
  get generations(): GenerationSource {
    return this.l3;
  }

  /**
   * Keys about to become readable other than through write() (a snapshot's,
   * before it is published): the gate learns them first, so no read is gated
   * out of them.
   */
  expectKeys(keys: readonly Buffer[]): void {
    for (const key of keys) this.gate.add(key);
    this.metrics.bloomKeys.set(this.gate.size);
  }

  /**
   * The record of each lookup, or undefined where none was ever written.
   * `promote: false` is for scans, such as historical retrieval, that would
   * otherwise push what online reads keep hot out of L1.
   */
  async read(lookups: readonly RecordLookup[], { promote = true, unreadable }: TierReadOptions = {}): Promise<(StoredRecord | undefined)[]> {
    const results: (StoredRecord | undefined)[] = new Array(lookups.length).fill(undefined);
    const missing: Miss[] = [];
    const l1 = this.l1;
    let l1Hits = 0;
    let gated = 0;
    for (let index = 0; index < lookups.length; index++) {
      const { view, id } = lookups[index]!;
      // A scan's asks must not count toward admission: millions of one-off keys would crowd out what online reads keep hot.
      const cached = promote ? l1?.get(id) : l1?.peek(id);
      if (cached !== undefined) {
        l1Hits++;
        if (cached !== ABSENT) results[index] = cached as StoredRecord;
        continue;
      }
      const key = Buffer.from(id, 'latin1');
      if (this.gate.mightContain(key)) missing.push({ view, key, id, index });
      else gated++;
    }
    if (l1 !== undefined) {
      this.metrics.countTier('l1', 'hit', l1Hits);
      this.metrics.countTier('l1', 'miss', lookups.length - l1Hits);
    }
    if (gated > 0) this.metrics.bloomNegatives.inc(gated);
    if (missing.length === 0) return results;

    const afterL2 = await this.readL2(missing, results, promote);
    if (afterL2.misses.length > 0) await this.readL3(afterL2.misses, results, afterL2.answered, promote, unreadable);
    return results;
  }

  /** The lookups L2 does not hold, and whether it answered at all (without L2, L3 is the whole truth). */
  private async readL2(missing: Miss[], results: (StoredRecord | undefined)[], promote: boolean): Promise<{ misses: Miss[]; answered: boolean }> {
    if (this.l2 === undefined) return { misses: missing, answered: true };
    const found = await this.l2.getMany(missing);
    if (found === undefined) return { misses: missing, answered: false };
    const stillMissing: Miss[] = [];
    const corrupt: Miss[] = [];
    found.forEach((bytes, position) => {
      const miss = missing[position]!;
      if (bytes === undefined) {
        stillMissing.push(miss);
        return;
      }
      let record: StoredRecord;
      try {
        record = decodeStoredRecord(bytes);
      } catch (error) {
        // L2 is a cache: an entry it cannot decode is a miss (and is dropped), never a failed read.
        if (!(error instanceof CorruptRecordError)) throw error;
        corrupt.push(miss);
        stillMissing.push(miss);
        return;
      }
      results[miss.index] = record;
      if (promote) this.l1?.offer(miss.id, record);
    });
    if (corrupt.length > 0) {
      this.metrics.countTier('l2', 'error', corrupt.length);
      this.logger.warn('l2 held records that do not decode; dropped them', { keys: corrupt.length });
      this.l2.discard(corrupt);
    }
    this.metrics.countTier('l2', 'hit', missing.length - stillMissing.length);
    this.metrics.countTier('l2', 'miss', stillMissing.length);
    return { misses: stillMissing, answered: true };
  }

  /** `l2Answered`: false when L2 could not be asked, so a key L3 lacks may still be in L2 (another process's write). */
  private async readL3(missing: Miss[], results: (StoredRecord | undefined)[], l2Answered: boolean, promote: boolean, unreadable: number[] | undefined): Promise<void> {
    const found = await this.l3.getRecords(missing);
    const promotedRefs: RecordRef[] = [];
    const promoted: Uint8Array[] = [];
    let hits = 0;
    found.forEach((bytes, position) => {
      const miss = missing[position]!;
      if (bytes === undefined) {
        // A bloom false positive: remember the absence so the next read stops at L1. Not when L2
        // failed to answer: it may hold the record (no invalidation would ever drop the ABSENT).
        if (!l2Answered) unreadable?.push(miss.index);
        else if (promote) this.l1?.offer(miss.id, ABSENT);
        return;
      }
      const record = decodeStoredRecord(bytes);
      results[miss.index] = record;
      hits++;
      if (!promote) return;
      this.l1?.offer(miss.id, record);
      promotedRefs.push(miss);
      promoted.push(record.bytes);
    });
    this.metrics.countTier('l3', 'hit', hits);
    this.metrics.countTier('l3', 'miss', missing.length - hits);
    this.l2?.fill(promotedRefs, promoted);
  }

  /** Commits writes to L3 atomically, then writes them through L1 and L2. */
  async write(writes: readonly (RecordWrite & { readonly id: string })[], nowMs: number): Promise<void> {
    // The gate learns the keys before they become readable, so no read can be gated out of a committed write.
    const l2 = this.l2;
    const bloomOffsets = writes.flatMap((write) => this.gate.add(write.key));
    this.metrics.bloomKeys.set(this.gate.size);
    const written = await this.l3.applyWrites(writes, nowMs);
    for (let index = 0; index < writes.length; index++) this.l1?.set(writes[index]!.id, openWrittenRecord(written[index]!));
    if (l2 === undefined) return;
    const records = written.map(writtenBytes);
    // The caller does not wait for L2: L3 has the write and L1 serves it here. A slow Redis
    // must not hold writes either, so past a bounded queue, keys go to re-publishing instead.
    if (this.pendingPublishes >= MAX_PENDING_PUBLISHES || !l2.ready) {
      this.queueRepublish(writes);
      return;
    }
    this.pendingPublishes++;
    this.publish(async () => {
      if (!(await l2.put(writes, records, bloomOffsets))) this.queueRepublish(writes);
    })
      .catch((error: Error) => this.logger.error('l2 publish failed', { error: error.message }))
      .finally(() => this.pendingPublishes--);
  }

  /**
   * Ingestion's write: resolves once L3 has committed the events and, with
   * L2, once L2 holds the new records — the state other ingesters continue
   * from after a partition moves, and replicas serve. Each merge builds on
   * the newer of L3's and L2's copy. Rejects (the caller retries and must not
   * commit its Kafka offsets) when L2 cannot be read or written.
   */
  async writeEvents(writes: readonly (EventWrite & { readonly id: string })[], nowMs: number): Promise<void> {
    const l2 = this.l2;
    if (l2 === undefined) return this.write(writes, nowMs);
    if (!l2.ready) throw new StrataError('STRATA_STORAGE_UNAVAILABLE', 'L2 redis is unreachable; stream state is held until it is back');
    const shared = await l2.getManyForWrite(writes);
    // Building on L3's copy alone could drop what another ingester left in L2 (a partition that moved).
    if (shared === undefined) throw new StrataError('STRATA_STORAGE_UNAVAILABLE', 'L2 redis did not answer; stream state is held until it does');
    const withShared = writes.map((write, index) => (shared[index] === undefined ? write : { ...write, shared: shared[index] }));
    const bloomOffsets = writes.flatMap((write) => this.gate.add(write.key));
    this.metrics.bloomKeys.set(this.gate.size);
    const written = await this.l3.applyWrites(withShared, nowMs);
    for (let index = 0; index < writes.length; index++) this.l1?.update(writes[index]!.id, openWrittenRecord(written[index]!));
    const records = written.map(writtenBytes);
    const stored = await this.publish(() => l2.put(writes, records, bloomOffsets));
    if (!stored) throw new StrataError('STRATA_STORAGE_UNAVAILABLE', 'L2 redis did not take the stream state; it is retried');
  }

  /**
   * Records written through L2 have no expiry there, so replicas can rely on
   * it; but a Redis that restarted without persistence has lost them. A new
   * Redis run id on reconnection means exactly that: publish every record of
   * this process's L3 again, in batches, in the publish chain.
   */
  private async republishAllIfRedisRestarted(l2: SharedTier): Promise<void> {
    const runId = await l2.runId();
    const previous = this.redisRunId;
    if (runId === undefined || runId === previous) return;
    this.redisRunId = runId;
    if (previous === undefined) return;
    this.logger.warn('l2 redis restarted; publishing this process\'s records to it again', { runId });
    let batch: RecordRef[] = [];
    let published = 0;
    const flush = async (refs: RecordRef[]): Promise<void> => {
      await this.publish(async () => {
        const records = await this.l3.getRecords(refs);
        const present = refs.filter((_, index) => records[index] !== undefined);
        const ok = await l2.put(present, records.filter((record): record is Uint8Array => record !== undefined), present.flatMap((ref) => this.gate.add(ref.key)));
        if (!ok) throw new Error('l2 put failed');
        published += present.length;
      });
    };
    try {
      for await (const ref of this.l3.recordRefs()) {
        if (this.closed) return;
        batch.push(ref);
        if (batch.length >= REPUBLISH_BATCH) await flush(batch.splice(0));
      }
      if (batch.length > 0) await flush(batch);
      this.logger.info('l2 re-published after redis restart', { records: published });
    } catch (error) {
      // Redis went away again; the next reconnection starts over (its run id is new once more, or the same and nothing was lost).
      this.redisRunId = previous;
      this.logger.warn('l2 re-publish after restart interrupted', { published, error: (error as Error).message });
    }
  }

  private publish<T>(task: () => Promise<T>): Promise<T> {
    const run = this.publishChain.then(task);
    this.publishChain = run.catch(() => undefined);
    return run;
  }

  private queueRepublish(lookups: readonly (RecordRef & { readonly id: string })[]): void {
    let dropped = 0;
    for (const { view, key, id } of lookups) {
      if (this.unpublished.size >= MAX_UNPUBLISHED && !this.unpublished.has(id)) dropped++;
      else this.unpublished.set(id, { view, key, id });
    }
    if (dropped > 0) {
      this.metrics.l2RepublishDropped.inc(dropped);
      this.logger.error('l2 re-publish backlog full; replicas may miss these writes until the keys are written again or l2 ttl', { dropped });
    }
    this.scheduleRepublish(250);
  }

  private scheduleRepublish(delayMs: number): void {
    if (this.republishTimer !== undefined || this.closed || this.unpublished.size === 0) return;
    this.republishTimer = setTimeout(() => {
      this.republishTimer = undefined;
      void this.publish(() => this.republish());
    }, delayMs);
    this.republishTimer.unref();
  }

  /** Writes a batch of un-published keys to L2 from their current L3 records. */
  private async republish(): Promise<void> {
    const l2 = this.l2!;
    let delivered = false;
    try {
      if (!l2.ready) return;
      const batch: (RecordRef & { readonly id: string })[] = [];
      for (const lookup of this.unpublished.values()) if (batch.push(lookup) >= REPUBLISH_BATCH) break;
      const records = await this.l3.getRecords(batch);
      const refs = batch.filter((_, index) => records[index] !== undefined);
      const found = records.filter((record): record is Uint8Array => record !== undefined);
      delivered = await l2.put(refs, found, refs.flatMap((ref) => this.gate.add(ref.key)));
      // A key queued again meanwhile (queueRepublish stores a new entry) was written after the L3 read: it stays queued.
      if (delivered) for (const lookup of batch) if (this.unpublished.get(lookup.id) === lookup) this.unpublished.delete(lookup.id);
    } catch (error) {
      this.logger.warn('l2 re-publish failed', { error: (error as Error).message });
    } finally {
      this.scheduleRepublish(delivered ? 0 : 1_000);
    }
  }

  /**
   * Only memory remembers which keys L2 lacks (or holds older): a clean stop
   * publishes them first, for a bounded time, and says how many it could not.
   */
  private async publishQueuedBeforeClose(): Promise<void> {
    const deadline = Date.now() + CLOSE_REPUBLISH_MS;
    while (this.unpublished.size > 0 && this.l2?.ready === true && Date.now() < deadline) {
      const queued = this.unpublished.size;
      await this.publish(() => this.republish());
      if (this.unpublished.size === queued) break;
    }
    if (this.unpublished.size > 0) {
      this.logger.warn('stopping with writes l2 has not taken; other replicas may serve older records of these keys until they are written again', { keys: this.unpublished.size });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.bloomSync);
    clearTimeout(this.republishTimer);
    await this.publishChain;
    await this.publishQueuedBeforeClose();
    await this.l2?.close();
    if (this.l3.saveBloomGate !== undefined) {
      try {
        await this.l3.saveBloomGate(this.gate.save(this.views));
      } catch (error) {
        this.logger.warn('could not save the bloom gate; the next start rebuilds it', { error: (error as Error).message });
      }
    }
    await this.l3.close();
  }
}
