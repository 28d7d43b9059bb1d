import type { Registry } from '../config/registry.js';
import type { TieredRecordStore } from '../cache/tiered-record-store.js';
import { invalid } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { RecordWrite } from '../storage/feature-store.js';
import type { JoinKeyValue } from '../storage/keys.js';
import type { Version } from '../storage/record.js';
import { EntityKeys } from './entity-keys.js';
import type { WireValues } from './wire-values.js';

export interface WriteRequest {
  readonly view: string;
  /** Columnar rows: every join key and every feature of the view, nothing else. */
  readonly columns: ReadonlyMap<string, readonly unknown[]>;
  readonly eventTimestamps: readonly unknown[];
  /** Optional; defaults to the time of the write. Breaks ties between versions with equal event times. */
  readonly createdTimestamps: readonly unknown[] | undefined;
}

/**
 * WriteFeatures, protocol-neutral. The whole call is validated and encoded
 * before anything is stored, then committed in one atomic L3 batch: a
 * rejected call stores nothing.
 */
export class FeatureWriter {
  private readonly registry: Registry;
  private readonly store: TieredRecordStore;
  private readonly maxRows: number;
  private readonly metrics: Metrics;
  private readonly keys: EntityKeys;

  constructor(registry: Registry, store: TieredRecordStore, options: { maxRows: number; metrics: Metrics }) {
    this.registry = registry;
    this.store = store;
    this.maxRows = options.maxRows;
    this.metrics = options.metrics;
    this.keys = new EntityKeys(registry, store.generations);
  }

  async write(request: WriteRequest, wire: WireValues, nowMs: number): Promise<number> {
    const view = this.registry.views.get(request.view);
    if (view === undefined) throw invalid('STRATA_UNKNOWN_FEATURE_VIEW', 'feature_view', `feature view ${JSON.stringify(request.view)} is not in the registry`);
    if (view.source.type !== 'push') throw invalid('STRATA_NOT_A_PUSH_VIEW', 'feature_view', `${view.name} is fed by its ${view.source.type} source, not by writes`);

    const rowCount = request.eventTimestamps.length;
    if (rowCount > this.maxRows) throw invalid('STRATA_TOO_MANY_ROWS', 'event_timestamps', `${rowCount} rows exceed the limit of ${this.maxRows} per call`);
    for (const name of request.columns.keys()) {
      if (!view.joinKeys.includes(name) && !view.featuresByName.has(name)) {
        throw invalid('STRATA_UNEXPECTED_COLUMN', `columns.${name}`, `${view.name} has no join key or feature ${name} (features: ${view.features.map((feature) => feature.name).join(', ')})`);
      }
    }
    const column = (name: string, code: 'STRATA_MISSING_JOIN_KEY' | 'STRATA_MISSING_COLUMN'): readonly unknown[] => {
      const values = request.columns.get(name);
      if (values === undefined) throw invalid(code, `columns.${name}`, `is required: a write gives every join key and every feature of ${view.name} (use null for a missing value)`);
      if (values.length !== rowCount) throw invalid('STRATA_COLUMN_LENGTH_MISMATCH', `columns.${name}`, `has ${values.length} values but there are ${rowCount} event timestamps`);
      return values;
    };
    if (request.createdTimestamps !== undefined && request.createdTimestamps.length !== rowCount) {
      throw invalid('STRATA_COLUMN_LENGTH_MISMATCH', 'created_timestamps', `has ${request.createdTimestamps.length} values but there are ${rowCount} event timestamps`);
    }

    const keyColumns = new Map<string, JoinKeyValue[]>();
    for (const entity of view.entities) {
      keyColumns.set(entity.joinKey, column(entity.joinKey, 'STRATA_MISSING_JOIN_KEY').map((raw, row) => wire.joinKey(entity.type, raw, `columns.${entity.joinKey}`, row)));
    }
    const encoded = view.features.map((feature) =>
      column(feature.name, 'STRATA_MISSING_COLUMN').map((raw, row) => wire.feature(feature.type, raw, `columns.${feature.name}[${row}]`)),
    );
    const eventTs = request.eventTimestamps.map((raw, row) => wire.timestamp(raw, `event_timestamps[${row}]`));
    const createdTs = request.createdTimestamps?.map((raw, row) => wire.timestamp(raw, `created_timestamps[${row}]`));

    // Rows of one entity become versions of one record write, in row order.
    const writes = new Map<string, RecordWrite & { id: string; versions: Version[] }>();
    const viewKeyColumns = EntityKeys.keyColumns(view, keyColumns);
    for (let row = 0; row < rowCount; row++) {
      const id = this.keys.id(view, viewKeyColumns, row);
      let write = writes.get(id);
      if (write === undefined) {
        write = { view, id, key: Buffer.from(id, 'latin1'), versions: [] };
        writes.set(id, write);
      }
      write.versions.push({ eventTs: eventTs[row]!, createdTs: createdTs?.[row] ?? nowMs, slots: encoded.map((values) => values[row]!) });
    }
    if (writes.size > 0) await this.store.write([...writes.values()], nowMs);
    this.metrics.rowsWritten.inc({ view: view.name }, rowCount);
    return rowCount;
  }
}
