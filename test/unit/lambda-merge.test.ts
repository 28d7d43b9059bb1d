import { describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { compileRegistry, type AggregationDef } from '../../src/config/registry.js';
import { recordAt } from '../../src/serving/lambda-merge.js';
import { EventLog, mergeEventLog, type IncomingEvent } from '../../src/storage/event-log.js';
import type { GenerationSource } from '../../src/storage/feature-store.js';
import { encodeRecord, FeatureRecord, type Version } from '../../src/storage/record.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { encodeTypedValue, NULL_VALUE } from '../../src/values/value-codec.js';
import { aggregateBrute, aggregationsAt, closeEnough, type OracleEvent } from '../support/window-oracle.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const registry = compileRegistry(
  `
entities:
  card: { join_key: card_id }
feature_views:
  card_spend:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    batch: { tile: 1h }
    aggregations:
      n_1d:        { fn: count, window: 1d }
      sum_2d:      { fn: sum, field: amount, window: 2d }
      avg_1d:      { fn: avg, field: amount, window: 1d }
      min_30d:     { fn: min, field: amount, window: 30d }
      online_max:  { fn: max, field: amount, window: 1h, where: { category: [online] } }
      n_5m:        { fn: count, window: 5m }
      last_country: { fn: last, field: country }
    derived:
      since_last:  { fn: time_since_last, unit: m }
  card_profile:
    entities: [card]
    ttl: 0
    source: { type: push }
    batch: {}
    features: { limit: double }
`,
  'reg.yaml',
);

describe('registry: batch halves of stream and push views', () => {
  it('tiles every count, sum, avg, min and max whose window spans a tile, and nothing else', () => {
    const view = registry.views.get('card_spend')!;
    expect(view.batch?.tileMs).toBe(HOUR);
    expect(view.batch?.storedColumns.map((column) => `${column.name}:${column.type}`)).toEqual([
      'n_1d:int64', 'sum_2d:double', 'avg_1d_sum:double', 'avg_1d_count:int64', 'min_30d:double', 'online_max:double',
    ]);
    const slots = (name: string): readonly number[] => (view.featuresByName.get(name)!.compute as AggregationDef).tileSlots;
    expect(slots('avg_1d')).toEqual([2, 3]);
    expect(slots('n_5m')).toEqual([]);
    expect(slots('last_country')).toEqual([]);
    // The stream keeps what the stream-only windows and one tile need, not the 30 days tiles serve.
    expect(view.source.type === 'stream' && view.source.maxWindowMs).toBe(HOUR);
    expect(registry.views.get('card_profile')!.batch?.storedColumns.map((column) => column.name)).toEqual(['limit']);
  });

  it.each([
    ['a window past 7 days without tiles', '    batch: { tile: 1h }\n', '', 'feature_views.v.aggregations.n_30d.window: must be a duration from 1m to 7d'],
    ['a tile that does not divide a day', 'batch: { tile: 1h }', 'batch: { tile: 7h }', 'feature_views.v.batch.tile: must be a duration from 1m to 1d that divides a day'],
    ['a batch half on a batch view', '', '', ''],
  ])('rejects %s', (_case, from, to, message) => {
    if (message === '') {
      expect(() => compileRegistry('entities: { card: { join_key: card_id } }\nfeature_views:\n  v:\n    entities: [card]\n    ttl: 0\n    source: { type: batch }\n    batch: {}\n    features: { x: double }\n', 'reg.yaml')).toThrow(
        'feature_views.v.batch: unknown key',
      );
      return;
    }
    const text = `entities: { card: { join_key: card_id } }
feature_views:
  v:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: t, format: json, key: card_id }
    batch: { tile: 1h }
    aggregations:
      n_30d: { fn: count, window: 30d }
`.replace(from, to);
    expect(() => compileRegistry(text, 'reg.yaml')).toThrow(message);
  });
});

interface Txn extends OracleEvent {
  readonly amount: number | null;
  readonly country: string;
  readonly category: string;
}

/** Partial aggregates per tile (tile end → one version), written the way an offline pipeline would: per tile, by the definitions. */
function tilesOf(view: ReturnType<typeof registry.views.get> & object, events: readonly Txn[], cutoff: number): FeatureRecord {
  const columns = (view.source as { columns: readonly string[] }).columns;
  const byTile = new Map<number, Txn[]>();
  for (const event of events) {
    if (event.ts > cutoff) continue;
    const end = Math.ceil(event.ts / HOUR) * HOUR;
    byTile.set(end, [...(byTile.get(end) ?? []), event]);
  }
  const versions: Version[] = [...byTile].map(([end, inTile]) => {
    const slots: Uint8Array[] = [];
    for (const feature of view.features) {
      const compute = feature.compute;
      if (compute?.kind !== 'aggregation' || compute.tileSlots.length === 0) continue;
      const encode = (value: unknown, type: 'int64' | 'double'): Uint8Array => (value === null ? NULL_VALUE : encodeTypedValue({ type, value: value as number }));
      if (compute.fn === 'avg') {
        slots.push(encode(aggregateBrute({ ...compute, fn: 'sum' }, inTile, columns), 'double'));
        slots.push(encode(inTile.filter((event) => event.amount !== null).length, 'int64'));
      } else {
        slots.push(encode(aggregateBrute(compute, inTile, columns), compute.fn === 'count' ? 'int64' : 'double'));
      }
    }
    return { eventTs: end, createdTs: cutoff, slots };
  });
  versions.sort((a, b) => b.eventTs - a.eventTs);
  return FeatureRecord.decode(encodeRecord(view.batch!.fingerprint, 1, view.batch!.storedColumns.length, versions));
}

describe('stream windows over snapshot tiles, against a brute-force oracle', () => {
  const view = registry.views.get('card_spend')!;
  const columns = (view.source as { columns: readonly string[] }).columns;

  /** The documented semantics, directly: events in (S, T], S = T − window, snapped back to the tile grid when the window reaches past the tile boundary. */
  function expected(events: readonly Txn[], cutoff: number, at: number): unknown[] | undefined {
    const visible = events.filter((event) => event.ts <= at);
    if (visible.length === 0) return undefined;
    const results = aggregationsAt(view, visible, at, { cutoffMs: cutoff, tileMs: HOUR });
    const newest = Math.max(...visible.map((event) => event.ts));
    results[view.featuresByName.get('since_last')!.index] = (at - newest) / MINUTE;
    return results;
  }

  it.each([1, 2, 3, 4])('seed %i: tiles up to the cutoff plus the stream after it equal the definition, at every boundary', (seed) => {
    const random = seededRandom(seed);
    const base = 1_700_000_000_000 - (1_700_000_000_000 % DAY);
    const events: Txn[] = [];
    for (let index = 0; index < 600; index++) {
      // A quarter exactly on the hour: the events a boundary bug counts twice or drops.
      const ts = random() < 0.25 ? base + Math.floor(random() * 96) * HOUR : base + Math.floor(random() * 4 * DAY);
      events.push({ ts, amount: random() < 0.1 ? null : Math.round(random() * 50_000) / 100, country: ['US', 'GB', 'DE'][Math.floor(random() * 3)]!, category: ['online', 'atm', 'grocery'][Math.floor(random() * 3)]! });
    }
    events.sort((a, b) => a.ts - b.ts);
    const cutoff = base + (40 + Math.floor(random() * 20)) * HOUR;
    const incoming: IncomingEvent[] = events.map((event, offset) => ({ ts: event.ts, values: columns.map((column) => (event[column] ?? null) as string | number | null), origin: { partition: 0, offset } }));
    // The stream holds every event, those before the cutoff too: tiles and stream must not both count them.
    const log = EventLog.decode(mergeEventLog(undefined, columns, incoming, 0, 100_000, 1).bytes);
    const tiles = tilesOf(view, events, cutoff);

    const probes = [cutoff, cutoff - 1, cutoff + 1, base - 1, base, base + 4 * DAY + 1];
    for (let hour = 0; hour <= 100; hour++) probes.push(base + hour * HOUR, base + hour * HOUR + 1, base + hour * HOUR - 1);
    for (const event of events.slice(0, 150)) probes.push(event.ts, event.ts - 1, event.ts + DAY, event.ts + DAY - 1);
    for (let index = 0; index < 300; index++) probes.push(base + Math.floor(random() * 5 * DAY));
    let checked = 0;
    for (const at of probes) {
      const want = expected(events, cutoff, at);
      const got = evaluateAt(view, log, at, { record: tiles, cutoffMs: cutoff })?.results;
      if (want === undefined) {
        expect(got).toBeUndefined();
        continue;
      }
      for (const feature of view.features) {
        if (!closeEnough(got![feature.index], want[feature.index])) {
          throw new Error(`seed ${seed}, T = base + ${(at - base) / HOUR} h, cutoff base + ${(cutoff - base) / HOUR} h: ${feature.name} = ${String(got![feature.index])}, expected ${String(want[feature.index])}`);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5_000);
  });

  it('an entity known only from tiles reads them, its ttl counting from its newest tile end', () => {
    const at = 1_700_000_000_000 - (1_700_000_000_000 % HOUR) + 10 * HOUR + 5;
    const events: Txn[] = [{ ts: at - 5 * HOUR - 30 * MINUTE, amount: 10, country: 'US', category: 'online' }];
    const tiles = tilesOf(view, events, at - 5);
    const evaluated = evaluateAt(view, undefined, at, { record: tiles, cutoffMs: at - 5 })!;
    expect(evaluated.results[view.featuresByName.get('n_1d')!.index]).toBe(1);
    expect(evaluated.results[view.featuresByName.get('n_5m')!.index]).toBe(0);
    expect(evaluated.newestTs).toBe(at - 5 * HOUR - 5);
    // Tiles laid out for other aggregations (the registry changed since the import) are not read.
    const stale = FeatureRecord.decode(encodeRecord(view.batch!.fingerprint + 1, 1, tiles.featureCount, tiles.versions()));
    expect(evaluateAt(view, undefined, at, { record: stale, cutoffMs: at - 5 })).toBeUndefined();
  });
});

describe('push views with a batch half: the fresher version wins', () => {
  const view = registry.views.get('card_profile')!;
  const generations: GenerationSource = { publishedGeneration: () => 1, snapshotCutoff: () => 0, onPublish: () => undefined };
  const record = (versions: [eventTs: number, createdTs: number, limit: number][]): FeatureRecord =>
    FeatureRecord.decode(encodeRecord(view.schemaFingerprint, 1, 1, versions.map(([eventTs, createdTs, limit]) => ({ eventTs, createdTs, slots: [encodeTypedValue({ type: 'double', value: limit })] }))));
  const limitAt = (pushed: FeatureRecord | undefined, snapshot: FeatureRecord | undefined, at: number): number | undefined => {
    const picked = recordAt(view, [pushed, snapshot], 0, at, generations);
    const version = picked?.versionAt(at) ?? -1;
    return version < 0 ? undefined : new DataView(picked!.value(version, 0)!.buffer, picked!.value(version, 0)!.byteOffset + 1).getFloat64(0, true);
  };

  it('by event time visible at T, ties to the newer created time, then to the pushed version', () => {
    const pushed = record([[300, 1_000, 3], [100, 1_000, 1]]);
    const snapshot = record([[300, 2_000, 30], [200, 500, 20], [50, 500, 5]]);
    expect(limitAt(pushed, snapshot, 49)).toBeUndefined();
    expect(limitAt(pushed, snapshot, 60)).toBe(5);
    expect(limitAt(pushed, snapshot, 150)).toBe(1);
    expect(limitAt(pushed, snapshot, 250)).toBe(20);
    expect(limitAt(pushed, snapshot, 300)).toBe(30);
    expect(limitAt(pushed, record([[300, 1_000, 31]]), 300)).toBe(3);
    expect(limitAt(undefined, snapshot, 150)).toBe(5);
    expect(limitAt(pushed, undefined, 150)).toBe(1);
  });
});

describe('a record of the other kind than its view (the registry changed the view\'s source type)', () => {
  const generations: GenerationSource = { publishedGeneration: () => 0, snapshotCutoff: () => 0, onPublish: () => undefined };
  const streamed = compileRegistry(
    'entities: { card: { join_key: card_id } }\nfeature_views:\n  v:\n    entities: [card]\n    ttl: 0\n    source: { type: stream, topic: t, format: json, key: card_id }\n    aggregations: { n_1h: { fn: count, window: 1h } }\n',
    'reg.yaml',
  ).views.get('v')!;
  const pushed = compileRegistry('entities: { card: { join_key: card_id } }\nfeature_views:\n  v:\n    entities: [card]\n    ttl: 0\n    source: { type: push }\n    features: { limit: double }\n', 'reg.yaml').views.get('v')!;
  const versioned = FeatureRecord.decode(encodeRecord(pushed.schemaFingerprint, 1, 1, [{ eventTs: HOUR, createdTs: HOUR, slots: [encodeTypedValue({ type: 'double', value: 1 })] }]));
  const events = mergeEventLog(undefined, [], [{ ts: HOUR, values: [], origin: undefined }], 0, 100, 1).log;

  it('reads as never written', () => {
    expect(recordAt(streamed, [versioned], 0, 2 * HOUR, generations)).toBeUndefined();
    expect(recordAt(pushed, [events], 0, 2 * HOUR, generations)).toBeUndefined();
  });

  it('while a record of its own kind reads as before', () => {
    expect(recordAt(pushed, [versioned], 0, 2 * HOUR, generations)).toBe(versioned);
    expect(recordAt(streamed, [events], 0, 2 * HOUR, generations)).toBeInstanceOf(FeatureRecord);
  });
});
