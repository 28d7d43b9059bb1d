import { open, type FileHandle } from 'node:fs/promises';
import { extname } from 'node:path';
import { StrataError } from '../../errors.js';

export const FILE_FORMATS = ['parquet', 'avro', 'ndjson', 'csv'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

const FORMAT_BY_EXTENSION: ReadonlyMap<string, FileFormat> = new Map([
  ['.parquet', 'parquet'],
  ['.avro', 'avro'],
  ['.ndjson', 'ndjson'],
  ['.jsonl', 'ndjson'],
  // Offline pipelines (pandas to_json(lines=True), Spark) name line-delimited JSON .json as often as not.
  ['.json', 'ndjson'],
  ['.csv', 'csv'],
]);

/**
 * Rows per chunk of the row-oriented formats unless a reader is told
 * otherwise: enough that per-chunk work (a Map, a converter per column) is
 * noise, few enough that a chunk's values (a few MB for 6 columns) are
 * collected young rather than promoted.
 */
export const DEFAULT_CHUNK_ROWS = 16_384;

/** The format a file's extension names, case-insensitively; a STRATA_FILE_UNUSABLE error for any other extension. */
export function formatOfPath(path: string, supported: readonly FileFormat[] = FILE_FORMATS): FileFormat {
  const extension = extname(path).toLowerCase();
  const format = FORMAT_BY_EXTENSION.get(extension);
  if (format !== undefined && supported.includes(format)) return format;
  const known = [...FORMAT_BY_EXTENSION].filter(([, candidate]) => supported.includes(candidate)).map(([name]) => name);
  const what = extension === '' ? 'has no extension' : `has the extension ${extension}`;
  throw fileUnusable(path, `${what}; expected one of ${known.join(', ')} (or name the format explicitly)`);
}

/** The one error for a file that cannot be used as a whole, always naming it. */
export function fileUnusable(path: string, reason: string, cause?: unknown): StrataError {
  return new StrataError('STRATA_FILE_UNUSABLE', `${path}: ${reason}`, { field: path, ...(cause === undefined ? {} : { cause }) });
}

/** The same for one line of a text file (from 1), as `file:line: reason`, the form editors and the registry's errors use. */
export function fileUnusableAt(path: string, line: number, reason: string, cause?: unknown): StrataError {
  return new StrataError('STRATA_FILE_UNUSABLE', `${path}:${line}: ${reason}`, { field: `${path}:${line}`, ...(cause === undefined ? {} : { cause }) });
}

/** Opens a regular file for reading; anything else (missing, a directory, no permission) is STRATA_FILE_UNUSABLE. */
export async function openReadable(path: string): Promise<{ handle: FileHandle; byteLength: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fileUnusable(path, `cannot open: ${(error as Error).message}`, error);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw fileUnusable(path, 'is not a regular file');
    return { handle, byteLength: stats.size };
  } catch (error) {
    await handle.close();
    throw error instanceof StrataError ? error : fileUnusable(path, `cannot read: ${(error as Error).message}`, error);
  }
}

/** The one error for a requested column a file lacks, naming both; `detail` says what the file has instead. */
export function missingColumn(path: string, column: string, detail: string): StrataError {
  return new StrataError('STRATA_MISSING_COLUMN', `${path}: has no column ${JSON.stringify(column)} (${detail})`, { field: column });
}

/**
 * The columns a reader yields: `requested` (each must be in the file, once)
 * and those of `optional` the file has, or else all of `available`, in file
 * order.
 */
export function pickColumns(path: string, available: readonly string[], requested: readonly string[] | undefined, optional: readonly string[] = []): readonly string[] {
  const seen = new Set<string>();
  for (const name of available) {
    if (seen.has(name)) throw fileUnusable(path, `has the column ${JSON.stringify(name)} twice`);
    seen.add(name);
  }
  if (requested === undefined) return available;
  const picked = new Set<string>();
  for (const name of requested) {
    if (!seen.has(name)) throw missingColumn(path, name, `its columns: ${available.join(', ')}`);
    picked.add(name);
  }
  for (const name of optional) if (seen.has(name)) picked.add(name);
  return [...picked];
}
