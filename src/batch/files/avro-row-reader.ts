import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import avsc from 'avsc';
import { snappyUncompress } from 'hyparquet';
import { parseAvroSchema } from '../../config/avro.js';
import { StrataError } from '../../errors.js';
import { DEFAULT_CHUNK_ROWS, fileUnusable, openReadable, pickColumns } from './file-format.js';
import type { RowChunk, RowReader, RowReaderOptions } from './row-reader.js';

/** Divisors from each timestamp logical type's unit to milliseconds. Local (zone-less) timestamps are read as UTC, as text ones are. */
const TIMESTAMP_UNITS: ReadonlyMap<string, number> = new Map([
  ['timestamp-millis', 1],
  ['timestamp-micros', 1_000],
  ['local-timestamp-millis', 1],
  ['local-timestamp-micros', 1_000],
]);

/**
 * Avro object container files, decoded by avsc through the project's own
 * schema options (src/config/avro.ts: unions unwrapped, so a nullable long is
 * null or a number; longs beyond 2^53 are refused). The writer schema in the
 * header must be a record; its fields are the columns. Timestamp logical
 * types arrive as epoch milliseconds, as from parquet. Codecs: null, deflate
 * (avsc's) and snappy (Spark's default, through hyparquet's decompressor).
 */
export class AvroRowReader implements RowReader {
  readonly path: string;
  readonly format = 'avro' as const;
  readonly columns: readonly string[];
  readonly textValues = false;
  readonly #handle: FileHandle;
  readonly #source: Readable;
  readonly #decoder: avsc.streams.BlockDecoder;
  readonly #chunkRows: number;
  /** Per column, the divisor that turns its values into epoch ms, or 0 when it is not a timestamp. */
  readonly #timestampDivisors: readonly number[];
  #failure: Error | undefined;
  #closed = false;

  private constructor(
    path: string,
    opened: { handle: FileHandle; source: Readable; decoder: avsc.streams.BlockDecoder },
    columns: readonly string[],
    timestampUnits: ReadonlyMap<string, number>,
    options: RowReaderOptions,
  ) {
    this.path = path;
    this.#handle = opened.handle;
    this.#source = opened.source;
    this.#decoder = opened.decoder;
    this.columns = columns;
    this.#timestampDivisors = columns.map((name) => timestampUnits.get(name) ?? 0);
    this.#chunkRows = options.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.#decoder.on('error', (error: Error) => void (this.#failure ??= error));
  }

  static async open(path: string, options: RowReaderOptions): Promise<AvroRowReader> {
    const { handle } = await openReadable(path);
    const timestampUnits = new Map<string, number>();
    const decoder = new avsc.streams.BlockDecoder({
      codecs: { ...avsc.streams.BlockDecoder.defaultCodecs(), snappy: snappyBlock },
      parseHook: (schema) => {
        noteTimestampFields(schema, timestampUnits);
        return parseAvroSchema(schema as object);
      },
    });
    const source = handle.createReadStream({ autoClose: false, highWaterMark: 1 << 20 });
    source.on('error', (error) => decoder.destroy(error));
    source.pipe(decoder);
    try {
      const writerType = await headerType(decoder);
      if (!(writerType instanceof avsc.types.RecordType)) {
        throw fileUnusable(path, `holds ${writerType.typeName} values, not records; rows need a record schema whose fields are the columns`);
      }
      const available = writerType.fields.map((field) => field.name);
      return new AvroRowReader(path, { handle, source, decoder }, pickColumns(path, available, options.columns, options.optionalColumns), timestampUnits, options);
    } catch (error) {
      source.destroy();
      decoder.destroy();
      await handle.close();
      throw error instanceof StrataError ? error : fileUnusable(path, `not a readable Avro container file: ${(error as Error).message}`, error);
    }
  }

  async *chunks(): AsyncGenerator<RowChunk> {
    const decoder = this.#decoder;
    const columns = this.columns;
    const divisors = this.#timestampDivisors;
    const ready: RowChunk[] = [];
    let buffers: unknown[][] = columns.map(() => []);
    let pending = 0;
    let rowOffset = 0;
    let ended = false;
    let wake: (() => void) | undefined;
    const takeChunk = (): void => {
      ready.push({ rowOffset, length: pending, columns: new Map(columns.map((name, index) => [name, buffers[index]!])) });
      rowOffset += pending;
      pending = 0;
      buffers = columns.map(() => []);
    };
    // Flowing mode: avsc pushes one record at a time with a readable buffer of 16, so taking them as 'data'
    // events runs about twice as fast as read() calls between 'readable' events. Paused while a chunk waits.
    const onRecord = (record: Record<string, unknown>): void => {
      for (let column = 0; column < columns.length; column++) {
        const value = record[columns[column]!];
        const divisor = divisors[column]!;
        buffers[column]![pending] = divisor <= 1 || typeof value !== 'number' ? value : Math.floor(value / divisor);
      }
      if (++pending < this.#chunkRows) return;
      takeChunk();
      decoder.pause();
      wake?.();
    };
    const onEnd = (): void => {
      if (pending > 0) takeChunk();
      ended = true;
      wake?.();
    };
    const onError = (): void => wake?.();
    decoder.on('data', onRecord).on('end', onEnd).on('error', onError);
    try {
      for (;;) {
        const chunk = ready.shift();
        if (chunk !== undefined) {
          yield chunk;
          continue;
        }
        if (this.#failure !== undefined) throw this.#failure;
        if (ended) break;
        const woken = new Promise<void>((resolve) => (wake = resolve));
        decoder.resume();
        await woken;
        wake = undefined;
      }
    } catch (error) {
      throw error instanceof StrataError
        ? error
        : fileUnusable(this.path, `the block holding row ${rowOffset + pending} cannot be decoded: ${(error as Error).message}`, error);
    } finally {
      decoder.off('data', onRecord).off('end', onEnd).off('error', onError);
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#source.destroy();
    this.#decoder.destroy();
    await this.#handle.close();
  }
}

/** The header's writer schema, parsed; rejects when the bytes are not an Avro container file. */
function headerType(decoder: avsc.streams.BlockDecoder): Promise<avsc.Type> {
  return new Promise((resolve, reject) => {
    decoder.once('metadata', (type: avsc.Type) => resolve(type));
    decoder.once('error', reject);
    // The writable side ends before any metadata only when the file holds no complete header.
    decoder.once('finish', () => reject(new Error('the file ends before its header does')));
  });
}

/** Records which top-level fields of the writer schema carry a timestamp logical type, directly or as a nullable union. */
function noteTimestampFields(schema: unknown, units: Map<string, number>): void {
  const fields = (schema as { fields?: unknown }).fields;
  if (!Array.isArray(fields)) return;
  for (const field of fields as { name?: unknown; type?: unknown }[]) {
    const branches = Array.isArray(field.type) ? field.type : [field.type];
    for (const branch of branches) {
      const unit = TIMESTAMP_UNITS.get((branch as { logicalType?: string } | null)?.logicalType ?? '');
      if (unit !== undefined && typeof field.name === 'string') units.set(field.name, unit);
    }
  }
}

/**
 * Avro's snappy codec: a snappy block, then the CRC-32 of the uncompressed
 * bytes, big-endian. The block opens with its uncompressed length as a varint.
 */
function snappyBlock(block: Buffer, callback: (error: Error | null, data?: Buffer) => void): void {
  try {
    if (block.length < 5) throw new Error(`a ${block.length}-byte snappy block is too short`);
    const compressed = block.subarray(0, block.length - 4);
    let length = 0;
    for (let at = 0, shift = 0; at < compressed.length && at < 5; at++, shift += 7) {
      length += (compressed[at]! & 0x7f) * 2 ** shift;
      if (compressed[at]! < 0x80) break;
    }
    const output = Buffer.alloc(length);
    snappyUncompress(compressed, output);
    if (crc32(output) !== block.readUInt32BE(block.length - 4)) throw new Error('a snappy block fails its CRC-32 check');
    callback(null, output);
  } catch (error) {
    callback(error as Error);
  }
}
