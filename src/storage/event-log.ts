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
import type { AggregationDef } from '../config/stream-views.js';
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
 * keptHead and keptFrom: what the merge in progress keeps (planMerge).
 */
const mergeScratch = { ts: new Float64Array(64), starts: new Uint32Array(65), source: new Int32Array(128), mergedTs: new Float64Array(128), keptHead: new Int32Array(8), keptFrom: 0 };

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

  /** One tagged value. */
  value(): ColumnValue {
    const tag = this.u8();
    if (tag === TAG_NULL) return null;
    if (tag === TAG_NUMBER) return this.f64();
    if (tag === TAG_STRING) return this.text(true)!;
    if (tag === TAG_TRUE) return true;
    if (tag === TAG_FALSE) return false;
    throw new CorruptRecordError(`bad value tag ${tag} in event log`);
  }

  /**
   * Steps over one tagged value, reading nothing of it: a walk that only
   * bounds events neither decodes strings nor boxes numbers it drops.
   */
  skipValue(): void {
    const tag = this.u8();
    if (tag === TAG_NUMBER) {
      this.need(8);
      this.at += 8;
    } else if (tag === TAG_STRING) this.text(false);
    else if (tag > TAG_FALSE) throw new CorruptRecordError(`bad value tag ${tag} in event log`);
  }

  /** Whether the value ahead is null, without reading it. */
  nullAhead(): boolean {
    this.need(1);
    return this.bytes[this.at] === TAG_NULL;
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
      if (decode) values[column]![event] = reader.value();
      else reader.skipValue();
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

  /** walkEvents over this log's events. */
  private walk(values: ColumnValue[][] | undefined, into: EventBounds): EventBounds {
    return walkEvents(new LogReader(this.bytes, this.eventsAt), this.length, this.columnCount, values, this.bytes.length, into);
  }

  /** Event times and byte bounds into mergeEventLog's scratch arrays; returns the reader that walked them, to read values of events it bounded. */
  boundsIntoScratch(): LogReader {
    const reader = new LogReader(this.bytes, this.eventsAt);
    walkEvents(reader, this.length, this.columnCount, undefined, this.bytes.length, mergeScratch);
    return reader;
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

  /** Whether the log is laid out in `columns`; if so it knows them as that array from now on, and compares nothing again. */
  isLaidOutIn(columns: readonly string[]): boolean {
    if (this.columnNames === columns) return true;
    if (columns.length !== this.columnCount || !layoutOf(columns).section.equals(this.bytes.subarray(FIXED_HEADER_BYTES, this.columnsEnd))) return false;
    this.columnNames = columns;
    return true;
  }

  /** This log laid out in `columns` (itself when they match): after a registry change, before the log is next written. */
  inColumns(columns: readonly string[]): EventLog {
    return this.isLaidOutIn(columns) ? this : EventLog.decode(encodeEventLog(this.revision, columns, this.applied, this.events(columns)));
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
 * A view's lifetime `last` and `first` aggregations, their column indexes
 * into `columns` (its StreamSource is one): the events they read are kept
 * past the horizon.
 */
export interface PinnedAggregations {
  readonly columns: readonly string[];
  readonly pins: readonly AggregationDef[];
}

/**
 * The pins in another layout, by name: for a log compacted in its own after a
 * registry change. One reading a column the layout lacks selects nothing
 * there, as the evaluator reads that column null.
 */
function pinsIn({ columns: named, pins }: PinnedAggregations, columns: readonly string[]): AggregationDef[] {
  const resolved: AggregationDef[] = [];
  for (const pin of pins) {
    const column = columns.indexOf(named[pin.column]!);
    const where = pin.where.map((clause) => ({ column: columns.indexOf(named[clause.column]!), values: clause.values }));
    if (column >= 0 && where.every((clause) => clause.column >= 0)) resolved.push({ ...pin, column, where });
  }
  return resolved;
}

/** `reader` (over the log being merged) at its event `event`'s value of `column`. */
function seek(reader: LogReader, event: number, column: number): LogReader {
  // The event is bytes [starts[event], starts[event + 1]), read whole by the bounds walk: reads from here stay inside it.
  reader.at = mergeScratch.starts[event]! + 8;
  for (let skipped = 0; skipped < column; skipped++) reader.skipValue();
  return reader;
}

/**
 * Whether merged event k is one `pin` can read: a value in its column, and
 * every where clause holds (as window-evaluator's `passes`). An accepted
 * event's values are as given; a log event's are read in place, only those
 * the pin looks at: no event is decoded whole.
 */
function counts(pin: AggregationDef, k: number, reader: LogReader | undefined, accepted: readonly IncomingEvent[]): boolean {
  const event = mergeScratch.source[k]!;
  if (event < 0 ? (accepted[~event]!.values[pin.column] ?? null) === null : seek(reader!, event, pin.column).nullAhead()) return false;
  for (const clause of pin.where) {
    const value = event < 0 ? (accepted[~event]!.values[clause.column] ?? null) : seek(reader!, event, clause.column).value();
    if (value === null || !clause.values.has(value)) return false;
  }
  return true;
}

/**
 * Plans a merge in mergeScratch: the log's events and the accepted ones
 * (arrival order; `sorted` when in event-time order already) as one
 * sequence, source[k] ≥ 0 the log's event source[k], < 0 the accepted event
 * ~source[k]; then which of them mergeEventLog keeps (see there): event 0,
 * the pinned ones and the tail [from, total), as keptFrom = from and
 * keptHead = event 0 and the pinned events ascending, ended by `from`.
 * Returns how many are kept.
 */
function planMerge(existing: EventLog | undefined, accepted: readonly IncomingEvent[], sorted: boolean, columns: readonly string[], horizonMs: number, maxEvents: number, pinned: PinnedAggregations | undefined): number {
  // Stable: equal event times stay in arrival order. Sorted already (the usual case): no order array.
  const freshOrder = sorted ? undefined : accepted.map((_, index) => index).sort((a, b) => accepted[a]!.ts - accepted[b]!.ts || a - b);
  const oldCount = existing?.length ?? 0;
  const total = oldCount + accepted.length;
  growMergeScratch(oldCount, total);
  const reader = existing?.boundsIntoScratch();
  const { ts: oldTs, source, mergedTs } = mergeScratch;
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

  let firstRecent = 0;
  while (firstRecent < total && mergedTs[firstRecent]! < horizonMs) firstRecent++;
  // The newest event before the horizon and every one after it, but no more than the newest maxEvents − 1 (event 0 is the other).
  const from = Math.max(1, firstRecent - 1, total - maxEvents + 1);
  // Pinned events are older than the tail: they get what room maxEvents leaves it.
  const room = maxEvents - 1 - (total - from);
  // Nothing to look for unless events between event 0 and the tail would go: then room > 0 means the tail starts at the horizon.
  const head = pinned !== undefined && pinned.pins.length > 0 && from > 1 && room > 0 ? pinEvents(reader, accepted, columns, pinned, from, room) : 1;
  mergeScratch.keptHead[0] = 0;
  mergeScratch.keptHead[head] = from;
  mergeScratch.keptFrom = from;
  return total === 0 ? 0 : head + total - from;
}

/**
 * The event each pin reads at the horizon, where it lies between event 0 and
 * `from` (the newest event before the horizon), into keptHead[1, head)
 * ascending, each once; the newest `room` of them at most. Returns head.
 */
function pinEvents(reader: LogReader | undefined, accepted: readonly IncomingEvent[], columns: readonly string[], pinned: PinnedAggregations, from: number, room: number): number {
  const pins = pinned.columns === columns ? pinned.pins : pinsIn(pinned, columns);
  if (mergeScratch.keptHead.length < pins.length + 2) mergeScratch.keptHead = new Int32Array(2 * pins.length + 2);
  const keptHead = mergeScratch.keptHead;
  let head = 1;
  for (const pin of pins) {
    // A first reads the oldest event it can, ever; a last the newest it can before the horizon, i.e. up to `from`.
    let found = -1;
    if (pin.fn === 'first') for (let k = 0; k < from && found < 0; k++) found = counts(pin, k, reader, accepted) ? k : -1;
    else for (let k = from; k > 0 && found < 0; k--) found = counts(pin, k, reader, accepted) ? k : -1;
    // None before the tail (or only event 0): kept anyway.
    if (found <= 0 || found >= from) continue;
    let at = head;
    while (at > 1 && keptHead[at - 1]! > found) at--;
    if (at > 1 && keptHead[at - 1] === found) continue;
    keptHead.copyWithin(at + 1, at, head);
    keptHead[at] = found;
    head++;
  }
  // Past maxEvents the oldest go, as everywhere else in the log.
  if (head - 1 > room) {
    keptHead.copyWithin(1, head - room, head);
    head = 1 + room;
  }
  return head;
}

/**
 * Adds incoming events (in arrival order) to a log, skipping those at or
 * below their partition's applied offset, and prunes what no read at
 * T ≥ `horizonMs` can see (reads within retention have T ≥ the horizon plus
 * the view's longest window, so no window reaches before it). Kept: every
 * event at or after the horizon; the newest one before it (the record's
 * event time at T: ttl, time_since_last); the first event ever; and for each
 * of `pinned`'s lifetime aggregations the event it reads at any such T — for
 * a `last` the newest event before the horizon, for a `first` the oldest
 * event ever, that has a value in its column and passes its where clauses
 * (the evaluator skips the others, so the newest and first events alone are
 * not enough). This is exact by induction over merges, the horizon never
 * moving back: a pin's event among every event ever written is incoming; or
 * at or after the previous merge's horizon, which kept all those; or was
 * already its event among the events written before (for a `last`: no
 * passing event lies between it and this horizon, so none between it and
 * the earlier one), which the previous merge kept. So it is in this merge's
 * sequence, is the pin's choice there too, and is kept: an event dropped is
 * no pin's choice, then or later. Past `maxEvents`, the oldest events go
 * whatever they are, pinned ones included (each write re-encodes the log,
 * so it must stay bounded): the first event ever and the newest
 * maxEvents − 1 of the others are kept. Equal event times keep arrival order.
 *
 * The log's events are copied as byte ranges, never decoded: a hot entity's
 * write costs a copy of its log, not a decode and re-encode of every event
 * (bench:ingest, full hot path: see the commit that introduced it). Pins read
 * a few values of the events before the horizon, in place; with no pins, or
 * nothing to drop, a merge looks at no value. Per merge of a ~50-event log
 * dropping one event (in-process A/B, medians): no pins 4.9 → 4.4 µs (the
 * bounds walk now steps over values), one lifetime `last` 4.7 → 4.6 µs,
 * three pins two of whose where clauses never hold 4.5 → 5.3 µs.
 */
export function mergeEventLog(
  base: EventLog | undefined,
  columns: readonly string[],
  incoming: readonly IncomingEvent[],
  horizonMs: number,
  maxEvents: number,
  revision: number,
  pinned?: PinnedAggregations,
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

  const keptCount = planMerge(existing, accepted, sorted, columns, horizonMs, maxEvents, pinned);
  const total = (existing?.length ?? 0) + accepted.length;
  const { starts: oldStarts, source, keptHead, keptFrom: from } = mergeScratch;
  // Kept, ascending: keptHead's events up to its end mark `from`, then [from, total).
  let size = headerBytes(columns, applied, keptCount);
  for (let h = 0, k = keptHead[0]!; k < total; k = k < from ? keptHead[++h]! : k + 1) {
    const event = source[k]!;
    size += event >= 0 ? oldStarts[event + 1]! - oldStarts[event]! : eventBytes(accepted[~event]!.values);
  }
  const bytes = allocateLog(size);
  const { eventsAt, columnsEnd } = writeHeader(bytes, revision, columns, applied, keptCount);
  let at = eventsAt;
  // Runs of consecutive log events are one copy (typically the whole log); new events are encoded in place.
  let runStart = 0;
  let runEnd = 0;
  for (let h = 0, k = keptHead[0]!; ; k = k < from ? keptHead[++h]! : k + 1) {
    const event = k < total ? source[k]! : -1;
    if (event >= 0 && oldStarts[event] === runEnd) {
      runEnd = oldStarts[event + 1]!;
      continue;
    }
    if (runEnd > runStart) {
      bytes.set(existing!.bytes.subarray(runStart, runEnd), at);
      at += runEnd - runStart;
    }
    if (k >= total) break;
    runStart = runEnd = 0;
    if (event >= 0) {
      runStart = oldStarts[event]!;
      runEnd = oldStarts[event + 1]!;
    } else {
      at = writeEvent(bytes, at, accepted[~event]!.ts, accepted[~event]!.values);
    }
  }
  const log = EventLog.written(bytes, { revision, applied, length: keptCount, columnCount: columns.length, columnsEnd, eventsAt }, columns);
  return { bytes, log, duplicates };
}

/**
 * How many of its events a log keeps if merged with nothing now (`columns`
 * its layout, as mergeEventLog takes it): compaction rewrites a log only
 * when fewer, rather than rewrite one whose old events are all pinned into
 * the same bytes at every sweep.
 */
export function eventsKeptAtRest(log: EventLog, columns: readonly string[], horizonMs: number, maxEvents: number, pinned: PinnedAggregations | undefined): number {
  return planMerge(log.inColumns(columns), [], true, columns, horizonMs, maxEvents, pinned);
}
