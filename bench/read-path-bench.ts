/**
 * In-process benchmark of the GetOnlineFeatures read path: request bytes →
 * response bytes through OnlineFeaturesRpc (exactly what the gRPC edge runs
 * per call), with no network, on the real stack — LevelDB L3 in a temp dir,
 * lru-cache L1, bloom gate, TieredRecordStore, OnlineReader.
 *
 *   npm run bench:read
 *   node --cpu-prof --import tsx bench/read-path-bench.ts     (profile)
 *
 * Registry: bench/registry-wide.yaml (a 10- and a 50-feature view, mixed
 * double/int64/string). Writes BENCH_ENTITIES (20000) entities to both views,
 * then for each shape — 1×10, 1×50, 100×10, 100×50 rows × features, L1 hot,
 * plus 1×50 with L1 off (every lookup goes to LevelDB) — reports over
 * BENCH_ROUNDS (5) rounds of ~BENCH_ROUND_MS (200) each (BENCH_SHAPES=1x50-L1,100x50-L1
 * runs only those shapes):
 *   - the median CPU µs per request of the whole path, wall-clock p99 and
 *     max of single requests, and GC time per 1000 requests (GC pauses are
 *     p99 spikes);
 *   - the median CPU µs per request of each step on its own: decode (protobuf →
 *     OnlineRequest), plan+keys (validation, plan, entity keys: prepare),
 *     tier read (TieredRecordStore.read), PIT (version and status per value:
 *     select), encode (response bytes).
 * Nothing is written into the repository; the temp dir is removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import protobuf from 'protobufjs';
import { LruMemoryTier } from '../src/cache/lru-memory-tier.js';
import { TieredRecordStore } from '../src/cache/tiered-record-store.js';
import { loadRegistry, type ViewDef } from '../src/config/registry.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { jsonValues } from '../src/server/json-values.js';
import { OnlineFeaturesRpc } from '../src/server/online-features-rpc.js';
import { protoValues } from '../src/server/proto-values.js';
import { FeatureWriter } from '../src/serving/feature-writer.js';
import { OnlineReader } from '../src/serving/online-reader.js';
import { LevelStore } from '../src/storage/level-store.js';
import { seededRandom } from '../src/util/seeded-random.js';

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

const ENTITIES = setting('BENCH_ENTITIES', 20_000);
const ROUNDS = setting('BENCH_ROUNDS', 5);
const ROUND_MS = setting('BENCH_ROUND_MS', 200);
/** Distinct requests per shape, cycled through. */
const POOL = 256;
const DAY_MS = 86_400_000;

const REGISTRY_PATH = fileURLToPath(new URL('./registry-wide.yaml', import.meta.url));
const PROTO_PATH = fileURLToPath(new URL('../proto/strata/v1/feature_service.proto', import.meta.url));
const GetOnlineFeaturesRequest = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true }).lookupType('strata.v1.GetOnlineFeaturesRequest');
const GetOnlineFeaturesResponse = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true }).lookupType('strata.v1.GetOnlineFeaturesResponse');

const cardId = (index: number): string => `card-${String(index).padStart(7, '0')}`;

/** Deterministic raw (JSON) value of a feature of an entity. */
function featureValue(type: string, entity: number, feature: number): number | string {
  if (type === 'double') return entity * 0.25 + feature;
  if (type === 'int64') return entity * 7 + feature;
  return `v${entity % 97}-${feature}`;
}

async function writeEntities(writer: FeatureWriter, view: ViewDef, nowMs: number): Promise<void> {
  const batch = 500;
  for (let first = 0; first < ENTITIES; first += batch) {
    const entities = Array.from({ length: Math.min(batch, ENTITIES - first) }, (_, offset) => first + offset);
    const columns = new Map<string, unknown[]>([['card_id', entities.map(cardId)]]);
    for (const feature of view.features) columns.set(feature.name, entities.map((entity) => featureValue(feature.type, entity, feature.index)));
    // Two versions per entity, so PIT selection has a choice to make.
    for (const ageMs of [DAY_MS, 1_000]) {
      await writer.write({ view: view.name, columns, eventTimestamps: entities.map(() => nowMs - ageMs), createdTimestamps: undefined }, jsonValues, nowMs);
    }
  }
}

function encodeRequest(view: ViewDef, ids: readonly string[]): Uint8Array {
  const message = {
    features: { refs: view.features.map((feature) => feature.ref) },
    entities: { card_id: { values: ids.map((id) => ({ string_val: id })) } },
  };
  return GetOnlineFeaturesRequest.encode(GetOnlineFeaturesRequest.fromObject(message)).finish();
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

let gcMs = 0;
let gcCount = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcCount++;
  }
}).observe({ entryTypes: ['gc'] });

/**
 * V8 heap bytes one call allocates (garbage included), in KiB: the growth of
 * the used heap over a batch of calls, the largest of a few batches (a
 * scavenge during a batch shrinks the heap, so only batches without one
 * count). Garbage per call sets how often the young generation is collected,
 * and how much of what is in flight then survives into the old one.
 */
async function allocatedKiB(step: (index: number) => unknown): Promise<number> {
  const batch = 32;
  let most = 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    const before = getHeapStatistics().used_heap_size;
    for (let index = 0; index < batch; index++) {
      const result = step(index);
      if (result instanceof Promise) await result;
    }
    most = Math.max(most, getHeapStatistics().used_heap_size - before);
  }
  return most / batch / 1024;
}

/**
 * Median over rounds of CPU µs per call; each round runs `step` over the pool
 * for about ROUND_MS. CPU time (process.cpuUsage, GC threads included) rather
 * than wall time: the machine is shared with load generators, and a process
 * waiting for a core is not doing work.
 */
async function timeStep(step: (index: number) => unknown): Promise<number> {
  const perRound: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let calls = 0;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    while (performance.now() - started < ROUND_MS) {
      for (let index = 0; index < POOL; index++) {
        const result = step(index);
        if (result instanceof Promise) await result;
      }
      calls += POOL;
    }
    const cpu = process.cpuUsage(cpuBefore);
    perRound.push((cpu.user + cpu.system) / calls);
  }
  return median(perRound);
}

interface Shape {
  readonly name: string;
  readonly rpc: OnlineFeaturesRpc;
  readonly store: TieredRecordStore;
  readonly reader: OnlineReader;
  readonly view: ViewDef;
  readonly rows: number;
}

async function benchShape(shape: Shape, nowMs: number): Promise<void> {
  const random = seededRandom(shape.rows * 1000 + shape.view.features.length);
  const bodies = Array.from({ length: POOL }, () => encodeRequest(shape.view, Array.from({ length: shape.rows }, () => cardId(Math.floor(random() * ENTITIES)))));
  const { rpc, reader, store } = shape;

  // Whole path, with single-request latencies and GC.
  for (let index = 0; index < POOL * 4; index++) await rpc.handle(bodies[index % POOL]!, nowMs);
  const latencies: number[] = [];
  const gcBefore = { ms: gcMs, count: gcCount };
  let requests = 0;
  const total = await timeStep(async (index) => {
    const started = performance.now();
    await rpc.handle(bodies[index]!, nowMs);
    latencies.push(performance.now() - started);
    requests++;
  });
  // GC entries reach the observer asynchronously: give them time to arrive before reading the totals.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const sorted = Float64Array.from(latencies).sort();
  const gcPer1k = ((gcMs - gcBefore.ms) * 1000) / requests;

  // Each step on its own, on inputs made by the steps before it.
  const requestsDecoded = bodies.map((body) => rpc.decode(body));
  const prepared = requestsDecoded.map((request) => reader.prepare(request, protoValues, nowMs));
  const found = await Promise.all(prepared.map((read) => store.read(read.lookups)));
  const results = prepared.map((read, index) => reader.select(read, found[index]!));
  const decode = await timeStep((index) => rpc.decode(bodies[index]!));
  const plan = await timeStep((index) => reader.prepare(requestsDecoded[index]!, protoValues, nowMs));
  const tiers = await timeStep((index) => store.read(prepared[index]!.lookups));
  const pit = await timeStep((index) => reader.select(prepared[index]!, found[index]!));
  const encode = await timeStep((index) => rpc.encode(results[index]!, false));
  const allocated: number[] = [];
  // One after another: batches of two async steps interleaved would each count the other's garbage.
  for (const step of [
    (index: number) => rpc.handle(bodies[index]!, nowMs),
    (index: number) => rpc.decode(bodies[index]!),
    (index: number) => reader.prepare(requestsDecoded[index]!, protoValues, nowMs),
    (index: number) => store.read(prepared[index]!.lookups),
    (index: number) => reader.select(prepared[index]!, found[index]!),
    (index: number) => rpc.encode(results[index]!, false),
  ]) {
    allocated.push(await allocatedKiB(step));
  }

  const f = (value: number): string => value.toFixed(1).padStart(7);
  console.log(
    `${shape.name.padEnd(14)}${f(total)}${f(quantile(sorted, 0.99) * 1000)}${f(sorted[sorted.length - 1]! * 1000)}${f(gcPer1k)}${String(gcCount - gcBefore.count).padStart(6)} |${f(decode)}${f(plan)}${f(tiers)}${f(pit)}${f(encode)} |${allocated.map(f).join('')}`,
  );
}

/** Checks one response against the written values before timing anything. */
async function checkResponse(rpc: OnlineFeaturesRpc, view: ViewDef, nowMs: number): Promise<void> {
  const entity = 1234 % ENTITIES;
  const response = GetOnlineFeaturesResponse.toObject(GetOnlineFeaturesResponse.decode(await rpc.handle(encodeRequest(view, [cardId(entity)]), nowMs)), { longs: Number }) as {
    results: { values: Record<string, unknown>[]; statuses: number[] }[];
  };
  view.features.forEach((feature, index) => {
    const value = response.results[index + 1]!.values[0]!;
    const actual = value.double_val ?? value.int64_val ?? value.string_val;
    const expected = featureValue(feature.type, entity, feature.index);
    if (actual !== expected) throw new Error(`${feature.ref}: read ${String(actual)}, wrote ${expected}`);
  });
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-read-bench-'));
  const registry = loadRegistry(REGISTRY_PATH);
  const metrics = new Metrics({ processMetrics: false });
  const logger = createLogger('warn');
  const limits = { maxRows: 1_000, maxFeatures: 1_000, maxResponseBytes: 256 * 1024 ** 2, retentionMs: 7 * DAY_MS };
  const l3 = await LevelStore.open({ dataDir, registry, retentionMs: limits.retentionMs, maxVersions: 1_000, maxEvents: 50_000 });
  try {
    const hotStore = await TieredRecordStore.open({
      l1: new LruMemoryTier({ budgetBytes: 1024 ** 3, maxStalenessMs: 0, metrics }),
      l2: undefined,
      l3,
      views: [...registry.views.keys()],
      bloomCapacity: 4 * ENTITIES,
      bloomSyncMs: 1_000,
      metrics,
      logger,
    });
    const nowMs = Date.now();
    const writer = new FeatureWriter(registry, hotStore, { maxRows: limits.maxRows, metrics });
    const narrow = registry.views.get('card_features')!;
    const wide = registry.views.get('card_wide')!;
    const writeStarted = performance.now();
    for (const view of [narrow, wide]) await writeEntities(writer, view, nowMs);
    console.log(`wrote ${ENTITIES} entities × 2 versions to ${narrow.name} and ${wide.name} in ${((performance.now() - writeStarted) / 1000).toFixed(1)} s`);

    // A second stack over the same L3 without L1: every lookup is a LevelDB read.
    const coldStore = await TieredRecordStore.open({ l1: undefined, l2: undefined, l3, views: [...registry.views.keys()], bloomCapacity: 4 * ENTITIES, bloomSyncMs: 1_000, metrics, logger });
    const hotReader = new OnlineReader(registry, hotStore, limits);
    const coldReader = new OnlineReader(registry, coldStore, limits);
    const hot = { rpc: new OnlineFeaturesRpc(registry, hotReader), reader: hotReader, store: hotStore };
    const cold = { rpc: new OnlineFeaturesRpc(registry, coldReader), reader: coldReader, store: coldStore };
    for (const view of [narrow, wide]) await checkResponse(hot.rpc, view, nowMs);
    await checkResponse(cold.rpc, wide, nowMs);

    console.log(`CPU µs per request, median of ${ROUNDS} rounds of ~${ROUND_MS} ms; p99/max: wall µs of single requests; gc = GC ms per 1000 requests, #gc = GC events; after the second bar: KiB of V8 heap allocated per request`);
    console.log(`${'shape'.padEnd(14)}${'total'.padStart(7)}${'p99'.padStart(7)}${'max'.padStart(7)}${'gc'.padStart(7)}${'#gc'.padStart(6)} |${'decode'.padStart(7)}${'plan+k'.padStart(7)}${'tiers'.padStart(7)}${'PIT'.padStart(7)}${'encode'.padStart(7)} |${['total', 'decode', 'plan+k', 'tiers', 'PIT', 'encode'].map((name) => name.padStart(7)).join('')}`);
    const shapes: Shape[] = [
      { name: '1x10-L1', ...hot, view: narrow, rows: 1 },
      { name: '1x50-L1', ...hot, view: wide, rows: 1 },
      { name: '100x10-L1', ...hot, view: narrow, rows: 100 },
      { name: '100x50-L1', ...hot, view: wide, rows: 100 },
      { name: '1x50-L3', ...cold, view: wide, rows: 1 },
    ];
    const only = process.env.BENCH_SHAPES?.split(',');
    for (const shape of shapes) if (only === undefined || only.includes(shape.name)) await benchShape(shape, nowMs);
  } finally {
    // Without L2 the tiered stores hold no timers or connections: closing L3 closes everything.
    await l3.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
