import type { FeatureDef, Registry } from '../config/registry.js';
import type { RecordLookup, TieredRecordStore } from '../cache/tiered-record-store.js';
import { invalid, StrataError } from '../errors.js';
import type { JoinKeyValue } from '../storage/keys.js';
import type { StoredRecord } from '../storage/feature-store.js';
import type { FeatureRecord } from '../storage/record.js';
import { NULL_VALUE } from '../values/value-codec.js';
import { EntityKeys } from './entity-keys.js';
import { readsSnapshotBeside, recordAt } from './lambda-merge.js';
import { planFeatures, resolveFeatureRefs, type ReadPlan } from './plan.js';
import type { WireValues } from './wire-values.js';

/** V8's largest typed array kept on the JS heap (V8_TYPED_ARRAY_MAX_SIZE_IN_HEAP). */
const ON_HEAP_TYPED_ARRAY_BYTES = 64;

/** Protocol overhead allowed per value when checking maxResponseBytes (tags, lengths, status, timestamp). */
export const RESPONSE_BYTES_PER_VALUE = 32;

/** Per-value status; the numbers are those of `strata.v1.FieldStatus` (and Feast's). */
export const FieldStatus = { INVALID: 0, PRESENT: 1, NULL_VALUE: 2, NOT_FOUND: 3, OUTSIDE_MAX_AGE: 4 } as const;
export const FIELD_STATUS_NAMES = ['INVALID', 'PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'] as const;

/**
 * A value's status, online and historical alike, from its length in the
 * version visible at the row's time (-1: no version, or the feature is
 * absent from it: it did not exist in the view when the version was
 * written) and whether that version is older than the view's ttl.
 */
export function valueStatus(length: number, expired: boolean): number {
  if (length < 0) return FieldStatus.NOT_FOUND;
  if (expired) return FieldStatus.OUTSIDE_MAX_AGE;
  return length === 0 ? FieldStatus.NULL_VALUE : FieldStatus.PRESENT;
}

export interface OnlineRequest {
  /** Exactly one of `features` (view:feature refs) and `featureService`. */
  readonly features: readonly string[] | undefined;
  readonly featureService: string | undefined;
  /** Columnar entity rows: join key → raw values in the protocol's form. */
  readonly entities: ReadonlyMap<string, readonly unknown[]>;
  readonly asOfMs: number | undefined;
}

/**
 * What one view holds for each entity row: the record (undefined: none) and
 * the version visible at T in it (-1: none). Shared by the view's columns.
 */
export interface ViewRows {
  readonly records: readonly (FeatureRecord | undefined)[];
  readonly versions: Int32Array;
}

/**
 * One output column. Values are not copied out of their records: a PRESENT
 * value is `rows.records[row]`'s cell for (rows.versions[row], feature.index),
 * and the edges copy those bytes straight into responses. Every column of a
 * result shares one status array, the column's rows from `statusAt` on: a
 * typed array per column was ~270 bytes of heap each, 13.5 of the 17.9 KiB a
 * 1 × 50 read allocated (bench:read).
 */
export interface FeatureColumn {
  readonly feature: FeatureDef;
  readonly rows: ViewRows;
  readonly statuses: Uint8Array;
  readonly statusAt: number;
}

export interface OnlineResult {
  readonly plan: ReadPlan;
  readonly rowCount: number;
  /** The request's join key values, typed, by join key. */
  readonly joinKeys: ReadonlyMap<string, readonly JoinKeyValue[]>;
  readonly columns: readonly FeatureColumn[];
  /**
   * Views some of whose records could not be read (L2 unreachable, and L3
   * without them): their values may read NOT_FOUND although written, and a
   * stream or push view with a batch half answers from its snapshot alone.
   */
  readonly degradedViews: readonly string[];
}

/** Event time of a column's value in a row, in ms; 0 where no version holds the feature. */
export function eventTimeOf(column: FeatureColumn, row: number): number {
  if (column.statuses[column.statusAt + row] === FieldStatus.NOT_FOUND) return 0;
  return column.rows.records[row]!.eventTs(column.rows.versions[row]!);
}

/** A column's `Value` bytes in a row: a view into the record, or NULL_VALUE unless PRESENT. */
export function valueOf(column: FeatureColumn, row: number): Uint8Array {
  if (column.statuses[column.statusAt + row] !== FieldStatus.PRESENT) return NULL_VALUE;
  return column.rows.records[row]!.value(column.rows.versions[row]!, column.feature.index)!;
}

/** A validated, planned request: the records to look up, and which lookup each row of each view reads. */
export interface PreparedRead {
  readonly plan: ReadPlan;
  readonly rowCount: number;
  readonly joinKeys: ReadonlyMap<string, readonly JoinKeyValue[]>;
  /** The time read at: as_of, else now. */
  readonly at: number;
  readonly lookups: readonly RecordLookup[];
  /** Per plan view, per row: the index in `lookups` of the row's record (a lambda view's snapshot record is the next one). */
  readonly rowLookups: readonly (readonly number[])[];
}

export interface ReadLimits {
  readonly maxRows: number;
  readonly maxFeatures: number;
  /** Bound on value bytes + RESPONSE_BYTES_PER_VALUE per value: one record repeated over many rows can be huge. */
  readonly maxResponseBytes: number;
  readonly retentionMs: number;
}

/**
 * GetOnlineFeatures, protocol-neutral: validates the request, reads each
 * distinct (view, entity) record once through the tiers, and picks for every
 * row the version visible at T (as_of, else now): the newest with event time
 * ≤ T. TTL is checked here, after the tiers, so it holds whichever tier
 * answered.
 */
export class OnlineReader {
  private readonly registry: Registry;
  private readonly store: TieredRecordStore;
  private readonly limits: ReadLimits;
  private readonly keys: EntityKeys;
  private readonly servicePlans = new Map<string, ReadPlan>();
  /**
   * Plans of reference lists by the list itself: the gRPC decoder hands out
   * one frozen array per distinct list it sees, so a list asked for again is
   * planned once (bench:read, plan+keys of 1 × 50: 9.2 → 1.9 CPU µs). Weak: a list
   * the decoder forgets takes its plan with it.
   */
  private readonly refPlans = new WeakMap<readonly string[], ReadPlan>();

  constructor(registry: Registry, store: TieredRecordStore, limits: ReadLimits) {
    this.registry = registry;
    this.store = store;
    this.limits = limits;
    this.keys = new EntityKeys(registry, store.generations);
    for (const service of registry.services.values()) this.servicePlans.set(service.name, planFeatures(service.features));
  }

  private plan(request: OnlineRequest): ReadPlan {
    if (request.featureService !== undefined && request.features !== undefined) {
      throw invalid('STRATA_MALFORMED_REQUEST', 'feature_service', 'give either features or feature_service, not both');
    }
    let plan: ReadPlan;
    let field: string;
    if (request.featureService !== undefined) {
      field = 'feature_service';
      const servicePlan = this.servicePlans.get(request.featureService);
      if (servicePlan === undefined) {
        throw invalid('STRATA_UNKNOWN_FEATURE_SERVICE', field, `feature service ${JSON.stringify(request.featureService)} is not in the registry`);
      }
      plan = servicePlan;
    } else {
      field = 'features';
      const refs = request.features ?? [];
      if (refs.length === 0) throw invalid('STRATA_NO_FEATURES', field, 'name at least one feature, or a feature_service');
      if (refs.length > this.limits.maxFeatures) throw tooManyFeatures(field, refs.length, this.limits.maxFeatures);
      plan = this.refPlans.get(refs) ?? this.planRefs(refs, field);
    }
    if (plan.features.length > this.limits.maxFeatures) throw tooManyFeatures(field, plan.features.length, this.limits.maxFeatures);
    return plan;
  }

  private planRefs(refs: readonly string[], field: string): ReadPlan {
    const plan = planFeatures(resolveFeatureRefs(this.registry, refs, field));
    // Only frozen lists are remembered: they cannot change after being planned.
    if (Object.isFrozen(refs)) this.refPlans.set(refs, plan);
    return plan;
  }

  /** Checks the entity columns against the plan's join keys and decodes them. */
  private entityColumns(plan: ReadPlan, request: OnlineRequest, wire: WireValues): { columns: Map<string, JoinKeyValue[]>; rowCount: number } {
    for (const joinKey of request.entities.keys()) {
      if (!plan.joinKeys.includes(joinKey)) {
        throw invalid('STRATA_UNEXPECTED_JOIN_KEY', `entities.${joinKey}`, `no requested feature view is keyed by ${joinKey} (expected: ${plan.joinKeys.join(', ')})`);
      }
    }
    let rowCount = -1;
    let firstKey = '';
    const columns = new Map<string, JoinKeyValue[]>();
    for (const joinKey of plan.joinKeys) {
      const raw = request.entities.get(joinKey);
      if (raw === undefined) throw invalid('STRATA_MISSING_JOIN_KEY', `entities.${joinKey}`, `join key ${joinKey} is required by the requested features`);
      if (rowCount === -1) {
        rowCount = raw.length;
        firstKey = joinKey;
        if (rowCount > this.limits.maxRows) throw invalid('STRATA_TOO_MANY_ROWS', `entities.${joinKey}`, `${rowCount} entity rows exceed the limit of ${this.limits.maxRows} per call`);
      } else if (raw.length !== rowCount) {
        throw invalid('STRATA_COLUMN_LENGTH_MISMATCH', `entities.${joinKey}`, `has ${raw.length} values but entities.${firstKey} has ${rowCount}`);
      }
      const type = this.registry.entitiesByJoinKey.get(joinKey)!.type;
      const column = `entities.${joinKey}`;
      columns.set(joinKey, raw.map((value, row) => wire.joinKey(type, value, column, row)));
    }
    return { columns, rowCount: Math.max(rowCount, 0) };
  }

  async read(request: OnlineRequest, wire: WireValues, nowMs: number): Promise<OnlineResult> {
    const prepared = this.prepare(request, wire, nowMs);
    const unreadable: number[] = [];
    const stored = await this.store.read(prepared.lookups, { unreadable });
    return this.select(prepared, stored, unreadable);
  }

  /** First phase of read(): validation, planning, and one lookup per distinct (view, entity). Public so benchmarks can time the phases. */
  prepare(request: OnlineRequest, wire: WireValues, nowMs: number): PreparedRead {
    const plan = this.plan(request);
    const { columns: entityColumns, rowCount } = this.entityColumns(plan, request, wire);
    const at = request.asOfMs ?? nowMs;
    if (at < nowMs - this.limits.retentionMs) {
      throw new StrataError('STRATA_AS_OF_BEFORE_RETENTION', `as_of: ${new Date(at).toISOString()} is older than the ${this.limits.retentionMs / 86_400_000} days of history kept`, { field: 'as_of' });
    }

    // One lookup per distinct (view, entity); rows point at their lookup.
    const lookups: RecordLookup[] = [];
    const rowLookups = plan.views.map((viewPlan) => {
      const view = viewPlan.view;
      const keyColumns = EntityKeys.keyColumns(view, entityColumns);
      const paired = readsSnapshotBeside(view);
      // A plain array: an Int32Array of over 16 rows would get its own off-heap store (see select).
      const positions: number[] = new Array(rowCount);
      const seen = new Map<string, number>();
      for (let row = 0; row < rowCount; row++) {
        const id = this.keys.id(view, keyColumns, row);
        let position = seen.get(id);
        if (position === undefined) {
          position = lookups.push({ view, id }) - 1;
          if (paired) lookups.push({ view, id: this.keys.snapshotId(view, keyColumns, row) });
          seen.set(id, position);
        }
        positions[row] = position;
      }
      return positions;
    });
    return { plan, rowCount, joinKeys: entityColumns, at, lookups, rowLookups };
  }

  /** Records as read at T: stream views' features computed (one version per distinct entity), lambda views' halves merged. */
  private materialize(prepared: PreparedRead, stored: readonly (StoredRecord | undefined)[]): (FeatureRecord | undefined)[] {
    const { lookups, at } = prepared;
    const found: (FeatureRecord | undefined)[] = new Array(stored.length);
    for (let index = 0; index < stored.length; index++) {
      const view = lookups[index]!.view;
      found[index] = recordAt(view, stored, index, at, this.store.generations);
      if (readsSnapshotBeside(view)) index++;
    }
    return found;
  }

  /**
   * Last phase of read(): the version visible at T per row, and each value's
   * status, given the records of the lookups and which of them no tier could
   * answer for sure.
   */
  select(prepared: PreparedRead, stored: readonly (StoredRecord | undefined)[], unreadable: readonly number[] = []): OnlineResult {
    const { plan, rowCount, at } = prepared;
    const found = plan.computesAtRead ? this.materialize(prepared, stored) : (stored as readonly (FeatureRecord | undefined)[]);
    const views = plan.views;
    const columns: FeatureColumn[] = new Array(plan.features.length);
    // V8 keeps a typed array of at most 64 bytes on the JS heap (~40 ns to make); a larger one gets
    // its own off-heap store (~800 ns on the bench machine, plus finalizer work for the GC), while a
    // view into a shared store costs ~60 ns. So small arrays are made on their own, larger ones are
    // views into one store per request (a view into an on-heap array would move it off-heap first).
    const versionStore = views.length * rowCount * 4 > ON_HEAP_TYPED_ARRAY_BYTES ? new ArrayBuffer(views.length * rowCount * 4) : undefined;
    const statuses = new Uint8Array(plan.features.length * rowCount);
    let responseBytes = RESPONSE_BYTES_PER_VALUE * rowCount * (plan.features.length + plan.joinKeys.length);
    for (let viewIndex = 0; viewIndex < views.length; viewIndex++) {
      const viewPlan = views[viewIndex]!;
      const positions = prepared.rowLookups[viewIndex]!;
      const records: (FeatureRecord | undefined)[] = new Array(rowCount);
      const versions = versionStore === undefined ? new Int32Array(rowCount) : new Int32Array(versionStore, viewIndex * rowCount * 4, rowCount);
      const ttlMs = viewPlan.view.ttlMs;
      if (expiredRows.length < rowCount) expiredRows = new Uint8Array(rowCount * 2);
      const expired = expiredRows;
      for (let row = 0; row < rowCount; row++) {
        const record = found[positions[row]!];
        records[row] = record;
        const version = record === undefined ? -1 : record.versionAt(at);
        versions[row] = version;
        expired[row] = version >= 0 && ttlMs > 0 && at - record!.eventTs(version) > ttlMs ? 1 : 0;
      }
      const rows: ViewRows = { records, versions };
      for (let position = 0; position < viewPlan.features.length; position++) {
        const feature = viewPlan.features[position]!;
        const output = viewPlan.outputColumns[position]!;
        const first = output * rowCount;
        for (let row = 0; row < rowCount; row++) {
          const version = versions[row]!;
          const length = version < 0 ? -1 : records[row]!.valueLength(records[row]!.cell(version, feature.index));
          const status = valueStatus(length, expired[row] === 1);
          statuses[first + row] = status;
          if (status === FieldStatus.PRESENT) responseBytes += length;
        }
        columns[output] = { feature, rows, statuses, statusAt: first };
      }
    }
    if (responseBytes > this.limits.maxResponseBytes) {
      throw new StrataError('STRATA_RESPONSE_TOO_LARGE', `the response would hold about ${responseBytes} bytes, over the limit of ${this.limits.maxResponseBytes}; ask for fewer rows or features per call`);
    }
    return { plan, rowCount, joinKeys: prepared.joinKeys, columns, degradedViews: degradedViews(prepared, unreadable) };
  }
}

export const NO_VIEWS: readonly string[] = Object.freeze([]);

/** The views of the lookups no tier could answer for sure (OnlineResult.degradedViews). */
export function degradedViews(prepared: PreparedRead, unreadable: readonly number[]): readonly string[] {
  return unreadable.length === 0 ? NO_VIEWS : [...new Set(unreadable.map((index) => prepared.lookups[index]!.view.name))];
}

/**
 * Per row of the view select() is on: whether its visible version is older
 * than the view's ttl. Judged once per row rather than per value (an event
 * time is a float64 read out of the record's bytes); reused across calls,
 * since select() is synchronous.
 */
let expiredRows = new Uint8Array(256);

function tooManyFeatures(field: string, count: number, limit: number): StrataError {
  return invalid('STRATA_TOO_MANY_FEATURES', field, `${count} features exceed the limit of ${limit} per call`);
}
