import { fileURLToPath } from 'node:url';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { columnsOf, startTestServer, timestamp, type Json, type TestServer } from '../support/strata.js';

const STREAM_REGISTRY = fileURLToPath(new URL('../fixtures/stream-registry.yaml', import.meta.url));
const S = 1_000;
const MIN = 60_000;
const TOPIC = 'txn.events';
const FEATURES = ['txn_count_5m', 'amount_sum_1h', 'amount_avg_5m', 'unique_countries_1h', 'high_risk_count_5m', 'last_country', 'high_risk_ratio', 'time_since_last_txn_min'] as const;
const INT64_FEATURES: ReadonlySet<string> = new Set(['txn_count_5m', 'unique_countries_1h', 'high_risk_count_5m']);
const REFS = FEATURES.map((feature) => `card_txn:${feature}`);
const EPOCH_ISO = '1970-01-01T00:00:00.000Z';

type Feature = (typeof FEATURES)[number];
/** One entity row of a read: per feature, the value (int64s as numbers), status and event time in ms. */
type Row = Record<Feature, { value: unknown; status: string; eventMs: number }>;

/** A txn.events event as the v2 schema wants it (currency has no field default, so it is required). */
function txn(card: string, ts: number, amount: unknown, country: string, category: string, extra: Json = {}): Json {
  return { txn_id: `t-${card}-${ts}`, card_id: card, user_id: 'u-1', device_id: 'd-1', amount, currency: 'EUR', merchant_category: category, geo_country: country, ip_address: '192.0.2.1', timestamp: ts, ...extra };
}

/** A JS value as protobufjs' fromObject takes a google.protobuf.Value (its well-known types keep camelCase names). */
function toValue(value: unknown): Json {
  if (value === null || value === undefined) return { nullValue: 0 };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  return { structValue: toStruct(value as Json) };
}

function toStruct(object: Json): Json {
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, toValue(value)])) };
}

async function grpcError(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('expected the call to fail');
}

function expectGrpcError(error: ServiceError, code: GrpcStatus, strataCode: string, field?: string): void {
  expect(error.code).toBe(code);
  expect(error.metadata.get('strata-error-code')).toEqual([strataCode]);
  expect(error.metadata.get('strata-error-field')).toEqual(field === undefined ? [] : [field]);
}

function expectHttpError(response: { status: number; json: Json }, status: number, code: string, field?: string): void {
  expect(response.status).toBe(status);
  const error = response.json.error as { code: string; message: string; field?: string };
  expect(error.code).toBe(code);
  expect(error.field).toBe(field);
}

function clients(strata: () => TestServer) {
  const grpcPush = async (topic: unknown, events: Json[]): Promise<{ applied: number; late_indexes: number[] }> =>
    (await strata().grpc.call('PushEvents', 'PushEventsRequest', 'PushEventsResponse', { topic, events: events.map(toStruct) })) as { applied: number; late_indexes: number[] };
  const httpPush = (body: unknown) => strata().http('/push-events', body);

  const grpcRead = async (cards: string[], asOfMs?: number): Promise<Row[]> => {
    const response = await strata().grpc.getOnlineFeatures({
      features: { refs: REFS },
      entities: { card_id: { values: cards.map((card) => ({ string_val: card })) } },
      ...(asOfMs === undefined ? {} : { as_of: timestamp(asOfMs) }),
    });
    const columns = columnsOf(response);
    expect(columns.card_id!.values).toEqual(cards);
    return cards.map((_, row) =>
      Object.fromEntries(
        FEATURES.map((feature) => {
          const column = columns[feature]!;
          const value = column.values[row];
          // int64 values arrive as int64_val (decimal strings with longs: String).
          if (INT64_FEATURES.has(feature) && value !== null) expect(typeof value).toBe('string');
          return [feature, { value: INT64_FEATURES.has(feature) && value !== null ? Number(value) : value, status: column.statuses[row]!, eventMs: column.eventMs[row]! }];
        }),
      ) as Row,
    );
  };

  const httpRead = async (cards: string[], asOfMs?: number): Promise<Row[]> => {
    const response = await strata().http('/get-online-features', { features: REFS, entities: { card_id: cards }, ...(asOfMs === undefined ? {} : { as_of: new Date(asOfMs).toISOString() }) });
    expect(response.status).toBe(200);
    const names = (response.json.metadata as { feature_names: string[] }).feature_names;
    expect(names).toEqual(['card_id', ...FEATURES]);
    const results = response.json.results as { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
    expect(results[0]!.values).toEqual(cards);
    return cards.map((_, row) =>
      Object.fromEntries(
        FEATURES.map((feature, index) => {
          const result = results[index + 1]!;
          return [feature, { value: result.values[row], status: result.statuses[row]!, eventMs: Date.parse(result.event_timestamps[row]!) }];
        }),
      ) as Row,
    );
  };

  /** Both protocols, which must agree; the gRPC rows are returned. */
  const read = async (cards: string[], asOfMs?: number): Promise<Row[]> => {
    const [viaGrpc, viaHttp] = await Promise.all([grpcRead(cards, asOfMs), httpRead(cards, asOfMs)]);
    if (asOfMs !== undefined) expect(viaHttp).toEqual(viaGrpc);
    else {
      // Read at two slightly different nows: all but the time since the last event must agree.
      const strip = (rows: Row[]) => rows.map((row) => ({ ...row, time_since_last_txn_min: row.time_since_last_txn_min.status }));
      expect(strip(viaHttp)).toEqual(strip(viaGrpc));
    }
    return viaGrpc;
  };

  return { grpcPush, httpPush, grpcRead, httpRead, read };
}

const values = (row: Row): Record<Feature, unknown> => Object.fromEntries(FEATURES.map((feature) => [feature, row[feature].value])) as Record<Feature, unknown>;
const statuses = (row: Row): Record<Feature, string> => Object.fromEntries(FEATURES.map((feature) => [feature, row[feature].status])) as Record<Feature, string>;
const allPresent = Object.fromEntries(FEATURES.map((feature) => [feature, 'PRESENT'])) as Record<Feature, string>;

describe('PushEvents feeds stream views, read back exactly at now and as of the past', () => {
  let strata: TestServer;
  const { grpcPush, httpPush, read } = clients(() => strata);
  const now = Date.now();
  // Card a: one old event and three within 5 minutes; c: events ageing out of the 5m window; d: one event 30 minutes ago; b: pushed over gRPC.
  const a1 = txn('a', now - 50 * MIN, 100, 'DE', 'grocery');
  const d1 = txn('d', now - 30 * MIN, 5, 'JP', 'travel');
  const c1 = txn('c', now - 7 * MIN, 10, 'US', 'online');
  const c2 = txn('c', now - 6 * MIN, 10, 'US', 'online');
  const c3 = txn('c', now - 4.5 * MIN, 10, 'CA', 'grocery');
  const a2 = txn('a', now - 4 * MIN, 20, 'FR', 'online');
  const a3 = txn('a', now - 3 * MIN, 30.5, 'FR', 'grocery');
  const a4 = txn('a', now - 1 * MIN, 50, 'SE', 'atm');
  const b1 = txn('b', now - 45 * S, 75, 'GB', 'online');
  const b2 = txn('b', now - 30 * S, 25, 'GB', 'electronics');

  beforeAll(async () => {
    strata = await startTestServer({ registry: STREAM_REGISTRY });
    // One topic-wide watermark: each call's events in event-time order, the gRPC call's after the HTTP call's.
    const pushed = await httpPush({ topic: TOPIC, events: [a1, d1, c1, c2, c3, a2, a3, a4] });
    expect(pushed).toMatchObject({ status: 200, json: { applied: 8, late_indexes: [] } });
    expect(await grpcPush(TOPIC, [b1, b2])).toEqual({ applied: 2, late_indexes: [] });
  });
  afterAll(async () => {
    await strata?.stop();
  });

  it('computes every window aggregation and derived feature at now', async () => {
    const [a, b] = await read(['a', 'b']);
    expect(values(a!)).toMatchObject({
      txn_count_5m: 3,
      amount_sum_1h: 200.5,
      amount_avg_5m: 33.5,
      unique_countries_1h: 3,
      high_risk_count_5m: 2,
      last_country: 'SE',
      high_risk_ratio: 2 / 3,
    });
    expect(statuses(a!)).toEqual(allPresent);
    // The view's event time is the entity's newest event, for every feature.
    for (const feature of FEATURES) expect(a![feature].eventMs).toBe(now - MIN);
    const sinceA = a!.time_since_last_txn_min.value as number;
    expect(sinceA).toBeGreaterThanOrEqual(1);
    expect(sinceA).toBeLessThan(1.5);

    expect(values(b!)).toMatchObject({ txn_count_5m: 2, amount_sum_1h: 100, amount_avg_5m: 50, unique_countries_1h: 1, high_risk_count_5m: 1, last_country: 'GB', high_risk_ratio: 0.5 });
    expect(statuses(b!)).toEqual(allPresent);
    for (const feature of FEATURES) expect(b![feature].eventMs).toBe(now - 30 * S);
  });

  it('reads as of a past time: fewer events, and exact time since the last one', async () => {
    const [a] = await read(['a'], now - 3.5 * MIN);
    expect(values(a!)).toEqual({
      txn_count_5m: 1,
      amount_sum_1h: 120,
      amount_avg_5m: 20,
      unique_countries_1h: 2,
      high_risk_count_5m: 1,
      last_country: 'FR',
      high_risk_ratio: 1,
      time_since_last_txn_min: 0.5,
    });
    expect(statuses(a!)).toEqual(allPresent);
    for (const feature of FEATURES) expect(a![feature].eventMs).toBe(now - 4 * MIN);
    // Before a's first event: nothing at all.
    const [early] = await read(['a'], now - 51 * MIN);
    for (const feature of FEATURES) expect(early![feature]).toEqual({ value: null, status: 'NOT_FOUND', eventMs: 0 });
  });

  it('lets counts fall as events age out of the window, with no new event', async () => {
    const [at55] = await read(['c'], now - 5.5 * MIN);
    expect(values(at55!)).toEqual({
      txn_count_5m: 2,
      amount_sum_1h: 20,
      amount_avg_5m: 10,
      unique_countries_1h: 1,
      high_risk_count_5m: 2,
      last_country: 'US',
      high_risk_ratio: 1,
      time_since_last_txn_min: 0.5,
    });
    const [at4] = await read(['c'], now - 4 * MIN);
    expect(values(at4!)).toEqual({
      txn_count_5m: 3,
      amount_sum_1h: 30,
      amount_avg_5m: 10,
      unique_countries_1h: 2,
      high_risk_count_5m: 2,
      last_country: 'CA',
      high_risk_ratio: 2 / 3,
      time_since_last_txn_min: 0.5,
    });
    expect(at4!.txn_count_5m.eventMs).toBe(now - 4.5 * MIN);
    // Windows are (T − 5m, T]: an event exactly 5m old is out, one exactly at T is in.
    expect((await read(['c'], now - 2 * MIN))[0]!.txn_count_5m.value).toBe(2);
    expect((await read(['c'], now - 2 * MIN - 1))[0]!.txn_count_5m.value).toBe(3);
    expect((await read(['c'], now - 6 * MIN))[0]!.txn_count_5m.value).toBe(2);
    expect((await read(['c'], now - 6 * MIN - 1))[0]!.txn_count_5m.value).toBe(1);
    // c's last event is at now − 4.5m: by now, c1 and c2 (−7m, −6m) have left the 5m window.
    const [atNow] = await read(['c']);
    expect(values(atNow!)).toMatchObject({ txn_count_5m: 1, amount_sum_1h: 30, amount_avg_5m: 10, unique_countries_1h: 2, high_risk_count_5m: 0, last_country: 'CA', high_risk_ratio: 0 });
    expect(atNow!.txn_count_5m.eventMs).toBe(now - 4.5 * MIN);
    expect(statuses(atNow!)).toEqual(allPresent);
  });

  it('answers an entity with only older events with PRESENT zero counts and NULL_VALUE averages, and an unseen one with NOT_FOUND', async () => {
    const [d, nobody] = await read(['d', 'nobody']);
    expect(values(d!)).toMatchObject({ txn_count_5m: 0, amount_sum_1h: 5, amount_avg_5m: null, unique_countries_1h: 1, high_risk_count_5m: 0, last_country: 'JP', high_risk_ratio: null });
    expect(statuses(d!)).toEqual({ ...allPresent, amount_avg_5m: 'NULL_VALUE', high_risk_ratio: 'NULL_VALUE' });
    for (const feature of FEATURES) expect(d![feature].eventMs).toBe(now - 30 * MIN);
    const since = d!.time_since_last_txn_min.value as number;
    expect(since).toBeGreaterThanOrEqual(30);
    expect(since).toBeLessThan(30.5);
    for (const feature of FEATURES) expect(nobody![feature]).toEqual({ value: null, status: 'NOT_FOUND', eventMs: 0 });
  });

  it('serves stream and push views in one read, and formats event times as the push path does', async () => {
    await strata.http('/push', { push_source_name: 'card_profile', df: { card_id: ['a'], event_timestamp: [now - 2 * MIN], credit_limit: [900] } });
    const response = await strata.http('/get-online-features', { features: ['card_profile:credit_limit', 'card_txn:txn_count_5m'], entities: { card_id: ['a', 'nobody'] }, as_of: now - 3.5 * MIN });
    expect(response.json.results).toEqual([
      { values: ['a', 'nobody'], statuses: ['PRESENT', 'PRESENT'], event_timestamps: [EPOCH_ISO, EPOCH_ISO] },
      { values: [null, null], statuses: ['NOT_FOUND', 'NOT_FOUND'], event_timestamps: [EPOCH_ISO, EPOCH_ISO] },
      { values: [1, null], statuses: ['PRESENT', 'NOT_FOUND'], event_timestamps: [new Date(now - 4 * MIN).toISOString(), EPOCH_ISO] },
    ]);
    const later = await strata.http('/get-online-features', { features: ['card_profile:credit_limit', 'card_txn:txn_count_5m'], entities: { card_id: ['a'] } });
    expect((later.json.results as { values: unknown[] }[]).map((result) => result.values[0])).toEqual(['a', 900, 3]);
  });

  it('lists the stream view with its typed features', async () => {
    const { json } = await strata.http('/feature-views');
    const view = (json.feature_views as { name: string; source_type: string; features: { name: string; type: string }[] }[]).find((candidate) => candidate.name === 'card_txn')!;
    expect(view.source_type).toBe('stream');
    expect(view.features.map((feature) => `${feature.name}:${feature.type}`)).toEqual([
      'txn_count_5m:int64',
      'amount_sum_1h:double',
      'amount_avg_5m:double',
      'unique_countries_1h:int64',
      'high_risk_count_5m:int64',
      'last_country:string',
      'high_risk_ratio:double',
      'time_since_last_txn_min:double',
    ]);
  });
});

describe('a window count falls as wall-clock time passes', () => {
  let strata: TestServer;
  const { grpcPush, grpcRead } = clients(() => strata);
  beforeAll(async () => {
    strata = await startTestServer({ registry: STREAM_REGISTRY });
  });
  afterAll(async () => {
    await strata?.stop();
  });

  it('counts an event 4m57s old, then no longer once it is over 5m old (cached or not)', async () => {
    const pushedAt = Date.now();
    expect(await grpcPush(TOPIC, [txn('w', pushedAt - 5 * MIN + 3 * S, 40, 'NO', 'online')])).toEqual({ applied: 1, late_indexes: [] });
    const [before] = await grpcRead(['w']);
    expect(Date.now() - pushedAt).toBeLessThan(3 * S);
    expect(values(before!)).toMatchObject({ txn_count_5m: 1, amount_sum_1h: 40, amount_avg_5m: 40, high_risk_count_5m: 1, high_risk_ratio: 1 });
    await new Promise((resolve) => setTimeout(resolve, pushedAt + 3.5 * S - Date.now()));
    const [after] = await grpcRead(['w']);
    expect(values(after!)).toMatchObject({ txn_count_5m: 0, amount_sum_1h: 40, amount_avg_5m: null, high_risk_count_5m: 0, high_risk_ratio: null, last_country: 'NO' });
    expect(after!.txn_count_5m).toEqual({ value: 0, status: 'PRESENT', eventMs: pushedAt - 5 * MIN + 3 * S });
    // A new event shows at once, though the entity was just read (and so cached).
    expect(await grpcPush(TOPIC, [txn('w', Date.now(), 2, 'DK', 'grocery')])).toEqual({ applied: 1, late_indexes: [] });
    const [fresh] = await grpcRead(['w']);
    expect(values(fresh!)).toMatchObject({ txn_count_5m: 1, amount_sum_1h: 42, amount_avg_5m: 2, unique_countries_1h: 2, high_risk_count_5m: 0, high_risk_ratio: 0, last_country: 'DK' });
  });
});

describe('pushed events are durable and serialised', () => {
  it('applies concurrent calls for one entity without losing any, and still has them after a restart', async () => {
    const first = await startTestServer({ registry: STREAM_REGISTRY }, { keepData: true });
    let second: TestServer | undefined;
    let firstStopped = false;
    try {
      const now = Date.now();
      const { grpcPush, httpPush, read } = clients(() => first);
      // Event times 100 ms apart, well within the 5s lateness whatever order the calls arrive in.
      const outcomes = await Promise.all(
        Array.from({ length: 30 }, (_, index) => {
          const event = txn('busy', now - 30 * S + index * 100, index + 1, `C${index % 7}`, index % 3 === 0 ? 'online' : 'grocery');
          return index % 2 === 0 ? grpcPush(TOPIC, [event]) : httpPush({ topic: TOPIC, events: [event] }).then((response) => response.json);
        }),
      );
      expect(outcomes).toEqual(Array.from({ length: 30 }, () => ({ applied: 1, late_indexes: [] })));
      const expected = { txn_count_5m: 30, amount_sum_1h: 465, amount_avg_5m: 15.5, unique_countries_1h: 7, high_risk_count_5m: 10, last_country: 'C1', high_risk_ratio: 1 / 3 };
      const asOf = now;
      const [before] = await read(['busy'], asOf);
      expect(values(before!)).toMatchObject(expected);
      await first.stop();
      firstStopped = true;

      second = await startTestServer({ registry: STREAM_REGISTRY }, { dataDir: first.dataDir });
      const [after] = await clients(() => second!).read(['busy'], asOf);
      expect(after).toEqual(before);
    } finally {
      if (!firstStopped) await first.stop();
      await second?.stop();
    }
  });
});

describe('PushEvents input checks', () => {
  let strata: TestServer;
  const { grpcPush, httpPush, grpcRead } = clients(() => strata);
  // A fresh server (and so a fresh push watermark) per test.
  beforeEach(async () => {
    strata = await startTestServer({ registry: STREAM_REGISTRY, 'max-rows': '50', 'max-message-size': '64kb' });
  });
  afterEach(async () => {
    await strata?.stop();
  });

  const notFound = async (card: string): Promise<void> => {
    const [row] = await grpcRead([card]);
    for (const feature of FEATURES) expect(row![feature].status).toBe('NOT_FOUND');
  };

  it('rejects an unknown or missing topic, naming topic', async () => {
    const event = txn('t1', Date.now(), 1, 'SE', 'online');
    const unknown = await httpPush({ topic: 'nope.events', events: [event] });
    expectHttpError(unknown, 400, 'STRATA_UNKNOWN_TOPIC', 'topic');
    expect((unknown.json.error as { message: string }).message).toContain('txn.events');
    expectHttpError(await httpPush({ events: [event] }), 400, 'STRATA_UNKNOWN_TOPIC', 'topic');
    expectHttpError(await httpPush({ topic: 7, events: [event] }), 400, 'STRATA_UNKNOWN_TOPIC', 'topic');
    expectGrpcError(await grpcError(grpcPush('nope.events', [event])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_UNKNOWN_TOPIC', 'topic');
    expectGrpcError(await grpcError(grpcPush('', [event])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_UNKNOWN_TOPIC', 'topic');
    await notFound('t1');
  });

  it('rejects a whole call for one event of the wrong type, naming it, and applies nothing from it', async () => {
    const now = Date.now();
    const good = txn('bad-amount', now - MIN, 10, 'SE', 'online');
    const bad = txn('bad-amount', now - 30 * S, 'abc', 'SE', 'online');
    const overHttp = await httpPush({ topic: TOPIC, events: [good, bad] });
    expectHttpError(overHttp, 400, 'STRATA_INVALID_EVENT', 'events[1].amount');
    expect((overHttp.json.error as { message: string }).message).toBe('events[1].amount: expected double, got "abc"');
    const overGrpc = await grpcError(grpcPush(TOPIC, [good, bad]));
    expectGrpcError(overGrpc, GrpcStatus.INVALID_ARGUMENT, 'STRATA_INVALID_EVENT', 'events[1].amount');
    expect(overGrpc.details).toBe('events[1].amount: expected double, got "abc"');
    await notFound('bad-amount');
    // Nor did the rejected calls move the watermark: an event older than the rejected ones still counts.
    expect(await grpcPush(TOPIC, [txn('bad-amount', now - 2 * MIN, 10, 'SE', 'online')])).toEqual({ applied: 1, late_indexes: [] });
    const [row] = await grpcRead(['bad-amount']);
    expect(row!.txn_count_5m.value).toBe(1);
  });

  it('rejects events without a card_id, with an empty one, or with a bad event time', async () => {
    const now = Date.now();
    const { card_id: _, ...noCard } = txn('x', now, 1, 'SE', 'online');
    for (const [events, field] of [
      [[txn('ok', now, 1, 'SE', 'online'), noCard], 'events[1].card_id'],
      [[txn('', now, 1, 'SE', 'online')], 'events[0].card_id'],
      [[txn('ok', now + 0.5, 1, 'SE', 'online')], 'events[0].timestamp'],
      [[txn('ok', now - 30 * 86_400_000, 1, 'SE', 'online')], 'events[0].timestamp'],
      [[{ ...txn('ok', now, 1, 'SE', 'online'), currency: 'SEK' }], 'events[0].currency'],
      [['not an event'], 'events[0]'],
    ] as const) {
      expectHttpError(await httpPush({ topic: TOPIC, events }), 400, 'STRATA_INVALID_EVENT', field);
      if (typeof events[0] !== 'string') expectGrpcError(await grpcError(grpcPush(TOPIC, events as unknown as Json[])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_INVALID_EVENT', field);
    }
    await notFound('ok');
  });

  it('rejects numbers JSON cannot carry in gRPC Structs, naming the field', async () => {
    const error = await grpcError(grpcPush(TOPIC, [txn('nan', Date.now(), Number.NaN, 'SE', 'online')]));
    expectGrpcError(error, GrpcStatus.INVALID_ARGUMENT, 'STRATA_INVALID_EVENT', 'events[0].amount');
    expect(error.details).toBe('events[0].amount: must be a finite number, got NaN');
    await notFound('nan');
  });

  it('checks the body: events a non-empty list, no unknown fields, within the size and count limits', async () => {
    const event = txn('limits', Date.now(), 1, 'SE', 'online');
    expectHttpError(await httpPush({ topic: TOPIC }), 400, 'STRATA_INVALID_EVENT', 'events');
    expectHttpError(await httpPush({ topic: TOPIC, events: [] }), 400, 'STRATA_INVALID_EVENT', 'events');
    expectHttpError(await httpPush({ topic: TOPIC, events: event }), 400, 'STRATA_INVALID_EVENT', 'events');
    expectHttpError(await httpPush({ topic: TOPIC, events: [event], to: 'online' }), 400, 'STRATA_MALFORMED_REQUEST', 'to');
    expectHttpError(await httpPush('{"topic": "txn.events", "events": ['), 400, 'STRATA_MALFORMED_REQUEST', 'body');
    expectHttpError(await httpPush({ topic: TOPIC, events: Array.from({ length: 51 }, () => event) }), 400, 'STRATA_TOO_MANY_ROWS', 'events');
    expectHttpError(await httpPush({ topic: TOPIC, events: [{ ...event, ip_address: 'x'.repeat(70_000) }] }), 400, 'STRATA_MESSAGE_TOO_LARGE', 'body');
    expectGrpcError(await grpcError(grpcPush(TOPIC, [])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_INVALID_EVENT', 'events');
    expectGrpcError(await grpcError(grpcPush(TOPIC, Array.from({ length: 51 }, () => event))), GrpcStatus.INVALID_ARGUMENT, 'STRATA_TOO_MANY_ROWS', 'events');
    expectGrpcError(await grpcError(grpcPush(TOPIC, [{ ...event, ip_address: 'x'.repeat(70_000) }])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MESSAGE_TOO_LARGE', 'request');
    await notFound('limits');
  });

  it('skips late events (older than the newest pushed − 5s), lists them, and does not count them', async () => {
    const now = Date.now();
    const first = await httpPush({
      topic: TOPIC,
      events: [
        txn('late', now - 60 * S, 1, 'SE', 'online'),
        txn('late', now - 66 * S, 2, 'SE', 'online'), // 6s behind: late
        txn('late', now - 64 * S, 4, 'SE', 'online'), // 4s behind: counts
        txn('late', now - 30 * S, 8, 'SE', 'online'),
        txn('late', now - 36 * S, 16, 'SE', 'online'), // late
      ],
    });
    expect(first).toMatchObject({ status: 200, json: { applied: 3, late_indexes: [1, 4] } });
    // The watermark outlives the call: now − 30s − 5s. Exactly on it is not late.
    expect(await grpcPush(TOPIC, [txn('late', now - 40 * S, 32, 'SE', 'online'), txn('late', now - 35 * S, 64, 'SE', 'online')])).toEqual({ applied: 1, late_indexes: [0] });
    const [row] = await grpcRead(['late']);
    expect(values(row!)).toMatchObject({ txn_count_5m: 4, amount_sum_1h: 1 + 4 + 8 + 64 });
    expect(row!.txn_count_5m.eventMs).toBe(now - 30 * S);
    // The event 4s behind was stored in event-time order, not arrival order.
    const [at62] = await grpcRead(['late'], now - 62 * S);
    expect(values(at62!)).toMatchObject({ txn_count_5m: 1, amount_sum_1h: 4 });
    expect(at62!.txn_count_5m.eventMs).toBe(now - 64 * S);
    const [at45] = await grpcRead(['late'], now - 45 * S);
    expect(values(at45!)).toMatchObject({ txn_count_5m: 2, amount_sum_1h: 5 });
    expect(at45!.txn_count_5m.eventMs).toBe(now - 60 * S);
    expect(await strata.metric('strata_ingest_events_total', { topic: TOPIC, outcome: 'late_rejected' })).toBe(3);
    // A call of late events only applies nothing and still answers OK.
    expect(await httpPush({ topic: TOPIC, events: [txn('late-only', now - 50 * S, 1, 'SE', 'online')] })).toMatchObject({ status: 200, json: { applied: 0, late_indexes: [0] } });
    await notFound('late-only');
  });

  it('rejects an event further ahead of the server clock than max_clock_skew (1m), naming its time field; one within it makes no on-time event late', async () => {
    const now = Date.now();
    const ahead = await httpPush({ topic: TOPIC, events: [txn('skew', now - 10 * S, 1, 'SE', 'online'), txn('skew', now + 60 * MIN, 2, 'SE', 'online')] });
    expectHttpError(ahead, 400, 'STRATA_INVALID_EVENT', 'events[1].timestamp');
    expect((ahead.json.error as { message: string }).message).toMatch(/^events\[1\]\.timestamp: event time \S+ is (1h|\d+s) ahead of the server's clock \(\S+\), more than the topic's max_clock_skew of 1m$/);
    expectGrpcError(await grpcError(grpcPush(TOPIC, [txn('skew', now + 60 * MIN, 2, 'SE', 'online')])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_INVALID_EVENT', 'events[0].timestamp');
    await notFound('skew');
    // 30 s ahead is within the skew and applied, but moves the watermark only to the server's clock:
    // events 2 s behind it, in the same call and the next, are on time (not 32 s behind the newest).
    const at = Date.now();
    expect(await httpPush({ topic: TOPIC, events: [txn('skew', at + 30 * S, 4, 'SE', 'online'), txn('skew', at - 2 * S, 8, 'SE', 'online')] })).toMatchObject({ status: 200, json: { applied: 2, late_indexes: [] } });
    expect(await grpcPush(TOPIC, [txn('skew', Date.now() - 2 * S, 16, 'SE', 'online')])).toEqual({ applied: 1, late_indexes: [] });
    const [row] = await grpcRead(['skew'], at + 30 * S);
    expect(values(row!)).toMatchObject({ txn_count_5m: 3, amount_sum_1h: 4 + 8 + 16 });
    expect(row!.txn_count_5m.eventMs).toBe(at + 30 * S);
  });
});

describe('PushEvents without stream views', () => {
  let strata: TestServer;
  const { grpcPush, httpPush } = clients(() => strata);
  beforeAll(async () => {
    strata = await startTestServer();
  });
  afterAll(async () => {
    await strata?.stop();
  });

  it('answers FAILED_PRECONDITION / 412 STRATA_NO_STREAM_VIEWS', async () => {
    const response = await httpPush({ topic: TOPIC, events: [txn('x', Date.now(), 1, 'SE', 'online')] });
    expectHttpError(response, 412, 'STRATA_NO_STREAM_VIEWS');
    expect((response.json.error as { message: string }).message).toContain('no stream views');
    const error = await grpcError(grpcPush(TOPIC, [txn('x', Date.now(), 1, 'SE', 'online')]));
    expectGrpcError(error, GrpcStatus.FAILED_PRECONDITION, 'STRATA_NO_STREAM_VIEWS');
    expect(error.details).toContain('no stream views');
  });
});
