import { describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { DistinctCounter, EXACT_DISTINCT_CAP } from '../../src/aggregation/distinct-counter.js';
import { compileRegistry, type ViewDef } from '../../src/config/registry.js';
import { EventLog, encodeEventLog, mergeEventLog, type IncomingEvent, type LoggedEvent } from '../../src/storage/event-log.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { CorruptRecordError } from '../../src/storage/record.js';
import { aggregationsAt, closeEnough, type OracleEvent } from '../support/window-oracle.js';

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

interface RawEvent extends OracleEvent {
  ts: number;
  amount: number | null;
  country: string;
  category: string;
}

/** The definition of every feature, written as directly as possible: filter the events, then fold. */
function bruteForce(view: ViewDef, events: readonly RawEvent[], at: number): unknown[] | undefined {
  const visible = events.filter((event) => event.ts <= at);
  if (visible.length === 0) return undefined;
  const results = aggregationsAt(view, visible, at);
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
      log = EventLog.decode(mergeEventLog(log, columns, incoming, 0, 1_000_000, batch + 1).bytes);
    }
    raw.sort((a, b) => a.ts - b.ts);
    let checked = 0;
    const probes = [...raw.flatMap((event) => [event.ts, event.ts - 1, event.ts + MINUTE, event.ts + 5 * MINUTE, event.ts + 5 * MINUTE - 1]), base - 1];
    for (let index = 0; index < 300; index++) probes.push(base + Math.floor(random() * 120 * MINUTE));
    for (const at of probes) {
      const expected = bruteForce(view, raw, at);
      const actual = evaluateAt(view, log!, at)?.results;
      if (expected === undefined) {
        expect(actual).toBeUndefined();
        continue;
      }
      for (const feature of view.features) {
        if (!closeEnough(actual![feature.index], expected[feature.index])) {
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
    const log = EventLog.decode(mergeEventLog(undefined, columns, events, 0, 100, 1).bytes);
    const n1m = view.featuresByName.get('n_1m')!.index;
    expect(evaluateAt(view, log, base + 20_000)!.results[n1m]).toBe(3);
    expect(evaluateAt(view, log, base + MINUTE)!.results[n1m]).toBe(2);
    expect(evaluateAt(view, log, base + MINUTE + 10_000)!.results[n1m]).toBe(1);
    expect(evaluateAt(view, log, base + MINUTE + 20_000)!.results[n1m]).toBe(0);
  });
});

describe('event log merge', () => {
  const columns = ['amount'];
  const event = (ts: number, offset: number | undefined, partition = 0): IncomingEvent => ({ ts, values: [ts], origin: offset === undefined ? undefined : { partition, offset } });
  const merge = (log: EventLog | undefined, incoming: IncomingEvent[], horizonMs: number, maxEvents: number): { log: EventLog; duplicates: number } => {
    const merged = mergeEventLog(log, columns, incoming, horizonMs, maxEvents, 1);
    return { log: EventLog.decode(merged.bytes), duplicates: merged.duplicates };
  };

  it('skips events at or below their partition\'s applied offset (replays after a crash)', () => {
    const { log } = merge(undefined, [event(1, 10), event(2, 11)], 0, 100);
    const replay = merge(log, [event(1, 10), event(2, 11), event(3, 12), event(4, 5, 1)], 0, 100);
    expect(replay.duplicates).toBe(2);
    expect([...replay.log.ts]).toEqual([1, 2, 3, 4]);
    expect([...replay.log.applied]).toEqual([
      [0, 12],
      [1, 5],
    ]);
  });

  it('prunes past the horizon but keeps the first event ever and the newest before the horizon', () => {
    const { log } = merge(undefined, [1, 2, 3, 4, 50, 60].map((ts, index) => event(ts, index)), 40, 100);
    expect([...log.ts]).toEqual([1, 4, 50, 60]);
  });

  it('caps the events kept, oldest first, keeping the first ever', () => {
    const { log } = merge(undefined, Array.from({ length: 10 }, (_, index) => event(index, index)), 0, 4);
    expect([...log.ts]).toEqual([0, 7, 8, 9]);
  });

  it.each([11, 12, 13])('seed %i: merging as bytes equals sorting, deduplicating and pruning decoded events', (seed) => {
    const random = seededRandom(seed);
    const cols = ['n', 's', 'b'];
    const randomValues = (): LoggedEvent['values'] => [
      random() < 0.2 ? null : Math.round(random() * 1e6) / 100,
      random() < 0.2 ? null : ['', 'a', 'zürich', 'x'.repeat(200)][Math.floor(random() * 4)]!,
      random() < 0.3 ? null : random() < 0.5,
    ];
    let log: EventLog | undefined;
    let other: EventLog | undefined;
    let expected: LoggedEvent[] = [];
    const applied = new Map<number, number>();
    const nextOffset = [0, 0];
    for (let round = 0; round < 60; round++) {
      const incoming: IncomingEvent[] = [];
      for (let index = Math.floor(random() * 12); index > 0; index--) {
        const partition = Math.floor(random() * 2);
        // Now and then a replay of an offset already applied.
        const offset = random() < 0.15 ? Math.max(0, nextOffset[partition]! - 3) : nextOffset[partition]!++;
        const pushed = random() < 0.1;
        incoming.push({ ts: round * 10 + Math.floor(random() * 40) - 20, values: randomValues(), origin: pushed ? undefined : { partition, offset } });
      }
      const horizon = round * 10 - 100 + Math.floor(random() * 30);
      const maxEvents = 5 + Math.floor(random() * 60);
      // The definition, on decoded events.
      const arrived = [...expected];
      for (const incomingEvent of incoming) {
        const origin = incomingEvent.origin;
        if (origin !== undefined) {
          const last = applied.get(origin.partition);
          if (last !== undefined && origin.offset <= last) continue;
          applied.set(origin.partition, origin.offset);
        }
        arrived.push({ ts: incomingEvent.ts, values: incomingEvent.values });
      }
      const sortedEvents = arrived.map((e, index) => ({ e, index })).sort((a, b) => a.e.ts - b.e.ts || a.index - b.index).map(({ e }) => e);
      const firstRecent = sortedEvents.findIndex((e) => e.ts >= horizon);
      const lastOld = firstRecent === -1 ? sortedEvents.length - 1 : firstRecent - 1;
      let kept = lastOld > 1 ? [sortedEvents[0]!, ...sortedEvents.slice(lastOld)] : sortedEvents;
      if (kept.length > maxEvents) kept = [kept[0]!, ...kept.slice(kept.length - maxEvents + 1)];
      expected = kept;

      const merged = mergeEventLog(log, cols, incoming, horizon, maxEvents, round);
      // The log the merge hands back is built from what it knows, not read back: it must read as its bytes do.
      const decoded = EventLog.decode(merged.bytes);
      // Its twin (what L1 gets) reads the same, over the same bytes, without decoding the merge's own log.
      const twin = merged.log.twin();
      expect(twin.bytes).toBe(merged.log.bytes);
      for (const candidate of [twin, merged.log, decoded]) {
        expect(candidate.events(cols)).toEqual(expected);
        expect([...candidate.applied].sort()).toEqual([...applied].sort());
        expect(candidate.revision).toBe(round);
        expect(candidate.length).toBe(expected.length);
        expect(candidate.columns).toEqual(cols);
      }
      // The next merge builds on either (the store's recent writes keep the merge's own log).
      log = round % 2 === 0 ? merged.log : decoded;
      // Merges share working arrays: one of another, larger log in between must leave no trace in this one's.
      other = mergeEventLog(other, cols, Array.from({ length: 1 + Math.floor(random() * 30) }, () => ({ ts: Math.floor(random() * 1000), values: randomValues(), origin: undefined })), -Infinity, 10_000, round).log;
    }
  });

  it('lays an older log out in the view\'s current columns before merging', () => {
    const older = EventLog.decode(encodeEventLog(1, ['b', 'a'], new Map(), [{ ts: 1, values: ['x', 1] }]));
    const merged = EventLog.decode(mergeEventLog(older, ['a', 'c'], [{ ts: 2, values: [2, 'y'], origin: undefined }], 0, 10, 2).bytes);
    expect(merged.events(['a', 'c'])).toEqual([
      { ts: 1, values: [1, null] },
      { ts: 2, values: [2, 'y'] },
    ]);
  });

  it('reads a log opened without decoding the same as one decoded', () => {
    const bytes = encodeEventLog(3, ['a', 'b'], new Map([[0, 7]]), [{ ts: 5, values: [1, 'p'] }, { ts: 9, values: [null, 'q'] }]);
    const opened = EventLog.open(bytes);
    expect(opened.length).toBe(2);
    expect(opened.events(['a', 'b'])).toEqual(EventLog.decode(bytes).events(['a', 'b']));
  });

  it('rejects corrupt logs when decoding or merging', () => {
    const bytes = encodeEventLog(3, ['a'], new Map(), [{ ts: 5, values: ['text'] }]);
    const truncated = bytes.subarray(0, bytes.length - 2);
    expect(() => EventLog.decode(truncated)).toThrow(CorruptRecordError);
    expect(() => mergeEventLog(EventLog.open(truncated), ['a'], [], 0, 10, 4)).toThrow(CorruptRecordError);
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
