/**
 * The batch half of the registry: views whose values arrive as snapshot
 * files from offline pipelines (`strata snapshot import`). A view says which
 * file column holds each join key, feature and timestamp, and what an import
 * must satisfy before it is published (src/batch/snapshot-import.ts).
 */
import type { Checker, EntityDef } from './registry.js';

export interface SnapshotAudit {
  /** Most rows a file set may have, and fewest. */
  readonly minRows: number;
  readonly maxRows: number;
  /** Largest share of null values allowed, per feature name (1: no limit). */
  readonly maxNullRate: ReadonlyMap<string, number>;
}

export interface BatchSource {
  readonly type: 'batch';
  /** File column holding the event time of each row's values. */
  readonly timestampColumn: string;
  /** File column holding when the row was computed (ties between equal event times go to the newer); optional in files. */
  readonly createdTimestampColumn: string;
  /** File column of each join key and feature, by join key or feature name. */
  readonly columns: ReadonlyMap<string, string>;
  readonly audit: SnapshotAudit;
}

const DEFAULT_TIMESTAMP_COLUMN = 'event_timestamp';
const DEFAULT_CREATED_COLUMN = 'created_timestamp';

/** Compiles `source: { type: batch, … }`; features are declared as for push views, and checked against `columns` by the caller. */
export function compileBatchSource(
  spec: Record<string, unknown>,
  path: (string | number)[],
  viewEntities: readonly EntityDef[] | undefined,
  featureNames: readonly string[] | undefined,
  check: Checker,
): BatchSource | undefined {
  check.keys(spec, path, ['type', 'timestamp_column', 'created_timestamp_column', 'columns', 'audit'], ['type']);
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
      if (!columns.has(name)) check.report([...path, 'columns', name], `is neither a join key nor a feature of this view (those are: ${names.join(', ')})`);
      else if (typeof column !== 'string' || column.length === 0) check.report([...path, 'columns', name], 'must be the name of a column in the snapshot files');
      else columns.set(name, column);
    }
  }
  const fileColumns = [...columns.values(), timestampColumn, createdTimestampColumn];
  const clash = fileColumns.find((column, index) => fileColumns.indexOf(column) !== index);
  if (clash !== undefined) check.report([...path, 'columns'], `file column ${clash} is mapped to more than one name`);

  const audit = compileAudit(spec.audit, [...path, 'audit'], featureNames ?? [], check);
  if (audit === undefined) return undefined;
  return Object.freeze({ type: 'batch', timestampColumn, createdTimestampColumn, columns, audit });
}

function compileAudit(raw: unknown, path: (string | number)[], featureNames: readonly string[], check: Checker): SnapshotAudit | undefined {
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
      if (!maxNullRate.has(name)) check.report(at, `is not a feature of this view (features: ${featureNames.join(', ')})`);
      const limit = rate(value, at);
      if (limit !== undefined) maxNullRate.set(name, limit);
    }
  }
  return Object.freeze({ minRows, maxRows, maxNullRate });
}
