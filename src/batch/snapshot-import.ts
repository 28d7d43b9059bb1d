/**
 * Snapshot import, write → audit → publish: the rows of a batch view's files
 * are staged into L3 under a new generation (src/storage/snapshot-store.ts),
 * audited (types, required columns, row count, null rates per feature), and
 * only then published in one write. A failed audit or an unusable file
 * discards the staged generation and leaves the previous one serving; the
 * report says why. A process killed mid-import leaves an unpublished
 * generation, never read, removed when the next import of the view begins.
 *
 * Rows of one entity become the versions of its record (newest event time
 * first, ties to the newer created_timestamp), so snapshots that carry
 * history serve point-in-time reads like any other view.
 */
import type { JoinKeyType, ViewDef } from '../config/registry.js';
import type { BatchSource } from '../config/batch-views.js';
import { StrataError } from '../errors.js';
import { generationPrefix, recordKeyLength, writeRecordKey, type JoinKeyValue } from '../storage/keys.js';
import { encodeRecord, FeatureRecord, mergeVersions, type Version } from '../storage/record.js';
import type { SnapshotStore, StagedRecord } from '../storage/snapshot-store.js';
import { NULL_VALUE } from '../values/value-codec.js';
import { encodeColumn, timestampConverter, valueConverter, type ValueOrigin } from './files/column-conform.js';
import { openRowReader, type RowChunk, type RowReader } from './files/row-reader.js';

export interface ImportProgress {
  readonly file: string;
  /** Rows staged so far, all files. */
  readonly rows: number;
  /** All files' rows, when every format states its count up front. */
  readonly totalRows: number | undefined;
  readonly elapsedMs: number;
}

export interface ImportReport {
  readonly view: string;
  readonly generation: number;
  /** False: nothing changed for readers; `reason` says why. */
  readonly published: boolean;
  readonly reason?: string;
  readonly files: readonly { readonly path: string; readonly rows: number }[];
  readonly rows: number;
  readonly entities: number;
  /** Share of null values per feature. */
  readonly nullRates: Readonly<Record<string, number>>;
  readonly durationMs: number;
}

export interface SnapshotImportOptions {
  readonly view: ViewDef;
  readonly paths: readonly string[];
  readonly store: SnapshotStore;
  readonly retentionMs: number;
  readonly maxVersions: number;
  readonly nowMs?: number;
  readonly onProgress?: (progress: ImportProgress) => void;
  /** Keys about to become readable: a cache's bloom gate must know them before publish. */
  readonly expectKeys?: (keys: readonly Buffer[]) => void;
}

/** Views with an import under way in this process (another process cannot open the same L3). */
const importing = new Set<string>();

/** Why staging stopped: an input or audit failure, reported, as opposed to a storage failure, thrown. */
class AuditFailure extends Error {}

export async function importSnapshot(options: SnapshotImportOptions): Promise<ImportReport> {
  const { view, store } = options;
  const source = view.source;
  if (source.type !== 'batch') throw new StrataError('STRATA_NOT_A_BATCH_VIEW', `${view.name} is fed by its ${source.type} source, not by snapshot files`, { field: 'view' });
  if (options.paths.length === 0) throw new StrataError('STRATA_MALFORMED_REQUEST', 'name at least one snapshot file', { field: 'files' });
  if (importing.has(view.name)) throw new StrataError('STRATA_IMPORT_IN_PROGRESS', `an import of ${view.name} is already under way`, { field: 'view' });
  importing.add(view.name);
  const started = Date.now();
  const staging = new Staging(view, source, options);
  let generation = 0;
  try {
    generation = await store.beginGeneration(view.name);
    staging.prefix = generationPrefix(view.name, generation);
    let reason: string | undefined;
    try {
      await staging.stageFiles();
      reason = staging.audit();
    } catch (error) {
      if (!(error instanceof AuditFailure) && !(error instanceof StrataError && error.kind === 'invalid_argument')) throw error;
      reason = error instanceof StrataError && error.field !== undefined ? `${error.field}: ${error.message}` : error.message;
    }
    if (reason === undefined) await store.publish(view.name, generation);
    else await store.discard(view.name, generation);
    return staging.report(generation, reason, Date.now() - started);
  } catch (error) {
    if (generation > 0) await store.discard(view.name, generation).catch(() => undefined);
    throw error;
  } finally {
    importing.delete(view.name);
  }
}

class Staging {
  prefix: Buffer = Buffer.alloc(0);
  private readonly view: ViewDef;
  private readonly source: BatchSource;
  private readonly options: SnapshotImportOptions;
  private readonly nowMs: number;
  private readonly keyTypes: readonly JoinKeyType[];
  private readonly files: { path: string; rows: number }[] = [];
  private readonly nulls: number[];
  /** Entities staged by earlier chunks: a later row of one merges into its staged record. */
  private readonly staged = new Set<string>();
  private rows = 0;
  private totalRows: number | undefined = 0;
  private readonly started = Date.now();
  private keyScratch = Buffer.allocUnsafe(256);

  constructor(view: ViewDef, source: BatchSource, options: SnapshotImportOptions) {
    this.view = view;
    this.source = source;
    this.options = options;
    this.nowMs = options.nowMs ?? Date.now();
    this.keyTypes = view.entities.map((entity) => entity.type);
    this.nulls = view.features.map(() => 0);
  }

  async stageFiles(): Promise<void> {
    const readers: RowReader[] = [];
    try {
      // Every file is opened (and its columns checked) before anything is staged.
      for (const path of this.options.paths) readers.push(await this.open(path));
      this.totalRows = readers.every((reader) => reader.totalRows !== undefined) ? readers.reduce((sum, reader) => sum + reader.totalRows!, 0) : undefined;
      for (const reader of readers) {
        const file = { path: reader.path, rows: 0 };
        this.files.push(file);
        for await (const chunk of reader.chunks()) {
          await this.stageChunk(reader, chunk);
          file.rows += chunk.length;
          this.options.onProgress?.({ file: reader.path, rows: this.rows, totalRows: this.totalRows, elapsedMs: Date.now() - this.started });
        }
      }
    } finally {
      await Promise.all(readers.map((reader) => reader.close()));
    }
  }

  /** A reader of the columns the view maps, the created timestamp only where the file has it. */
  private async open(path: string): Promise<RowReader> {
    const { columns, timestampColumn, createdTimestampColumn } = this.source;
    const required = [...columns.values(), timestampColumn];
    const probe = await openRowReader(path);
    const hasCreated = probe.columns.includes(createdTimestampColumn);
    await probe.close();
    return openRowReader(path, { columns: hasCreated ? [...required, createdTimestampColumn] : required });
  }

  private async stageChunk(origin: ValueOrigin & RowReader, chunk: RowChunk): Promise<void> {
    const { view, source } = this;
    this.rows += chunk.length;
    if (this.rows > source.audit.maxRows) throw new AuditFailure(`more than ${source.audit.maxRows} rows (the view's audit.max_rows)`);
    const column = (name: string): ArrayLike<unknown> => chunk.columns.get(name)!;
    const eventTs = timestampConverter(origin, source.timestampColumn);
    const createdTs = timestampConverter(origin, source.createdTimestampColumn, { optional: true });
    const createdValues = chunk.columns.get(source.createdTimestampColumn);
    const keyColumns = view.entities.map((entity) => {
      const name = source.columns.get(entity.joinKey)!;
      const convert = valueConverter(entity.type, origin, name);
      const values = column(name);
      return Array.from({ length: chunk.length }, (_, index): JoinKeyValue => {
        const typed = convert(values[index], chunk.rowOffset + index);
        if (typed === null) throw new StrataError('STRATA_MISSING_JOIN_KEY', `join key ${entity.joinKey} is missing`, { field: `${origin.path}:row ${chunk.rowOffset + index} column ${name}` });
        return typed.value as JoinKeyValue;
      });
    });
    const featureValues = view.features.map((feature) => encodeColumn(column(source.columns.get(feature.name)!), chunk.rowOffset, valueConverter(feature.type, origin, source.columns.get(feature.name)!)));
    featureValues.forEach((values, feature) => {
      for (const value of values) if (value === NULL_VALUE) this.nulls[feature]!++;
    });

    const byEntity = new Map<string, { key: Buffer; versions: Version[] }>();
    const times = column(source.timestampColumn);
    for (let row = 0; row < chunk.length; row++) {
      const fileRow = chunk.rowOffset + row;
      const ts = eventTs(times[row], fileRow)!;
      const version: Version = {
        eventTs: ts,
        // Without a created timestamp, a row counts as made now: a later import's equal event time wins.
        createdTs: (createdValues === undefined ? null : createdTs(createdValues[row], fileRow)) ?? this.nowMs,
        slots: featureValues.map((values) => values[row]),
      };
      const size = recordKeyLength(this.prefix, this.keyTypes, keyColumns, row);
      if (size > this.keyScratch.length) this.keyScratch = Buffer.allocUnsafe(size * 2);
      const end = writeRecordKey(this.keyScratch, this.prefix, this.keyTypes, keyColumns, row);
      const id = this.keyScratch.toString('latin1', 0, end);
      const entity = byEntity.get(id);
      if (entity === undefined) byEntity.set(id, { key: Buffer.from(this.keyScratch.subarray(0, end)), versions: [version] });
      else entity.versions.push(version);
    }

    const seenBefore: [string, { key: Buffer }][] = [];
    if (this.staged.size > 0) for (const entry of byEntity) if (this.staged.has(entry[0])) seenBefore.push(entry);
    const earlier = await this.options.store.getStaged(seenBefore.map(([, entity]) => entity.key));
    const previous = new Map(seenBefore.map(([id], index) => [id, earlier[index]]));
    const records: StagedRecord[] = [];
    for (const [id, { key, versions }] of byEntity) {
      const before = previous.get(id);
      // The common snapshot, one row per entity, needs no merge (mergeVersions always keeps a lone version).
      const merged =
        before === undefined && versions.length === 1
          ? versions
          : mergeVersions(before === undefined ? [] : FeatureRecord.decode(before).versions(), versions, this.nowMs, this.options.retentionMs, this.options.maxVersions);
      records.push({ key, bytes: encodeRecord(view.schemaFingerprint, this.nowMs * 1000, view.features.length, merged) });
      this.staged.add(id);
    }
    this.options.expectKeys?.(records.map((record) => record.key));
    await this.options.store.putStaged(records);
  }

  /** The audit after staging: undefined when the generation may be published, else why not. */
  audit(): string | undefined {
    const { minRows, maxNullRate } = this.source.audit;
    if (this.rows < minRows) return `${this.rows} rows, fewer than the ${minRows} the view's audit.min_rows requires`;
    for (const feature of this.view.features) {
      const rate = this.nullRate(feature.index);
      const limit = maxNullRate.get(feature.name) ?? 1;
      if (rate > limit) return `feature ${feature.name}: ${(rate * 100).toFixed(2)} % of values are null, more than the ${(limit * 100).toFixed(2)} % its audit.max_null_rate allows`;
    }
    return undefined;
  }

  private nullRate(feature: number): number {
    return this.rows === 0 ? 0 : this.nulls[feature]! / this.rows;
  }

  report(generation: number, reason: string | undefined, durationMs: number): ImportReport {
    return {
      view: this.view.name,
      generation,
      published: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      files: this.files,
      rows: this.rows,
      entities: this.staged.size,
      nullRates: Object.fromEntries(this.view.features.map((feature) => [feature.name, this.nullRate(feature.index)])),
      durationMs,
    };
  }
}
