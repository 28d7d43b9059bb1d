import { formatOfPath, type FileFormat } from './file-format.js';

export type { FileFormat } from './file-format.js';

/**
 * Consecutive rows of a file, column by column: parquet decodes whole columns
 * and the importer converts and encodes a column at a time, so neither side
 * builds an object per row.
 */
export interface RowChunk {
  /** The number of the chunk's first row. Rows are numbered from 0 within the file, whatever its format, so errors can say `file:row N`. */
  readonly rowOffset: number;
  readonly length: number;
  /**
   * One array of `length` values per column of the reader, as the format
   * decodes them (a typed array where it can: parquet INT64 is a
   * BigInt64Array); null or undefined is a missing value.
   */
  readonly columns: ReadonlyMap<string, ArrayLike<unknown>>;
}

/**
 * Rows of one file (parquet, Avro container, NDJSON or CSV), a chunk at a
 * time: memory holds about one chunk, whatever the file's size. Open with
 * `openRowReader`; implementations: ParquetRowReader, AvroRowReader,
 * NdjsonRowReader, CsvRowReader. Every failure is a StrataError naming the
 * file: STRATA_FILE_UNUSABLE for the file as a whole (unknown extension,
 * missing, malformed at a line or row), STRATA_MISSING_COLUMN for a requested
 * column it lacks.
 */
export interface RowReader {
  readonly path: string;
  readonly format: FileFormat;
  /** Known once the reader is open: from the schema (parquet, Avro), the header (CSV) or the first row (NDJSON). */
  readonly columns: readonly string[];
  /**
   * True when every value arrives as text to be parsed (CSV), so "12" may be
   * an int64; false when the format types its values (a string is a string).
   * Column conformance (`column-conform.ts`) reads it.
   */
  readonly textValues: boolean;
  /** The file's row count, when the format states it up front (the parquet footer), for progress and ETA. */
  readonly totalRows?: number;
  /** The rows, in file order. Iterate once; stopping early releases the file as close() does. */
  chunks(): AsyncIterable<RowChunk>;
  /** Releases the file. Idempotent. */
  close(): Promise<void>;
}

export interface RowReaderOptions {
  /** Overrides the format the extension names. */
  readonly format?: FileFormat;
  /**
   * Only these columns, in this order; each must be in the file
   * (STRATA_MISSING_COLUMN otherwise). Parquet then reads only their bytes.
   * In NDJSON they are the keys taken from every line (others are ignored),
   * a line without one reads a missing value there, and each must be on
   * some line: known only once the file is read, so that is when a missing
   * one fails (a file without rows has no lines to hold one). Without them,
   * the first line's keys are the columns and a later line with another key
   * is an error.
   */
  readonly columns?: readonly string[];
  /** With `columns`, these after them where the file has them; in NDJSON always, a column on no line all missing values. */
  readonly optionalColumns?: readonly string[];
  /**
   * Rows per chunk (default 16 384): exactly for Avro; at most for parquet,
   * whose row groups also end chunks; at least for CSV and NDJSON, which hand
   * over whole blocks of about a MiB of text.
   */
  readonly chunkRows?: number;
}

/**
 * Opens a file of rows, its format chosen by `options.format` (or a format
 * given alone, `openRowReader(path, 'csv')`) or else by the extension
 * (.parquet, .avro, .ndjson/.jsonl/.json, .csv). Each format's reader is
 * loaded when first asked for: hyparquet and avsc cost ~70–90 ms of CPU to
 * load, which an import's worker thread (snapshot-import-worker.ts) would
 * otherwise pay for formats it never reads.
 */
export async function openRowReader(path: string, options: RowReaderOptions | FileFormat = {}): Promise<RowReader> {
  if (typeof options === 'string') options = { format: options };
  const format = options.format ?? formatOfPath(path);
  switch (format) {
    case 'parquet':
      return (await import('./parquet-row-reader.js')).ParquetRowReader.open(path, options);
    case 'avro':
      return (await import('./avro-row-reader.js')).AvroRowReader.open(path, options);
    case 'ndjson':
      return (await import('./ndjson-row-reader.js')).NdjsonRowReader.open(path, options);
    case 'csv':
      return (await import('./csv-row-reader.js')).CsvRowReader.open(path, options);
  }
}
