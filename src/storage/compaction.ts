/**
 * Retention compaction of L3. A write prunes its own record (mergeVersions,
 * mergeEventLog), so history past retention only outlives it in records
 * that are never written again; a sweep every --compaction-interval
 * rewrites those, in key order, a bounded batch at a time
 * (LevelStore.compactBatch), paced to --compaction-rate.
 *
 * A compacted record keeps exactly what the write-time prune (or the
 * import, for a snapshot's records) keeps: every version (event) a read at
 * T ≥ now − retention can see, including the newest one older than the
 * horizon (stream views: the horizon also leaves the view's longest window,
 * and the first event ever stays, as does the event each lifetime `last` or
 * `first` reads; tiles: the longest tiled window). So any read within
 * retention answers as before, from whichever copy it finds: cached records
 * (L1, L2) need no invalidation, and a compacted record keeps its revision
 * — a new one would make it look newer than records written since elsewhere
 * (an ingester picks the newer of L3's and L2's copy by revision). A read
 * before the horizon is refused anyway (STRATA_AS_OF_BEFORE_RETENTION).
 */
import type { BatchSource } from '../config/batch-views.js';
import type { ViewDef } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { EVENT_LOG_FORMAT, EventLog, eventsKeptAtRest, mergeEventLog } from './event-log.js';
import { isSnapshotKey } from './keys.js';
import { encodeRecord, FeatureRecord, mergeVersions } from './record.js';

export interface RetentionLimits {
  readonly retentionMs: number;
  readonly maxVersions: number;
  readonly maxEvents: number;
}

/** What a sweep does to one record. */
export type Compaction = { readonly action: 'keep' } | { readonly action: 'rewrite'; readonly bytes: Uint8Array } | { readonly action: 'delete' };

const KEEP: Compaction = { action: 'keep' };
const DELETE: Compaction = { action: 'delete' };

/**
 * How much history a record of a view's snapshot keeps, at import and in
 * compaction: retention; for a stream view's tiles also its longest tiled
 * window, by time alone (a long window of small tiles needs them all).
 */
export function snapshotHistory(view: ViewDef, batch: BatchSource, limits: Pick<RetentionLimits, 'retentionMs' | 'maxVersions'>): { keptMs: number; maxVersions: number } {
  if (batch.tileMs === 0) return { keptMs: limits.retentionMs, maxVersions: limits.maxVersions };
  const tiledWindowMs = Math.max(0, ...view.features.map(({ compute }) => (compute?.kind === 'aggregation' && compute.tileSlots.length > 0 ? compute.windowMs : 0)));
  return { keptMs: limits.retentionMs + tiledWindowMs, maxVersions: Infinity };
}

/**
 * The record without what no read within retention can see. Records keep
 * their own schema and column layout (a read upgrades them, as it would
 * have). A record of another kind than its view now is (the registry
 * changed) is left for its next write to deal with.
 */
export function compactRecord(view: ViewDef, key: Uint8Array, bytes: Uint8Array, nowMs: number, limits: RetentionLimits): Compaction {
  if (isSnapshotKey(key)) return view.batch === undefined ? KEEP : compactVersions(bytes, nowMs, snapshotHistory(view, view.batch, limits));
  if (bytes[0] === EVENT_LOG_FORMAT) {
    const source = view.source;
    if (source.type !== 'stream') return KEEP;
    const log = EventLog.open(bytes);
    if (log.length === 0) return DELETE;
    const horizon = nowMs - limits.retentionMs - source.maxWindowMs;
    // In its own layout, known as the view's columns when it is theirs (the usual case: the pins need no resolving by name).
    const columns = log.isLaidOutIn(source.columns) ? source.columns : log.columns;
    // The merge keeps more than the horizon alone says (event 0, the pinned events): a log it would keep whole stays as it is.
    if (eventsKeptAtRest(log, columns, horizon, limits.maxEvents, source) === log.length) return KEEP;
    return { action: 'rewrite', bytes: mergeEventLog(log, columns, [], horizon, limits.maxEvents, log.revision, source).bytes };
  }
  if (view.source.type === 'stream') return KEEP;
  return compactVersions(bytes, nowMs, { keptMs: limits.retentionMs, maxVersions: limits.maxVersions });
}

function compactVersions(bytes: Uint8Array, nowMs: number, { keptMs, maxVersions }: { keptMs: number; maxVersions: number }): Compaction {
  const record = FeatureRecord.decode(bytes);
  if (record.versionCount === 0) return DELETE;
  const horizon = nowMs - keptMs;
  // Event times descend: the merge keeps the first one before the horizon and drops the rest.
  const count = record.versionCount;
  if (count <= maxVersions && !(count >= 2 && record.eventTs(count - 2) < horizon)) return KEEP;
  const versions = mergeVersions(record.versions(), [], nowMs, keptMs, maxVersions);
  return { action: 'rewrite', bytes: encodeRecord(record.schema, record.revision, record.featureCount, versions) };
}

export interface CompactionBatch {
  /** The last key looked at; undefined when the sweep reached the end. */
  readonly next: Buffer | undefined;
  readonly scanned: number;
  /** Bytes of the records scanned. */
  readonly bytesRead: number;
  readonly rewritten: number;
  readonly deleted: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

/** What the sweep needs of L3 (LevelStore). */
export interface CompactableStore {
  /** Compacts up to `limit` records after `after` (from the first when undefined), each in its key's write order. */
  compactBatch(after: Buffer | undefined, limit: number, nowMs: number): Promise<CompactionBatch>;
  /** When the last complete sweep under the store's current registry and retention started; undefined: none (or under others). */
  lastSweepStart(): Promise<number | undefined>;
  markSwept(startedAtMs: number): Promise<void>;
}

export interface CompactorOptions {
  readonly store: CompactableStore;
  /** 0: never sweep. */
  readonly intervalMs: number;
  /**
   * Record bytes the sweep reads per second, at most: it decodes what it
   * reads on the thread that answers reads. Unpaced, a sweep of the loadtest's
   * 263 MiB store ran for 6.6 s, in batches the reads queued behind. 0: unpaced.
   */
  readonly bytesPerSecond: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Records per batch: one batch holds a key's writes for one read-and-write of L3 at most. */
  readonly batchSize?: number;
  readonly now?: () => number;
}

/** A batch is decoded in one go on the serving thread: small enough that a read queued behind it hardly notices. */
const DEFAULT_BATCH = 250;

/**
 * Runs a sweep every interval after the previous one ended, never two at
 * once. The first comes an interval after the last complete one L3
 * remembers (at once if none, or if the registry or retention changed since):
 * history only ages past retention with time, so a restart alone gives a
 * sweep nothing new to find.
 */
export class Compactor {
  private readonly options: CompactorOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private endPause: (() => void) | undefined;

  constructor(options: CompactorOptions) {
    this.options = options;
  }

  start(): void {
    if (this.options.intervalMs <= 0) return;
    this.running = this.firstSweepDelay().then((delayMs) => {
      this.running = undefined;
      if (!this.stopped) this.schedule(delayMs);
    });
  }

  /** How long after start the first sweep comes, from the mark L3 holds. */
  async firstSweepDelay(): Promise<number> {
    const { store, intervalMs, logger } = this.options;
    const now = this.options.now ?? Date.now;
    try {
      const last = await store.lastSweepStart();
      // A clock that went back by more than an interval still waits one interval at most.
      return last === undefined ? 0 : Math.min(intervalMs, Math.max(0, last + intervalMs - now()));
    } catch (error) {
      logger.warn('cannot read when L3 was last swept; sweeping now', { error: (error as Error).message });
      return 0;
    }
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.running = this.sweep()
        .then(
          () => undefined,
          (error: Error) => this.options.logger.error('compaction sweep failed; retried at the next interval', { error: error.message }),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.schedule(this.options.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  /** One whole sweep; resolves early (with what it did) once stop() is called. */
  async sweep(): Promise<void> {
    const { store, metrics, logger, bytesPerSecond } = this.options;
    const now = this.options.now ?? Date.now;
    const startedAtMs = now();
    const started = performance.now();
    const totals = { scanned: 0, rewritten: 0, deleted: 0, bytesRead: 0, bytesBefore: 0, bytesAfter: 0 };
    let after: Buffer | undefined;
    do {
      const batch = await store.compactBatch(after, this.options.batchSize ?? DEFAULT_BATCH, now());
      totals.scanned += batch.scanned;
      totals.rewritten += batch.rewritten;
      totals.deleted += batch.deleted;
      totals.bytesRead += batch.bytesRead;
      totals.bytesBefore += batch.bytesBefore;
      totals.bytesAfter += batch.bytesAfter;
      metrics.compactedRecords.inc({ outcome: 'rewritten' }, batch.rewritten);
      metrics.compactedRecords.inc({ outcome: 'deleted' }, batch.deleted);
      after = batch.next;
      // Reads and writes queued meanwhile go first; then the sweep waits until it is back within its rate.
      const aheadMs = bytesPerSecond === 0 ? 0 : (totals.bytesRead / bytesPerSecond) * 1000 - (performance.now() - started);
      await this.pause(aheadMs);
    } while (after !== undefined && !this.stopped);
    const complete = after === undefined;
    if (complete) await store.markSwept(startedAtMs);
    const seconds = (performance.now() - started) / 1000;
    metrics.compactionSweepSeconds.set(seconds);
    metrics.compactionSweeps.inc();
    logger.info('compaction sweep done', { ...totals, bytesFreed: totals.bytesBefore - totals.bytesAfter, ms: Math.round(seconds * 1000), complete });
  }

  /** Until the next tick, or `ms` when over 1 ms; stop() ends it early. */
  private pause(ms: number): Promise<void> {
    if (ms <= 1) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.endPause = undefined;
        resolve();
      }, ms);
      this.endPause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** No sweep starts after this; resolves once the one under way has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.endPause?.();
    await this.running;
  }
}
