/**
 * Computes a stream view's features at time T from an entity's event log:
 * each window aggregation over exactly the events with event time in
 * (T − window, T] — no hop rounding, since the log keeps every event — and
 * derived features from those results. The result is a one-version feature
 * record, so the read path handles stream and push views alike: its event
 * time is the entity's newest event at or before T, which is what the view's
 * ttl is checked against.
 *
 * With snapshot tiles (a stream view's batch half), a tiled aggregation
 * whose window reaches back past the tile boundary B = min(cutoff,
 * tile-floor(T)) combines the tiles ending in (S, B] with the stream's
 * events in (B, T], where S = tile-floor(T − window): the window's start
 * snaps back to the tile grid (up to one tile longer than asked, the
 * sawtooth of tiled windows), and no event is counted by both halves, since
 * tiles hold exactly the events up to B and the stream part starts after it.
 * A window that starts at or after B reads the stream alone, exactly.
 */
import type { AggregationDef, ComputeDef, ViewDef } from '../config/registry.js';
import { encodeEventLog, EventLog, type ColumnValue } from '../storage/event-log.js';
import { encodeRecord, FeatureRecord } from '../storage/record.js';
import { encodeTypedValue, NULL_VALUE, numberFromValueBytes, type ValueType } from '../values/value-codec.js';
import { DistinctCounter } from './distinct-counter.js';

/** A feature's value before encoding: null is NULL_VALUE. */
type Result = number | string | boolean | null;

function passes(log: EventLog, aggregation: AggregationDef, event: number): boolean {
  for (const clause of aggregation.where) {
    const value = log.values[clause.column]![event]!;
    if (value === null || !clause.values.has(value)) return false;
  }
  return true;
}

/** Sum and number of the numeric values of events [from, to) that pass the filter. */
function sumAndCount(log: EventLog, aggregation: AggregationDef, from: number, to: number): { sum: number; count: number } {
  const column = log.values[aggregation.column]!;
  let sum = 0;
  let count = 0;
  for (let event = from; event < to; event++) {
    const value = column[event];
    if (typeof value === 'number' && passes(log, aggregation, event)) {
      sum += value;
      count++;
    }
  }
  return { sum, count };
}

/** One aggregation over events [from, to) of the log. */
export function aggregate(log: EventLog, aggregation: AggregationDef, from: number, to: number): Result {
  const column = aggregation.column < 0 ? undefined : log.values[aggregation.column];
  switch (aggregation.fn) {
    case 'count': {
      let count = 0;
      for (let event = from; event < to; event++) if (passes(log, aggregation, event)) count++;
      return count;
    }
    case 'sum':
      return sumAndCount(log, aggregation, from, to).sum;
    case 'avg': {
      const { sum, count } = sumAndCount(log, aggregation, from, to);
      return count === 0 ? null : sum / count;
    }
    case 'min':
    case 'max': {
      let best: number | null = null;
      const isMin = aggregation.fn === 'min';
      for (let event = from; event < to; event++) {
        const value = column![event];
        if (typeof value !== 'number' || !passes(log, aggregation, event)) continue;
        if (best === null || (isMin ? value < best : value > best)) best = value;
      }
      return best;
    }
    case 'last':
      for (let event = to - 1; event >= from; event--) {
        const value = column![event];
        if (value !== null && value !== undefined && passes(log, aggregation, event)) return value;
      }
      return null;
    case 'first':
      for (let event = from; event < to; event++) {
        const value = column![event];
        if (value !== null && value !== undefined && passes(log, aggregation, event)) return value;
      }
      return null;
    case 'count_distinct': {
      const distinct = new DistinctCounter();
      for (let event = from; event < to; event++) {
        const value = column![event];
        if (value !== null && value !== undefined && passes(log, aggregation, event)) distinct.add(value);
      }
      return distinct.count;
    }
    case 'most_frequent': {
      // Ties go to the value seen most recently: walking forwards, a value takes the lead by reaching the leader's count.
      const counts = new Map<Exclude<ColumnValue, null>, number>();
      let best: Result = null;
      let bestCount = 0;
      for (let event = from; event < to; event++) {
        const value = column![event];
        if (value === null || value === undefined || !passes(log, aggregation, event)) continue;
        const count = (counts.get(value) ?? 0) + 1;
        counts.set(value, count);
        if (count >= bestCount) {
          best = value;
          bestCount = count;
        }
      }
      return best;
    }
    case 'span': {
      let first = -1;
      let last = -1;
      for (let event = from; event < to; event++) {
        if (!passes(log, aggregation, event)) continue;
        if (first < 0) first = event;
        last = event;
      }
      return first < 0 ? null : (log.ts[last]! - log.ts[first]!) / 60_000;
    }
  }
}

/** The tiles ending in (start, boundary], newest first: the partial results of one aggregation, combined. */
function combineTiles(tiles: FeatureRecord, aggregation: AggregationDef, start: number, boundary: number): { value: number | null; count: number } {
  const [slot, countSlot] = aggregation.tileSlots as [number, number?];
  let value: number | null = null;
  let count = 0;
  for (let version = Math.max(0, tiles.versionAt(boundary)); version < tiles.versionCount && tiles.eventTs(version) > start; version++) {
    if (tiles.eventTs(version) > boundary) continue;
    const partial = numberFromValueBytes(tiles.value(version, slot)!);
    if (countSlot !== undefined) count += numberFromValueBytes(tiles.value(version, countSlot)!) ?? 0;
    if (partial === null) continue;
    if (value === null) value = partial;
    else if (aggregation.fn === 'min') value = Math.min(value, partial);
    else if (aggregation.fn === 'max') value = Math.max(value, partial);
    else value += partial;
  }
  return { value, count };
}

/** A tiled aggregation: tiles (start, boundary] and the stream's events [from, to) after the boundary. */
function aggregateWithTiles(log: EventLog, tiles: FeatureRecord, aggregation: AggregationDef, start: number, boundary: number, from: number, to: number): Result {
  const tiled = combineTiles(tiles, aggregation, start, boundary);
  if (aggregation.fn === 'avg') {
    const streamed = sumAndCount(log, aggregation, from, to);
    const count = tiled.count + streamed.count;
    return count === 0 ? null : ((tiled.value ?? 0) + streamed.sum) / count;
  }
  const streamed = aggregate(log, aggregation, from, to) as number | null;
  if (tiled.value === null) return streamed;
  if (streamed === null) return tiled.value;
  if (aggregation.fn === 'min') return Math.min(tiled.value, streamed);
  if (aggregation.fn === 'max') return Math.max(tiled.value, streamed);
  return tiled.value + streamed;
}

function derive(compute: Exclude<ComputeDef, AggregationDef>, results: readonly Result[], newestTs: number, at: number): Result {
  switch (compute.fn) {
    case 'ratio': {
      const numerator = results[compute.numerator];
      const denominator = results[compute.denominator];
      return typeof numerator === 'number' && typeof denominator === 'number' && denominator !== 0 ? numerator / denominator : null;
    }
    case 'rate': {
      const of = results[compute.of];
      return typeof of === 'number' ? of / (compute.windowMs / compute.perMs) : null;
    }
    case 'time_since_last':
      return (at - newestTs) / compute.unitMs;
  }
}

function encodeResult(type: ValueType, value: Result): Uint8Array {
  if (value === null) return NULL_VALUE;
  switch (type) {
    case 'int64':
      return encodeTypedValue({ type, value: typeof value === 'number' ? Math.trunc(value) : Number(value) || 0 });
    case 'double':
      return encodeTypedValue({ type, value: typeof value === 'number' ? value : Number(value) });
    case 'bool':
      return encodeTypedValue({ type, value: value === true || value === 'true' });
    default:
      return encodeTypedValue({ type: 'string', value: String(value) });
  }
}

/** A stream view's published snapshot tiles, as read for one entity. */
export interface SnapshotTiles {
  readonly record: FeatureRecord;
  /** Events up to this time are in the tiles. */
  readonly cutoffMs: number;
}

/** An event log with no events, per column layout: what an entity known only from tiles streams. */
const emptyLogs = new WeakMap<readonly string[], EventLog>();

function emptyLog(columns: readonly string[]): EventLog {
  let log = emptyLogs.get(columns);
  if (log === undefined) {
    log = EventLog.decode(encodeEventLog(0, columns, new Map(), [])).inColumns(columns);
    emptyLogs.set(columns, log);
  }
  return log;
}

/** The view's features at `at`, unencoded, and the time the ttl counts from; undefined when the entity had nothing by then. */
export function evaluateAt(view: ViewDef, stored: EventLog | undefined, at: number, snapshot?: SnapshotTiles): { results: Result[]; newestTs: number } | undefined {
  const { source, batch } = view;
  if (source.type !== 'stream') return undefined;
  const log = stored === undefined ? emptyLog(source.columns) : stored.inColumns(source.columns);
  const visible = log.countAtOrBefore(at);
  // Tiles laid out for another set of tiled aggregations (the registry changed since the import) are not read.
  const tiles = snapshot !== undefined && batch !== undefined && snapshot.cutoffMs > 0 && snapshot.record.schema === batch.fingerprint ? snapshot.record : undefined;
  const tileMs = batch?.tileMs ?? 0;
  const boundary = tiles === undefined ? -Infinity : Math.min(snapshot!.cutoffMs, at - (at % tileMs));
  const newestTile = tiles === undefined ? -1 : tiles.versionAt(boundary);
  if (visible === 0 && newestTile < 0) return undefined;
  const fromBoundary = tiles === undefined ? 0 : log.countAtOrBefore(boundary);
  const results: Result[] = new Array(view.features.length);
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind !== 'aggregation') continue;
    const windowStart = at - compute.windowMs;
    if (tiles !== undefined && compute.tileSlots.length > 0 && windowStart < boundary) {
      const start = windowStart - (((windowStart % tileMs) + tileMs) % tileMs);
      results[feature.index] = aggregateWithTiles(log, tiles, compute, start, boundary, fromBoundary, visible);
    } else {
      const from = compute.windowMs === 0 ? 0 : log.countAtOrBefore(windowStart);
      results[feature.index] = aggregate(log, compute, from, visible);
    }
  }
  // The newest event the stream holds; an entity known only from tiles counts from its newest tile's end.
  const newestTs = visible > 0 ? log.ts[visible - 1]! : tiles!.eventTs(newestTile);
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind === 'derived') results[feature.index] = derive(compute, results, newestTs, at);
  }
  return { results, newestTs };
}

/** The view's features at `at` as a one-version record, or undefined when the entity had nothing by then. */
export function materializeAt(view: ViewDef, log: EventLog | undefined, at: number, snapshot?: SnapshotTiles): FeatureRecord | undefined {
  const evaluated = evaluateAt(view, log, at, snapshot);
  if (evaluated === undefined) return undefined;
  const { results, newestTs } = evaluated;
  const slots = view.features.map((feature) => encodeResult(feature.type, results[feature.index]!));
  const revision = Math.max(log?.revision ?? 0, snapshot?.record.revision ?? 0);
  return FeatureRecord.decode(encodeRecord(view.schemaFingerprint, revision, view.features.length, [{ eventTs: newestTs, createdTs: newestTs, slots }]));
}
