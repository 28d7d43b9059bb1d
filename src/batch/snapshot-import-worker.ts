/**
 * The reading half of a snapshot import (snapshot-import.ts), on a worker
 * thread: it reads the files and conforms and encodes each chunk into packed
 * record keys and one-version records, which it hands over (transferred, not
 * copied) to the main thread; that one merges repeated entities and writes
 * to L3. Reading NDJSON alone costs ~2.8 µs a row and a LevelDB put ~0.9 µs,
 * so one thread cannot import 200k rows/s; two cores can.
 *
 * ChunkFeed gives it a ChunkEncoding per import, one import at a time. It
 * encodes at most CHUNKS_AHEAD chunks the main thread has not taken yet, and
 * says `opened`, then `file` and its chunks per file, then `done` — or
 * `failed`, with the error it met, at any point; then it waits for the next.
 */
import { parentPort } from 'node:worker_threads';
import type { JoinKeyType } from '../config/registry.js';
import { formatDuration } from '../config/duration.js';
import { StrataError, type ErrorCode } from '../errors.js';
import { recordKeyLength, writeRecordKey } from '../storage/keys.js';
import { SingleVersionRecords } from '../storage/record.js';
import { ByteSink } from '../util/byte-sink.js';
import type { ValueType } from '../values/value-codec.js';
import { conformColumn, encodeColumn, joinKeyReader, timestampConverter, type ValueOrigin } from './files/column-conform.js';
import { openRowReader, type RowChunk, type RowReader } from './files/row-reader.js';
import { hashBytes } from './key-hash-set.js';

/** What the worker needs of the view and the import: plain data, as it crosses threads. */
export interface ChunkEncoding {
  readonly paths: readonly string[];
  /** The staged generation's key prefix. */
  readonly prefix: Uint8Array;
  /** The view's join keys in entity order, each with its file column. */
  readonly keys: readonly { readonly joinKey: string; readonly column: string; readonly type: JoinKeyType }[];
  /** The stored columns in slot order, each with its file column. */
  readonly features: readonly { readonly column: string; readonly type: ValueType }[];
  readonly timestampColumn: string;
  readonly createdTimestampColumn: string;
  /** A stream view's tile width; 0 for feature values. */
  readonly tileMs: number;
  readonly cutoffMs: number | undefined;
  readonly maxRows: number;
  readonly fingerprint: number;
  readonly nowMs: number;
}

/** One chunk of rows, every row a key and a one-version record; row i's key is `keys[keyEnds[i-1]…keyEnds[i])`, its record likewise. */
export interface EncodedChunk {
  readonly type: 'chunk';
  readonly length: number;
  readonly keys: Uint8Array;
  readonly keyEnds: Uint32Array;
  /** Per row, hashBytes of its key after the generation prefix. */
  readonly hashes: Int32Array;
  readonly records: Uint8Array;
  readonly recordEnds: Uint32Array;
  /** NULL values per stored column. */
  readonly nulls: readonly number[];
  /** A stream view's newest tile end in the chunk; 0 otherwise. */
  readonly newestTileEnd: number;
}

/** An error as it crosses threads: a StrataError keeps its code, field and message. */
export type ChunkFailure =
  | { readonly kind: 'strata'; readonly code: ErrorCode; readonly message: string; readonly field: string | undefined }
  | { readonly kind: 'max_rows'; readonly message: string }
  | { readonly kind: 'unexpected'; readonly message: string; readonly stack: string | undefined };

export type ChunkMessage =
  | { readonly type: 'opened'; readonly totalRows: number | undefined }
  | { readonly type: 'file'; readonly path: string }
  | EncodedChunk
  | { readonly type: 'done' }
  /** `rows`: the rows counted when it failed, the failing chunk's included, as the report counts them. */
  | { readonly type: 'failed'; readonly rows: number; readonly failure: ChunkFailure };

/** Chunks encoded ahead of the one the main thread is writing: both threads stay busy, and memory holds a few chunks (~2 MB each). */
const CHUNKS_AHEAD = 2;
/** Key bytes a chunk's key buffer is first sized for per row; it grows for longer keys. */
const EXPECTED_KEY_BYTES = 32;
/** Record bytes a chunk's record buffer is first sized for per row and feature. */
const EXPECTED_SLOT_BYTES = 12;

class RowLimitExceeded extends Error {}

class ChunkEncoder {
  rows = 0;
  private readonly encoding: ChunkEncoding;
  private readonly prefix: Buffer;
  private readonly keyTypes: readonly JoinKeyType[];

  constructor(encoding: ChunkEncoding) {
    this.encoding = encoding;
    this.prefix = Buffer.from(encoding.prefix);
    this.keyTypes = encoding.keys.map((key) => key.type);
  }

  /** A reader of the columns the view maps, each required, and the created timestamp where the file has it. */
  open(path: string): Promise<RowReader> {
    const { keys, features, timestampColumn, createdTimestampColumn } = this.encoding;
    const required = [...keys.map((key) => key.column), ...features.map((feature) => feature.column), timestampColumn];
    return openRowReader(path, { columns: required, optionalColumns: [createdTimestampColumn] });
  }

  /** Encodes a chunk column by column, then each row's key and one-version record; `transfer` gets the buffers to hand over. */
  encode(origin: ValueOrigin, chunk: RowChunk, transfer: ArrayBuffer[]): EncodedChunk {
    const { encoding, prefix, keyTypes } = this;
    const { length, rowOffset } = chunk;
    this.rows += length;
    if (this.rows > encoding.maxRows) throw new RowLimitExceeded(`more than ${encoding.maxRows} rows (the view's audit.max_rows)`);
    const column = (name: string): ArrayLike<unknown> => chunk.columns.get(name)!;
    const keyColumns = encoding.keys.map(({ joinKey, column: name, type }) => conformColumn(column(name), rowOffset, joinKeyReader(type, origin, name, joinKey)));
    const features = encoding.features.map(({ column: name, type }) => encodeColumn(column(name), rowOffset, type, origin, name));
    const eventTs = new Float64Array(length);
    const createdTs = new Float64Array(length).fill(encoding.nowMs);
    const toEventTs = timestampConverter(origin, encoding.timestampColumn);
    const times = column(encoding.timestampColumn);
    let newestTileEnd = 0;
    for (let row = 0; row < length; row++) {
      eventTs[row] = toEventTs(times[row], rowOffset + row)!;
      if (encoding.tileMs > 0) {
        this.checkTileEnd(eventTs[row]!, origin.path, rowOffset + row);
        if (eventTs[row]! > newestTileEnd) newestTileEnd = eventTs[row]!;
      }
    }
    const createdValues = chunk.columns.get(encoding.createdTimestampColumn);
    if (createdValues !== undefined) {
      const toCreatedTs = timestampConverter(origin, encoding.createdTimestampColumn, { optional: true });
      // Without a created timestamp, a row counts as made now: a later import's equal event time wins.
      for (let row = 0; row < length; row++) createdTs[row] = toCreatedTs(createdValues[row], rowOffset + row) ?? encoding.nowMs;
    }

    const keys = new ByteSink(length * EXPECTED_KEY_BYTES);
    const keyEnds = new Uint32Array(length);
    const hashes = new Int32Array(length);
    const records = new ByteSink(length * (64 + EXPECTED_SLOT_BYTES * features.length));
    const recordEnds = new Uint32Array(length);
    const oneVersion = new SingleVersionRecords(encoding.fingerprint, encoding.nowMs * 1000, features);
    for (let row = 0; row < length; row++) {
      keys.reserve(recordKeyLength(prefix, keyTypes, keyColumns, row));
      const start = keys.length;
      keys.length = writeRecordKey(keys.bytes, prefix, keyTypes, keyColumns, row, start);
      keyEnds[row] = keys.length;
      hashes[row] = hashBytes(keys.bytes, start + prefix.length, keys.length);
      oneVersion.append(records, row, eventTs[row]!, createdTs[row]!);
      recordEnds[row] = records.length;
    }
    transfer.push(keyEnds.buffer, hashes.buffer, recordEnds.buffer);
    return {
      type: 'chunk',
      length,
      keys: transferable(keys, transfer),
      keyEnds,
      hashes,
      records: transferable(records, transfer),
      recordEnds,
      nulls: features.map((encoded) => encoded.nulls),
      newestTileEnd,
    };
  }

  /** A tile's timestamp is its end: on the grid, and not past a cutoff given. */
  private checkTileEnd(ts: number, path: string, fileRow: number): void {
    const { tileMs, timestampColumn, cutoffMs } = this.encoding;
    const field = `${path}:row ${fileRow} column ${timestampColumn}`;
    if (ts % tileMs !== 0) throw new StrataError('STRATA_MALFORMED_REQUEST', `${new Date(ts).toISOString()} is not the end of a ${formatDuration(tileMs)} tile (tiles end on multiples of ${formatDuration(tileMs)} since 1970-01-01T00:00Z)`, { field });
    if (cutoffMs !== undefined && ts > cutoffMs) throw new StrataError('STRATA_MALFORMED_REQUEST', `tile ending ${new Date(ts).toISOString()} is past the cutoff ${new Date(cutoffMs).toISOString()}`, { field });
  }
}

/**
 * A sink's bytes as a view of memory that can be transferred: its own
 * buffer, or a copy when it is a slice of Node's shared pool (a small
 * chunk's), which cannot be.
 */
function transferable(sink: ByteSink, transfer: ArrayBuffer[]): Uint8Array {
  const { bytes } = sink;
  const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.subarray(0, sink.length) : new Uint8Array(bytes.subarray(0, sink.length));
  transfer.push(owned.buffer as ArrayBuffer);
  return owned;
}

function crossing(error: unknown): ChunkFailure {
  if (error instanceof StrataError) return { kind: 'strata', code: error.code, message: error.message, field: error.field };
  if (error instanceof RowLimitExceeded) return { kind: 'max_rows', message: error.message };
  return { kind: 'unexpected', message: error instanceof Error ? error.message : String(error), stack: error instanceof Error ? error.stack : undefined };
}

async function encodeFiles(encoding: ChunkEncoding, send: (message: ChunkMessage, transfer?: ArrayBuffer[]) => void, taken: () => Promise<void>): Promise<void> {
  const encoder = new ChunkEncoder(encoding);
  const readers: RowReader[] = [];
  try {
    // Every file is opened (and its columns checked) before anything is staged; an NDJSON file's columns only at its end (its lines name them).
    for (const path of encoding.paths) readers.push(await encoder.open(path));
    const totalRows = readers.every((reader) => reader.totalRows !== undefined) ? readers.reduce((sum, reader) => sum + reader.totalRows!, 0) : undefined;
    send({ type: 'opened', totalRows });
    for (const reader of readers) {
      send({ type: 'file', path: reader.path });
      for await (const chunk of reader.chunks()) {
        const transfer: ArrayBuffer[] = [];
        const encoded = encoder.encode(reader, chunk, transfer);
        await taken();
        send(encoded, transfer);
      }
    }
  } catch (error) {
    await Promise.all(readers.map((reader) => reader.close()));
    send({ type: 'failed', rows: encoder.rows, failure: crossing(error) });
    return;
  }
  await Promise.all(readers.map((reader) => reader.close()));
  send({ type: 'done' });
}

if (parentPort !== null) {
  const port = parentPort;
  let room = CHUNKS_AHEAD;
  let roomMade: (() => void) | undefined;
  const taken = async (): Promise<void> => {
    while (room === 0) await new Promise<void>((resolve) => (roomMade = resolve));
    room--;
  };
  // An import's encoding starts it (the worker starts while the import reserves its generation, and serves one import after another);
  // then the main thread posts null for each chunk it takes: room for one more.
  port.on('message', (message: ChunkEncoding | null) => {
    if (message === null) {
      room++;
      roomMade?.();
      return;
    }
    // Room the last import's final chunks made counts for nothing now.
    room = CHUNKS_AHEAD;
    void encodeFiles(message, (reply, transfer) => port.postMessage(reply, transfer), taken);
  });
}
