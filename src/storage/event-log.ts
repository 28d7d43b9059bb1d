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
import { readVarint, varintLength, writeVarint } from '../util/varint.js';
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

/** Heap cost of a decoded log apart from its events (object, arrays, maps). */
const LOG_OBJECT_OVERHEAD = 600;
/** Heap cost per event per column in the decoded column arrays (a tagged slot, strings shared or short). */
const BYTES_PER_CELL = 16;

/** By joined column names: a view's columns are hashed once, not on every record written (a sha256 each). */
const columnsHashes = new Map<string, number>();

export function columnsHash(columns: readonly string[]): number {
  const names = columns.join('\n');
  let hash = columnsHashes.get(names);
  if (hash === undefined) {
    hash = createHash('sha256').update(names).digest().readUInt32BE(0);
    // Column sets come from the registry's views (and older registries' logs): few. Bounded all the same.
    if (columnsHashes.size >= 1_000) columnsHashes.clear();
    columnsHashes.set(names, hash);
  }
  return hash;
}

/** A decoded event log: event times and values column by column, for tight aggregation loops. */
export class EventLog {
  readonly bytes: Uint8Array;
  readonly revision: number;
  readonly columns: readonly string[];
  /** Last applied offset per partition. */
  readonly applied: ReadonlyMap<number, number>;
  /** Event times, ascending. */
  readonly ts: Float64Array;
  /** values[column][event]. */
  readonly values: readonly ColumnValue[][];

  private constructor(bytes: Uint8Array) {
    if (bytes.length < FIXED_HEADER_BYTES || bytes[0] !== EVENT_LOG_FORMAT) throw new CorruptRecordError(`not an event log (format ${bytes[0]})`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // One Buffer over the bytes for every string read, rather than one per string.
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bytes = bytes;
    this.revision = view.getFloat64(5);
    const columnCount = view.getUint16(13);
    let at = FIXED_HEADER_BYTES;
    const varint = (): number => {
      const read = readVarint(bytes, at);
      if (read === undefined) throw new CorruptRecordError('truncated event log');
      at = read[1];
      return read[0];
    };
    const text = (): string => {
      const length = varint();
      if (at + length > bytes.length) throw new CorruptRecordError('truncated string in event log');
      const value = buffer.toString('utf8', at, at + length);
      at += length;
      return value;
    };
    const f64 = (): number => {
      if (at + 8 > bytes.length) throw new CorruptRecordError('truncated event log');
      const value = view.getFloat64(at);
      at += 8;
      return value;
    };
    const columns: string[] = [];
    for (let column = 0; column < columnCount; column++) columns.push(text());
    this.columns = columns;
    const applied = new Map<number, number>();
    for (let count = varint(), index = 0; index < count; index++) applied.set(varint(), f64());
    this.applied = applied;
    const eventCount = varint();
    // Each event takes at least 8 + C bytes: check before sizing arrays by the count.
    if (eventCount * (8 + columnCount) > bytes.length - at) throw new CorruptRecordError(`event log claims ${eventCount} events in ${bytes.length} bytes`);
    this.ts = new Float64Array(eventCount);
    this.values = columns.map(() => new Array<ColumnValue>(eventCount));
    for (let event = 0; event < eventCount; event++) {
      this.ts[event] = f64();
      for (let column = 0; column < columnCount; column++) {
        const tag = bytes[at++];
        let value: ColumnValue;
        if (tag === TAG_NULL) value = null;
        else if (tag === TAG_NUMBER) value = f64();
        else if (tag === TAG_STRING) value = text();
        else if (tag === TAG_TRUE) value = true;
        else if (tag === TAG_FALSE) value = false;
        else throw new CorruptRecordError(`bad value tag ${tag} in event log`);
        this.values[column]![event] = value;
      }
    }
    if (at !== bytes.length) throw new CorruptRecordError(`event log has ${bytes.length - at} trailing bytes`);
  }

  /** Copies bytes that are a window on a larger buffer, so a cached log never pins more memory than its own. */
  static decode(bytes: Uint8Array): EventLog {
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
    return new EventLog(owned);
  }

  get length(): number {
    return this.ts.length;
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
    for (let event = 0; event < this.ts.length; event++) {
      result.push({ ts: this.ts[event]!, values: sources.map((source) => (source < 0 ? null : this.values[source]![event]!)) });
    }
    return result;
  }

  /** This log laid out in `columns` (itself when they match): after a registry change, before the log is next written. */
  inColumns(columns: readonly string[]): EventLog {
    if (columns.length === this.columns.length && columns.every((name, index) => name === this.columns[index])) return this;
    return EventLog.decode(encodeEventLog(this.revision, columns, this.applied, this.events(columns)));
  }

  get memoryBytes(): number {
    return this.bytes.byteLength + this.ts.length * (8 + BYTES_PER_CELL * this.columns.length) + LOG_OBJECT_OVERHEAD;
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

export function encodeEventLog(revision: number, columns: readonly string[], applied: ReadonlyMap<number, number>, events: readonly LoggedEvent[]): Uint8Array {
  let size = FIXED_HEADER_BYTES + varintLength(applied.size) + varintLength(events.length);
  for (const name of columns) size += varintLength(Buffer.byteLength(name)) + Buffer.byteLength(name);
  for (const partition of applied.keys()) size += varintLength(partition) + 8;
  for (const event of events) {
    size += 8;
    for (const value of event.values) size += valueBytes(value);
  }
  // Unpooled and exactly sized, so it is returned as is: a pooled Buffer slice would pin its slab in the caches.
  const bytes = Buffer.allocUnsafeSlow(size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes[0] = EVENT_LOG_FORMAT;
  view.setUint32(1, columnsHash(columns));
  view.setFloat64(5, revision);
  view.setUint16(13, columns.length);
  let at = FIXED_HEADER_BYTES;
  const text = (value: string): void => {
    const length = Buffer.byteLength(value);
    at = writeVarint(bytes, at, length);
    at += bytes.write(value, at, 'utf8');
  };
  for (const name of columns) text(name);
  at = writeVarint(bytes, at, applied.size);
  for (const [partition, offset] of applied) {
    at = writeVarint(bytes, at, partition);
    view.setFloat64(at, offset);
    at += 8;
  }
  at = writeVarint(bytes, at, events.length);
  for (const event of events) {
    view.setFloat64(at, event.ts);
    at += 8;
    for (const value of event.values) {
      if (value === null) bytes[at++] = TAG_NULL;
      else if (typeof value === 'number') {
        bytes[at++] = TAG_NUMBER;
        view.setFloat64(at, value);
        at += 8;
      } else if (typeof value === 'string') {
        bytes[at++] = TAG_STRING;
        text(value);
      } else bytes[at++] = value ? TAG_TRUE : TAG_FALSE;
    }
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, size);
}

export interface EventMerge {
  readonly events: LoggedEvent[];
  readonly applied: Map<number, number>;
  /** Incoming events skipped because their offset was already applied. */
  readonly duplicates: number;
}

/**
 * Adds incoming events (in arrival order) to a log's events, skipping those
 * at or below their partition's applied offset, and prunes what no read
 * within retention can see: events older than `horizonMs` go, except the
 * newest of them (a lifetime `last` at the horizon reads it) and the first
 * event ever (a lifetime `first` reads it). Past `maxEvents`, the oldest
 * events go whatever their age (each write re-encodes the log, so it must
 * stay bounded). Equal event times keep arrival order.
 */
export function mergeEvents(
  existing: EventLog | undefined,
  columns: readonly string[],
  incoming: readonly IncomingEvent[],
  horizonMs: number,
  maxEvents: number,
): EventMerge {
  const events = existing?.events(columns) ?? [];
  const applied = new Map(existing?.applied ?? []);
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
    if (events.length > 0 && event.ts < events[events.length - 1]!.ts) sorted = false;
    events.push({ ts: event.ts, values: event.values });
  }
  // Array.prototype.sort is stable: equal event times stay in arrival order.
  if (!sorted) events.sort((a, b) => a.ts - b.ts);
  const firstKept = events.findIndex((event) => event.ts >= horizonMs);
  // Keep [0] (first ever) and [firstKept - 1] (newest before the horizon), drop what lies between.
  let pruned = events;
  const lastOld = firstKept === -1 ? events.length - 1 : firstKept - 1;
  if (lastOld > 1) pruned = [events[0]!, ...events.slice(lastOld)];
  if (pruned.length > maxEvents) pruned = [pruned[0]!, ...pruned.slice(pruned.length - maxEvents + 1)];
  return { events: pruned, applied, duplicates };
}
