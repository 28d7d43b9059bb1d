import { describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { compileRegistry } from '../../src/config/registry.js';
import type { StreamSource } from '../../src/config/stream-views.js';
import { compactRecord } from '../../src/storage/compaction.js';
import { EventLog, mergeEventLog, type IncomingEvent } from '../../src/storage/event-log.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { aggregationsAt, closeEnough, type OracleEvent } from '../support/window-oracle.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const RETENTION = HOUR;
const BASE = 1_700_000_000_000;

const view = compileRegistry(
  `
entities:
  card: { join_key: card_id }
feature_views:
  card_geo:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    aggregations:
      last_country:       { fn: last, field: country }
      first_country:      { fn: first, field: country }
      last_atm_country:   { fn: last, field: country, where: { category: [atm] } }
      first_cash_country: { fn: first, field: country, where: { category: [atm, fuel] } }
      last_online_amount: { fn: last, field: amount, where: { category: [online] } }
      n_10m:              { fn: count, window: 10m }
      atm_10m:            { fn: count, window: 10m, where: { category: [atm] } }
    derived:
      since_last:         { fn: time_since_last, unit: m }
`,
  'reg.yaml',
).views.get('card_geo')!;
const source = view.source as StreamSource;
const columns = source.columns;
const KEY = recordKey(recordKeyPrefix('card_geo'), ['string'], ['card-1']);
/** The lifetime last and first aggregations: at most one event each is kept past the horizon for them. */
const LIFETIME = view.features.filter(({ compute }) => compute?.kind === 'aggregation' && compute.windowMs === 0).length;

interface Txn extends OracleEvent {
  readonly country: string | null;
  readonly category: string;
  readonly amount: number | null;
}

const incomingOf = (events: readonly Txn[]): IncomingEvent[] => events.map((event) => ({ ts: event.ts, values: columns.map((column) => event[column] as string | number | null), origin: undefined }));

/** Every feature by its definition over every event written with event time ≤ T (arrival order breaks ties); undefined: none yet. */
function expected(written: readonly Txn[], at: number): unknown[] | undefined {
  const visible = written.filter((event) => event.ts <= at).sort((a, b) => a.ts - b.ts);
  if (visible.length === 0) return undefined;
  const results = aggregationsAt(view, visible, at);
  results[view.featuresByName.get('since_last')!.index] = (at - visible.at(-1)!.ts) / MINUTE;
  return results;
}

/** Compares every feature the evaluator computes from `log` at `at` with its definition; windowed ones only within retention. */
function check(log: EventLog, written: readonly Txn[], at: number, nowMs: number, context: string): number {
  const want = expected(written, at);
  const got = evaluateAt(view, log, at)?.results;
  if (want === undefined) {
    expect(got, context).toBeUndefined();
    return 0;
  }
  let checked = 0;
  for (const feature of view.features) {
    const compute = feature.compute!;
    // A window reads (T − window, T]: whole only at T ≥ now − retention, where the horizon leaves it.
    if (compute.kind === 'aggregation' && compute.windowMs > 0 && at < nowMs - RETENTION) continue;
    if (!closeEnough(got![feature.index], want[feature.index])) {
      throw new Error(`${context}, T = now − ${(nowMs - at) / MINUTE} min: ${feature.name} = ${String(got![feature.index])}, expected ${String(want[feature.index])}`);
    }
    checked++;
  }
  return checked;
}

describe('pruning an event log keeps what lifetime last and first read', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: every feature at every T from the horizon on equals its definition over every event ever written', (seed) => {
    const random = seededRandom(seed);
    const pick = <T>(weighted: readonly [T, number][]): T => {
      let roll = random();
      for (const [value, weight] of weighted) if ((roll -= weight) < 0) return value;
      return weighted.at(-1)![0];
    };
    const written: Txn[] = [];
    let log: EventLog | undefined;
    let now = BASE;
    let checked = 0;
    let compacted = 0;
    for (let round = 0; round < 150; round++) {
      now += Math.floor(random() * 10) * MINUTE;
      const horizon = now - RETENTION - source.maxWindowMs;
      const batch: Txn[] = [];
      for (let count = Math.floor(random() * 7); count > 0; count--) {
        // Mostly the last 20 minutes, out of order, on a 30 s grid (ties); now and then one from before the horizon.
        const ts = random() < 0.05 ? horizon - Math.floor(random() * 3 * HOUR) : now - Math.floor(random() * 40) * 30 * SECOND;
        batch.push({
          ts,
          country: random() < 0.4 ? null : pick([['US', 0.4], ['BR', 0.2], ['DE', 0.2], ['JP', 0.2]]),
          // atm and fuel rare: the event a filtered last or first reads is often long past the horizon.
          category: pick([['online', 0.5], ['grocery', 0.37], ['fuel', 0.08], ['atm', 0.05]]),
          amount: random() < 0.3 ? null : Math.round(random() * 10_000) / 100,
        });
      }
      written.push(...batch);
      const merged = mergeEventLog(log, columns, incomingOf(batch), horizon, 1_000_000, round + 1, source);
      // The next merge builds on either (the store's recent writes keep the merge's own log).
      log = round % 2 === 0 ? merged.log : EventLog.decode(merged.bytes);
      // Now and then time passes with nothing written, and the compaction sweep prunes the log at rest.
      if (random() < 0.25) {
        now += Math.floor(random() * 20) * MINUTE;
        const compaction = compactRecord(view, KEY, log.bytes, now, { retentionMs: RETENTION, maxVersions: 1_000, maxEvents: 1_000_000 });
        if (compaction.action === 'rewrite') {
          log = EventLog.decode(compaction.bytes);
          compacted++;
        } else expect(compaction.action).toBe('keep');
      }
      const nowHorizon = now - RETENTION - source.maxWindowMs;
      // Pruned, not kept whole: past the horizon, event 0, the newest event before it and one per lifetime aggregation at most.
      expect(log.length).toBeLessThanOrEqual(2 + LIFETIME + written.filter((event) => event.ts >= nowHorizon).length);
      const probes = [nowHorizon, nowHorizon + 1, now - RETENTION, now - RETENTION - 1, now, now + 30 * MINUTE];
      for (let index = 0; index < 12; index++) probes.push(nowHorizon + Math.floor(random() * (now + 20 * MINUTE - nowHorizon)));
      for (const event of written) if (event.ts >= nowHorizon && random() < 0.2) probes.push(event.ts, event.ts - 1);
      for (const at of probes) checked += check(log, written, at, now, `seed ${seed}, round ${round}`);
    }
    expect(checked).toBeGreaterThan(10_000);
    expect(compacted).toBeGreaterThan(0);
    expect(log!.length * 4).toBeLessThan(written.length);
  });

  it('keeps the atm event a filtered lifetime last reads, days after it and after newer events', () => {
    const DAY = 24 * HOUR;
    const txn = (day: number, category: string, country: string | null): Txn => ({ ts: BASE + day * DAY, category, country, amount: null });
    const written = [txn(0, 'online', 'US'), txn(1, 'atm', 'BR'), txn(2, 'online', 'US')];
    const first = mergeEventLog(undefined, columns, incomingOf(written), BASE, 1_000_000, 1, source).log;
    written.push(txn(10, 'online', null));
    const now = BASE + 10 * DAY;
    const log = mergeEventLog(first, columns, incomingOf(written.slice(3)), now - RETENTION - source.maxWindowMs, 1_000_000, 2, source).log;
    const results = evaluateAt(view, log, now - 5 * MINUTE)!.results;
    expect(results[view.featuresByName.get('last_atm_country')!.index]).toBe('BR');
    expect(results[view.featuresByName.get('last_country')!.index]).toBe('US');
    expect(check(log, written, now - 5 * MINUTE, now, 'example')).toBe(view.features.length);
  });

  it('never keeps more than maxEvents: event 0 stays, and the oldest pinned events go first', () => {
    // Minutes: e1 is the first country (and first atm-or-fuel one), e3 the last country (and last atm one), e4 the last online amount; e2 nothing's.
    const events: Txn[] = [
      { ts: BASE, category: 'online', country: null, amount: null },
      { ts: BASE + MINUTE, category: 'fuel', country: 'DE', amount: null },
      { ts: BASE + 2 * MINUTE, category: 'grocery', country: null, amount: null },
      { ts: BASE + 3 * MINUTE, category: 'atm', country: 'BR', amount: null },
      { ts: BASE + 4 * MINUTE, category: 'online', country: null, amount: 7 },
      { ts: BASE + 5 * MINUTE, category: 'grocery', country: null, amount: null },
      { ts: BASE + 100 * MINUTE, category: 'online', country: 'US', amount: 1 },
    ];
    const keptWith = (maxEvents: number): number[] =>
      [...mergeEventLog(undefined, columns, incomingOf(events), BASE + 50 * MINUTE, maxEvents, 1, source).log.ts].map((ts) => (ts - BASE) / MINUTE);
    expect(keptWith(100)).toEqual([0, 1, 3, 4, 5, 100]);
    expect(keptWith(5)).toEqual([0, 3, 4, 5, 100]);
    expect(keptWith(4)).toEqual([0, 4, 5, 100]);
    expect(keptWith(2)).toEqual([0, 100]);
    // Without pins (a view with no lifetime last or first), event 0 and the newest event before the horizon.
    expect([...mergeEventLog(undefined, columns, incomingOf(events), BASE + 50 * MINUTE, 100, 1).log.ts].map((ts) => (ts - BASE) / MINUTE)).toEqual([0, 5, 100]);
  });
});
