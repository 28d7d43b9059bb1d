import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { compileRegistry, loadRegistry, type ViewDef } from '../../src/config/registry.js';
import type { StreamSource } from '../../src/config/stream-views.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Compactor, type CompactableStore } from '../../src/storage/compaction.js';
import { EVENT_LOG_FORMAT, EventLog, type IncomingEvent } from '../../src/storage/event-log.js';
import { generationPrefix, RECORD_NAMESPACE, recordKey, recordKeyPrefix, viewOfRecordKey } from '../../src/storage/keys.js';
import { LevelStore } from '../../src/storage/level-store.js';
import { encodeRecord, FeatureRecord, type Version } from '../../src/storage/record.js';
import { StagedRecords } from '../../src/storage/snapshot-store.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { encodeTypedValue } from '../../src/values/value-codec.js';
import { startTestServer, timestamp } from '../support/strata.js';

const SCHEMA = fileURLToPath(new URL('../../examples/fraud/schemas/txn_event.v2.avsc', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'strata-compaction-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const REGISTRY = join(scratch, 'registry.yaml');
writeFileSync(
  REGISTRY,
  `entities:
  card: { join_key: card_id }
topics:
  txn.events:
    reader_schema: ${SCHEMA}
feature_views:
  card_profile:
    entities: [card]
    ttl: 20m
    source: { type: push }
    features:
      credit_limit: double
  card_daily:
    entities: [card]
    ttl: 0
    source: { type: batch }
    features:
      avg_ticket: double
  card_txn:
    entities: [card]
    ttl: 1d
    source: { type: stream, topic: txn.events, format: avro, key: card_id, timestamp_field: timestamp }
    aggregations:
      txn_count_5m: { fn: count, window: 5m }
      amount_sum_1h: { fn: sum, field: amount, window: 1h }
      last_country: { fn: last, field: geo_country }
      first_country: { fn: first, field: geo_country }
`,
);

const MIN = 60_000;
const HOUR = 60 * MIN;
const RETENTION = HOUR;
const NOW = Date.now();
const registry = loadRegistry(REGISTRY);
const profile = registry.views.get('card_profile')!;
const daily = registry.views.get('card_daily')!;
const txn = registry.views.get('card_txn')!;
const CARDS = Array.from({ length: 40 }, (_, index) => `card-${index}`);
const limits = { registry, retentionMs: RETENTION, maxVersions: 1_000, maxEvents: 10_000 };

const double = (value: number): Uint8Array => encodeTypedValue({ type: 'double', value });
const keyOf = (prefix: Buffer, card: string): Buffer => recordKey(prefix, ['string'], [card]);

/** `count` versions of one double feature at random event times in [from, to). */
function versions(random: () => number, count: number, from: number, to: number): Version[] {
  return Array.from({ length: count }, () => {
    const eventTs = Math.floor(from + random() * (to - from));
    return { eventTs, createdTs: eventTs, slots: [double(Math.round(random() * 10_000) / 10)] };
  });
}

function events(random: () => number, count: number, from: number, to: number): IncomingEvent[] {
  const columns = (txn.source as { columns: readonly string[] }).columns;
  return Array.from({ length: count }, () => ({
    ts: Math.floor(from + random() * (to - from)),
    values: columns.map((column) => (column === 'amount' ? Math.round(random() * 500) : column === 'geo_country' ? ['PT', 'BR', 'US'][Math.floor(random() * 3)]! : null)),
    origin: undefined,
  }));
}

/**
 * A data dir whose records hold history from long before retention: written
 * as of 5 hours ago (so the writes' own pruning keeps it), never written since.
 * card_daily has a published generation and a staged one an import left.
 */
async function seedOldHistory(dataDir: string): Promise<void> {
  const random = seededRandom(7);
  const store = await LevelStore.open({ dataDir, ...limits });
  const writtenAt = NOW - 5 * HOUR;
  for (const card of CARDS) {
    await store.applyWrites([{ view: profile, key: keyOf(recordKeyPrefix('card_profile'), card), versions: versions(random, 1 + Math.floor(random() * 12), NOW - 4 * HOUR, NOW) }], writtenAt);
    await store.applyWrites([{ view: txn, key: keyOf(recordKeyPrefix('card_txn'), card), events: events(random, 1 + Math.floor(random() * 60), NOW - 5 * HOUR, NOW) }], writtenAt);
  }
  const stage = async (generation: number): Promise<void> => {
    const records = CARDS.map((card) => ({ key: keyOf(generationPrefix('card_daily', generation), card), bytes: encodeRecord(daily.batch!.fingerprint, 1, 1, versionsNewestFirst(versions(random, 1 + Math.floor(random() * 8), NOW - 4 * HOUR, NOW))) }));
    await store.putStaged(staged(records));
  };
  const published = await store.beginGeneration('card_daily');
  await stage(published);
  await store.publish('card_daily', published);
  await stage(await store.beginGeneration('card_daily'));
  await store.close();
}

/** Records as putStaged takes them: packed, as an import stages a chunk. */
function staged(records: readonly { key: Uint8Array; bytes: Uint8Array }[]): StagedRecords {
  const batch = new StagedRecords(1024, 1024);
  for (const { key, bytes } of records) {
    batch.keys.append(key);
    batch.records.append(bytes);
    batch.endRecord();
  }
  return batch;
}

function versionsNewestFirst(list: Version[]): Version[] {
  const byTime = new Map(list.map((version) => [version.eventTs, version]));
  return [...byTime.values()].sort((a, b) => b.eventTs - a.eventTs);
}

interface Census {
  records: number;
  bytes: number;
  /** Versions or events per view (a staged generation counted apart). */
  entries: Record<string, number>;
  /** Versions (events) older than the view's horizon, beyond the one (two, with the first event) a read needs. */
  excess: number;
}

/** Counts what L3 holds, reading the LevelDB directly (no server may have it open). */
async function census(dataDir: string, nowMs: number): Promise<Census> {
  const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const result: Census = { records: 0, bytes: 0, entries: {}, excess: 0 };
  const published = generationPrefix('card_daily', 1);
  for await (const [key, bytes] of db.iterator({ gte: Buffer.of(RECORD_NAMESPACE), lt: Buffer.of(RECORD_NAMESPACE + 1) })) {
    const view = viewOfRecordKey(key);
    const name = view === 'card_daily' && published.compare(key, 0, published.length) !== 0 ? 'card_daily (staged)' : view;
    result.records++;
    result.bytes += bytes.length;
    if (bytes[0] === EVENT_LOG_FORMAT) {
      const ts = EventLog.decode(bytes).ts;
      result.entries[name] = (result.entries[name] ?? 0) + ts.length;
      result.excess += Math.max(0, ts.filter((time) => time < nowMs - RETENTION - HOUR).length - 2);
    } else {
      const record = FeatureRecord.decode(bytes);
      result.entries[name] = (result.entries[name] ?? 0) + record.versionCount;
      if (name === view) result.excess += Math.max(0, record.versions().map((version) => version.eventTs).filter((time) => time < nowMs - RETENTION).length - 1);
    }
  }
  await db.close();
  return result;
}

const FEATURES = ['card_profile:credit_limit', 'card_daily:avg_ticket', 'card_txn:txn_count_5m', 'card_txn:amount_sum_1h', 'card_txn:last_country', 'card_txn:first_country'];

/** Reads at random times within retention (from NOW, so they stay within it while the test runs). */
const READ_TIMES = (() => {
  const random = seededRandom(11);
  return Array.from({ length: 25 }, () => Math.floor(NOW - RETENTION + 2 * MIN + random() * (RETENTION - 2 * MIN)));
})();

async function answersWithin(dataDir: string, compactionInterval: string): Promise<{ answers: unknown[]; outOfRange: ServiceError; swept: number }> {
  const server = await startTestServer({ registry: REGISTRY, retention: '1h', 'compaction-interval': compactionInterval }, { dataDir, keepData: true });
  try {
    if (compactionInterval !== '0') {
      const deadline = Date.now() + 10_000;
      while ((await server.metric('strata_compaction_sweeps_total')) < 1) {
        if (Date.now() > deadline) throw new Error('no compaction sweep within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const answers: unknown[] = [];
    for (const asOf of READ_TIMES) {
      const { status, json } = await server.http('/get-online-features', { features: FEATURES, entities: { card_id: [...CARDS, 'card-never'] }, as_of: new Date(asOf).toISOString() });
      expect(status).toBe(200);
      answers.push(json);
    }
    const outOfRange = await server.grpc
      .getOnlineFeatures({ features: { refs: FEATURES }, entities: { card_id: { values: [{ string_val: 'card-1' }] } }, as_of: timestamp(NOW - RETENTION - 5 * MIN) })
      .then(
        () => {
          throw new Error('a read before retention was answered');
        },
        (error: ServiceError) => error,
      );
    return { answers, outOfRange, swept: await server.metric('strata_compaction_records_total', { outcome: 'rewritten' }) };
  } finally {
    await server.stop();
  }
}

describe('retention compaction', () => {
  it('drops history past retention from records never written again; reads within retention answer identically, reads before it are OUT_OF_RANGE', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    await seedOldHistory(dataDir);
    const before = await answersWithin(dataDir, '0');
    const held = await census(dataDir, NOW);
    expect(held.excess).toBeGreaterThan(100);

    const after = await answersWithin(dataDir, '1h');
    expect(after.answers).toEqual(before.answers);
    // Not vacuous: the reads see values and statuses of several kinds.
    const text = JSON.stringify(after.answers);
    for (const status of ['PRESENT', 'NOT_FOUND', 'OUTSIDE_MAX_AGE']) expect(text).toContain(status);
    expect(after.swept).toBeGreaterThan(0);

    // The sweep ran after NOW: by NOW's horizon, nothing past retention is left beyond what reads need.
    const left = await census(dataDir, NOW);
    expect(left.excess).toBe(0);
    expect(left.records).toBe(held.records);
    expect(left.bytes).toBeLessThan(held.bytes * 0.8);
    for (const view of ['card_profile', 'card_daily', 'card_txn']) expect(left.entries[view], view).toBeLessThan(held.entries[view]!);
    // A staged generation belongs to its import: untouched.
    expect(left.entries['card_daily (staged)']).toBe(held.entries['card_daily (staged)']);

    for (const { outOfRange } of [before, after]) {
      expect(outOfRange.code).toBe(GrpcStatus.OUT_OF_RANGE);
      expect(outOfRange.metadata.get('strata-error-code')).toEqual(['STRATA_AS_OF_BEFORE_RETENTION']);
      expect(outOfRange.metadata.get('strata-error-field')).toEqual(['as_of']);
    }
  });

  it('never loses a write that races the sweep, and deletes records left with nothing', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    await seedOldHistory(dataDir);
    const store = await LevelStore.open({ dataDir, ...limits });
    const metrics = new Metrics({ processMetrics: false });
    const empty = keyOf(recordKeyPrefix('card_profile'), 'card-empty');
    await store.putStaged(staged([{ key: empty, bytes: encodeRecord(profile.schemaFingerprint, 1, 1, []) }]));
    try {
      const compactor = new Compactor({ store, intervalMs: 0, bytesPerSecond: 0, metrics, logger: createLogger('error'), batchSize: 7 });
      const random = seededRandom(3);
      const written: { view: ViewDef; card: string; ts: number }[] = [];
      let sweeping = true;
      const sweep = compactor.sweep().finally(() => (sweeping = false));
      const writes: Promise<unknown>[] = [];
      // Writes of every kind of record, spread over the sweep, each at a time no other write uses.
      for (let round = 0; sweeping || round < 20; round++) {
        const card = CARDS[Math.floor(random() * CARDS.length)]!;
        const ts = NOW - MIN + round;
        if (round % 2 === 0) {
          writes.push(store.applyWrites([{ view: profile, key: keyOf(recordKeyPrefix('card_profile'), card), versions: [{ eventTs: ts, createdTs: ts, slots: [double(round)] }] }], Date.now()));
          written.push({ view: profile, card, ts });
        } else {
          const event: IncomingEvent = { ...events(random, 1, ts, ts + 1)[0]!, ts };
          writes.push(store.applyWrites([{ view: txn, key: keyOf(recordKeyPrefix('card_txn'), card), events: [event] }], Date.now()));
          written.push({ view: txn, card, ts });
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all([sweep, ...writes]);
      expect(written.length).toBeGreaterThan(20);

      for (const { view, card, ts } of written) {
        const [bytes] = await store.getRecords([{ view, key: keyOf(recordKeyPrefix(view.name), card) }]);
        const times = view === txn ? [...EventLog.decode(bytes!).ts] : FeatureRecord.decode(bytes!).versions().map((version) => version.eventTs);
        expect(times, `${view.name} ${card} @${ts}`).toContain(ts);
      }
      expect(await store.getRecords([{ view: profile, key: empty }])).toEqual([undefined]);
      expect(await metricValue(metrics, 'strata_compaction_records_total', 'deleted')).toBe(1);
    } finally {
      await store.close();
    }
    expect((await census(dataDir, NOW)).excess).toBe(0);
  });
});

describe('a lifetime last with a where clause, through L3', () => {
  const geoRegistry = compileRegistry(
    `entities:
  card: { join_key: card_id }
feature_views:
  card_geo:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    aggregations:
      n_5m:             { fn: count, window: 5m }
      last_atm_country: { fn: last, field: country, where: { category: [atm] } }
`,
    'reg.yaml',
  );
  const geo = geoRegistry.views.get('card_geo')!;
  const { columns } = geo.source as StreamSource;
  const txnAt = (ts: number, category: string, country: string): IncomingEvent => ({ ts, values: columns.map((column) => (column === 'country' ? country : category)), origin: undefined });

  it('keeps the atm event through later writes and sweeps, and a sweep leaves a log whose old events are all read as it is', async () => {
    const dataDir = mkdtempSync(join(scratch, 'geo-'));
    const store = await LevelStore.open({ dataDir, registry: geoRegistry, retentionMs: RETENTION, maxVersions: 1_000, maxEvents: 10_000 });
    try {
      const key = keyOf(recordKeyPrefix('card_geo'), 'card-1');
      const start = NOW - 10 * HOUR;
      const lastAtm = async (): Promise<{ value: unknown; events: number }> => {
        const log = EventLog.decode((await store.getRecords([{ view: geo, key }]))[0]!);
        return { value: evaluateAt(geo, log, NOW)!.results[geo.featuresByName.get('last_atm_country')!.index], events: log.length };
      };
      await store.applyWrites([{ view: geo, key, events: ['online', 'atm', 'online', 'online'].map((category, index) => txnAt(start + index * MIN, category, category === 'atm' ? 'BR' : 'US')) }], start + 4 * MIN);
      // Its horizon (now − 1 h − 5 min) passes the first four: the one between the atm event and the newest of them goes.
      await store.applyWrites([{ view: geo, key, events: [txnAt(NOW - 2 * HOUR, 'online', 'DE'), txnAt(NOW - 2 * HOUR + MIN, 'online', 'PT')] }], NOW - 2 * HOUR + 2 * MIN);
      expect(await lastAtm()).toEqual({ value: 'BR', events: 5 });
      // A sweep at NOW keeps event 0, the atm event and the newest before its horizon; the next finds nothing to drop.
      expect((await store.compactBatch(undefined, 100, NOW)).rewritten).toBe(1);
      expect(await lastAtm()).toEqual({ value: 'BR', events: 3 });
      expect((await store.compactBatch(undefined, 100, NOW + HOUR)).rewritten).toBe(0);
      expect(await lastAtm()).toEqual({ value: 'BR', events: 3 });
    } finally {
      await store.close();
    }
  });
});

describe('compaction sweeps over time', () => {
  const compactorOf = (store: CompactableStore, options: { intervalMs?: number; bytesPerSecond?: number; now?: () => number } = {}): Compactor =>
    new Compactor({ store, intervalMs: options.intervalMs ?? HOUR, bytesPerSecond: options.bytesPerSecond ?? 0, metrics: new Metrics({ processMetrics: false }), logger: createLogger('error'), now: options.now, batchSize: 10 });

  it('a restart sweeps an interval after the last complete sweep, at once when retention or the registry changed', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    await seedOldHistory(dataDir);
    let store = await LevelStore.open({ dataDir, ...limits });
    try {
      expect(await compactorOf(store).firstSweepDelay()).toBe(0);
      const sweptAt = NOW + 5 * MIN;
      await compactorOf(store, { now: () => sweptAt }).sweep();
      expect(await store.lastSweepStart()).toBe(sweptAt);
      expect(await compactorOf(store, { now: () => sweptAt + 20 * MIN }).firstSweepDelay()).toBe(40 * MIN);
      expect(await compactorOf(store, { now: () => sweptAt + 2 * HOUR }).firstSweepDelay()).toBe(0);
      // A clock set back: one interval at most.
      expect(await compactorOf(store, { now: () => sweptAt - 5 * HOUR }).firstSweepDelay()).toBe(HOUR);
    } finally {
      await store.close();
    }
    store = await LevelStore.open({ dataDir, ...limits });
    try {
      expect(await store.lastSweepStart()).toBe(NOW + 5 * MIN);
    } finally {
      await store.close();
    }
    const otherRegistry = join(scratch, 'registry-renamed-feature.yaml');
    writeFileSync(otherRegistry, readFileSync(REGISTRY, 'utf8').replace('txn_count_5m: { fn: count, window: 5m }', 'txn_count_5m: { fn: count, window: 10m }'));
    for (const changed of [{ retentionMs: 2 * HOUR }, { maxVersions: 10 }, { maxEvents: 500 }, { registry: loadRegistry(otherRegistry) }]) {
      store = await LevelStore.open({ dataDir, ...limits, ...changed });
      try {
        expect(await store.lastSweepStart(), JSON.stringify(Object.keys(changed))).toBeUndefined();
      } finally {
        await store.close();
      }
    }
  });

  it('a sweep reads no faster than its rate, and one stopped half-way leaves no mark', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    await seedOldHistory(dataDir);
    const store = await LevelStore.open({ dataDir, ...limits });
    let bytesRead = 0;
    const counting: CompactableStore = {
      compactBatch: async (after, limit, nowMs) => {
        const batch = await store.compactBatch(after, limit, nowMs);
        bytesRead += batch.bytesRead;
        return batch;
      },
      lastSweepStart: () => store.lastSweepStart(),
      markSwept: (startedAtMs) => store.markSwept(startedAtMs),
    };
    try {
      // The first sweep compacts; the second reads what is left, as the paced one will.
      await compactorOf(counting).sweep();
      bytesRead = 0;
      await compactorOf(counting).sweep();
      const total = bytesRead;
      expect(total).toBeGreaterThan(10_000);

      bytesRead = 0;
      const started = performance.now();
      await compactorOf(counting, { bytesPerSecond: total / 0.5 }).sweep();
      expect(bytesRead).toBe(total);
      expect(performance.now() - started).toBeGreaterThanOrEqual(490);

      await store.markSwept(NOW);
      const stopped = compactorOf(counting, { bytesPerSecond: 1 });
      bytesRead = 0;
      const halfWay = stopped.sweep();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await stopped.stop();
      await halfWay;
      expect(bytesRead).toBeGreaterThan(0);
      expect(bytesRead).toBeLessThan(total);
      expect(await store.lastSweepStart()).toBe(NOW);
    } finally {
      await store.close();
    }
  });
});

async function metricValue(metrics: Metrics, name: string, outcome: string): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === name)!;
  return metric.values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
}
