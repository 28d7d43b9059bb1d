import type { ValueType } from '../../values/value-codec.js';
import { formatOfPath } from './file-format.js';

/** The formats Strata writes; the others are input only. */
export const OUTPUT_FORMATS = ['parquet', 'ndjson'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A column of an output file: a feature or join key of a value type, or a timestamp (event, created, requested). */
export interface OutputColumn {
  readonly name: string;
  readonly type: ValueType | 'timestamp';
}

/**
 * Rows to write, column by column, like a RowChunk: every column of the
 * writer, each an array of `length` values. Values in the codec's TypedValue
 * form — int64 as a number, bigint, Long or digit string; bytes as a
 * Uint8Array; lists as arrays — and timestamps as epoch ms (or a Date); null
 * or undefined for NULL.
 */
export interface RowBatch {
  readonly length: number;
  readonly columns: ReadonlyMap<string, ArrayLike<unknown>>;
}

/**
 * An output file (historical retrieval, exports) written as rows arrive:
 * memory holds about one row group (`rowGroupRows`), never the whole output.
 * The file is written under `<path>.partial` and renamed to `path` by
 * close(), so a reader never sees half a file; abort() removes it.
 * Implementations: ParquetRowWriter, NdjsonRowWriter. Bad batches are
 * StrataErrors naming the column (and row); I/O failures STRATA_FILE_UNUSABLE.
 */
export interface RowWriter {
  readonly path: string;
  readonly format: OutputFormat;
  readonly columns: readonly OutputColumn[];
  /** Rows accepted so far (some may still be buffered until the next row group). */
  readonly rowsWritten: number;
  /** Await each call before the next. */
  write(batch: RowBatch): Promise<void>;
  /** Writes what is buffered, completes the file and moves it to `path`. */
  close(): Promise<void>;
  /** Gives up: removes the partial file. Safe after a failed write or close. */
  abort(): Promise<void>;
}

export interface RowWriterOptions {
  /** Overrides the format the extension names. */
  readonly format?: OutputFormat;
  /** Rows per parquet row group, and per NDJSON write (default 100 000). */
  readonly rowGroupRows?: number;
}

export const DEFAULT_ROW_GROUP_ROWS = 100_000;

/**
 * Creates an output file, its format chosen by `options.format` or else by
 * the extension (.parquet, or .ndjson/.jsonl/.json). Each format's writer is
 * loaded when first asked for, as openRowReader does: `strata serve` imports
 * this module (through the historical command) and otherwise carried
 * hyparquet and hyparquet-writer, 121 modules, in every serving process.
 */
export async function openRowWriter(path: string, columns: readonly OutputColumn[], options: RowWriterOptions = {}): Promise<RowWriter> {
  const format = options.format ?? (formatOfPath(path, OUTPUT_FORMATS) as OutputFormat);
  const rowGroupRows = options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS;
  switch (format) {
    case 'parquet':
      return (await import('./parquet-row-writer.js')).ParquetRowWriter.create(path, columns, rowGroupRows);
    case 'ndjson':
      return (await import('./ndjson-row-writer.js')).NdjsonRowWriter.create(path, columns, rowGroupRows);
  }
}
