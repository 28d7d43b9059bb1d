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
 * history serve point-in-time reads like any other view. A stream view's
 * rows are tiles of partial aggregates, each timestamped with its tile's end
 * on the view's tile grid; the snapshot's cutoff is its newest tile end
 * (or the one given), and reads take events up to it from the tiles.
 *
 * Two threads share the work: a worker (snapshot-import-worker.ts) reads,
 * checks and encodes the rows, this thread merges repeated entities and
 * writes to L3.
 */
import type { ViewDef } from '../config/registry.js';
import type { BatchSource } from '../config/batch-views.js';
import { formatDuration } from '../config/duration.js';
import { StrataError } from '../errors.js';
import { generationPrefix } from '../storage/keys.js';
import { snapshotHistory } from '../storage/compaction.js';
import { encodeRecord, FeatureRecord, mergeVersions, type Version } from '../storage/record.js';
import { StagedRecords, type SnapshotStore } from '../storage/snapshot-store.js';
import { KeyHashSet } from './key-hash-set.js';
import { AuditFailure, ChunkFeed, failureOf } from './snapshot-import-feed.js';
import type { ChunkEncoding, EncodedChunk } from './snapshot-import-worker.js';

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
  /** Share of null values per feature (per tile column for a stream view). */
  readonly nullRates: Readonly<Record<string, number>>;
  /** A stream view's tiles: events up to this time are in them (ISO 8601). */
  readonly cutoff?: string;
  readonly durationMs: number;
}

export interface SnapshotImportOptions {
  readonly view: ViewDef;
  readonly paths: readonly string[];
  readonly store: SnapshotStore;
  readonly retentionMs: number;
  readonly maxVersions: number;
  readonly nowMs?: number;
  /** A stream view's cutoff, on its tile grid; default: the newest tile end in the files. */
  readonly cutoffMs?: number;
  readonly onProgress?: (progress: ImportProgress) => void;
  /** Keys about to become readable: a cache's bloom gate must know them before publish. */
  readonly expectKeys?: (keys: readonly Buffer[]) => void;
}

/** Views with an import under way in this process (another process cannot open the same L3). */
const importing = new Set<string>();

export async function importSnapshot(options: SnapshotImportOptions): Promise<ImportReport> {
  const { view, store } = options;
  const source = view.batch;
  if (source === undefined) throw new StrataError('STRATA_NOT_A_BATCH_VIEW', `${view.name} has no batch half (source: { type: batch } or a batch: section), so no snapshot files feed it`, { field: 'view' });
  const { cutoffMs } = options;
  if (cutoffMs !== undefined && (source.tileMs === 0 || cutoffMs % source.tileMs !== 0)) {
    const rule = source.tileMs === 0 ? `only a stream view's tiles have a cutoff; ${view.name}'s rows are feature values` : `must lie on the view's ${formatDuration(source.tileMs)} tile grid`;
    throw new StrataError('STRATA_MALFORMED_REQUEST', `cutoff ${new Date(cutoffMs).toISOString()}: ${rule}`, { field: 'cutoff' });
  }
  if (options.paths.length === 0) throw new StrataError('STRATA_MALFORMED_REQUEST', 'name at least one snapshot file', { field: 'files' });
  if (importing.has(view.name)) throw new StrataError('STRATA_IMPORT_IN_PROGRESS', `an import of ${view.name} is already under way`, { field: 'view' });
  const started = Date.now();
  const staging = new Staging(view, source, options);
  // The worker loads its modules while the generation is reserved.
  const feed = new ChunkFeed();
  importing.add(view.name);
  let generation = 0;
  try {
    generation = await store.beginGeneration(view.name);
    staging.prefix = generationPrefix(view.name, generation);
    let reason: string | undefined;
    try {
      await staging.stageFiles(feed);
      reason = staging.audit();
    } catch (error) {
      if (!(error instanceof AuditFailure) && !(error instanceof StrataError && error.kind === 'invalid_argument')) throw error;
      const field = error instanceof StrataError ? error.field : undefined;
      // invalid() already puts the field first.
      reason = field === undefined || error.message.startsWith(field) ? error.message : `${field}: ${error.message}`;
    }
    if (reason === undefined) await store.publish(view.name, generation, staging.cutoffMs);
    else await store.discard(view.name, generation);
    return staging.report(generation, reason, Date.now() - started);
  } catch (error) {
    // Once published, the generation is what readers see, whatever failed after the switch: never discard it.
    if (generation > 0 && store.publishedGeneration(view.name) !== generation) await store.discard(view.name, generation).catch(() => undefined);
    throw error;
  } finally {
    importing.delete(view.name);
    await feed.close();
  }
}

class Staging {
  prefix: Buffer = Buffer.alloc(0);
  private readonly view: ViewDef;
  private readonly source: BatchSource;
  private readonly options: SnapshotImportOptions;
  private readonly nowMs: number;
  private readonly files: { path: string; rows: number }[] = [];
  private readonly nulls: number[];
  /** Hashes of the entities staged by earlier chunks and this one: a row of one of them may need merging into its staged record. */
  private stagedHashes = new KeyHashSet();
  private entities = 0;
  private rows = 0;
  /** A stream view's newest tile end so far. */
  private newestTileEnd = 0;
  private totalRows: number | undefined = 0;
  /** How far back versions are kept: retention, plus the longest tiled window for tiles. */
  private readonly keptMs: number;
  private readonly maxVersions: number;
  private readonly started = Date.now();
  /**
   * The last chunk's write, still under way while the next chunk is taken
   * (LevelDB commits on a libuv thread): at most one at a time.
   * 300k-row parquet, 3 runs each under load average ~8: 101–110k rows/s
   * against 77–89k awaiting each write.
   */
  private writing: Promise<void> | undefined;

  constructor(view: ViewDef, source: BatchSource, options: SnapshotImportOptions) {
    this.view = view;
    this.source = source;
    this.options = options;
    this.nowMs = options.nowMs ?? Date.now();
    this.nulls = source.storedColumns.map(() => 0);
    // Compaction keeps the same history of the published snapshot.
    ({ keptMs: this.keptMs, maxVersions: this.maxVersions } = snapshotHistory(view, source, options));
  }

  /** A stream view's cutoff: the one given, else the newest tile end staged; 0 for other views. */
  get cutoffMs(): number {
    return this.source.tileMs === 0 ? 0 : (this.options.cutoffMs ?? this.newestTileEnd);
  }

  /** Stages what the worker reads and encodes from the files, chunk by chunk, in file order. */
  async stageFiles(feed: ChunkFeed): Promise<void> {
    feed.start(this.encoding());
    try {
      for (;;) {
        const message = await feed.next();
        switch (message.type) {
          case 'opened':
            this.totalRows = message.totalRows;
            this.stagedHashes = new KeyHashSet(message.totalRows);
            break;
          case 'file':
            this.files.push({ path: message.path, rows: 0 });
            break;
          case 'chunk':
            feed.taken();
            await this.stageChunk(message);
            this.files.at(-1)!.rows += message.length;
            break;
          case 'failed':
            this.rows = message.rows;
            throw failureOf(message.failure);
          case 'done':
            await this.writing;
            return;
        }
      }
    } finally {
      // A write still under way when staging failed must land before the generation is discarded.
      await this.writing?.catch(() => undefined);
    }
  }

  /** The view and the import as the worker needs them. */
  private encoding(): ChunkEncoding {
    const { view, source, options } = this;
    const column = (name: string): string => source.columns.get(name)!;
    return {
      paths: options.paths,
      prefix: this.prefix,
      keys: view.entities.map((entity) => ({ joinKey: entity.joinKey, column: column(entity.joinKey), type: entity.type })),
      features: source.storedColumns.map((stored) => ({ column: column(stored.name), type: stored.type })),
      timestampColumn: source.timestampColumn,
      createdTimestampColumn: source.createdTimestampColumn,
      tileMs: source.tileMs,
      cutoffMs: options.cutoffMs,
      maxRows: source.audit.maxRows,
      fingerprint: source.fingerprint,
      nowMs: this.nowMs,
    };
  }

  /**
   * Writes a chunk's rows whose entity is new as the worker encoded them;
   * only rows of entities seen before (in this chunk or staged by an earlier
   * one) are grouped and merged as versions.
   */
  private async stageChunk(chunk: EncodedChunk): Promise<void> {
    const { length, hashes } = chunk;
    this.rows += length;
    chunk.nulls.forEach((nulls, feature) => (this.nulls[feature]! += nulls));
    if (chunk.newestTileEnd > this.newestTileEnd) this.newestTileEnd = chunk.newestTileEnd;
    let repeatedHashes: Set<number> | undefined;
    for (let row = 0; row < length; row++) {
      if (this.stagedHashes.add(hashes[row]!)) (repeatedHashes ??= new Set()).add(hashes[row]!);
    }
    const encoded = StagedRecords.packed(chunk.keys, chunk.keyEnds, chunk.records, chunk.recordEnds);
    let staged = encoded;
    if (repeatedHashes === undefined) {
      this.entities += length;
    } else {
      staged = new StagedRecords(chunk.keys.length, chunk.records.length, length);
      const repeatedRows: number[] = [];
      for (let row = 0; row < length; row++) {
        if (repeatedHashes.has(hashes[row]!)) {
          repeatedRows.push(row);
          continue;
        }
        staged.keys.append(encoded.key(row));
        staged.records.append(encoded.record(row));
        staged.endRecord();
        this.entities++;
      }
      await this.stageRepeats(repeatedRows, (row) => encoded.key(row), (row) => FeatureRecord.decode(encoded.record(row)).versions()[0]!, staged);
    }
    if (this.options.expectKeys !== undefined) this.options.expectKeys(Array.from({ length: staged.count }, (_, index) => staged.key(index)));
    await this.writing;
    // Progress counts rows once they are in L3, as when each write was awaited here.
    const rowsWritten = this.rows;
    const file = this.files.at(-1)!.path;
    this.writing = this.options.store.putStaged(staged).then(() => {
      this.options.onProgress?.({ file, rows: rowsWritten, totalRows: this.totalRows, elapsedMs: Date.now() - this.started });
    });
    // Awaited by the next chunk or the end of stageFiles; until then a failure must not count as unhandled.
    this.writing.catch(() => undefined);
  }

  /**
   * The rows whose key hash was seen before: grouped by exact key, each
   * group's versions merged into what an earlier chunk staged for the entity
   * (newest event time first, ties to the newer created time), if anything.
   */
  private async stageRepeats(rows: readonly number[], keyOf: (row: number) => Buffer, versionOf: (row: number) => Version, staged: StagedRecords): Promise<void> {
    const byEntity = new Map<string, { key: Buffer; versions: Version[] }>();
    for (const row of rows) {
      const key = keyOf(row);
      const id = key.toString('latin1');
      const entity = byEntity.get(id);
      if (entity === undefined) byEntity.set(id, { key, versions: [versionOf(row)] });
      else entity.versions.push(versionOf(row));
    }
    const entities = [...byEntity.values()];
    // The earlier chunk's write may hold some of these entities.
    await this.writing;
    const earlier = await this.options.store.getStaged(entities.map((entity) => entity.key));
    entities.forEach(({ key, versions }, index) => {
      const before = earlier[index];
      if (before === undefined) this.entities++;
      // A lone version needs no merge (mergeVersions always keeps it).
      const merged =
        before === undefined && versions.length === 1
          ? versions
          : mergeVersions(before === undefined ? [] : FeatureRecord.decode(before).versions(), versions, this.nowMs, this.keptMs, this.maxVersions);
      staged.keys.append(key);
      staged.records.append(encodeRecord(this.source.fingerprint, this.nowMs * 1000, this.source.storedColumns.length, merged));
      staged.endRecord();
    });
  }

  /** The audit after staging: undefined when the generation may be published, else why not. */
  audit(): string | undefined {
    const { minRows, maxNullRate } = this.source.audit;
    if (this.rows < minRows) return `${this.rows} rows, fewer than the ${minRows} the view's audit.min_rows requires`;
    const what = this.source.tileMs > 0 ? 'tile column' : 'feature';
    for (const [index, stored] of this.source.storedColumns.entries()) {
      const rate = this.nullRate(index);
      const limit = maxNullRate.get(stored.name) ?? 1;
      if (rate > limit) return `${what} ${stored.name}: ${(rate * 100).toFixed(2)} % of values are null, more than the ${(limit * 100).toFixed(2)} % its audit.max_null_rate allows`;
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
      entities: this.entities,
      nullRates: Object.fromEntries(this.source.storedColumns.map((stored, index) => [stored.name, this.nullRate(index)])),
      ...(this.source.tileMs > 0 && this.cutoffMs > 0 ? { cutoff: new Date(this.cutoffMs).toISOString() } : {}),
      durationMs,
    };
  }
}
