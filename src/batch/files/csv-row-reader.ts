import type { FileHandle } from 'node:fs/promises';
import { CsvParser, CsvSyntaxError, type CsvField } from './csv-parser.js';
import { DEFAULT_CHUNK_ROWS, fileUnusable, fileUnusableAt, openReadable, pickColumns } from './file-format.js';
import type { RowChunk, RowReader, RowReaderOptions } from './row-reader.js';
import { textBlocks } from './text-blocks.js';

/**
 * CSV (RFC 4180, see CsvParser) with a header row naming the columns; every
 * row must have as many fields as the header. Values stay text — `null` for
 * an empty unquoted field, as in `a,,b`, and `""` for a quoted empty one —
 * and are typed by column conformance. Read a MiB at a time; memory holds
 * one chunk of rows and one block.
 */
export class CsvRowReader implements RowReader {
  readonly path: string;
  readonly format = 'csv' as const;
  readonly textValues = true;
  readonly #handle: FileHandle;
  readonly #blocks: AsyncGenerator<string>;
  readonly #parser: CsvParser;
  readonly #chunkRows: number;
  readonly #requested: readonly string[] | undefined;
  #columns: readonly string[] = [];
  /** Header-derived, once the header is read: how many fields a row has, and which field feeds each column. */
  #width = 0;
  #fieldOfColumn: readonly number[] | undefined;
  #buffers: CsvField[][] = [];
  #pending = 0;
  #rowOffset = 0;
  #closed = false;

  private constructor(path: string, handle: FileHandle, options: RowReaderOptions) {
    this.path = path;
    this.#handle = handle;
    this.#blocks = textBlocks(handle);
    this.#parser = new CsvParser((fields, count, line) => this.#onRecord(fields, count, line));
    this.#chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.#requested = options.columns;
  }

  get columns(): readonly string[] {
    return this.#columns;
  }

  static async open(path: string, options: RowReaderOptions): Promise<CsvRowReader> {
    const { handle } = await openReadable(path);
    const reader = new CsvRowReader(path, handle, options);
    try {
      while (reader.#fieldOfColumn === undefined) {
        if (!(await reader.#readBlock())) break;
      }
      if (reader.#fieldOfColumn === undefined) throw fileUnusable(path, 'is empty; a CSV file starts with a header row naming its columns');
      return reader;
    } catch (error) {
      await reader.close();
      throw error;
    }
  }

  async *chunks(): AsyncGenerator<RowChunk> {
    try {
      let more = true;
      while (more) {
        more = await this.#readBlock();
        if (this.#pending >= this.#chunkRows || (!more && this.#pending > 0)) yield this.#takeChunk();
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }

  /** Parses the next block, or the end of the file; false once the file is done. */
  async #readBlock(): Promise<boolean> {
    const block = await this.#blocks.next();
    try {
      if (block.done === true) this.#parser.end();
      else this.#parser.push(block.value);
    } catch (error) {
      if (error instanceof CsvSyntaxError) throw fileUnusableAt(this.path, error.line, error.reason, error);
      throw error;
    }
    return block.done !== true;
  }

  #onRecord(fields: readonly CsvField[], count: number, line: number): void {
    const fieldOfColumn = this.#fieldOfColumn;
    if (fieldOfColumn === undefined) {
      this.#takeHeader(fields.slice(0, count));
      return;
    }
    if (count !== this.#width) {
      throw fileUnusableAt(this.path, line, `row ${this.#rowOffset + this.#pending} has ${count} field${count === 1 ? '' : 's'}; the header has ${this.#width}`);
    }
    const row = this.#pending++;
    const buffers = this.#buffers;
    for (let column = 0; column < fieldOfColumn.length; column++) buffers[column]![row] = fields[fieldOfColumn[column]!]!;
  }

  #takeHeader(names: readonly CsvField[]): void {
    // pandas writes its index column with an empty name: keep it as '', usable if never requested.
    const available = names.map((name) => name ?? '');
    this.#columns = pickColumns(this.path, available, this.#requested);
    this.#width = available.length;
    this.#fieldOfColumn = this.#columns.map((name) => available.indexOf(name));
    this.#buffers = this.#columns.map(() => []);
  }

  #takeChunk(): RowChunk {
    const columns = new Map<string, ArrayLike<unknown>>();
    this.#columns.forEach((name, index) => columns.set(name, this.#buffers[index]!));
    const chunk: RowChunk = { rowOffset: this.#rowOffset, length: this.#pending, columns };
    this.#rowOffset += this.#pending;
    this.#pending = 0;
    this.#buffers = this.#columns.map(() => []);
    return chunk;
  }
}
