/**
 * Retention compaction of L3. A write prunes its own record (mergeVersions,
 * mergeEventLog), so history past retention only outlives it in records
 * that are never written again; a sweep at start and every
 * --compaction-interval rewrites those, in key order, a bounded batch at a
 * time (LevelStore.compactBatch), yielding to other work between batches.
 *
 * A compacted record keeps exactly what the write-time prune (or the
 * import, for a snapshot's records) keeps: every version (event) a read at
 * T ≥ now − retention can see, including the newest one older than the
 * horizon (stream views: the horizon also leaves the view's longest window,
 * and the first event ever stays for lifetime aggregates; tiles: the longest
 * tiled window). So any read within retention answers as before, from
 * whichever copy it finds: cached records (L1, L2) need no invalidation, and
 * a compacted record keeps its revision — a new one would make it look newer
 * than records written since elsewhere (an ingester picks the newer of L3's
 * and L2's copy by revision). A read before the horizon is refused anyway
 * (STRATA_AS_OF_BEFORE_RETENTION).
 */
import type { BatchSource } from '../config/batch-views.js';
import type { ViewDef } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { EVENT_LOG_FORMAT, EventLog, mergeEventLog } from './event-log.js';
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
    const { ts } = log.bounds();
    // The merge keeps event 0 and the newest event before the horizon: it drops one only when three are before it.
    if (ts.length <= limits.maxEvents && !(ts.length >= 3 && ts[2]! < horizon)) return KEEP;
    return { action: 'rewrite', bytes: mergeEventLog(log, log.columns, [], horizon, limits.maxEvents, log.revision).bytes };
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
  if (count <= maxVersions && !(count >= 2 && record.eventTs[count - 2]! < horizon)) return KEEP;
  const versions = mergeVersions(record.versions(), [], nowMs, keptMs, maxVersions);
  return { action: 'rewrite', bytes: encodeRecord(record.schema, record.revision, record.featureCount, versions) };
}

export interface CompactionBatch {
  /** The last key looked at; undefined when the sweep reached the end. */
  readonly next: Buffer | undefined;
  readonly scanned: number;
  readonly rewritten: number;
  readonly deleted: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

/** What the sweep needs of L3 (LevelStore). */
export interface CompactableStore {
  /** Compacts up to `limit` records after `after` (from the first when undefined), each in its key's write order. */
  compactBatch(after: Buffer | undefined, limit: number, nowMs: number): Promise<CompactionBatch>;
}

export interface CompactorOptions {
  readonly store: CompactableStore;
  /** 0: never sweep. */
  readonly intervalMs: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Records per batch: one batch holds a key's writes for one read-and-write of L3 at most. */
  readonly batchSize?: number;
  readonly now?: () => number;
}

const DEFAULT_BATCH = 1_000;

/** Runs a sweep at start and every interval after the previous one ended; never two at once. */
export class Compactor {
  private readonly options: CompactorOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(options: CompactorOptions) {
    this.options = options;
  }

  start(): void {
    if (this.options.intervalMs > 0) this.schedule(0);
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
    const { store, metrics, logger } = this.options;
    const now = this.options.now ?? Date.now;
    const started = performance.now();
    const totals = { scanned: 0, rewritten: 0, deleted: 0, bytesBefore: 0, bytesAfter: 0 };
    let after: Buffer | undefined;
    do {
      const batch = await store.compactBatch(after, this.options.batchSize ?? DEFAULT_BATCH, now());
      totals.scanned += batch.scanned;
      totals.rewritten += batch.rewritten;
      totals.deleted += batch.deleted;
      totals.bytesBefore += batch.bytesBefore;
      totals.bytesAfter += batch.bytesAfter;
      metrics.compactedRecords.inc({ outcome: 'rewritten' }, batch.rewritten);
      metrics.compactedRecords.inc({ outcome: 'deleted' }, batch.deleted);
      after = batch.next;
      // Reads and writes queued meanwhile go first.
      await new Promise((resolve) => setImmediate(resolve));
    } while (after !== undefined && !this.stopped);
    const seconds = (performance.now() - started) / 1000;
    metrics.compactionSweepSeconds.set(seconds);
    metrics.compactionSweeps.inc();
    logger.info('compaction sweep done', { ...totals, bytesFreed: totals.bytesBefore - totals.bytesAfter, ms: Math.round(seconds * 1000), complete: after === undefined });
  }

  /** No sweep starts after this; resolves once the one under way has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
