import type { Registry } from '../config/registry.js';
import type { RecordLookup, TieredRecordStore } from '../cache/tiered-record-store.js';
import { invalid, StrataError } from '../errors.js';
import type { StoredRecord } from '../storage/feature-store.js';
import type { FeatureRecord } from '../storage/record.js';
import { recordAt } from './lambda-merge.js';
import { degradedViews, FieldStatus, NO_VIEWS, OnlineReader, RESPONSE_BYTES_PER_VALUE, valueStatus, type FeatureColumn, type OnlineResult, type PreparedRead } from './online-reader.js';
import { PickedVersions } from './picked-versions.js';
import type { ReadPlan, ViewPlan } from './plan.js';
import { SCAN_MEMORY_BYTES, ScanReads } from './scan-reads.js';
import type { WireValues } from './wire-values.js';

/** Most entity rows in one chunk: a chunk is read, selected and answered as one response message. */
const MAX_CHUNK_ROWS = 16_384;

/** What a historical call reads: exactly one of `features` (view:feature refs) and `featureService`. */
export interface FeatureQuery {
  readonly features: readonly string[] | undefined;
  readonly featureService: string | undefined;
}

/** A chunk of entity rows, each with the time its features are read at. */
export interface EntityRows {
  /** Columnar rows: join key → raw values in the wire's form. */
  readonly entities: ReadonlyMap<string, readonly unknown[]>;
  /** Per row, in ms since the epoch. */
  readonly times: ArrayLike<number>;
  /** The request field holding the times, named when their count is not the row count. */
  readonly timesField: string;
  /** The field of row `row`'s time, named in an error (so it is built only for one). */
  timeField(row: number): string;
}

/** Where a historical read gets its records (ScanReads: the tiers, without promotion). */
export interface RecordSource {
  /** `unreadable` is filled as TieredRecordStore.read fills it. */
  read(lookups: readonly RecordLookup[], unreadable?: number[]): Promise<(StoredRecord | undefined)[]>;
}

/** One historical call in progress: its checked query, and the records it has read. */
export interface HistoricalScan {
  readonly query: FeatureQuery;
  readonly plan: ReadPlan;
  /** When the call started: every row is checked against retention from then. */
  readonly nowMs: number;
  readonly records: RecordSource;
}

export interface HistoricalLimits {
  readonly maxFeatures: number;
  /** Per chunk: one response message. */
  readonly maxResponseBytes: number;
  readonly retentionMs: number;
}

/**
 * GetHistoricalFeatures, protocol-neutral: the features of each entity row as
 * of the row's own time t. For a push or batch view, the newest version with
 * event time ≤ t (OUTSIDE_MAX_AGE when older than t − ttl, NOT_FOUND when
 * there is none); for a stream view, its windows evaluated exactly at t. No
 * value with event time after t is ever picked, so training sets do not leak
 * the future.
 *
 * Each chunk of rows goes through the online reader's own prepare() — the
 * same validation, plan and one lookup per distinct (view, entity) of the
 * chunk — its records are read once (ScanReads: through the tiers without
 * flooding L1), and versions and statuses are picked per row at the row's
 * time instead of at one as_of.
 */
export class HistoricalReader {
  private readonly registry: Registry;
  private readonly store: TieredRecordStore;
  private readonly planner: OnlineReader;
  private readonly limits: HistoricalLimits;

  constructor(registry: Registry, store: TieredRecordStore, limits: HistoricalLimits) {
    this.registry = registry;
    this.store = store;
    this.limits = limits;
    this.planner = new OnlineReader(registry, store, { maxRows: MAX_CHUNK_ROWS, maxFeatures: limits.maxFeatures, maxResponseBytes: limits.maxResponseBytes, retentionMs: limits.retentionMs });
  }

  /**
   * Starts a call: checks its query before any row arrives, by preparing
   * zero rows with the join keys its features name, so every error is the
   * online reader's own (unknown features, both or neither of features and
   * feature_service…).
   */
  start(query: FeatureQuery, wire: WireValues, nowMs: number): HistoricalScan {
    const named = query.featureService !== undefined ? (this.registry.services.get(query.featureService)?.features ?? []) : (query.features ?? []).map((ref) => this.registry.featuresByRef.get(ref));
    const noRows = new Map<string, unknown[]>();
    for (const feature of named) for (const joinKey of feature?.view.joinKeys ?? []) noRows.set(joinKey, []);
    const { plan } = this.planner.prepare({ ...query, entities: noRows, asOfMs: undefined }, wire, nowMs);
    return { query, plan, nowMs, records: new ScanReads(this.store, SCAN_MEMORY_BYTES) };
  }

  /**
   * One chunk of the call's rows. Every row's time must be within retention
   * of the call's start, else the call fails naming the row: older history
   * has been compacted away, and NOT_FOUNDs would pass for answers.
   */
  async read(scan: HistoricalScan, rows: EntityRows, wire: WireValues): Promise<OnlineResult> {
    for (const [joinKey, values] of rows.entities) {
      if (values.length > MAX_CHUNK_ROWS) throw invalid('STRATA_TOO_MANY_ROWS', `entities.${joinKey}`, `${values.length} entity rows exceed the limit of ${MAX_CHUNK_ROWS} per message; send them in more messages`);
    }
    const prepared = this.planner.prepare({ ...scan.query, entities: rows.entities, asOfMs: undefined }, wire, scan.nowMs);
    const { times } = rows;
    if (times.length !== prepared.rowCount) {
      throw invalid('STRATA_COLUMN_LENGTH_MISMATCH', rows.timesField, `has ${times.length} timestamps for ${prepared.rowCount} entity rows`);
    }
    const oldest = scan.nowMs - this.limits.retentionMs;
    for (let row = 0; row < times.length; row++) {
      if (times[row]! < oldest) {
        const field = rows.timeField(row);
        throw new StrataError('STRATA_AS_OF_BEFORE_RETENTION', `${field}: ${new Date(times[row]!).toISOString()} is older than the ${this.limits.retentionMs / 86_400_000} days of history kept`, { field });
      }
    }
    const unreadable: number[] = [];
    const stored = await scan.records.read(prepared.lookups, unreadable);
    return { ...this.select(prepared, stored, times), degradedViews: degradedViews(prepared, unreadable) };
  }

  /**
   * Per row, the version visible at its time and each value's status, row
   * by row: each row's record is read once, its PRESENT values gathered
   * into one record per view (PickedVersions) that the response is encoded
   * from.
   */
  private select(prepared: PreparedRead, stored: readonly (StoredRecord | undefined)[], times: ArrayLike<number>): OnlineResult {
    const { plan, rowCount } = prepared;
    const columns: FeatureColumn[] = new Array(plan.features.length);
    // One store per kind for the chunk: a typed array of this size gets its own off-heap store otherwise.
    const versionStore = new ArrayBuffer(plan.views.length * rowCount * 4);
    const statuses = new Uint8Array(plan.features.length * rowCount);
    let responseBytes = RESPONSE_BYTES_PER_VALUE * rowCount * (plan.features.length + plan.joinKeys.length);
    plan.views.forEach((viewPlan, viewIndex) => {
      const { view, features, outputColumns } = viewPlan;
      const positions = prepared.rowLookups[viewIndex]!;
      const byIndex = featuresByIndex(viewPlan);
      // Row i reads version i of the gathered record, or none.
      const versions = new Int32Array(versionStore, viewIndex * rowCount * 4, rowCount);
      const picked = new PickedVersions(view, rowCount);
      for (let row = 0; row < rowCount; row++) {
        const t = times[row]!;
        const record = recordAt(view, stored, positions[row]!, t, this.store.generations);
        const version = record === undefined ? -1 : record.versionAt(t);
        versions[row] = version < 0 ? -1 : row;
        picked.row(version < 0 ? 0 : record!.eventTs(version));
        const expired = version >= 0 && view.ttlMs > 0 && t - record!.eventTs(version) > view.ttlMs;
        for (let position = 0; position < byIndex.length; position++) {
          const index = features[byIndex[position]!]!.index;
          const cell = version < 0 ? -1 : record!.cell(version, index);
          const length = version < 0 ? -1 : record!.valueLength(cell);
          const status = valueStatus(length, expired);
          statuses[outputColumns[byIndex[position]!]! * rowCount + row] = status;
          if (status !== FieldStatus.PRESENT) continue;
          picked.value(index, record!.bytes, record!.valueStart(cell), length);
          responseBytes += length;
        }
        picked.endRow();
      }
      const gathered = picked.finish();
      const rows = { records: new Array<FeatureRecord>(rowCount).fill(gathered), versions };
      features.forEach((feature, position) => {
        columns[outputColumns[position]!] = { feature, rows, statuses, statusAt: outputColumns[position]! * rowCount };
      });
    });
    if (responseBytes > this.limits.maxResponseBytes) {
      throw new StrataError('STRATA_RESPONSE_TOO_LARGE', `a chunk of ${rowCount} rows would answer about ${responseBytes} bytes, over the limit of ${this.limits.maxResponseBytes}; send fewer rows per message`);
    }
    return { plan, rowCount, joinKeys: prepared.joinKeys, columns, degradedViews: NO_VIEWS };
  }
}

/** Per view plan: the positions of its features in the order of their index in the view, the order a record's slots follow. */
const featureOrders = new WeakMap<ViewPlan, Int32Array>();

function featuresByIndex(viewPlan: ViewPlan): Int32Array {
  let order = featureOrders.get(viewPlan);
  if (order === undefined) {
    order = Int32Array.from(viewPlan.features.keys()).sort((a, b) => viewPlan.features[a]!.index - viewPlan.features[b]!.index);
    featureOrders.set(viewPlan, order);
  }
  return order;
}

