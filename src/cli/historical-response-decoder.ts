/**
 * GetHistoricalFeaturesResponse chunks decoded by hand into columns of plain
 * values, the form the batch file writers take (src/batch/files/row-writer.ts):
 * int64 as a number (a bigint beyond 2^53), bytes as a Uint8Array, lists as
 * arrays, null where no value is PRESENT. Statuses are kept as numbers for
 * counting; the values' event times are skipped.
 *
 * Wire layout (proto/strata/v1/feature_service.proto):
 *   1 metadata           { 1 repeated string feature_names }
 *   2 results            repeated FeatureVector { 1 repeated Value values, 2 packed statuses, 3 event_timestamps }
 *   3 event_timestamps   repeated Timestamp { 1 int64 seconds, 2 int32 nanos }
 *   4 row_offset         uint64
 */
import type Long from 'long';
import protobuf from 'protobufjs/minimal.js';

const { Reader } = protobuf;

const WIRE_LENGTH = 2;

/** One chunk of result rows. */
export interface ResultChunk {
  /** Join keys first, then features. */
  readonly names: readonly string[];
  /** The number of the chunk's first row within the call. */
  readonly rowOffset: number;
  /** Per row, the time it was read at, epoch ms. */
  readonly times: number[];
  /** Per name, one value per row. */
  readonly values: unknown[][];
  /** Per name, one FieldStatus number per row. */
  readonly statuses: Uint8Array[];
  /** Views some of the chunk's records could not be read for (GetOnlineFeaturesResponse.degraded_views). */
  readonly degradedViews: string[];
}

export function decodeResultChunk(bytes: Uint8Array): ResultChunk {
  const reader = Reader.create(bytes);
  const names: string[] = [];
  const values: unknown[][] = [];
  const statuses: Uint8Array[] = [];
  const times: number[] = [];
  const degradedViews: string[] = [];
  let rowOffset = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    switch (tag >>> 3) {
      case 1:
        names.push(...strings(reader));
        break;
      case 2: {
        const vector = featureVector(reader);
        values.push(vector.values);
        statuses.push(vector.statuses);
        break;
      }
      case 3:
        times.push(timestampMs(reader));
        break;
      case 4:
        rowOffset = (reader.uint64() as unknown as Long).toNumber();
        break;
      case 5:
        degradedViews.push(reader.string());
        break;
      default:
        reader.skipType(tag & 7);
    }
  }
  if (names.length !== values.length) throw new Error(`a response chunk names ${names.length} columns and holds ${values.length}`);
  return { names, rowOffset, times, values, statuses, degradedViews };
}

/** Metadata: its feature_names. */
function strings(reader: protobuf.Reader): string[] {
  const end = reader.uint32() + reader.pos;
  const result: string[] = [];
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1) result.push(reader.string());
    else reader.skipType(tag & 7);
  }
  return result;
}

function featureVector(reader: protobuf.Reader): { values: unknown[]; statuses: Uint8Array } {
  const end = reader.uint32() + reader.pos;
  const values: unknown[] = [];
  let statuses: Uint8Array = new Uint8Array(0);
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1) {
      values.push(value(reader));
    } else if (field === 2 && (tag & 7) === WIRE_LENGTH) {
      // Packed: one varint per row, each a single byte (the statuses are 0…4).
      statuses = reader.bytes();
    } else {
      reader.skipType(tag & 7);
    }
  }
  return { values, statuses };
}

/** A Value message as a plain value; no member set is NULL. */
function value(reader: protobuf.Reader): unknown {
  const end = reader.uint32() + reader.pos;
  let result: unknown = null;
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag >>> 3) {
      case 1:
        result = int64(reader.int64() as unknown as Long);
        break;
      case 2:
        result = reader.double();
        break;
      case 3:
        result = reader.string();
        break;
      case 4:
        result = reader.bool();
        break;
      case 5:
        result = reader.bytes();
        break;
      case 6:
        result = list(reader, true, () => int64(reader.int64() as unknown as Long));
        break;
      case 7:
        result = list(reader, true, () => reader.double());
        break;
      case 8:
        result = list(reader, false, () => reader.string());
        break;
      default:
        reader.skipType(tag & 7);
    }
  }
  return result;
}

/** A list message { 1 repeated T values }; numbers (`packable`) packed as Strata writes them, or unpacked. */
function list(reader: protobuf.Reader, packable: boolean, item: () => unknown): unknown[] {
  const end = reader.uint32() + reader.pos;
  const items: unknown[] = [];
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag >>> 3 !== 1) {
      reader.skipType(tag & 7);
    } else if (packable && (tag & 7) === WIRE_LENGTH) {
      const packedEnd = reader.uint32() + reader.pos;
      while (reader.pos < packedEnd) items.push(item());
    } else {
      items.push(item());
    }
  }
  return items;
}

function int64(long: Long): number | bigint {
  const number = long.toNumber();
  return Number.isSafeInteger(number) ? number : BigInt(long.toString());
}

function timestampMs(reader: protobuf.Reader): number {
  const end = reader.uint32() + reader.pos;
  let seconds = 0;
  let nanos = 0;
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1) seconds = (reader.int64() as unknown as Long).toNumber();
    else if (tag >>> 3 === 2) nanos = reader.int32();
    else reader.skipType(tag & 7);
  }
  return seconds * 1000 + Math.floor(nanos / 1_000_000);
}
