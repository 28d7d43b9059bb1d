import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRowWriter } from '../../src/batch/files/row-writer.js';
import { runSnapshot } from '../../src/cli/snapshot-command.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { decodeHistoricalResponse, encodeHistoricalRequest, getHistoricalFeatures, openHistoricalCall, rowsMessage, rowsOf, type HistoricalChunk, type HistoricalRow } from '../support/historical.js';
import { columnsOf, startTestServer, timestamp, type Json, type TestServer } from '../support/strata.js';

const REGISTRY = fileURLToPath(new URL('../fixtures/historical-registry.yaml', import.meta.url));
const S = 1_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const PROFILE_TTL = HOUR;
const TXN_TTL = 2 * HOUR;
const TXN_FEATURES = ['txn_count_5m', 'amount_sum_1h', 'amount_avg_5m', 'amount_max_1h', 'online_count_1h', 'last_country', 'minutes_since_last'] as const;
const REFS = ['card_profile:credit_limit', 'card_profile:home_country', ...TXN_FEATURES.map((feature) => `card_txn:${feature}`)];

type Expected = HistoricalRow['features'][string];

let strata: TestServer;
const scratch = mkdtempSync(join(tmpdir(), 'strata-historical-'));
beforeAll(async () => {
  strata = await startTestServer({ registry: REGISTRY, 'server-files-dir': scratch });
});
afterAll(async () => {
  await strata?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A JS object as a google.protobuf.Struct for protobufjs' fromObject (its well-known types keep camelCase names). */
function toStruct(object: Json): Json {
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, typeof value === 'number' ? { numberValue: value } : { stringValue: value }])) };
}

async function callError(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('expected the call to fail');
}

function expectError(error: ServiceError, code: GrpcStatus, strataCode: string, field: string): void {
  expect({ code: error.code, strata: error.metadata.get('strata-error-code'), field: error.metadata.get('strata-error-field') }).toEqual({ code, strata: [strataCode], field: [field] });
}

interface ProfileWrite {
  card: string;
  eventMs: number;
  createdMs: number;
  limit: number;
  country: string | null;
  order: number;
}

interface Txn {
  card: string;
  ts: number;
  amount: number;
  country: string;
  category: string;
}

/** Brute force over the raw writes: the newest version at or before t (ties: later created, then later written), ttl at t. */
function profileAt(writes: readonly ProfileWrite[], card: string, t: number): Record<string, Expected> {
  let best: ProfileWrite | undefined;
  for (const write of writes) {
    if (write.card !== card || write.eventMs > t) continue;
    if (best === undefined || write.eventMs > best.eventMs || (write.eventMs === best.eventMs && (write.createdMs > best.createdMs || (write.createdMs === best.createdMs && write.order > best.order)))) best = write;
  }
  if (best === undefined) return { credit_limit: { value: null, status: 'NOT_FOUND', eventMs: 0 }, home_country: { value: null, status: 'NOT_FOUND', eventMs: 0 } };
  if (t - best.eventMs > PROFILE_TTL) {
    const stale = { value: null, status: 'OUTSIDE_MAX_AGE', eventMs: best.eventMs };
    return { credit_limit: stale, home_country: stale };
  }
  return {
    credit_limit: { value: best.limit, status: 'PRESENT', eventMs: best.eventMs },
    home_country: best.country === null ? { value: null, status: 'NULL_VALUE', eventMs: best.eventMs } : { value: best.country, status: 'PRESENT', eventMs: best.eventMs },
  };
}

/** Brute force over the raw events: every window over (t − w, t], lifetime last, ttl on the newest event at or before t. */
function txnAt(txns: readonly Txn[], card: string, t: number): Record<string, Expected> {
  const seen = txns.filter((txn) => txn.card === card && txn.ts <= t);
  if (seen.length === 0) return Object.fromEntries(TXN_FEATURES.map((feature) => [feature, { value: null, status: 'NOT_FOUND', eventMs: 0 }]));
  const newest = Math.max(...seen.map((txn) => txn.ts));
  if (t - newest > TXN_TTL) return Object.fromEntries(TXN_FEATURES.map((feature) => [feature, { value: null, status: 'OUTSIDE_MAX_AGE', eventMs: newest }]));
  const within = (windowMs: number) => seen.filter((txn) => txn.ts > t - windowMs);
  const in5m = within(5 * MIN);
  const in1h = within(HOUR);
  const sum = (list: readonly Txn[]) => list.reduce((total, txn) => total + txn.amount, 0);
  // The log keeps events in event-time order, ties in arrival order: the lifetime last is the last of the newest.
  const last = seen.filter((txn) => txn.ts === newest).at(-1)!;
  const values: Record<string, unknown> = {
    txn_count_5m: String(in5m.length),
    amount_sum_1h: sum(in1h),
    amount_avg_5m: in5m.length === 0 ? null : sum(in5m) / in5m.length,
    amount_max_1h: in1h.length === 0 ? null : Math.max(...in1h.map((txn) => txn.amount)),
    online_count_1h: String(in1h.filter((txn) => txn.category === 'online').length),
    last_country: last.country,
    minutes_since_last: (t - newest) / MIN,
  };
  return Object.fromEntries(TXN_FEATURES.map((feature) => [feature, { value: values[feature], status: values[feature] === null ? 'NULL_VALUE' : 'PRESENT', eventMs: newest }]));
}

describe('GetHistoricalFeatures: point in time, per row', () => {
  const rand = seededRandom(11);
  const cards = Array.from({ length: 16 }, (_, index) => `hc-${index}`);
  const base = Date.now() - 30 * HOUR;
  const writes: ProfileWrite[] = [];
  const txns: Txn[] = [];
  /** Times on the grid of event times, windows and ttls where an off-by-one would show. */
  const probes: { card: string; t: number }[] = [];

  beforeAll(async () => {
    let order = 0;
    for (let call = 0; call < 20; call++) {
      const rows: ProfileWrite[] = [];
      for (let row = 0; row < 10; row++) {
        const card = cards[Math.floor(rand() * cards.length)]!;
        // A quarter of the event times on whole hours, so that versions of a card share event times (ties go to created time).
        const eventMs = base + Math.floor(rand() * 24) * HOUR + (rand() < 0.25 ? 0 : Math.floor(rand() * HOUR));
        rows.push({ card, eventMs, createdMs: base + Math.floor(rand() * 3) * S, limit: Math.round(rand() * 10_000) / 4, country: rand() < 0.2 ? null : ['US', 'DE', 'BR'][Math.floor(rand() * 3)]!, order: order++ });
      }
      await strata.grpc.writeFeatures({
        feature_view: 'card_profile',
        columns: {
          card_id: { values: rows.map((row) => ({ string_val: row.card })) },
          credit_limit: { values: rows.map((row) => ({ double_val: row.limit })) },
          home_country: { values: rows.map((row) => (row.country === null ? {} : { string_val: row.country })) },
        },
        event_timestamps: rows.map((row) => timestamp(row.eventMs)),
        created_timestamps: rows.map((row) => timestamp(row.createdMs)),
      });
      writes.push(...rows);
    }
    // Bursts of transactions minutes apart, so that 5-minute windows hold several; amounts whole, so sums are exact in any order.
    for (const card of cards) {
      for (let burst = 0; burst < 4; burst++) {
        let ts = base + Math.floor(rand() * 24 * HOUR);
        for (let event = 0; event < 3 + Math.floor(rand() * 6); event++) {
          txns.push({ card, ts, amount: 1 + Math.floor(rand() * 500), country: ['US', 'DE', 'BR', 'JP'][Math.floor(rand() * 4)]!, category: ['online', 'grocery', 'atm'][Math.floor(rand() * 3)]! });
          ts += rand() < 0.1 ? 0 : Math.floor(rand() * 4 * MIN);
        }
      }
    }
    txns.sort((a, b) => a.ts - b.ts);
    // One topic-wide watermark: pushed in event-time order, none is late.
    for (let from = 0; from < txns.length; from += 500) {
      const batch = txns.slice(from, from + 500);
      const events = batch.map((txn, index) => toStruct({ txn_id: `t${from + index}`, card_id: txn.card, user_id: 'u', device_id: 'd', amount: txn.amount, currency: 'EUR', merchant_category: txn.category, geo_country: txn.country, ip_address: '192.0.2.1', timestamp: txn.ts }));
      expect(await strata.grpc.call('PushEvents', 'PushEventsRequest', 'PushEventsResponse', { topic: 'txn.events', events })).toEqual({ applied: batch.length, late_indexes: [] });
    }

    for (const write of writes) for (const t of [write.eventMs - 1, write.eventMs, write.eventMs + 1, write.eventMs + PROFILE_TTL, write.eventMs + PROFILE_TTL + 1]) probes.push({ card: write.card, t });
    for (const txn of txns) {
      for (const t of [txn.ts - 1, txn.ts, txn.ts + 5 * MIN - 1, txn.ts + 5 * MIN, txn.ts + HOUR - 1, txn.ts + HOUR, txn.ts + TXN_TTL, txn.ts + TXN_TTL + 1]) probes.push({ card: txn.card, t });
    }
    for (let index = 0; index < 1_000; index++) probes.push({ card: cards[Math.floor(rand() * cards.length)]!, t: base - HOUR + Math.floor(rand() * 30 * HOUR) });
    // Rows in no particular order: answers must come back in input order anyway.
    for (let index = probes.length - 1; index > 0; index--) {
      const other = Math.floor(rand() * (index + 1));
      [probes[index], probes[other]] = [probes[other]!, probes[index]!];
    }
  });

  it('answers thousands of (entity, t) probes exactly as a brute-force point-in-time join, rows in input order across chunks', async () => {
    const messages: Json[] = [{ features: { refs: REFS } }];
    for (let from = 0; from < probes.length; from += 700) {
      const chunk = probes.slice(from, from + 700);
      messages.push(rowsMessage('card_id', chunk.map((probe) => probe.card), chunk.map((probe) => probe.t)));
    }
    const chunks = await getHistoricalFeatures(strata.grpc, messages);
    expect(chunks).toHaveLength(messages.length - 1);
    expect(Object.keys(chunks[0]!.columns)).toEqual(['card_id', 'credit_limit', 'home_country', ...TXN_FEATURES]);
    const rows = rowsOf(chunks, ['card_id']);
    expect(rows.map((row) => [row.keys.card_id, row.timeMs])).toEqual(probes.map((probe) => [probe.card, probe.t]));

    let mismatches = 0;
    const statuses = new Map<string, number>();
    rows.forEach((row, index) => {
      const { card, t } = probes[index]!;
      const expected = { ...profileAt(writes, card, t), ...txnAt(txns, card, t) };
      for (const [name, value] of Object.entries(expected)) {
        statuses.set(value.status, (statuses.get(value.status) ?? 0) + 1);
        if (JSON.stringify(row.features[name]) === JSON.stringify(value)) continue;
        mismatches++;
        if (mismatches <= 5) expect.soft(row.features[name], `${card} ${name} at ${new Date(t).toISOString()}`).toEqual(value);
      }
    });
    expect(rows.length).toBeGreaterThan(3_000);
    // Every outcome is exercised, not just PRESENT.
    for (const status of ['PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE']) expect(statuses.get(status) ?? 0).toBeGreaterThan(100);
    expect(mismatches).toBe(0);
  });

  it('agrees with as_of online reads of the same rows', async () => {
    const sample = probes.slice(0, 40);
    const [chunk] = await getHistoricalFeatures(strata.grpc, [{ features: { refs: REFS } }, rowsMessage('card_id', sample.map((probe) => probe.card), sample.map((probe) => probe.t))]);
    for (const [row, { card, t }] of sample.entries()) {
      const online = columnsOf(await strata.grpc.getOnlineFeatures({ features: { refs: REFS }, entities: { card_id: { values: [{ string_val: card }] } }, as_of: timestamp(t) }));
      for (const [name, column] of Object.entries(online)) {
        const historical = chunk!.columns[name]!;
        expect({ value: historical.values[row], status: historical.statuses[row], eventMs: historical.eventMs[row] }, `${card} ${name}`).toEqual({ value: column.values[0], status: column.statuses[0], eventMs: column.eventMs[0] });
      }
    }
  });

  it('reads a feature service, with full feature names, and int64 keys', async () => {
    const probe = probes[0]!;
    const [chunk] = await getHistoricalFeatures(strata.grpc, [{ feature_service: 'card_training', full_feature_names: true, ...rowsMessage('card_id', [probe.card], [probe.t]) }]);
    expect(Object.keys(chunk!.columns)).toEqual(['card_id', 'card_profile__credit_limit', 'card_txn__txn_count_5m', 'card_txn__amount_sum_1h', 'card_profile__home_country']);
    expect(chunk!.columns.card_profile__credit_limit!.statuses).toEqual([profileAt(writes, probe.card, probe.t).credit_limit!.status]);

    const now = Date.now();
    await strata.grpc.writeFeatures({ feature_view: 'store_stats', columns: { store_id: { values: [{ int64_val: '9007199254740993' }] }, revenue: { values: [{ double_val: 12.5 }] } }, event_timestamps: [timestamp(now - 5 * DAY)] });
    const rows = rowsOf(await getHistoricalFeatures(strata.grpc, [{ features: { refs: ['store_stats:revenue'] } }, { entities: { store_id: { values: [{ int64_val: '9007199254740993' }, { int64_val: '9007199254740993' }] } }, event_timestamps: [timestamp(now - 5 * DAY - 1), timestamp(now)] }]), ['store_id']);
    expect(rows.map((row) => [row.keys.store_id, row.features.revenue])).toEqual([
      ['9007199254740993', { value: null, status: 'NOT_FOUND', eventMs: 0 }],
      ['9007199254740993', { value: 12.5, status: 'PRESENT', eventMs: now - 5 * DAY }],
    ]);
  });

  it('reads a batch view\'s published snapshot, versions by event time', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strata-historical-batch-'));
    const now = Date.now();
    const file = join(scratch, 'daily.ndjson');
    writeFileSync(file, [{ card_id: 'b-1', event_timestamp: now - 3 * DAY, avg_ticket: 10 }, { card_id: 'b-1', event_timestamp: now - DAY, avg_ticket: 20 }].map((row) => `${JSON.stringify(row)}\n`).join(''));
    const quiet = new PassThrough().resume();
    expect(await runSnapshot(['import', '--registry', REGISTRY, '--data-dir', dataDir, '--view', 'card_daily', file], quiet, quiet)).toBe(0);
    const server = await startTestServer({ registry: REGISTRY }, { dataDir });
    try {
      const times = [now - 3 * DAY - 1, now - 3 * DAY, now - DAY - 1, now - 1, now - DAY + 2 * DAY + 1];
      const rows = rowsOf(await getHistoricalFeatures(server.grpc, [{ features: { refs: ['card_daily:avg_ticket'] } }, rowsMessage('card_id', times.map(() => 'b-1'), times)]), ['card_id']);
      expect(rows.map((row) => row.features.avg_ticket)).toEqual([
        { value: null, status: 'NOT_FOUND', eventMs: 0 },
        { value: 10, status: 'PRESENT', eventMs: now - 3 * DAY },
        { value: 10, status: 'PRESENT', eventMs: now - 3 * DAY },
        { value: 20, status: 'PRESENT', eventMs: now - DAY },
        { value: null, status: 'OUTSIDE_MAX_AGE', eventMs: now - DAY },
      ]);
    } finally {
      await server.stop();
    }
  });

  it('answers a call with no rows with one chunk of names', async () => {
    const chunks = await getHistoricalFeatures(strata.grpc, [{ features: { refs: ['card_txn:last_country', 'card_profile:credit_limit'] } }]);
    expect(chunks).toHaveLength(1);
    expect(Object.keys(chunks[0]!.columns)).toEqual(['card_id', 'last_country', 'credit_limit']);
    expect(chunks[0]!.timesMs).toEqual([]);
  });

  describe('entities_path: rows from a file on the server', () => {
    const sample = () => probes.slice(0, 5_000);
    const expectSameAsStreamed = async (path: string) => {
      const streamed = rowsOf(await getHistoricalFeatures(strata.grpc, [{ features: { refs: REFS } }, rowsMessage('card_id', sample().slice(0, 2_500).map((probe) => probe.card), sample().slice(0, 2_500).map((probe) => probe.t)), rowsMessage('card_id', sample().slice(2_500).map((probe) => probe.card), sample().slice(2_500).map((probe) => probe.t))]), ['card_id']);
      const chunks = await getHistoricalFeatures(strata.grpc, [{ features: { refs: REFS }, entities_path: path }]);
      // The server cuts the file into chunks of its own.
      expect(chunks.length).toBeGreaterThan(1);
      expect(rowsOf(chunks, ['card_id'])).toEqual(streamed);
    };

    it('reads NDJSON, CSV (ISO-8601 times) and parquet (timestamp columns), in file order', async () => {
      const ndjson = join(scratch, 'rows.ndjson');
      writeFileSync(ndjson, sample().map((probe) => `${JSON.stringify({ card_id: probe.card, event_timestamp: probe.t, label: 1 })}\n`).join(''));
      await expectSameAsStreamed(ndjson);

      const csv = join(scratch, 'rows.csv');
      writeFileSync(csv, `label,event_timestamp,card_id\n${sample().map((probe) => `0,${new Date(probe.t).toISOString()},${probe.card}\n`).join('')}`);
      await expectSameAsStreamed(csv);

      const parquet = join(scratch, 'rows.parquet');
      const writer = await openRowWriter(parquet, [{ name: 'card_id', type: 'string' }, { name: 'event_timestamp', type: 'timestamp' }], { rowGroupRows: 3_000 });
      await writer.write({ length: sample().length, columns: new Map<string, unknown[]>([['card_id', sample().map((probe) => probe.card)], ['event_timestamp', sample().map((probe) => probe.t)]]) });
      await writer.close();
      await expectSameAsStreamed(parquet);
    });

    it('reads int64 keys from CSV text', async () => {
      const csv = join(scratch, 'stores.csv');
      writeFileSync(csv, `store_id,event_timestamp\n9007199254740993,${Date.now()}\n7,${Date.now()}\n`);
      const rows = rowsOf(await getHistoricalFeatures(strata.grpc, [{ features: { refs: ['store_stats:revenue'] }, entities_path: csv }]), ['store_id']);
      expect(rows.map((row) => [row.keys.store_id, row.features.revenue!.status])).toEqual([
        ['9007199254740993', 'PRESENT'],
        ['7', 'NOT_FOUND'],
      ]);
    });

    it('names the file, row and column of bad input', async () => {
      const read = (path: string, extra: Json = {}) => callError(getHistoricalFeatures(strata.grpc, [{ features: { refs: REFS }, entities_path: path, ...extra }]));
      expectError(await read(join(scratch, 'missing.csv')), GrpcStatus.INVALID_ARGUMENT, 'STRATA_FILE_UNUSABLE', join(scratch, 'missing.csv'));
      const noTime = join(scratch, 'no-time.csv');
      writeFileSync(noTime, 'card_id,ts\nhc-1,1\n');
      expectError(await read(noTime), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MISSING_COLUMN', 'event_timestamp');
      const badTime = join(scratch, 'bad-time.csv');
      writeFileSync(badTime, `card_id,event_timestamp\nhc-1,${Date.now()}\nhc-2,yesterday\n`);
      expectError(await read(badTime), GrpcStatus.INVALID_ARGUMENT, 'STRATA_BAD_TIMESTAMP', `${badTime}:row 1 column event_timestamp`);
      const old = join(scratch, 'old.ndjson');
      writeFileSync(old, `${JSON.stringify({ card_id: 'hc-1', event_timestamp: Date.now() })}\n${JSON.stringify({ card_id: 'hc-1', event_timestamp: Date.now() - 8 * DAY })}\n`);
      expectError(await read(old), GrpcStatus.OUT_OF_RANGE, 'STRATA_AS_OF_BEFORE_RETENTION', `${old}:row 1 column event_timestamp`);
      expectError(await read(old, rowsMessage('card_id', ['hc-1'], [Date.now()])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MALFORMED_REQUEST', 'entities_path');
    });

    it('reads only files inside --server-files-dir (relative paths from it), and none without it', async () => {
      const read = (server: TestServer, path: string) => callError(getHistoricalFeatures(server.grpc, [{ features: { refs: REFS }, entities_path: path }]));
      const outside = mkdtempSync(join(tmpdir(), 'strata-outside-'));
      try {
        const secret = join(outside, 'secret.csv');
        writeFileSync(secret, `card_id,event_timestamp
hc-1,${Date.now()}
`);
        symlinkSync(secret, join(scratch, 'link.csv'));
        for (const path of [secret, join(scratch, '..', 'x.csv'), '../x.csv', join(scratch, 'link.csv'), 'link.csv']) {
          expectError(await read(strata, path), GrpcStatus.INVALID_ARGUMENT, 'STRATA_PATH_OUTSIDE_FILES_DIR', 'entities_path');
        }
        writeFileSync(join(scratch, 'inside.csv'), `card_id,event_timestamp
hc-1,${Date.now()}
`);
        const rows = rowsOf(await getHistoricalFeatures(strata.grpc, [{ features: { refs: REFS }, entities_path: 'inside.csv' }]), ['card_id']);
        expect(rows.map((row) => row.keys.card_id)).toEqual(['hc-1']);

        const closed = await startTestServer({ registry: REGISTRY });
        try {
          expectError(await read(closed, join(scratch, 'inside.csv')), GrpcStatus.FAILED_PRECONDITION, 'STRATA_SERVER_FILES_DISABLED', 'entities_path');
        } finally {
          await closed.stop();
        }
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });
  });
});

describe('GetHistoricalFeatures: bad input is INVALID_ARGUMENT naming the field', () => {
  const now = Date.now();
  const first = { features: { refs: ['card_profile:credit_limit'] } };
  const fail = (messages: Json[]) => callError(getHistoricalFeatures(strata.grpc, messages));
  const rows = (count: number) => rowsMessage('card_id', Array.from({ length: count }, (_, index) => `bad-${index}`), Array.from({ length: count }, () => now));

  it('an unknown feature, before any row', async () => {
    expectError(await fail([{ features: { refs: ['card_profile:credit_limit', 'card_profile:nope'] } }]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_UNKNOWN_FEATURE', 'features[1]');
    expectError(await fail([{ feature_service: 'nope' }, rows(2)]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_UNKNOWN_FEATURE_SERVICE', 'feature_service');
    expectError(await fail([{}, rows(2)]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_NO_FEATURES', 'features');
    expectError(await fail([]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_NO_FEATURES', 'features');
  });

  it('a missing or unexpected join key column, a wrong key type', async () => {
    expectError(await fail([first, rows(3), { event_timestamps: [timestamp(now)] }]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MISSING_JOIN_KEY', 'entities.card_id');
    expectError(await fail([first, rowsMessage('store_id', [1], [now])]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_UNEXPECTED_JOIN_KEY', 'entities.store_id');
    // Rows are numbered across the call: the second message's second row is row 4.
    expectError(await fail([first, rows(3), rowsMessage('card_id', ['ok', 7], [now, now])]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_VALUE_TYPE_MISMATCH', 'entities.card_id[4]');
  });

  it('a bad timestamp, not as many timestamps as rows, too many rows in a message', async () => {
    const badNanos = { ...rows(2), event_timestamps: [timestamp(now), { seconds: Math.floor(now / 1000), nanos: 2_000_000_000 }] };
    expectError(await fail([first, rows(5), badNanos]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_BAD_TIMESTAMP', 'event_timestamps[6]');
    expectError(await fail([first, { ...rows(2), event_timestamps: [timestamp(now)] }]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_COLUMN_LENGTH_MISMATCH', 'event_timestamps');
    expectError(await fail([first, rows(16_385)]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_TOO_MANY_ROWS', 'entities.card_id');
  });

  it('a row older than retention fails the call naming the row (OUT_OF_RANGE, as as_of does)', async () => {
    const old = rowsMessage('card_id', ['a', 'b', 'c'], [now, now - 8 * DAY, now]);
    const error = await fail([first, rows(700), old]);
    expectError(error, GrpcStatus.OUT_OF_RANGE, 'STRATA_AS_OF_BEFORE_RETENTION', 'event_timestamps[701]');
    expect(error.details).toMatch(/^event_timestamps\[701\]: .* is older than the 7 days of history kept$/);
  });

  it('query fields after the first message, as_of, and bytes that are no message', async () => {
    expectError(await fail([first, rows(1), { ...first, ...rows(1) }]), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MALFORMED_REQUEST', 'features');
    const raw = (...bodies: Buffer[]) =>
      callError(
        new Promise((resolve, reject) => {
          const call = openHistoricalCall(strata.grpc);
          call.on('data', () => undefined);
          call.on('error', reject);
          call.on('end', resolve);
          for (const body of bodies) call.write(body);
          call.end();
        }),
      );
    // Field 4 is reserved (GetOnlineFeaturesRequest's as_of): a client built from an older proto may still send it.
    expectError(await raw(Buffer.concat([encodeHistoricalRequest(first), Buffer.from([0x22, 0x02, 0x08, 0x01])])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MALFORMED_REQUEST', 'as_of');
    expectError(await raw(encodeHistoricalRequest(first), Buffer.from([0x1a, 0x05, 0x08])), GrpcStatus.INVALID_ARGUMENT, 'STRATA_MALFORMED_REQUEST', 'request');
  });
});

describe('GetHistoricalFeatures: tiers', () => {
  it('reads records below L1 without promoting them: a training-set scan does not push out what online reads keep hot', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strata-historical-tiers-'));
    const now = Date.now();
    const cards = Array.from({ length: 50 }, (_, index) => `tier-${index}`);
    const first = await startTestServer({ registry: REGISTRY }, { dataDir, keepData: true });
    await first.grpc.writeFeatures({
      feature_view: 'card_profile',
      columns: { card_id: { values: cards.map((card) => ({ string_val: card })) }, credit_limit: { values: cards.map(() => ({ double_val: 1 })) }, home_country: { values: cards.map(() => ({ string_val: 'PT' })) } },
      event_timestamps: cards.map(() => timestamp(now - 1_000)),
    });
    await first.stop();
    // A new process: L1 starts empty, every record is in L3 only.
    const second = await startTestServer({ registry: REGISTRY }, { dataDir });
    try {
      const rows = rowsOf(await getHistoricalFeatures(second.grpc, [{ features: { refs: ['card_profile:credit_limit'] } }, rowsMessage('card_id', [...cards, ...cards], [...cards.map(() => now), ...cards.map(() => now - 500)])]), ['card_id']);
      expect(rows.map((row) => row.features.credit_limit!.status)).toEqual([...cards.map(() => 'PRESENT'), ...cards.map(() => 'PRESENT')]);
      expect(await second.metric('strata_tier_lookups_total', { tier: 'l3', result: 'hit' })).toBe(cards.length);
      expect(await second.metric('strata_l1_entries')).toBe(0);
      // An online read of the same cards does fill L1.
      await second.grpc.getOnlineFeatures({ features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: cards.map((card) => ({ string_val: card })) } } });
      expect(await second.metric('strata_l1_entries')).toBe(cards.length);
    } finally {
      await second.stop();
    }
  });
});

describe('GetHistoricalFeatures: flow control', () => {
  it('stops taking rows while a client reads no answers: the chunks produced stay bounded, then all arrive in order', async () => {
    const CHUNKS = 200;
    const ROWS = 1_000;
    const now = Date.now();
    // Each chunk's entities are new, so the server's tier lookups count the rows it has answered: two views per row.
    const rowsAnswered = async (before: number) => ((await strata.metric('strata_tier_lookups_total', { tier: 'l1' })) - before) / 2;
    const before = await strata.metric('strata_tier_lookups_total', { tier: 'l1' });
    const call = openHistoricalCall(strata.grpc, 120_000);
    call.write(encodeHistoricalRequest({ features: { refs: REFS } }));
    for (let chunk = 0; chunk < CHUNKS; chunk++) {
      const cards = Array.from({ length: ROWS }, (_, row) => `flow-${chunk}-${row}`);
      call.write(encodeHistoricalRequest(rowsMessage('card_id', cards, cards.map(() => now))));
    }
    call.end();

    // A slow reader: it takes the first answer and then reads nothing until the server has stopped making progress.
    const chunks: HistoricalChunk[] = [];
    call.on('data', (bytes: Buffer) => {
      chunks.push(decodeHistoricalResponse(bytes));
      call.pause();
    });
    let answered = -1;
    for (let unchanged = 0; unchanged < 5; ) {
      await sleep(100);
      const now = await rowsAnswered(before);
      unchanged = now === answered && now > 0 ? unchanged + 1 : 0;
      answered = now;
    }
    const chunksBeforeReading = answered / ROWS;
    // The server holds grpc-js's 16 messages (its write() returns false past them) and the one in hand; the transport
    // (HTTP/2 windows, socket buffers) and the client's own buffer hold a few of these ~76 KB chunks more. Unbounded
    // would be all of them: the client sent every row up front.
    expect(chunksBeforeReading).toBeGreaterThan(0);
    expect(chunksBeforeReading, `chunks answered before the client read, of ${CHUNKS}`).toBeLessThanOrEqual(40);

    await new Promise((resolve, reject) => {
      call.removeAllListeners('data');
      call.on('data', (bytes: Buffer) => chunks.push(decodeHistoricalResponse(bytes)));
      call.on('error', reject);
      call.on('end', resolve);
      call.resume();
    });
    expect(chunks).toHaveLength(CHUNKS);
    const rows = rowsOf(chunks, ['card_id']);
    expect(rows).toHaveLength(CHUNKS * ROWS);
    expect(rows.at(-1)!.keys.card_id).toBe(`flow-${CHUNKS - 1}-${ROWS - 1}`);
    expect(await rowsAnswered(before)).toBe(CHUNKS * ROWS);
  });
});
