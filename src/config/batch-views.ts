/**
 * The batch half of the registry: what arrives as snapshot files from
 * offline pipelines (`strata snapshot import`). A batch view is fed by
 * snapshots alone; a push or stream view may have a batch half too (the
 * lambda views): snapshot values beside pushed ones, or a stream view's
 * partial aggregates per tile up to the snapshot's cutoff. Either way the
 * view says which file column holds each join key, value and timestamp, and
 * what an import must satisfy before it is published
 * (src/batch/snapshot-import.ts).
 */
import type { ValueType } from '../values/value-codec.js';
import type { Checker, EntityDef } from './registry.js';

export interface SnapshotAudit {
  /** Most rows a file set may have, and fewest. */
  readonly minRows: number;
  readonly maxRows: number;
  /** Largest share of null values allowed, per feature name (1: no limit). */
  readonly maxNullRate: ReadonlyMap<string, number>;
}

export interface StoredColumn {
  readonly name: string;
  readonly type: ValueType;
}

export interface BatchSource {
  readonly type: 'batch';
  /** What each version of a snapshot record holds, in slot order: the view's features, or a stream view's tile partials. */
  readonly storedColumns: readonly StoredColumn[];
  /** Schema fingerprint snapshot records are written with. */
  readonly fingerprint: number;
  /**
   * Width of a stream view's tiles: a row holds the partial aggregates of
   * the events in (t − tile, t], t its timestamp, on the tile grid. 0: rows
   * are feature values.
   */
  readonly tileMs: number;
  /** File column holding the event time of each row's values. */
  readonly timestampColumn: string;
  /** File column holding when the row was computed (ties between equal event times go to the newer); optional in files. */
  readonly createdTimestampColumn: string;
  /** File column of each join key and stored column, by join key or stored column name. */
  readonly columns: ReadonlyMap<string, string>;
  readonly audit: SnapshotAudit;
}

const DEFAULT_TIMESTAMP_COLUMN = 'event_timestamp';
const DEFAULT_CREATED_COLUMN = 'created_timestamp';

export interface BatchHalfShape {
  /** `source: { type: batch }` (a batch view) rather than a push or stream view's `batch:`. */
  readonly isSource: boolean;
  readonly storedColumns: readonly StoredColumn[] | undefined;
  readonly fingerprint: number;
  readonly tileMs: number;
}

/** Compiles `source: { type: batch, … }` or a push or stream view's `batch: { … }`. */
export function compileBatchSource(
  raw: unknown,
  path: (string | number)[],
  viewEntities: readonly EntityDef[] | undefined,
  shape: BatchHalfShape,
  check: Checker,
): BatchSource | undefined {
  const spec = check.object(raw, path);
  if (spec === undefined) return undefined;
  const common = ['timestamp_column', 'created_timestamp_column', 'columns', 'audit'];
  if (shape.isSource) check.keys(spec, path, ['type', ...common], ['type']);
  else check.keys(spec, path, shape.tileMs > 0 ? ['tile', ...common] : common, shape.tileMs > 0 ? ['tile'] : []);
  const featureNames = shape.storedColumns?.map((column) => column.name);
  const what = shape.tileMs > 0 ? 'tile column' : 'feature';
  const columnName = (raw: unknown, at: string, fallback: string): string => {
    if (raw === undefined) return fallback;
    if (typeof raw === 'string' && raw.length > 0) return raw;
    check.report([...path, at], 'must be a column name');
    return fallback;
  };
  const timestampColumn = columnName(spec.timestamp_column, 'timestamp_column', DEFAULT_TIMESTAMP_COLUMN);
  const createdTimestampColumn = columnName(spec.created_timestamp_column, 'created_timestamp_column', DEFAULT_CREATED_COLUMN);

  const names = [...(viewEntities ?? []).map((entity) => entity.joinKey), ...(featureNames ?? [])];
  const columns = new Map(names.map((name) => [name, name]));
  if (spec.columns !== undefined) {
    const mapping = check.object(spec.columns, [...path, 'columns']);
    for (const [name, column] of Object.entries(mapping ?? {})) {
      if (!columns.has(name)) check.report([...path, 'columns', name], `is neither a join key nor a ${what} of this view (those are: ${names.join(', ')})`);
      else if (typeof column !== 'string' || column.length === 0) check.report([...path, 'columns', name], 'must be the name of a column in the snapshot files');
      else columns.set(name, column);
    }
  }
  const fileColumns = [...columns.values(), timestampColumn, createdTimestampColumn];
  const clash = fileColumns.find((column, index) => fileColumns.indexOf(column) !== index);
  if (clash !== undefined) check.report([...path, 'columns'], `file column ${clash} is mapped to more than one name`);

  const audit = compileAudit(spec.audit, [...path, 'audit'], featureNames ?? [], what, check);
  if (audit === undefined || shape.storedColumns === undefined) return undefined;
  const { storedColumns, fingerprint, tileMs } = shape;
  return Object.freeze({ type: 'batch', storedColumns: Object.freeze(storedColumns), fingerprint, tileMs, timestampColumn, createdTimestampColumn, columns, audit });
}

function compileAudit(raw: unknown, path: (string | number)[], featureNames: readonly string[], what: string, check: Checker): SnapshotAudit | undefined {
  const maxNullRate = new Map(featureNames.map((name) => [name, 1]));
  if (raw === undefined) return Object.freeze({ minRows: 1, maxRows: Number.MAX_SAFE_INTEGER, maxNullRate });
  const spec = check.object(raw, path);
  if (spec === undefined) return undefined;
  check.keys(spec, path, ['min_rows', 'max_rows', 'max_null_rate'], []);
  const count = (value: unknown, at: string, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    check.report([...path, at], 'must be a whole number of rows');
    return fallback;
  };
  const minRows = count(spec.min_rows, 'min_rows', 1);
  const maxRows = count(spec.max_rows, 'max_rows', Number.MAX_SAFE_INTEGER);
  if (minRows > maxRows) check.report([...path, 'min_rows'], `must not exceed max_rows (${maxRows})`);
  const rate = (value: unknown, at: (string | number)[]): number | undefined => {
    if (typeof value === 'number' && value >= 0 && value <= 1) return value;
    check.report(at, 'must be a share between 0 and 1, e.g. 0.05');
    return undefined;
  };
  if (typeof spec.max_null_rate === 'number') {
    const all = rate(spec.max_null_rate, [...path, 'max_null_rate']);
    if (all !== undefined) for (const name of featureNames) maxNullRate.set(name, all);
  } else if (spec.max_null_rate !== undefined) {
    const perFeature = check.object(spec.max_null_rate, [...path, 'max_null_rate']);
    for (const [name, value] of Object.entries(perFeature ?? {})) {
      const at = [...path, 'max_null_rate', name];
      if (!maxNullRate.has(name)) check.report(at, `is not a ${what} of this view (those are: ${featureNames.join(', ')})`);
      const limit = rate(value, at);
      if (limit !== undefined) maxNullRate.set(name, limit);
    }
  }
  return Object.freeze({ minRows, maxRows, maxNullRate });
}
