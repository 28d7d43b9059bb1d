import { describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { DistinctCounter, EXACT_DISTINCT_CAP } from '../../src/aggregation/distinct-counter.js';
import { compileRegistry, type AggregationDef, type ViewDef } from '../../src/config/registry.js';
import { EventLog, encodeEventLog, mergeEvents, type IncomingEvent } from '../../src/storage/event-log.js';
import { seededRandom } from '../../src/util/seeded-random.js';

const MINUTE = 60_000;

const REGISTRY = `
entities:
  card: { join_key: card_id }
feature_views:
  card_txn:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    aggregations:
      n_1m:        { fn: count, window: 1m }
      n_5m:        { fn: count, window: 5m }
      online_5m:   { fn: count, window: 5m, where: { category: [online, atm] } }
      sum_1h:      { fn: sum, field: amount, window: 1h }
      avg_5m:      { fn: avg, field: amount, window: 5m }
      min_1h:      { fn: min, field: amount, window: 1h }
      max_1h:      { fn: max, field: amount, window: 1h }
      last_any:    { fn: last, field: country }
      first_1h:    { fn: first, field: country, window: 1h }
      countries:   { fn: count_distinct, field: country, window: 1h }
      top_cat:     { fn: most_frequent, field: category, window: 1h }
      span_30m:    { fn: span, window: 30m }
    derived:
      online_ratio: { fn: ratio, numerator: online_5m, denominator: n_5m }
      per_min:      { fn: rate, of: n_5m, per: 1m }
      since_last:   { fn: time_since_last, unit: m }
`;

interface RawEvent {
  ts: number;
  amount: number | null;
  country: string;
  category: string;
}

/** The definition of every feature, written as directly as possible: filter the events, then fold. */
function bruteForce(view: ViewDef, events: readonly RawEvent[], at: number): unknown[] | undefined {
  const visible = events.filter((event) => event.ts <= at);
  if (visible.length === 0) return undefined;
  const results: unknown[] = [];
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind !== 'aggregation') continue;
    results[feature.index] = aggregateBrute(compute, visible.filter((event) => compute.windowMs === 0 || event.ts > at - compute.windowMs), view);
  }
  const newest = Math.max(...visible.map((event) => event.ts));
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind === 'aggregation') continue;
    if (compute.fn === 'ratio') {
      const [n, d] = [results[compute.numerator] as number, results[compute.denominator] as number];
      results[feature.index] = d === 0 ? null : n / d;
    } else if (compute.fn === 'rate') results[feature.index] = (results[compute.of] as number) / (compute.windowMs / compute.perMs);
    else results[feature.index] = (at - newest) / compute.unitMs;
  }
  return results;
}

function aggregateBrute(aggregation: AggregationDef, inWindow: readonly RawEvent[], view: ViewDef): unknown {
  const columns = (view.source as { columns: readonly string[] }).columns;
  const field = aggregation.column < 0 ? undefined : (columns[aggregation.column] as keyof RawEvent);
  const passing = inWindow.filter((event) => aggregation.where.every((clause) => clause.values.has(event[columns[clause.column] as keyof RawEvent] as string)));
  // Events in time order, equal times in arrival order (the tests append in arrival order and sort stably).
  const values = passing.map((event) => (field === undefined ? null : event[field])).filter((value) => value !== null);
  switch (aggregation.fn) {
    case 'count':
      return passing.length;
    case 'sum':
      return (values as number[]).reduce((sum, value) => sum + value, 0);
    case 'avg':
      return values.length === 0 ? null : (values as number[]).reduce((sum, value) => sum + value, 0) / values.length;
    case 'min':
      return values.length === 0 ? null : Math.min(...(values as number[]));
    case 'max':
      return values.length === 0 ? null : Math.max(...(values as number[]));
    case 'last':
      return values.length === 0 ? null : values[values.length - 1];
    case 'first':
      return values.length === 0 ? null : values[0];
    case 'count_distinct':
      return new Set(values).size;
    case 'most_frequent': {
      const counts = new Map<unknown, number>();
      for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
      const best = Math.max(0, ...counts.values());
      // Ties: the tied value whose best-count occurrence came last.
      let winner: unknown = null;
      const running = new Map<unknown, number>();
      for (const value of values) {
        running.set(value, (running.get(value) ?? 0) + 1);
        if (running.get(value) === best) winner = value;
      }
      return winner;
    }
    case 'span':
      return passing.length === 0 ? null : (passing[passing.length - 1]!.ts - passing[0]!.ts) / MINUTE;
  }
}

function close(actual: unknown, expected: unknown): boolean {
  if (typeof actual === 'number' && typeof expected === 'number') return Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
  return actual === expected;
}

describe('window features at read time, against a brute-force oracle', () => {
  const registry = compileRegistry(REGISTRY, 'reg.yaml');
  const view = registry.views.get('card_txn')!;
  const columns = (view.source as { columns: readonly string[] }).columns;

  it.each([1, 2, 3, 4, 5])('seed %i: every feature at many T equals its definition over (T - window, T]', (seed) => {
    const random = seededRandom(seed);
    const base = 1_700_000_000_000;
    const raw: RawEvent[] = [];
    let log: EventLog | undefined;
    let offset = 0;
    // Arrive in batches, partly out of order, the way a partition delivers them.
    for (let batch = 0; batch < 40; batch++) {
      const incoming: IncomingEvent[] = [];
      for (let index = 0; index < 1 + Math.floor(random() * 20); index++) {
        const event: RawEvent = {
          ts: base + Math.floor(random() * 90 * MINUTE),
          amount: random() < 0.1 ? null : Math.round(random() * 50_000) / 100,
          country: ['US', 'GB', 'DE', 'FR', 'JP'][Math.floor(random() * 5)]!,
          category: ['online', 'atm', 'grocery', 'fuel'][Math.floor(random() * 4)]!,
        };
        raw.push(event);
        incoming.push({ ts: event.ts, values: columns.map((column) => event[column as keyof RawEvent] as string | number | null), origin: { partition: 0, offset: offset++ } });
      }
      const merged = mergeEvents(log, columns, incoming, 0, 1_000_000);
      log = EventLog.decode(encodeEventLog(batch + 1, columns, merged.applied, merged.events));
    }
    raw.sort((a, b) => a.ts - b.ts);
    let checked = 0;
    const probes = [...raw.flatMap((event) => [event.ts, event.ts - 1, event.ts + MINUTE, event.ts + 5 * MINUTE, event.ts + 5 * MINUTE - 1]), base - 1];
    for (let index = 0; index < 300; index++) probes.push(base + Math.floor(random() * 120 * MINUTE));
    for (const at of probes) {
      const expected = bruteForce(view, raw, at);
      const actual = evaluateAt(view, log!, at);
      if (expected === undefined) {
        expect(actual).toBeUndefined();
        continue;
      }
      for (const feature of view.features) {
        if (!close(actual![feature.index], expected[feature.index])) {
          throw new Error(`seed ${seed}, T=${at - base}: ${feature.name} = ${String(actual![feature.index])}, expected ${String(expected[feature.index])}`);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('counts fall as events age out, with nothing written', () => {
    const base = 1_700_000_000_000;
    const events: IncomingEvent[] = [0, 10_000, 20_000].map((delta, index) => ({ ts: base + delta, values: columns.map(() => null), origin: { partition: 0, offset: index } }));
    const merged = mergeEvents(undefined, columns, events, 0, 100);
    const log = EventLog.decode(encodeEventLog(1, columns, merged.applied, merged.events));
    const n1m = view.featuresByName.get('n_1m')!.index;
    expect(evaluateAt(view, log, base + 20_000)![n1m]).toBe(3);
    expect(evaluateAt(view, log, base + MINUTE)![n1m]).toBe(2);
    expect(evaluateAt(view, log, base + MINUTE + 10_000)![n1m]).toBe(1);
    expect(evaluateAt(view, log, base + MINUTE + 20_000)![n1m]).toBe(0);
  });
});

describe('event log merge', () => {
  const columns = ['amount'];
  const event = (ts: number, offset: number | undefined, partition = 0): IncomingEvent => ({ ts, values: [ts], origin: offset === undefined ? undefined : { partition, offset } });

  it('skips events at or below their partition\'s applied offset (replays after a crash)', () => {
    const first = mergeEvents(undefined, columns, [event(1, 10), event(2, 11)], 0, 100);
    const log = EventLog.decode(encodeEventLog(1, columns, first.applied, first.events));
    const replay = mergeEvents(log, columns, [event(1, 10), event(2, 11), event(3, 12), event(4, 5, 1)], 0, 100);
    expect(replay.duplicates).toBe(2);
    expect(replay.events.map((e) => e.ts)).toEqual([1, 2, 3, 4]);
    expect([...replay.applied]).toEqual([
      [0, 12],
      [1, 5],
    ]);
  });

  it('prunes past the horizon but keeps the first event ever and the newest before the horizon', () => {
    const merged = mergeEvents(undefined, columns, [1, 2, 3, 4, 50, 60].map((ts, index) => event(ts, index)), 40, 100);
    expect(merged.events.map((e) => e.ts)).toEqual([1, 4, 50, 60]);
  });

  it('caps the events kept, oldest first, keeping the first ever', () => {
    const merged = mergeEvents(undefined, columns, Array.from({ length: 10 }, (_, index) => event(index, index)), 0, 4);
    expect(merged.events.map((e) => e.ts)).toEqual([0, 7, 8, 9]);
  });

  it('round-trips through its encoding, strings and nulls included', () => {
    const log = EventLog.decode(encodeEventLog(7, ['a', 'b', 'c'], new Map([[3, 99]]), [{ ts: 5, values: [1.5, 'zürich', null] }, { ts: 6, values: [true, false, ''] }]));
    expect(log.revision).toBe(7);
    expect(log.events(['c', 'a', 'missing'])).toEqual([
      { ts: 5, values: [null, 1.5, null] },
      { ts: 6, values: ['', true, null] },
    ]);
    expect([...log.applied]).toEqual([[3, 99]]);
  });
});

describe('distinct counting', () => {
  it('is exact up to the cap, then within a few standard errors (1.6 %) of the truth', () => {
    const exact = new DistinctCounter();
    for (let index = 0; index < EXACT_DISTINCT_CAP; index++) exact.add(`v${index % 5000}`);
    expect(exact.count).toBe(5000);
    for (const truth of [20_000, 100_000]) {
      const approx = new DistinctCounter();
      for (let index = 0; index < truth; index++) approx.add(index);
      expect(Math.abs(approx.count - truth) / truth).toBeLessThan(0.05);
    }
  });
});
