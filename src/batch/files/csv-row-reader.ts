import type { FileHandle } from 'node:fs/promises';
import { CsvParser, CsvSyntaxError, type CsvField } from './csv-parser.js';
import { fileUnusableAt, openReadable, pickColumns } from './file-format.js';
import type { RowReaderOptions } from './row-reader.js';
import { TextRowReader } from './text-row-reader.js';

/**
 * CSV (RFC 4180, see CsvParser) with a header row naming the columns; every
 * row must have as many fields as the header. Values stay text — `null` for
 * an empty unquoted field, as in `a,,b`, and `""` for a quoted empty one —
 * and are typed by column conformance.
 */
export class CsvRowReader extends TextRowReader {
  readonly format = 'csv' as const;
  readonly textValues = true;
  readonly #parser: CsvParser;
  #columns: readonly string[] = [];
  /** Header-derived, once the header is read: how many fields a row has, and which field feeds each column. */
  #width = 0;
  #fieldOfColumn: readonly number[] | undefined;

  private constructor(path: string, handle: FileHandle, options: RowReaderOptions) {
    super(path, handle, options);
    this.#parser = new CsvParser((fields, count, line) => this.#onRecord(fields, count, line));
  }

  get columns(): readonly string[] {
    return this.#columns;
  }

  static async open(path: string, options: RowReaderOptions): Promise<CsvRowReader> {
    const { handle } = await openReadable(path);
    const reader = new CsvRowReader(path, handle, options);
    await reader.readColumns(() => reader.#fieldOfColumn !== undefined, 'is empty; a CSV file starts with a header row naming its columns');
    return reader;
  }

  /** Parses the next block, or the end of the file; false once the file is done. */
  protected async readBlock(): Promise<boolean> {
    const block = await this.blocks.next();
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
      throw fileUnusableAt(this.path, line, `row ${this.rowOffset + this.pending} has ${count} field${count === 1 ? '' : 's'}; the header has ${this.#width}`);
    }
    const row = this.pending++;
    const buffers = this.buffers;
    for (let column = 0; column < fieldOfColumn.length; column++) buffers[column]![row] = fields[fieldOfColumn[column]!]!;
  }

  #takeHeader(names: readonly CsvField[]): void {
    // pandas writes its index column with an empty name: keep it as '', usable if never requested.
    const available = names.map((name) => name ?? '');
    this.#columns = pickColumns(this.path, available, this.requested, this.optional);
    this.#width = available.length;
    this.#fieldOfColumn = this.#columns.map((name) => available.indexOf(name));
    this.buffers = this.#columns.map(() => []);
  }
}
