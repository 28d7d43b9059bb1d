/**
 * GetHistoricalFeaturesResponse: the row times (field 3), the chunk's first
 * row number (4) and its degraded views (5), then the chunk's columns exactly
 * as GetOnlineFeaturesResponse encodes them (fields 1 and 2, from
 * OnlineFeaturesRpc.encode, copied whole). A protobuf reader takes fields in
 * any order, so the online encoding is reused as it is.
 *
 * Wire layout (proto/strata/v1/feature_service.proto):
 *   3 event_timestamps   repeated Timestamp { 1 int64 seconds, 2 int32 nanos }
 *   4 row_offset         uint64
 *   5 degraded_views     repeated string
 *   1 metadata, 2 results   as GetOnlineFeaturesResponse
 */
import { varintLength, writeVarint } from '../util/varint.js';

const TAG_EVENT_TIMESTAMPS = 0x1a; // field 3, length-delimited
const TAG_ROW_OFFSET = 0x20; // field 4, varint
const TAG_DEGRADED_VIEW = 0x2a; // field 5, length-delimited
const TAG_SECONDS = 0x08;
const TAG_NANOS = 0x10;
/** A negative int64 is ten varint bytes (two's complement). */
const NEGATIVE_INT64_BYTES = 10;

function int64Length(value: number): number {
  return value < 0 ? NEGATIVE_INT64_BYTES : varintLength(value);
}

/** An int64 varint; negative ones (times before 1970) as the ten bytes of their two's complement. */
function writeInt64(target: Uint8Array, at: number, value: number): number {
  if (value >= 0) return writeVarint(target, at, value);
  let bits = BigInt.asUintN(64, BigInt(value));
  while (bits >= 0x80n) {
    target[at++] = Number(bits & 0x7fn) | 0x80;
    bits >>= 7n;
  }
  target[at++] = Number(bits);
  return at;
}

/** Timestamp wants whole seconds (negative before 1970) and non-negative nanos; zero fields are left out. */
function timestampBodyLength(seconds: number, nanos: number): number {
  return (seconds === 0 ? 0 : 1 + int64Length(seconds)) + (nanos === 0 ? 0 : 1 + varintLength(nanos));
}

/** Encodes a chunk: `columns` is the chunk's GetOnlineFeaturesResponse encoding, `times` its rows' times in ms. */
export function encodeHistoricalChunk(columns: Buffer, times: ArrayLike<number>, rowOffset: number, degradedViews: readonly string[]): Buffer {
  let size = rowOffset === 0 ? 0 : 1 + varintLength(rowOffset);
  for (const view of degradedViews) size += 1 + varintLength(Buffer.byteLength(view)) + Buffer.byteLength(view);
  for (let row = 0; row < times.length; row++) {
    const seconds = Math.floor(times[row]! / 1000);
    size += 2 + timestampBodyLength(seconds, (times[row]! - seconds * 1000) * 1_000_000);
  }
  const target = Buffer.allocUnsafe(size + columns.length);
  let at = 0;
  for (let row = 0; row < times.length; row++) {
    const seconds = Math.floor(times[row]! / 1000);
    const nanos = (times[row]! - seconds * 1000) * 1_000_000;
    target[at++] = TAG_EVENT_TIMESTAMPS;
    target[at++] = timestampBodyLength(seconds, nanos);
    if (seconds !== 0) {
      target[at++] = TAG_SECONDS;
      at = writeInt64(target, at, seconds);
    }
    if (nanos !== 0) {
      target[at++] = TAG_NANOS;
      at = writeVarint(target, at, nanos);
    }
  }
  if (rowOffset !== 0) {
    target[at++] = TAG_ROW_OFFSET;
    at = writeVarint(target, at, rowOffset);
  }
  for (const view of degradedViews) {
    target[at++] = TAG_DEGRADED_VIEW;
    at = writeVarint(target, at, Buffer.byteLength(view));
    at += target.write(view, at, 'utf8');
  }
  if (at !== size) throw new Error(`historical chunk encoder wrote ${at} bytes before the columns, sized ${size}`);
  columns.copy(target, at);
  return target;
}
