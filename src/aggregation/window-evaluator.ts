/**
 * Computes a stream view's features at time T from an entity's event log:
 * each window aggregation over exactly the events with event time in
 * (T − window, T] — no hop rounding, since the log keeps every event — and
 * derived features from those results. The result is a one-version feature
 * record, so the read path handles stream and push views alike: its event
 * time is the entity's newest event at or before T, which is what the view's
 * ttl is checked against.
 */
import type { AggregationDef, ComputeDef, ViewDef } from '../config/registry.js';
import type { ColumnValue, EventLog } from '../storage/event-log.js';
import { encodeRecord, FeatureRecord } from '../storage/record.js';
import { encodeTypedValue, NULL_VALUE, type ValueType } from '../values/value-codec.js';
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
    case 'avg': {
      let sum = 0;
      let count = 0;
      for (let event = from; event < to; event++) {
        const value = column![event];
        if (typeof value === 'number' && passes(log, aggregation, event)) {
          sum += value;
          count++;
        }
      }
      if (aggregation.fn === 'sum') return sum;
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
      // Ties go to the value seen most recently: walking backwards, a value only takes the lead by beating it.
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

/** Every feature of the view at `at`, unencoded, or undefined when the entity had no event by then. */
export function evaluateAt(view: ViewDef, stored: EventLog, at: number): Result[] | undefined {
  if (view.source.type !== 'stream') return undefined;
  const log = stored.inColumns(view.source.columns);
  const visible = log.countAtOrBefore(at);
  if (visible === 0) return undefined;
  const results: Result[] = new Array(view.features.length);
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind !== 'aggregation') continue;
    const from = compute.windowMs === 0 ? 0 : log.countAtOrBefore(at - compute.windowMs);
    results[feature.index] = aggregate(log, compute, from, visible);
  }
  const newestTs = log.ts[visible - 1]!;
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind === 'derived') results[feature.index] = derive(compute, results, newestTs, at);
  }
  return results;
}

/** The view's features at `at` as a one-version record, or undefined when the entity had no event by then. */
export function materializeAt(view: ViewDef, log: EventLog, at: number): FeatureRecord | undefined {
  const results = evaluateAt(view, log, at);
  if (results === undefined) return undefined;
  const newestTs = log.ts[log.countAtOrBefore(at) - 1]!;
  const slots = view.features.map((feature) => encodeResult(feature.type, results[feature.index]!));
  return FeatureRecord.decode(encodeRecord(view.schemaFingerprint, log.revision, view.features.length, [{ eventTs: newestTs, createdTs: newestTs, slots }]));
}
