/**
 * A feature record: everything Strata knows about one entity of one view —
 * its versions over time — in one binary blob. The same bytes live in L3
 * (LevelDB), in L2 (Redis) and, decoded into offsets, in L1, so a read at any
 * point in time can be answered from any tier.
 *
 * Layout (all integers big-endian):
 *   u8     format            RECORD_FORMAT
 *   u32    schema            the view's schema fingerprint the slots follow
 *   f64    revision          write clock: max(previous + 1, µs since epoch at the
 *                            write); orders cache fills within and across processes
 *   u16    featureCount      F
 *   u32    versionCount      V
 *   V ×    version, newest event time first:
 *            f64 eventTs     ms since epoch
 *            f64 createdTs   ms since epoch, when Strata (or the producer) wrote it
 *            F × slot        varint n, then n-1 bytes of a `Value` message;
 *                            n = 0: feature absent from this version (added to the
 *                            view later), n = 1: NULL
 *
 * Two versions never share an event time: of two writes with the same event
 * time only the one with the later created time can ever be read, so the
 * other is dropped when they meet (equal created times: the later write wins).
 */

import type { ByteSink } from '../util/byte-sink.js';
import { ARRAY_BUFFER_NATIVE_BYTES } from '../util/bytes.js';
import { readVarint as readUtilVarint, varintLength, writeVarint } from '../util/varint.js';

export const RECORD_FORMAT = 1;
const HEADER_BYTES = 1 + 4 + 8 + 2 + 4;

/** One version on its way into a record. A slot is Value bytes, NULL_VALUE (empty), or undefined = absent. */
export interface Version {
  readonly eventTs: number;
  readonly createdTs: number;
  readonly slots: readonly (Uint8Array | undefined)[];
}

export class CorruptRecordError extends Error {
  override readonly name = 'CorruptRecordError';
}

function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] {
  const read = readUtilVarint(bytes, at);
  if (read === undefined) throw new CorruptRecordError('truncated varint');
  return read;
}

/** Reads big-endian float64s out of record bytes (eight byte loads: no DataView per record). */
const doubleBytes = new Uint8Array(8);
const doubleView = new DataView(doubleBytes.buffer);

function readDouble(bytes: Uint8Array, at: number): number {
  doubleBytes[0] = bytes[at]!;
  doubleBytes[1] = bytes[at + 1]!;
  doubleBytes[2] = bytes[at + 2]!;
  doubleBytes[3] = bytes[at + 3]!;
  doubleBytes[4] = bytes[at + 4]!;
  doubleBytes[5] = bytes[at + 5]!;
  doubleBytes[6] = bytes[at + 6]!;
  doubleBytes[7] = bytes[at + 7]!;
  return doubleView.getFloat64(0);
}

/** Records up to this size index their bytes with 16-bit offsets. */
const SHORT_OFFSETS_MAX_BYTES = 0xffff;

/** Where a record's offset table starts, after its bytes. */
function tableStart(length: number): number {
  return (length + 3) & ~3;
}

/**
 * A decoded record: a copy of its bytes plus an offset table into them.
 * Decoding is one pass over the bytes; reading a value afterwards is an
 * array lookup.
 */
export class FeatureRecord {
  /** The record bytes, followed in the same ArrayBuffer by `offsets`: the record's own buffer, or wherever moveTo put it. */
  private recordBytes: Uint8Array;
  readonly schema: number;
  readonly featureCount: number;
  readonly versionCount: number;
  /**
   * What decoding found, after the bytes (4-aligned): where each version
   * starts (its event and created time), then per cell (version, feature)
   * where its value starts and its length + 1 (0: absent). 16-bit for
   * records under 64 KiB, the usual case. L1 holds ~100k records in the
   * loadtest, all of it memory the budget pays for: 32-bit words with the
   * times copied out took 424 B of a 50-feature record's 792 (its bytes are
   * 361), 16-bit 202. Not fewer (varint positions only, 102 B): reading a
   * value's length then costs a varint decode, +60 µs CPU per 100×50
   * request in bench:read. One buffer (the record's own, or an L1 slab) and
   * two views, not a typed array per table: every heap object of ~100k is
   * marked by each full GC.
   */
  private offsets: Uint16Array | Uint32Array;

  private constructor(source: Uint8Array) {
    if (source.length < HEADER_BYTES || source[0] !== RECORD_FORMAT) throw new CorruptRecordError(`unknown record format ${source[0]}`);
    const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
    this.schema = view.getUint32(1);
    this.featureCount = view.getUint16(13);
    this.versionCount = view.getUint32(15);
    // Every version takes at least 16 bytes of times and a byte per slot: check before sizing the table by the header.
    if (this.versionCount * (16 + this.featureCount) > source.length - HEADER_BYTES) {
      throw new CorruptRecordError(`header claims ${this.versionCount} versions of ${this.featureCount} features in ${source.length} bytes`);
    }
    const entries = this.versionCount * (1 + 2 * this.featureCount);
    const tableOffset = tableStart(source.length);
    const short = source.length <= SHORT_OFFSETS_MAX_BYTES;
    const memory = new ArrayBuffer(tableOffset + (short ? 2 : 4) * entries);
    this.recordBytes = new Uint8Array(memory, 0, source.length);
    this.recordBytes.set(source);
    const offsets = short ? new Uint16Array(memory, tableOffset, entries) : new Uint32Array(memory, tableOffset, entries);
    this.offsets = offsets;
    let at = HEADER_BYTES;
    let cell = this.versionCount;
    for (let version = 0; version < this.versionCount; version++) {
      if (at + 16 > source.length) throw new CorruptRecordError('truncated version header');
      offsets[version] = at;
      at += 16;
      for (let feature = 0; feature < this.featureCount; feature++) {
        const [n, next] = readVarint(source, at);
        offsets[cell++] = next;
        offsets[cell++] = n;
        at = next + Math.max(0, n - 1);
      }
    }
    if (at !== source.length) throw new CorruptRecordError(`record has ${source.length - at} trailing bytes`);
  }

  /**
   * Decodes record bytes into a record of its own memory (the bytes are
   * copied), so a cached record never pins a larger buffer it came in
   * (pooled socket reads, Buffer slab allocations).
   */
  static decode(bytes: Uint8Array): FeatureRecord {
    return new FeatureRecord(bytes);
  }

  get bytes(): Uint8Array {
    return this.recordBytes;
  }

  /** Bytes and offset table end to end: the memory the record reads from. */
  get footprint(): number {
    return tableStart(this.recordBytes.length) + this.offsets.byteLength;
  }

  /**
   * Copies the record's bytes and table into `memory` at `at` (4-aligned,
   * `footprint` bytes of room) and reads from there from now on. The memory
   * it leaves is not touched: views taken from it earlier read the same
   * bytes as before, and keep it alive while they live.
   */
  moveTo(memory: ArrayBuffer, at: number): void {
    const source = this.recordBytes;
    new Uint8Array(memory, at, this.footprint).set(new Uint8Array(source.buffer, source.byteOffset, this.footprint));
    this.recordBytes = new Uint8Array(memory, at, source.length);
    const tableAt = at + tableStart(source.length);
    const entries = this.offsets.length;
    this.offsets = this.offsets instanceof Uint16Array ? new Uint16Array(memory, tableAt, entries) : new Uint32Array(memory, tableAt, entries);
  }

  get revision(): number {
    return readDouble(this.bytes, 5);
  }

  /** Event time of a version, ms since epoch (versions are newest first). */
  eventTs(version: number): number {
    return readDouble(this.bytes, this.offsets[version]!);
  }

  /** Created time of a version, ms since epoch. */
  createdTs(version: number): number {
    return readDouble(this.bytes, this.offsets[version]! + 8);
  }

  /** Index of the version visible at time `t` (newest with event time ≤ t), or -1. */
  versionAt(t: number): number {
    // Event times descend; find the first one ≤ t.
    let low = 0;
    let high = this.versionCount;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.eventTs(middle) <= t) high = middle;
      else low = middle + 1;
    }
    return low < this.versionCount ? low : -1;
  }

  /** The cell of a feature in a version: what valueStart and valueLength take. */
  cell(version: number, feature: number): number {
    return this.versionCount + 2 * (version * this.featureCount + feature);
  }

  /** Length of a cell's `Value` bytes in `bytes`: 0 is NULL, -1 absent. */
  valueLength(cell: number): number {
    return this.offsets[cell + 1]! - 1;
  }

  /** Offset of a cell's `Value` bytes in `bytes`. */
  valueStart(cell: number): number {
    return this.offsets[cell]!;
  }

  /** Value bytes of a feature in a version (a view, not a copy); empty is NULL, undefined absent. */
  value(version: number, feature: number): Uint8Array | undefined {
    const cell = this.cell(version, feature);
    const length = this.valueLength(cell);
    if (length < 0) return undefined;
    const start = this.valueStart(cell);
    return this.bytes.subarray(start, start + length);
  }

  versions(): Version[] {
    const result: Version[] = [];
    for (let version = 0; version < this.versionCount; version++) {
      const slots: (Uint8Array | undefined)[] = [];
      for (let feature = 0; feature < this.featureCount; feature++) slots.push(this.value(version, feature));
      result.push({ eventTs: this.eventTs(version), createdTs: this.createdTs(version), slots });
    }
    return result;
  }

  /** Bytes this record holds in memory as decoded (in a buffer of its own), for byte-bounded caches: payload and table, objects, native costs. */
  get memoryBytes(): number {
    return this.footprint + RECORD_OBJECT_OVERHEAD;
  }
}

/**
 * What a FeatureRecord costs apart from its payload and table: on the V8
 * heap the object, its ArrayBuffer and two typed-array views (~300 B), and
 * the buffer's native bookkeeping. Measured as resident growth over 58k
 * cached records (test/unit/lru-memory-tier.test.ts, which fails if it
 * drifts): counting the heap alone, L1 held 1.5× its budget of small records
 * and 1.15× of the loadtest's 50-feature ones.
 */
export const RECORD_OBJECT_OVERHEAD = 300 + ARRAY_BUFFER_NATIVE_BYTES;

/** The revision of a record written at `nowMs` whose previous revision was `previous` (0 if new). */
export function nextRevision(previous: number, nowMs: number): number {
  return Math.max(previous + 1, nowMs * 1000);
}

/** The header of a record: format, schema, revision, feature and version count. */
function writeHeader(view: DataView, schema: number, revision: number, featureCount: number, versionCount: number): void {
  view.setUint8(0, RECORD_FORMAT);
  view.setUint32(1, schema);
  view.setFloat64(5, revision);
  view.setUint16(13, featureCount);
  view.setUint32(15, versionCount);
}

export function encodeRecord(schema: number, revision: number, featureCount: number, versions: readonly Version[]): Uint8Array {
  let size = HEADER_BYTES;
  for (const version of versions) {
    size += 16;
    for (let feature = 0; feature < featureCount; feature++) {
      const slot = version.slots[feature];
      const n = slot === undefined ? 0 : slot.length + 1;
      size += varintLength(n) + Math.max(0, n - 1);
    }
  }
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  writeHeader(view, schema, revision, featureCount, versions.length);
  let at = HEADER_BYTES;
  for (const version of versions) {
    view.setFloat64(at, version.eventTs);
    view.setFloat64(at + 8, version.createdTs);
    at += 16;
    for (let feature = 0; feature < featureCount; feature++) {
      const slot = version.slots[feature];
      at = writeVarint(bytes, at, slot === undefined ? 0 : slot.length + 1);
      if (slot !== undefined) {
        bytes.set(slot, at);
        at += slot.length;
      }
    }
  }
  return bytes;
}

/**
 * Many rows' `Value` bytes of one feature, laid end to end: row r's are
 * `bytes[ends[r - 1]…ends[r])` (from 0 for row 0), empty for NULL — how a
 * snapshot import encodes a chunk's column.
 */
export interface PackedValues {
  readonly bytes: Uint8Array;
  readonly ends: Uint32Array;
}

/** Row `row`'s `Value` bytes (a view, not a copy); empty is NULL. */
export function packedValue(values: PackedValues, row: number): Uint8Array {
  return values.bytes.subarray(row === 0 ? 0 : values.ends[row - 1], values.ends[row]);
}

/**
 * Records of one version each, built straight from packed columns: the
 * bytes encodeRecord(schema, revision, columns.length, [{ eventTs,
 * createdTs, slots }]) returns for a row whose slots are its values in
 * `columns` (an undefined column is an absent slot). That is every row of a
 * snapshot that holds an entity once, the common case, and this way it costs
 * no Version, no slot array and no Uint8Array per value or record
 * (bench:import, 300k rows: encodeRecord and its inputs were ~20 % of the
 * import before).
 */
export class SingleVersionRecords {
  private readonly header = new Uint8Array(HEADER_BYTES);
  private readonly columns: readonly (PackedValues | undefined)[];

  constructor(schema: number, revision: number, columns: readonly (PackedValues | undefined)[]) {
    this.columns = columns;
    writeHeader(new DataView(this.header.buffer), schema, revision, columns.length, 1);
  }

  /** Appends row `row`'s record to `sink`. */
  append(sink: ByteSink, row: number, eventTs: number, createdTs: number): void {
    const columns = this.columns;
    let size = HEADER_BYTES + 16;
    for (let feature = 0; feature < columns.length; feature++) {
      const column = columns[feature];
      if (column === undefined) {
        size += 1;
        continue;
      }
      const length = column.ends[row]! - (row === 0 ? 0 : column.ends[row - 1]!);
      size += varintLength(length + 1) + length;
    }
    sink.reserve(size);
    const bytes = sink.bytes;
    let at = sink.length;
    for (let index = 0; index < HEADER_BYTES; index++) bytes[at + index] = this.header[index]!;
    at += HEADER_BYTES;
    sink.view.setFloat64(at, eventTs);
    sink.view.setFloat64(at + 8, createdTs);
    at += 16;
    for (let feature = 0; feature < columns.length; feature++) {
      const column = columns[feature];
      if (column === undefined) {
        bytes[at++] = 0;
        continue;
      }
      const start = row === 0 ? 0 : column.ends[row - 1]!;
      const end = column.ends[row]!;
      sink.length = writeVarint(bytes, at, end - start + 1);
      sink.appendRange(column.bytes, start, end);
      at = sink.length;
    }
    sink.length = at;
  }
}

/** Newer first: by event time, then created time. */
function newerFirst(a: Version, b: Version): number {
  return b.eventTs - a.eventTs || b.createdTs - a.createdTs;
}

/**
 * Merges incoming versions into existing ones and prunes history: every
 * version with event time ≥ now − retention is kept, plus the newest older
 * one (it is what a read at the retention boundary sees), so a read at any
 * T ≥ now − retention is answered as if nothing had been pruned — unless the
 * record holds more than `maxVersions`, when only the newest `maxVersions`
 * stay (each write re-encodes the whole record, so it must stay bounded).
 * Incoming versions are applied in order; for equal event times the later
 * created time wins, and for equal created times the later write wins.
 */
export function mergeVersions(existing: readonly Version[], incoming: readonly Version[], nowMs: number, retentionMs: number, maxVersions = Infinity): Version[] {
  const byEventTs = new Map<number, Version>();
  for (const version of existing) byEventTs.set(version.eventTs, version);
  for (const version of incoming) {
    const current = byEventTs.get(version.eventTs);
    if (current === undefined || version.createdTs >= current.createdTs) byEventTs.set(version.eventTs, version);
  }
  const merged = [...byEventTs.values()].sort(newerFirst);
  const horizon = nowMs - retentionMs;
  const firstBeyond = merged.findIndex((version) => version.eventTs < horizon);
  const kept = firstBeyond === -1 ? merged.length : firstBeyond + 1;
  return merged.slice(0, Math.min(kept, maxVersions));
}
