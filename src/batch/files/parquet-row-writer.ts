import type { SchemaElement } from 'hyparquet';
import { ByteWriter, ParquetWriter, type ColumnSource } from 'hyparquet-writer';
import type { ValueType } from '../../values/value-codec.js';
import { PartialFile, badOutputValue, batchColumns, checkOutputColumns, outputInt64 } from './output-file.js';
import type { OutputColumn, RowBatch, RowWriter } from './row-writer.js';

/** Parquet leaf types of the scalar value types. */
const LEAF: Readonly<Record<Exclude<ValueType, `list<${string}>`> | 'timestamp', Omit<SchemaElement, 'name'>>> = {
  int64: { type: 'INT64' },
  double: { type: 'DOUBLE' },
  string: { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } },
  bool: { type: 'BOOLEAN' },
  bytes: { type: 'BYTE_ARRAY' },
  timestamp: { type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' } },
};

const ELEMENT_OF: Readonly<Record<`list<${string}>`, 'int64' | 'double' | 'string'>> = {
  'list<int64>': 'int64',
  'list<double>': 'double',
  'list<string>': 'string',
};

/** The file's schema: every column OPTIONAL (NULL is a value); lists in the standard three-level LIST form pyarrow and Spark read. */
function parquetSchema(columns: readonly OutputColumn[]): SchemaElement[] {
  const schema: SchemaElement[] = [{ name: 'schema', num_children: columns.length }];
  for (const { name, type } of columns) {
    const element = ELEMENT_OF[type as `list<${string}>`];
    if (element === undefined) {
      schema.push({ name, repetition_type: 'OPTIONAL', ...LEAF[type as keyof typeof LEAF] });
      continue;
    }
    schema.push(
      { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', logical_type: { type: 'LIST' }, num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'REQUIRED', ...LEAF[element] },
    );
  }
  return schema;
}

/** hyparquet-writer's output, appended to the file after every row group: only one group's bytes are ever in memory. */
class FileSink extends ByteWriter {
  readonly #file: PartialFile;

  constructor(file: PartialFile) {
    super(1 << 20);
    this.#file = file;
  }

  /** Called by ParquetWriter after each row group, which awaits it before encoding more. */
  async flush(): Promise<void> {
    // Nothing touches the buffer until this settles, so it is written in place, not copied.
    await this.#file.append(new Uint8Array(this.buffer, 0, this.index));
    this.index = 0;
  }

  override finish(): Promise<void> {
    return this.flush();
  }
}

/**
 * Parquet through hyparquet-writer's incremental ParquetWriter: rows are
 * gathered column by column and written as a row group (snappy, with
 * statistics) every `rowGroupRows` rows; the footer is written by close().
 * int64 as INT64, double DOUBLE, string UTF-8 BYTE_ARRAY, bytes BYTE_ARRAY,
 * lists as LIST, timestamps as INT64 TIMESTAMP(MILLIS, UTC).
 */
export class ParquetRowWriter implements RowWriter {
  readonly path: string;
  readonly format = 'parquet' as const;
  readonly columns: readonly OutputColumn[];
  readonly #file: PartialFile;
  readonly #writer: ParquetWriter;
  readonly #rowGroupRows: number;
  #pending: unknown[][];
  #pendingRows = 0;
  #rowsWritten = 0;

  private constructor(file: PartialFile, columns: readonly OutputColumn[], rowGroupRows: number) {
    this.path = file.path;
    this.columns = columns;
    this.#file = file;
    this.#writer = new ParquetWriter({ writer: new FileSink(file), schema: parquetSchema(columns), createdBy: 'strata' });
    this.#rowGroupRows = rowGroupRows;
    this.#pending = columns.map(() => []);
  }

  static async create(path: string, columns: readonly OutputColumn[], rowGroupRows: number): Promise<ParquetRowWriter> {
    checkOutputColumns(path, columns);
    return new ParquetRowWriter(await PartialFile.create(path), columns, rowGroupRows);
  }

  get rowsWritten(): number {
    return this.#rowsWritten;
  }

  async write(batch: RowBatch): Promise<void> {
    const values = batchColumns(this.path, this.columns, batch);
    // Converted apart and kept only whole: a rejected batch leaves the row group as it was.
    const converted = this.columns.map((column, index) => convertColumn(this.path, column, values[index]!, this.#rowsWritten));
    converted.forEach((column, index) => {
      const pending = this.#pending[index]!;
      for (const value of column) pending.push(value);
    });
    this.#pendingRows += batch.length;
    this.#rowsWritten += batch.length;
    if (this.#pendingRows >= this.#rowGroupRows) await this.#writeRowGroup();
  }

  async close(): Promise<void> {
    if (this.#pendingRows > 0) await this.#writeRowGroup();
    await this.#writer.finish();
    await this.#file.commit();
  }

  async abort(): Promise<void> {
    await this.#file.discard();
  }

  async #writeRowGroup(): Promise<void> {
    const columnData: ColumnSource[] = this.columns.map(({ name }, index) => ({ name, data: this.#pending[index]! }));
    const rows = this.#pendingRows;
    this.#pending = this.columns.map(() => []);
    this.#pendingRows = 0;
    await this.#writer.write({ columnData, rowGroupSize: rows });
  }
}

/** A batch's column in the JS types hyparquet-writer takes (bigint for INT64). */
function convertColumn(path: string, column: OutputColumn, values: ArrayLike<unknown>, firstRow: number): unknown[] {
  const element = ELEMENT_OF[column.type as `list<${string}>`];
  const convert = element === undefined ? SCALAR[column.type as keyof typeof SCALAR] : listOf(SCALAR[element]);
  const converted = new Array<unknown>(values.length);
  for (let index = 0; index < values.length; index++) {
    const raw = values[index];
    if (raw === null || raw === undefined) {
      converted[index] = null;
      continue;
    }
    const value = convert(raw);
    if (value === undefined) throw badOutputValue(path, column, firstRow + index, raw);
    converted[index] = value;
  }
  return converted;
}

type Convert = (raw: unknown) => unknown;

const SCALAR: Readonly<Record<keyof typeof LEAF, Convert>> = {
  int64: outputInt64,
  double: (raw) => (typeof raw === 'number' ? raw : undefined),
  string: (raw) => (typeof raw === 'string' ? raw : undefined),
  bool: (raw) => (typeof raw === 'boolean' ? raw : undefined),
  bytes: (raw) => (raw instanceof Uint8Array ? raw : undefined),
  timestamp: (raw) => {
    const ms = raw instanceof Date ? raw.getTime() : raw;
    return typeof ms === 'number' && Number.isSafeInteger(ms) ? BigInt(ms) : undefined;
  },
};

function listOf(item: Convert): Convert {
  return (raw) => {
    if (!Array.isArray(raw)) return undefined;
    const list: unknown[] = [];
    for (const element of raw) {
      const value = element === null || element === undefined ? undefined : item(element);
      if (value === undefined) return undefined;
      list.push(value);
    }
    return list;
  };
}
