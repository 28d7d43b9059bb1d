import type { FileHandle } from 'node:fs/promises';
import { DEFAULT_CHUNK_ROWS, fileUnusable, fileUnusableAt, openReadable } from './file-format.js';
import type { RowChunk, RowReader, RowReaderOptions } from './row-reader.js';
import { textBlocks } from './text-blocks.js';

/** One line may not outgrow this; memory stays bounded even on a file that is not line-delimited at all. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;

/**
 * Newline-delimited JSON: one object per line, blank lines skipped, values
 * as JSON gives them (an absent key is a missing value). The columns are the
 * requested ones, or else the first object's keys, and then a later line with
 * a key the first lacked is an error rather than a silently dropped value.
 * Read a MiB at a time; memory holds one chunk of rows, one block and one line.
 */
export class NdjsonRowReader implements RowReader {
  readonly path: string;
  readonly format = 'ndjson' as const;
  readonly textValues = false;
  readonly #handle: FileHandle;
  readonly #blocks: AsyncGenerator<string>;
  readonly #chunkRows: number;
  readonly #requested: readonly string[] | undefined;
  #columns: readonly string[] | undefined;
  #buffers: unknown[][] = [];
  /** Per column, whether a parsed object would inherit the name (`constructor`, `toString`): only those need an own-property check. */
  #inherited: readonly boolean[] = [];
  #pending = 0;
  #rowOffset = 0;
  /** The text after the last line break so far, and the number of the line it starts. */
  #partial = '';
  #line = 1;
  #closed = false;

  private constructor(path: string, handle: FileHandle, options: RowReaderOptions) {
    this.path = path;
    this.#handle = handle;
    this.#blocks = textBlocks(handle);
    this.#chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.#requested = options.columns;
    if (options.columns !== undefined) this.#setColumns([...new Set(options.columns)]);
  }

  get columns(): readonly string[] {
    return this.#columns ?? [];
  }

  static async open(path: string, options: RowReaderOptions): Promise<NdjsonRowReader> {
    const { handle } = await openReadable(path);
    try {
      const reader = new NdjsonRowReader(path, handle, options);
      while (reader.#columns === undefined) {
        if (!(await reader.#readBlock())) break;
      }
      if (reader.#columns === undefined) throw fileUnusable(path, 'has no rows, so no columns; NDJSON holds one JSON object per line');
      return reader;
    } catch (error) {
      await handle.close();
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

  /** Takes every complete line of the next block, or the last line at the end of the file; false once the file is done. */
  async #readBlock(): Promise<boolean> {
    const block = await this.#blocks.next();
    if (block.done === true) {
      const last = this.#partial;
      this.#partial = '';
      if (last !== '') this.#takeLine(last, this.#line);
      return false;
    }
    const text = this.#partial === '' ? block.value : this.#partial + block.value;
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      this.#takeLine(text.slice(start, end), this.#line++);
      start = end + 1;
    }
    this.#partial = text.slice(start);
    if (this.#partial.length > MAX_LINE_CHARS) throw fileUnusableAt(this.path, this.#line, `a line longer than ${MAX_LINE_CHARS} characters starts here; is this NDJSON?`);
    return true;
  }

  #takeLine(text: string, line: number): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      if (text.trim() === '') return;
      const hint = this.#columns === undefined && text.trimStart().startsWith('[') ? ' (a JSON array is not NDJSON: write one object per line)' : '';
      throw fileUnusableAt(this.path, line, `not valid JSON: ${(error as Error).message}${hint}`, error);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw fileUnusableAt(this.path, line, `expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
    }
    const record = value as Record<string, unknown>;
    const columns = this.#columns ?? this.#setColumns(Object.keys(record));
    const row = this.#pending++;
    const buffers = this.#buffers;
    const inherited = this.#inherited;
    let present = 0;
    for (let column = 0; column < columns.length; column++) {
      const name = columns[column]!;
      const field = inherited[column] && !Object.hasOwn(record, name) ? undefined : record[name];
      if (field !== undefined) present++;
      buffers[column]![row] = field;
    }
    if (this.#requested === undefined) {
      // Counting keys with for-in allocates nothing, unlike Object.keys, and this runs for every row.
      let keys = 0;
      for (const _ in record) keys++;
      if (keys !== present) this.#rejectExtraKey(record, line);
    }
  }

  /** Without requested columns, a key outside the first line's is an error: the row would lose it unseen. */
  #rejectExtraKey(record: Record<string, unknown>, line: number): never {
    const extra = Object.keys(record).find((key) => !this.columns.includes(key));
    throw fileUnusableAt(
      this.path,
      line,
      `row ${this.#rowOffset + this.#pending - 1} has the key ${JSON.stringify(extra)}, which the first line lacks; the first line's keys are the columns (${this.columns.join(', ')}), or request the columns`,
    );
  }

  #setColumns(columns: readonly string[]): readonly string[] {
    this.#columns = columns;
    this.#inherited = columns.map((name) => name in Object.prototype);
    this.#buffers = columns.map(() => []);
    return columns;
  }

  #takeChunk(): RowChunk {
    const columns = new Map<string, ArrayLike<unknown>>();
    this.columns.forEach((name, index) => columns.set(name, this.#buffers[index]!));
    const chunk: RowChunk = { rowOffset: this.#rowOffset, length: this.#pending, columns };
    this.#rowOffset += this.#pending;
    this.#pending = 0;
    this.#buffers = this.columns.map(() => []);
    return chunk;
  }
}
