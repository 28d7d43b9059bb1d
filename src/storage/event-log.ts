/**
 * The record of one entity of a stream view: the events it received, sorted
 * by event time, kept as long as a read within retention can need them, and
 * the Kafka position (per partition) of the last event applied to it. Window
 * aggregates are computed from it at read time (src/aggregation), so they are
 * exact for any T and fall as events age out without anything being written.
 *
 * Storing the position with the events it covers is what makes ingestion
 * effectively-once: the record and its positions change in one write, and a
 * replayed event whose offset is at or below its partition's position is
 * skipped (an entity's events all come from the partition its key hashes to).
 *
 * Layout (integers big-endian; shares the first 13 bytes with record.ts):
 *   u8   format       EVENT_LOG_FORMAT
 *   u32  columnsHash  hash of the column names (a quick "same layout" check)
 *   f64  revision     write clock, as in record.ts
 *   u16  columnCount  C, then C × (varint length, utf8 name)
 *   varint P, then P × (varint partition, f64 last applied offset)
 *   varint N, then N × event, oldest event time first:
 *          f64 eventTs, then C × value: 0 null | 1 f64 | 2 varint length + utf8 | 3 true | 4 false
 */
import { createHash } from 'node:crypto';
import { ARRAY_BUFFER_NATIVE_BYTES, ownedBytes } from '../util/bytes.js';
import { varintLength, writeVarint } from '../util/varint.js';
import { CorruptRecordError } from './record.js';

export const EVENT_LOG_FORMAT = 2;
const FIXED_HEADER_BYTES = 1 + 4 + 8 + 2;

export type ColumnValue = number | string | boolean | null;

export interface LoggedEvent {
  readonly ts: number;
  /** One value per column of the view's source, in its order. */
  readonly values: readonly ColumnValue[];
}

/** Where an event came from in Kafka; events pushed over the API have none. */
export interface EventOrigin {
  readonly partition: number;
  readonly offset: number;
}

export interface IncomingEvent extends LoggedEvent {
  readonly origin: EventOrigin | undefined;
}

const TAG_NULL = 0;
const TAG_NUMBER = 1;
const TAG_STRING = 2;
const TAG_TRUE = 3;
const TAG_FALSE = 4;

/** What a decoded log costs apart from its events: heap (object, arrays, maps) and its bytes' native bookkeeping. */
const LOG_OBJECT_OVERHEAD = 600 + ARRAY_BUFFER_NATIVE_BYTES;
/** Heap cost per event per column in the decoded column arrays (a tagged slot, strings shared or short). */
const BYTES_PER_CELL = 16;

/** A column set as written in every log's header, prepared once per set: no per-write name encoding or hashing. */
interface ColumnLayout {
  readonly hash: number;
  /** C × (varint length, utf8 name). */
  readonly section: Buffer;
}

/** By the columns array itself: views hand the same frozen array to every write. */
const layouts = new WeakMap<readonly string[], ColumnLayout>();

function layoutOf(columns: readonly string[]): ColumnLayout {
  let layout = layouts.get(columns);
  if (layout === undefined) {
    const section = Buffer.alloc(columns.reduce((size, name) => size + varintLength(Buffer.byteLength(name)) + Buffer.byteLength(name), 0));
    columns.reduce((at, name) => writeText(section, at, name), 0);
    layout = { hash: createHash('sha256').update(columns.join('\n')).digest().readUInt32BE(0), section };
    layouts.set(columns, layout);
  }
  return layout;
}

/** Event times and where each event's bytes lie: event e is bytes [starts[e], starts[e + 1]). */
interface EventBounds {
  readonly ts: Float64Array;
  readonly starts: Uint32Array;
}

/**
 * mergeEventLog's working arrays, grown as needed: a merge runs start to end
 * synchronously, so one set serves every merge, which then allocates little
 * besides its output (per-merge arrays were a large part of ingestion's garbage).
 */
const mergeScratch = { ts: new Float64Array(64), starts: new Uint32Array(65), source: new Int32Array(128), mergedTs: new Float64Array(128) };

function growMergeScratch(oldCount: number, total: number): void {
  if (oldCount > mergeScratch.ts.length) {
    mergeScratch.ts = new Float64Array(2 * oldCount);
    mergeScratch.starts = new Uint32Array(2 * oldCount + 1);
  }
  if (total > mergeScratch.source.length) {
    mergeScratch.source = new Int32Array(2 * total);
    mergeScratch.mergedTs = new Float64Array(2 * total);
  }
}

/** Reads a log front to back; every read checks the end, so corrupt bytes throw CorruptRecordError, never read garbage. */
class LogReader {
  at: number;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** One Buffer over the bytes for every string read, rather than one per string; made at the first. */
  private buffer: Buffer | undefined;

  constructor(bytes: Uint8Array, at: number) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = at;
  }

  /** Same encoding as util/varint.ts, without its per-call result array: logs hold a varint per string value. */
  varint(): number {
    const bytes = this.bytes;
    let value = 0;
    let scale = 1;
    for (let at = this.at; at < bytes.length && scale <= 2 ** 28; at++) {
      const byte = bytes[at]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        this.at = at + 1;
        return value;
      }
      scale *= 128;
    }
    throw new CorruptRecordError('truncated event log');
  }

  f64(): number {
    this.need(8);
    const value = this.view.getFloat64(this.at);
    this.at += 8;
    return value;
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.at++]!;
  }

  /** A length-prefixed string; skipped (undefined) unless `decode`. */
  text(decode: boolean): string | undefined {
    const length = this.varint();
    this.need(length);
    let value: string | undefined;
    if (decode) {
      this.buffer ??= Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
      value = this.buffer.toString('utf8', this.at, this.at + length);
    }
    this.at += length;
    return value;
  }

  private need(length: number): void {
    if (this.at + length > this.bytes.length) throw new CorruptRecordError('truncated event log');
  }
}

/**
 * Walks `count` events from the reader's position to the end of the log:
 * their times and byte bounds into `bounds` (room for count and count + 1),
 * and their values into `values` when given. One walk serves both decoding
 * (reads) and merging (which copies events as bytes and never decodes their strings).
 */
function walkEvents(reader: LogReader, count: number, columnCount: number, values: ColumnValue[][] | undefined, end: number, bounds: EventBounds): EventBounds {
  const { ts, starts } = bounds;
  const decode = values !== undefined;
  for (let event = 0; event < count; event++) {
    starts[event] = reader.at;
    ts[event] = reader.f64();
    for (let column = 0; column < columnCount; column++) {
      const tag = reader.u8();
      let value: ColumnValue;
      if (tag === TAG_NULL) value = null;
      else if (tag === TAG_NUMBER) value = reader.f64();
      else if (tag === TAG_STRING) value = reader.text(decode) ?? null;
      else if (tag === TAG_TRUE) value = true;
      else if (tag === TAG_FALSE) value = false;
      else throw new CorruptRecordError(`bad value tag ${tag} in event log`);
      if (decode) values[column]![event] = value;
    }
  }
  starts[count] = reader.at;
  if (reader.at !== end) throw new CorruptRecordError(`event log has ${end - reader.at} trailing bytes`);
  return bounds;
}

/** What a log's header says: read from its bytes, or known to the merge that wrote them. */
interface LogHeader {
  readonly revision: number;
  readonly applied: ReadonlyMap<number, number>;
  readonly length: number;
  readonly columnCount: number;
  readonly columnsEnd: number;
  readonly eventsAt: number;
}

function readHeader(bytes: Uint8Array): LogHeader {
  if (bytes.length < FIXED_HEADER_BYTES || bytes[0] !== EVENT_LOG_FORMAT) throw new CorruptRecordError(`not an event log (format ${bytes[0]})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const columnCount = view.getUint16(13);
  const reader = new LogReader(bytes, FIXED_HEADER_BYTES);
  for (let column = 0; column < columnCount; column++) reader.text(false);
  const columnsEnd = reader.at;
  const applied = new Map<number, number>();
  for (let count = reader.varint(), index = 0; index < count; index++) applied.set(reader.varint(), reader.f64());
  const length = reader.varint();
  // Each event takes at least 8 + C bytes: check before anything is sized by the count.
  if (length * (8 + columnCount) > bytes.length - reader.at) throw new CorruptRecordError(`event log claims ${length} events in ${bytes.length} bytes`);
  return { revision: view.getFloat64(5), applied, length, columnCount, columnsEnd, eventsAt: reader.at };
}

/** A decoded event log: event times and values column by column, for tight aggregation loops. */
export class EventLog {
  readonly bytes: Uint8Array;
  readonly revision: number;
  /** Last applied offset per partition. */
  readonly applied: ReadonlyMap<number, number>;
  readonly length: number;
  private readonly columnCount: number;
  /** End of the column names, which start at FIXED_HEADER_BYTES. */
  private readonly columnsEnd: number;
  /** Decoded on first use; a merge or a read in the view's own columns only compares their bytes. */
  private columnNames: readonly string[] | undefined;
  private readonly eventsAt: number;
  private decoded: { readonly ts: Float64Array; readonly values: ColumnValue[][] } | undefined;

  private constructor(bytes: Uint8Array, header: LogHeader, columns: readonly string[] | undefined) {
    this.bytes = bytes;
    this.revision = header.revision;
    this.applied = header.applied;
    this.length = header.length;
    this.columnCount = header.columnCount;
    this.columnsEnd = header.columnsEnd;
    this.eventsAt = header.eventsAt;
    this.columnNames = columns;
  }

  /**
   * Checks and decodes every event now: for bytes read from L2 or L3, which
   * may be corrupt and are to be cached (copied when they are a window on a
   * larger buffer, so a cached log never pins more memory than its own).
   */
  static decode(bytes: Uint8Array): EventLog {
    const owned = ownedBytes(bytes);
    const log = new EventLog(owned, readHeader(owned), undefined);
    log.decoded = log.decodeEvents();
    return log;
  }

  /**
   * Reads the header only; events are decoded on first use. For bytes this
   * process just encoded (a log written to L1 by ingestion may be written
   * again many times before it is read) and for a merge's input, which is
   * copied as bytes. Not copied: the caller's bytes must stay unchanged.
   */
  static open(bytes: Uint8Array): EventLog {
    return new EventLog(bytes, readHeader(bytes), undefined);
  }

  /** A log mergeEventLog just wrote, from what it knows of the header: nothing is read back. */
  static written(bytes: Uint8Array, header: LogHeader, columns: readonly string[]): EventLog {
    return new EventLog(bytes, header, columns);
  }

  /**
   * Another log over the same bytes, not decoded whatever this one is: for a
   * second holder (L1) whose reads must not grow what the first (the store's
   * recent writes, which counts bytes only) keeps. Nothing is read.
   */
  twin(): EventLog {
    const { revision, applied, length, columnCount, columnsEnd, eventsAt } = this;
    return new EventLog(this.bytes, { revision, applied, length, columnCount, columnsEnd, eventsAt }, this.columnNames);
  }

  get columns(): readonly string[] {
    if (this.columnNames === undefined) {
      const reader = new LogReader(this.bytes, FIXED_HEADER_BYTES);
      this.columnNames = Array.from({ length: this.columnCount }, () => reader.text(true)!);
    }
    return this.columnNames;
  }

  /** Event times, ascending. */
  get ts(): Float64Array {
    return (this.decoded ??= this.decodeEvents()).ts;
  }

  /** values[column][event]. */
  get values(): readonly ColumnValue[][] {
    return (this.decoded ??= this.decodeEvents()).values;
  }

  private decodeEvents(): { ts: Float64Array; values: ColumnValue[][] } {
    const values = Array.from({ length: this.columnCount }, () => new Array<ColumnValue>(this.length));
    const { ts } = this.walk(values, { ts: new Float64Array(this.length), starts: new Uint32Array(this.length + 1) });
    return { ts, values };
  }

  /** Event times and byte bounds, without decoding any value. */
  bounds(): EventBounds {
    return this.walk(undefined, { ts: new Float64Array(this.length), starts: new Uint32Array(this.length + 1) });
  }

  /** walkEvents over this log's events. */
  private walk(values: ColumnValue[][] | undefined, into: EventBounds): EventBounds {
    return walkEvents(new LogReader(this.bytes, this.eventsAt), this.length, this.columnCount, values, this.bytes.length, into);
  }

  /** Event times and byte bounds into mergeEventLog's scratch arrays. */
  boundsIntoScratch(): void {
    this.walk(undefined, mergeScratch);
  }

  /** Number of events with event time ≤ t (so events [0, result) are visible at t). */
  countAtOrBefore(t: number): number {
    const ts = this.ts;
    let low = 0;
    let high = ts.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (ts[middle]! <= t) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The events as LoggedEvents laid out in `columns` (a column the log lacks reads null). */
  events(columns: readonly string[]): LoggedEvent[] {
    const sources = columns.map((name) => this.columns.indexOf(name));
    const result: LoggedEvent[] = [];
    for (let event = 0; event < this.length; event++) {
      result.push({ ts: this.ts[event]!, values: sources.map((source) => (source < 0 ? null : this.values[source]![event]!)) });
    }
    return result;
  }

  /** This log laid out in `columns` (itself when they match): after a registry change, before the log is next written. */
  inColumns(columns: readonly string[]): EventLog {
    if (this.columnNames === columns) return this;
    if (columns.length === this.columnCount && layoutOf(columns).section.equals(this.bytes.subarray(FIXED_HEADER_BYTES, this.columnsEnd))) {
      this.columnNames = columns;
      return this;
    }
    return EventLog.decode(encodeEventLog(this.revision, columns, this.applied, this.events(columns)));
  }

  /** What the log costs decoded, whether or not it is yet: a cache charges it up front. */
  get memoryBytes(): number {
    return this.bytes.byteLength + this.length * (8 + BYTES_PER_CELL * this.columnCount) + LOG_OBJECT_OVERHEAD;
  }
}

function valueBytes(value: ColumnValue): number {
  if (typeof value === 'number') return 9;
  if (typeof value === 'string') {
    const length = Buffer.byteLength(value);
    return 1 + varintLength(length) + length;
  }
  return 1;
}

function eventBytes(values: readonly ColumnValue[]): number {
  let size = 8;
  for (const value of values) size += valueBytes(value);
  return size;
}

function headerBytes(columns: readonly string[], applied: ReadonlyMap<number, number>, eventCount: number): number {
  let size = FIXED_HEADER_BYTES + layoutOf(columns).section.length + varintLength(applied.size) + varintLength(eventCount);
  for (const partition of applied.keys()) size += varintLength(partition) + 8;
  return size;
}

function writeText(bytes: Buffer, at: number, value: string): number {
  const next = writeVarint(bytes, at, Buffer.byteLength(value));
  return next + bytes.write(value, next, 'utf8');
}

/** Writes everything before the events; returns where the events start and where the column names end. */
function writeHeader(bytes: Buffer, revision: number, columns: readonly string[], applied: ReadonlyMap<number, number>, eventCount: number): { eventsAt: number; columnsEnd: number } {
  const layout = layoutOf(columns);
  bytes[0] = EVENT_LOG_FORMAT;
  bytes.writeUInt32BE(layout.hash, 1);
  bytes.writeDoubleBE(revision, 5);
  bytes.writeUInt16BE(columns.length, 13);
  const columnsEnd = FIXED_HEADER_BYTES + layout.section.copy(bytes, FIXED_HEADER_BYTES);
  let at = writeVarint(bytes, columnsEnd, applied.size);
  for (const [partition, offset] of applied) {
    at = writeVarint(bytes, at, partition);
    at = bytes.writeDoubleBE(offset, at);
  }
  return { eventsAt: writeVarint(bytes, at, eventCount), columnsEnd };
}

function writeEvent(bytes: Buffer, at: number, ts: number, values: readonly ColumnValue[]): number {
  at = bytes.writeDoubleBE(ts, at);
  for (const value of values) {
    if (value === null) bytes[at++] = TAG_NULL;
    else if (typeof value === 'number') {
      bytes[at++] = TAG_NUMBER;
      at = bytes.writeDoubleBE(value, at);
    } else if (typeof value === 'string') {
      bytes[at++] = TAG_STRING;
      at = writeText(bytes, at, value);
    } else bytes[at++] = value ? TAG_TRUE : TAG_FALSE;
  }
  return at;
}

/** Unpooled and exactly sized, so it is returned as is: a pooled Buffer slice would pin its slab in the caches. */
function allocateLog(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

export function encodeEventLog(revision: number, columns: readonly string[], applied: ReadonlyMap<number, number>, events: readonly LoggedEvent[]): Uint8Array {
  let size = headerBytes(columns, applied, events.length);
  for (const event of events) size += eventBytes(event.values);
  const bytes = allocateLog(size);
  let at = writeHeader(bytes, revision, columns, applied, events.length).eventsAt;
  for (const event of events) at = writeEvent(bytes, at, event.ts, event.values);
  return bytes;
}

export interface EventMerge {
  /** The merged log, encoded. */
  readonly bytes: Uint8Array;
  /** The same bytes opened as a log (its header known, not read back): what a cache of written records keeps. */
  readonly log: EventLog;
  /** Incoming events skipped because their offset was already applied. */
  readonly duplicates: number;
}

/**
 * Adds incoming events (in arrival order) to a log, skipping those at or
 * below their partition's applied offset, and prunes what no read within
 * retention can see: events older than `horizonMs` go, except the newest of
 * them (a lifetime `last` at the horizon reads it) and the first event ever
 * (a lifetime `first` reads it). Past `maxEvents`, the oldest events go
 * whatever their age (each write re-encodes the log, so it must stay
 * bounded). Equal event times keep arrival order.
 *
 * The log's events are copied as byte ranges, never decoded: a hot entity's
 * write costs a copy of its log, not a decode and re-encode of every event
 * (bench:ingest, full hot path: see the commit that introduced it).
 */
export function mergeEventLog(
  base: EventLog | undefined,
  columns: readonly string[],
  incoming: readonly IncomingEvent[],
  horizonMs: number,
  maxEvents: number,
  revision: number,
): EventMerge {
  const existing = base?.inColumns(columns);
  const applied = new Map(existing?.applied ?? []);
  const accepted: IncomingEvent[] = [];
  let duplicates = 0;
  let sorted = true;
  for (const event of incoming) {
    if (event.origin !== undefined) {
      const last = applied.get(event.origin.partition);
      if (last !== undefined && event.origin.offset <= last) {
        duplicates++;
        continue;
      }
      applied.set(event.origin.partition, event.origin.offset);
    }
    if (accepted.length > 0 && event.ts < accepted[accepted.length - 1]!.ts) sorted = false;
    accepted.push(event);
  }

  // Stable: equal event times stay in arrival order. Sorted already (the usual case): no order array.
  const freshOrder = sorted ? undefined : accepted.map((_, index) => index).sort((a, b) => accepted[a]!.ts - accepted[b]!.ts || a - b);

  // The merged sequence: source[k] ≥ 0 is the log's event source[k], < 0 the accepted event ~source[k].
  const oldCount = existing?.length ?? 0;
  const total = oldCount + accepted.length;
  growMergeScratch(oldCount, total);
  existing?.boundsIntoScratch();
  const { ts: oldTs, starts: oldStarts, source, mergedTs } = mergeScratch;
  for (let k = 0, i = 0, j = 0; k < total; k++) {
    const fresh = j < accepted.length ? (freshOrder === undefined ? j : freshOrder[j]!) : -1;
    // On equal times the log's event goes first: it arrived earlier.
    if (fresh < 0 || (i < oldCount && oldTs[i]! <= accepted[fresh]!.ts)) {
      source[k] = i;
      mergedTs[k] = oldTs[i++]!;
    } else {
      source[k] = ~fresh;
      mergedTs[k] = accepted[fresh]!.ts;
      j++;
    }
  }

  // Kept: event 0 (the first ever) and [from, total).
  let firstRecent = 0;
  while (firstRecent < total && mergedTs[firstRecent]! < horizonMs) firstRecent++;
  let from = Math.max(1, firstRecent - 1);
  if (total - from + 1 > maxEvents) from = total - maxEvents + 1;
  const keptCount = total === 0 ? 0 : 1 + total - from;

  let size = headerBytes(columns, applied, keptCount);
  for (let k = total === 0 ? total : 0; k < total; k = k === 0 ? from : k + 1) {
    const event = source[k]!;
    size += event >= 0 ? oldStarts[event + 1]! - oldStarts[event]! : eventBytes(accepted[~event]!.values);
  }
  const bytes = allocateLog(size);
  const { eventsAt, columnsEnd } = writeHeader(bytes, revision, columns, applied, keptCount);
  let at = eventsAt;
  // Runs of consecutive log events are one copy (typically the whole log); new events are encoded in place.
  let runStart = 0;
  let runEnd = 0;
  for (let k = total === 0 ? total : 0; k <= total; k = k === 0 ? from : k + 1) {
    const event = k < total ? source[k]! : -1;
    if (event >= 0 && oldStarts[event] === runEnd) {
      runEnd = oldStarts[event + 1]!;
      continue;
    }
    if (runEnd > runStart) {
      bytes.set(existing!.bytes.subarray(runStart, runEnd), at);
      at += runEnd - runStart;
    }
    runStart = runEnd = 0;
    if (event >= 0) {
      runStart = oldStarts[event]!;
      runEnd = oldStarts[event + 1]!;
    } else if (k < total) {
      at = writeEvent(bytes, at, accepted[~event]!.ts, accepted[~event]!.values);
    }
  }
  const log = EventLog.written(bytes, { revision, applied, length: keptCount, columnCount: columns.length, columnsEnd, eventsAt }, columns);
  return { bytes, log, duplicates };
}
