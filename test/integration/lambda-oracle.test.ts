/**
 * Lambda views end to end, against a brute-force point-in-time join over
 * the raw data: snapshot files imported through the CLI (a push view's
 * versions, a stream view's hourly tiles up to a cutoff), then pushes and
 * stream events through the running server — the stream carrying every
 * event, those the tiles already hold too — then GetHistoricalFeatures and
 * as_of online reads at thousands of (card, t), probes exactly at the
 * cutoff, on hour boundaries (the tile grid), at window and ttl edges.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileRegistry, type AggregationDef } from '../../src/config/registry.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { getHistoricalFeatures, rowsMessage, rowsOf } from '../support/historical.js';
import { importSnapshotFiles } from '../support/snapshot-cli.js';
import { startTestServer, type Json, type TestServer } from '../support/strata.js';
import { aggregateBrute, aggregationsAt, closeEnough, type OracleEvent } from '../support/window-oracle.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const scratch = mkdtempSync(join(tmpdir(), 'strata-lambda-'));
const REGISTRY_TEXT = `entities:
  card: { join_key: card_id }
feature_views:
  card_profile:
    entities: [card]
    ttl: 1d
    source: { type: push }
    batch: { audit: { min_rows: 1 } }
    features: { limit: double, segment: string }
  card_spend:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    batch: { tile: 1h }
    aggregations:
      n_1d:    { fn: count, window: 1d }
      sum_2d:  { fn: sum, field: amount, window: 2d }
      avg_1d:  { fn: avg, field: amount, window: 1d }
      min_3d:  { fn: min, field: amount, window: 3d, where: { category: [online, atm] } }
      n_30m:   { fn: count, window: 30m }
    derived:
      since_last: { fn: time_since_last, unit: m }
`;
const REGISTRY = join(scratch, 'registry.yaml');
writeFileSync(REGISTRY, REGISTRY_TEXT);
const registry = compileRegistry(REGISTRY_TEXT, REGISTRY);
const spend = registry.views.get('card_spend')!;
const spendColumns = (spend.source as { columns: readonly string[] }).columns;
const SPEND = ['n_1d', 'sum_2d', 'avg_1d', 'min_3d', 'n_30m', 'since_last'] as const;
const FEATURES = [...SPEND.map((name) => `card_spend:${name}`), 'card_profile:limit', 'card_profile:segment'];

const random = seededRandom(20261122);
const NOW = Date.now();
const GRID_NOW = NOW - (NOW % HOUR);
const BASE = GRID_NOW - 72 * HOUR;
/** Events up to here are in the tiles; the stream carries them too. */
const CUTOFF = GRID_NOW - 30 * HOUR;
const CARDS = Array.from({ length: 24 }, (_, index) => `c${String(index).padStart(2, '0')}`);

interface Txn extends OracleEvent {
  readonly card_id: string;
  readonly amount: number | null;
  readonly category: string;
}
interface ProfileVersion {
  readonly ts: number;
  /** Pushed versions are created when pushed, after every snapshot row. */
  readonly created: number;
  readonly limit: number | null;
  readonly segment: string;
}

const events: Txn[] = [];
for (let index = 0; index < 2_400; index++) {
  // A fifth exactly on the hour: the events a boundary bug counts twice or drops.
  const ts = random() < 0.2 ? BASE + Math.floor(random() * 71) * HOUR : BASE + Math.floor(random() * (NOW - MINUTE - BASE));
  events.push({ ts, card_id: CARDS[Math.floor(random() * CARDS.length)]!, amount: random() < 0.1 ? null : Math.round(random() * 40_000) / 100, category: ['online', 'atm', 'grocery'][Math.floor(random() * 3)]! });
}
events.sort((a, b) => a.ts - b.ts);

const profiles = new Map<string, ProfileVersion[]>(CARDS.map((card) => [card, []]));
const snapshotRows: Json[] = [];
const pushes: { card: string; version: ProfileVersion }[] = [];
for (const card of CARDS.slice(0, 20)) {
  const times = Array.from({ length: 3 }, () => BASE + Math.floor(random() * (NOW - HOUR - BASE)));
  for (const ts of times) {
    const version = { ts, created: BASE, limit: random() < 0.1 ? null : Math.round(random() * 1e6) / 100, segment: `s${Math.floor(random() * 5)}` };
    profiles.get(card)!.push(version);
    snapshotRows.push({ card_id: card, event_timestamp: ts, created_timestamp: BASE, limit: version.limit, segment: version.segment });
  }
  // One push at a snapshot row's own event time (a tie the push wins: created later), one at its own.
  for (const ts of [times[0]!, BASE + Math.floor(random() * (NOW - HOUR - BASE))]) {
    const version = { ts, created: Infinity, limit: Math.round(random() * 1e6) / 100, segment: `p${Math.floor(random() * 5)}` };
    profiles.get(card)!.push(version);
    pushes.push({ card, version });
  }
}

/** Per tile end ≤ cutoff and card: the tiled aggregations' partial results, by their definitions. */
function tileRows(): Json[] {
  const byTile = new Map<string, Txn[]>();
  for (const event of events) {
    if (event.ts > CUTOFF) continue;
    const key = `${event.card_id}|${Math.ceil(event.ts / HOUR) * HOUR}`;
    byTile.set(key, [...(byTile.get(key) ?? []), event]);
  }
  return [...byTile].map(([key, inTile]) => {
    const [card, end] = key.split('|');
    const row: Json = { card_id: card, event_timestamp: Number(end) };
    for (const feature of spend.features) {
      const compute = feature.compute as AggregationDef;
      if (compute.kind !== 'aggregation' || compute.tileSlots.length === 0) continue;
      if (compute.fn === 'avg') {
        row[`${feature.name}_sum`] = aggregateBrute({ ...compute, fn: 'sum' }, inTile, spendColumns);
        row[`${feature.name}_count`] = inTile.filter((event) => event.amount !== null).length;
      } else row[feature.name] = aggregateBrute(compute, inTile, spendColumns);
    }
    return row;
  });
}

interface Expected {
  readonly value: unknown;
  readonly status: string;
  /** For the push view: the event time of the version read. */
  readonly eventMs?: number;
}

/** The point-in-time join, directly: per feature of a card at t. */
function expected(card: string, t: number): Record<string, Expected> {
  const result: Record<string, Expected> = {};
  const visible = events.filter((event) => event.card_id === card && event.ts <= t);
  if (visible.length === 0) {
    for (const name of SPEND) result[name] = { value: null, status: 'NOT_FOUND' };
  } else {
    const values = aggregationsAt(spend, visible, t, { cutoffMs: CUTOFF, tileMs: HOUR });
    for (const feature of spend.features) {
      if (feature.compute?.kind !== 'aggregation') continue;
      const value = values[feature.index];
      result[feature.name] = { value, status: value === null ? 'NULL_VALUE' : 'PRESENT' };
    }
    result.since_last = { value: (t - visible[visible.length - 1]!.ts) / MINUTE, status: 'PRESENT' };
  }
  let best: ProfileVersion | undefined;
  for (const version of profiles.get(card)!) {
    if (version.ts > t) continue;
    if (best === undefined || version.ts > best.ts || (version.ts === best.ts && version.created > best.created)) best = version;
  }
  for (const name of ['limit', 'segment'] as const) {
    if (best === undefined) result[name] = { value: null, status: 'NOT_FOUND' };
    else if (t - best.ts > DAY) result[name] = { value: null, status: 'OUTSIDE_MAX_AGE', eventMs: best.ts };
    else result[name] = { value: best[name], status: best[name] === null ? 'NULL_VALUE' : 'PRESENT', eventMs: best.ts };
  }
  return result;
}

/** Probe times per card: the cutoff and the tile grid around it, window and ttl edges, event times, random. */
function probesOf(card: string): number[] {
  const times = [CUTOFF - 1, CUTOFF, CUTOFF + 1, BASE - 1, BASE, NOW];
  for (let hour = -3; hour <= 3; hour++) times.push(CUTOFF + hour * HOUR - 1, CUTOFF + hour * HOUR + 1);
  for (const version of profiles.get(card)!) times.push(version.ts - 1, version.ts, version.ts + DAY, version.ts + DAY + 1);
  const own = events.filter((event) => event.card_id === card);
  for (const event of own.filter((_, index) => index % 8 === 0)) times.push(event.ts, event.ts - 1, event.ts + DAY, event.ts + DAY - 1, event.ts + 30 * MINUTE);
  for (let index = 0; index < 12; index++) times.push(BASE + Math.floor(random() * (NOW - BASE)));
  return times.filter((t) => t <= NOW);
}

function compare(card: string, t: number, feature: string, actual: { value: unknown; status: string; eventMs: number }): void {
  const want = expected(card, t)[feature]!;
  const value = typeof want.value === 'number' && typeof actual.value === 'string' ? Number(actual.value) : actual.value;
  const where = `${card} at cutoff ${(t - CUTOFF) / HOUR} h: ${feature}`;
  expect(actual.status, where).toBe(want.status);
  if (want.status === 'PRESENT' && !closeEnough(value, want.value)) expect(value, where).toBe(want.value);
  if (want.eventMs !== undefined) expect(actual.eventMs, where).toBe(want.eventMs);
}

let strata: TestServer;

beforeAll(async () => {
  const dataDir = join(scratch, 'data');
  const importFile = (view: string, rows: readonly Json[]): void => {
    const file = join(scratch, `${view}.ndjson`);
    writeFileSync(file, rows.map((row) => JSON.stringify(row)).join('\n') + '\n');
    const { status, report, stderr } = importSnapshotFiles({ registry: REGISTRY, dataDir, view, files: [file] });
    expect(status, stderr).toBe(0);
    expect(report!.published).toBe(true);
    if (view === 'card_spend') expect(report!.cutoff).toBe(new Date(Math.max(...rows.map((row) => row.event_timestamp as number))).toISOString());
  };
  importFile('card_profile', snapshotRows);
  importFile('card_spend', tileRows());
  strata = await startTestServer({ registry: REGISTRY }, { dataDir, keepData: true });
  for (let from = 0; from < events.length; from += 500) {
    const { status, json } = await strata.http('/push-events', { topic: 'txn', events: events.slice(from, from + 500) });
    expect(status, JSON.stringify(json)).toBe(200);
  }
  for (const { card, version } of pushes) {
    const { status, json } = await strata.http('/push', { push_source_name: 'card_profile', df: { card_id: [card], event_timestamp: [version.ts], limit: [version.limit], segment: [version.segment] } });
    expect(status, JSON.stringify(json)).toBe(200);
  }
}, 120_000);

afterAll(async () => {
  await strata?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('lambda views against a brute-force point-in-time join', () => {
  it('GetHistoricalFeatures: every (card, t) probe, zero mismatches', async () => {
    const cards: string[] = [];
    const times: number[] = [];
    for (const card of CARDS) for (const t of probesOf(card)) {
      cards.push(card);
      times.push(t);
    }
    expect(cards.length).toBeGreaterThan(2_000);
    const messages: Json[] = [];
    for (let from = 0; from < cards.length; from += 700) messages.push(rowsMessage('card_id', cards.slice(from, from + 700), times.slice(from, from + 700)));
    messages[0] = { ...messages[0], features: { refs: FEATURES } };
    const rows = rowsOf(await getHistoricalFeatures(strata.grpc, messages), ['card_id']);
    expect(rows).toHaveLength(cards.length);
    rows.forEach((row, index) => {
      expect(row.keys.card_id).toBe(cards[index]);
      for (const [name, actual] of Object.entries(row.features)) compare(cards[index]!, times[index]!, name, actual);
    });
  }, 120_000);

  it('as_of online reads over HTTP agree, at the cutoff, around it and elsewhere', async () => {
    const instants = [CUTOFF, CUTOFF - 1, CUTOFF + 1, CUTOFF - HOUR, CUTOFF + HOUR, CUTOFF + HOUR - 1, BASE + DAY, NOW - 1];
    for (let index = 0; index < 12; index++) instants.push(BASE + Math.floor(random() * (NOW - BASE)));
    for (const t of instants) {
      const { status, json } = await strata.http('/get-online-features', { features: FEATURES, entities: { card_id: CARDS }, as_of: t });
      expect(status).toBe(200);
      const names = (json.metadata as { feature_names: string[] }).feature_names;
      const results = json.results as { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
      names.slice(1).forEach((name, column) => {
        const result = results[column + 1]!;
        CARDS.forEach((card, row) => compare(card, t, name, { value: result.values[row], status: result.statuses[row]!, eventMs: Date.parse(result.event_timestamps[row]!) }));
      });
      expect(json.degraded_views).toBeUndefined();
    }
  });
});
