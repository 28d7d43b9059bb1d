import type { FileHandle } from 'node:fs/promises';
import { DEFAULT_CHUNK_ROWS, fileUnusable } from './file-format.js';
import type { RowChunk, RowReader, RowReaderOptions } from './row-reader.js';
import { textBlocks } from './text-blocks.js';

/**
 * What the text formats (CSV, NDJSON) share: a file read a MiB at a time,
 * parsed block by block into per-column buffers, handed out as chunks of at
 * most `chunkRows` rows. A format parses blocks (readBlock) and knows its
 * columns; memory holds one chunk of rows and one block.
 */
export abstract class TextRowReader implements RowReader {
  readonly path: string;
  abstract readonly format: 'csv' | 'ndjson';
  abstract readonly textValues: boolean;
  protected readonly blocks: AsyncGenerator<string>;
  protected readonly requested: readonly string[] | undefined;
  protected readonly optional: readonly string[];
  /** Per column, the values of the rows parsed since the last chunk. */
  protected buffers: unknown[][] = [];
  protected pending = 0;
  protected rowOffset = 0;
  readonly #handle: FileHandle;
  readonly #chunkRows: number;
  #closed = false;

  protected constructor(path: string, handle: FileHandle, options: RowReaderOptions) {
    this.path = path;
    this.#handle = handle;
    this.blocks = textBlocks(handle);
    this.#chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.requested = options.columns;
    this.optional = options.optionalColumns ?? [];
  }

  abstract get columns(): readonly string[];

  /** Parses the next block, or the end of the file; false once the file is done. */
  protected abstract readBlock(): Promise<boolean>;

  /** Reads blocks until `known()` (the header, the first object); a file that ends first is unusable for `emptyReason`. Closes the file on failure. */
  protected async readColumns(known: () => boolean, emptyReason: string): Promise<void> {
    try {
      while (!known()) {
        if (!(await this.readBlock())) break;
      }
      if (!known()) throw fileUnusable(this.path, emptyReason);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async *chunks(): AsyncGenerator<RowChunk> {
    try {
      let more = true;
      while (more) {
        more = await this.readBlock();
        if (this.pending >= this.#chunkRows || (!more && this.pending > 0)) yield this.#takeChunk();
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

  #takeChunk(): RowChunk {
    const columns = new Map<string, ArrayLike<unknown>>();
    this.columns.forEach((name, index) => columns.set(name, this.buffers[index]!));
    const chunk: RowChunk = { rowOffset: this.rowOffset, length: this.pending, columns };
    this.rowOffset += this.pending;
    this.pending = 0;
    this.buffers = this.columns.map(() => []);
    return chunk;
  }
}
