import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import Long from 'long';
import { StrataError, invalid } from '../../errors.js';
import { fileUnusable } from './file-format.js';
import type { OutputColumn, RowBatch } from './row-writer.js';

/**
 * An output file under construction: written at `<path>.partial`, renamed to
 * `path` when complete, so whoever waits for `path` never reads half a file.
 */
export class PartialFile {
  readonly path: string;
  readonly #partialPath: string;
  readonly #handle: FileHandle;
  #open = true;

  private constructor(path: string, partialPath: string, handle: FileHandle) {
    this.path = path;
    this.#partialPath = partialPath;
    this.#handle = handle;
  }

  static async create(path: string): Promise<PartialFile> {
    const partialPath = `${path}.partial`;
    try {
      return new PartialFile(path, partialPath, await open(partialPath, 'w'));
    } catch (error) {
      throw fileUnusable(path, `cannot create ${partialPath}: ${(error as Error).message}`, error);
    }
  }

  /** Appends; await each call before the next. */
  async append(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    try {
      for (let written = 0; written < bytes.length; ) {
        written += (await this.#handle.write(bytes, written, bytes.length - written)).bytesWritten;
      }
    } catch (error) {
      throw fileUnusable(this.path, `cannot write ${this.#partialPath}: ${(error as Error).message}`, error);
    }
  }

  async commit(): Promise<void> {
    try {
      await this.#close();
      await rename(this.#partialPath, this.path);
    } catch (error) {
      throw fileUnusable(this.path, `cannot complete the file from ${this.#partialPath}: ${(error as Error).message}`, error);
    }
  }

  async discard(): Promise<void> {
    await this.#close().catch(() => undefined);
    await unlink(this.#partialPath).catch(() => undefined);
  }

  async #close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.#handle.close();
  }
}

/** Checks output columns once, when the writer is created: names unique and non-empty. */
export function checkOutputColumns(path: string, columns: readonly OutputColumn[]): void {
  const seen = new Set<string>();
  for (const { name } of columns) {
    if (name === '' || seen.has(name)) throw invalid('STRATA_DUPLICATE_FEATURE', `columns.${name}`, `${path}: output column names must be unique and non-empty`);
    seen.add(name);
  }
}

/** The batch's arrays in the writer's column order, after checking it has exactly those columns, each of `length` values. */
export function batchColumns(path: string, columns: readonly OutputColumn[], batch: RowBatch): ArrayLike<unknown>[] {
  for (const name of batch.columns.keys()) {
    if (!columns.some((column) => column.name === name)) {
      throw invalid('STRATA_UNEXPECTED_COLUMN', `columns.${name}`, `${path} has no output column ${name} (its columns: ${columns.map((column) => column.name).join(', ')})`);
    }
  }
  return columns.map(({ name }) => {
    const values = batch.columns.get(name);
    if (values === undefined) throw invalid('STRATA_MISSING_COLUMN', `columns.${name}`, `a batch for ${path} gives every output column (null for a missing value)`);
    if (values.length !== batch.length) {
      throw invalid('STRATA_COLUMN_LENGTH_MISMATCH', `columns.${name}`, `has ${values.length} values in a batch of ${batch.length} rows`);
    }
    return values;
  });
}

/** A value that is not of its output column's type; `row` counts from the file's first row. */
export function badOutputValue(path: string, column: OutputColumn, row: number, raw: unknown): StrataError {
  const shown = typeof raw === 'string' ? JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw) : typeof raw === 'object' ? (Array.isArray(raw) ? 'an array' : 'an object') : `${typeof raw} ${String(raw)}`;
  const code = column.type === 'timestamp' ? 'STRATA_BAD_TIMESTAMP' : 'STRATA_VALUE_TYPE_MISMATCH';
  const expected = column.type === 'timestamp' ? 'timestamp (epoch ms or a Date)' : column.type;
  return invalid(code, `${path}:row ${row} column ${column.name}`, `expected ${expected}, got ${shown}`);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT64_DIGITS = /^-?\d{1,19}$/;

/**
 * An int64 value to write, in any form Strata holds one (a safe integer, a
 * bigint, a string of digits, a Long), as a bigint; undefined for anything
 * else or outside int64. Both writers take int64s by this one rule.
 */
export function outputInt64(raw: unknown): bigint | undefined {
  let value: bigint | undefined;
  if (typeof raw === 'number') value = Number.isSafeInteger(raw) ? BigInt(raw) : undefined;
  else if (typeof raw === 'bigint') value = raw;
  else if (typeof raw === 'string') value = INT64_DIGITS.test(raw) ? BigInt(raw) : undefined;
  else if (Long.isLong(raw)) value = BigInt((raw as Long).toString());
  return value !== undefined && value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
}
