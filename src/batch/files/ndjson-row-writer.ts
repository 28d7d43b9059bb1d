import type { ValueType } from '../../values/value-codec.js';
import { PartialFile, badOutputValue, batchColumns, checkOutputColumns, outputInt64 } from './output-file.js';
import type { OutputColumn, RowBatch, RowWriter } from './row-writer.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A value as JSON text, or undefined when it is not of the type. */
type Render = (raw: unknown) => string | undefined;

/**
 * int64 within ±2^53 as a JSON number, beyond as a string of its digits — the
 * form Strata's JSON inputs take, so the file reads back exactly even through
 * JSON.parse.
 */
function int64(raw: unknown): string | undefined {
  const value = outputInt64(raw);
  if (value === undefined) return undefined;
  return value <= MAX_SAFE && value >= -MAX_SAFE ? value.toString() : `"${value.toString()}"`;
}

/** Non-finite doubles as the strings "NaN", "Infinity", "-Infinity", as the codec renders them. */
function double(raw: unknown): string | undefined {
  if (typeof raw !== 'number') return undefined;
  return Number.isFinite(raw) ? String(raw) : `"${String(raw)}"`;
}

const RENDER: Readonly<Record<'int64' | 'double' | 'string' | 'bool' | 'bytes' | 'timestamp', Render>> = {
  int64,
  double,
  string: (raw) => (typeof raw === 'string' ? JSON.stringify(raw) : undefined),
  bool: (raw) => (typeof raw === 'boolean' ? String(raw) : undefined),
  bytes: (raw) => (raw instanceof Uint8Array ? `"${Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')}"` : undefined),
  // ISO-8601 in UTC with milliseconds, as the HTTP gateway renders times.
  timestamp: (raw) => {
    const ms = raw instanceof Date ? raw.getTime() : raw;
    return typeof ms === 'number' && Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? `"${new Date(ms).toISOString()}"` : undefined;
  },
};

function listOf(item: Render): Render {
  return (raw) => {
    if (!Array.isArray(raw)) return undefined;
    const parts: string[] = [];
    for (const element of raw) {
      const text = element === null || element === undefined ? undefined : item(element);
      if (text === undefined) return undefined;
      parts.push(text);
    }
    return `[${parts.join(',')}]`;
  };
}

function renderer(type: ValueType | 'timestamp'): Render {
  switch (type) {
    case 'list<int64>':
      return listOf(RENDER.int64);
    case 'list<double>':
      return listOf(RENDER.double);
    case 'list<string>':
      return listOf(RENDER.string);
    default:
      return RENDER[type];
  }
}

/**
 * One JSON object per row, keys in column order, NULL as null; values as
 * Strata's JSON renders them (int64 beyond 2^53 and non-finite doubles as
 * strings, bytes as base64, timestamps as ISO-8601 UTC), so the file imports
 * back unchanged. Lines are gathered and appended every `flushRows` rows.
 */
export class NdjsonRowWriter implements RowWriter {
  readonly path: string;
  readonly format = 'ndjson' as const;
  readonly columns: readonly OutputColumn[];
  readonly #file: PartialFile;
  readonly #flushRows: number;
  /** `"name":` per column, escaped once. */
  readonly #keys: readonly string[];
  readonly #renderers: readonly Render[];
  #lines: string[] = [];
  #rowsWritten = 0;

  private constructor(file: PartialFile, columns: readonly OutputColumn[], flushRows: number) {
    this.path = file.path;
    this.columns = columns;
    this.#file = file;
    this.#flushRows = flushRows;
    this.#keys = columns.map(({ name }, index) => `${index === 0 ? '{' : ','}${JSON.stringify(name)}:`);
    this.#renderers = columns.map(({ type }) => renderer(type));
  }

  static async create(path: string, columns: readonly OutputColumn[], flushRows: number): Promise<NdjsonRowWriter> {
    checkOutputColumns(path, columns);
    return new NdjsonRowWriter(await PartialFile.create(path), columns, flushRows);
  }

  get rowsWritten(): number {
    return this.#rowsWritten;
  }

  async write(batch: RowBatch): Promise<void> {
    const values = batchColumns(this.path, this.columns, batch);
    const keys = this.#keys;
    const renderers = this.#renderers;
    // Rendered apart and kept only whole: a rejected batch leaves nothing behind.
    const lines = new Array<string>(batch.length);
    for (let row = 0; row < batch.length; row++) {
      let line = keys.length === 0 ? '{' : '';
      for (let column = 0; column < keys.length; column++) {
        const raw = values[column]![row];
        let text = 'null';
        if (raw !== null && raw !== undefined) {
          const rendered = renderers[column]!(raw);
          if (rendered === undefined) throw badOutputValue(this.path, this.columns[column]!, this.#rowsWritten + row, raw);
          text = rendered;
        }
        line += keys[column]! + text;
      }
      lines[row] = `${line}}\n`;
    }
    for (const line of lines) this.#lines.push(line);
    this.#rowsWritten += batch.length;
    if (this.#lines.length >= this.#flushRows) await this.#flush();
  }

  async close(): Promise<void> {
    await this.#flush();
    await this.#file.commit();
  }

  async abort(): Promise<void> {
    await this.#file.discard();
  }

  async #flush(): Promise<void> {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join('');
    this.#lines = [];
    await this.#file.append(text);
  }
}
