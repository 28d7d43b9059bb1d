/**
 * Stream ingestion benchmark: Avro txn events → decode → extract → apply
 * (windowed event logs through the tiers), against the issue's targets:
 * ≥ 30k events/s per core through decode → aggregate → store, and p99
 * event-to-servable ≤ 500 ms at 20k events/s produced.
 *
 *   npm run bench:ingest                      (builds first: part 2 runs dist/cli/main.js)
 *   BENCH_PARTS=1 node --cpu-prof --import tsx bench/ingest-bench.ts     (profile part 1)
 *   BENCH_PARTS=2 BENCH_SERVER_PROF=/tmp/prof npm run bench:ingest      (profile the strata server of part 2)
 *
 * Part 1 — throughput in this process, no broker. BENCH_EVENTS (100000) txn
 * events from EventGenerator (seed 42, BENCH_USERS (50000) users ≈ 2 cards
 * each, event times spread over the last hour, the generator's own 5 %
 * out-of-order and 0.5 % late events), pre-encoded in the Confluent Avro wire
 * format with writer ids 1 and 2 (TxnEvent v1/v2, about half each) and spread
 * over 4 partitions by key. Then BENCH_ROUNDS (5) rounds, each of:
 *   decode        AvroEventDecoder.decode (what createDecoder builds for txn.events)
 *   +extract      … + StreamApplier.extract
 *   full          … + watermark + StreamApplier.apply in per-partition steps of
 *                 2,000 messages, as KafkaIngester.handleBatch does (fresh temp L3
 *                 per round, L1 on, no Redis)
 *   full hot      the same with BENCH_HOT_USERS (1000) users (~2k cards): each
 *                 card's log grows to ~50 events, and every write re-encodes it
 *   full +L2      the full path with a Redis L2 (writeEvents then waits for
 *                 MGET + pipeline to Redis; strata's default --redis-timeout,
 *                 BENCH_REDIS_TIMEOUT overrides), if redis-server is on PATH;
 *                 a step failing 5 times in a row marks the path failed
 * reporting medians over rounds of events/s (wall), events per CPU-second of
 * this process (user+system, all threads: LevelDB reads, writes and
 * compaction run on libuv/LevelDB threads, so this counts them too; the
 * figure to hold against "per core"), events per second of event-loop busy
 * time (wall time not idle in the loop, so on a busy box it includes waiting
 * for a core), GC time, and the cores other processes used meanwhile.
 * BENCH_PATHS='full L1+L3,…' runs only those paths.
 *
 * Part 2 — end to end at a fixed rate. A KafkaBroker (librdkafka mock cluster,
 * test/support) with txn.events in 4 partitions; `strata serve` as a child
 * process (dist/, with INGEST_NODE_FLAGS — README: what a process that ingests should run with —, temp data dir, bundled registry, --kafka-brokers,
 * --kafka-session-timeout 3s, L1 on, no Redis); a librdkafka producer in its
 * own process (bench/ingest-producer.c, compiled with gcc on first use: the
 * kafkajs producer took ~27 µs of CPU per event and could not offer 20k/s on
 * this box, in this process or in one of its own; this one takes ~2 µs)
 * sending txn events open-loop at BENCH_E2E_RATE (20000) events/s for
 * BENCH_E2E_SECONDS (30): one burst per BENCH_E2E_TICK_MS (50) tick of what
 * the schedule owes by then (acks 1, Java's murmur2 partitioner as kafkajs's
 * default, event time = send time minus the generator's out-of-order/late
 * offset), events pre-generated and pre-encoded here so that producing costs
 * a copy and a timestamp patch. Each tick's burst ends with a probe: a txn
 * for a card never seen before. A poller here asks POST /get-online-features for
 * card_txn:txn_count_5m of the POLL_PROBES oldest
 * probes not yet seen, every 5 ms; a probe's latency is from its send call to
 * the first response with count 1 (so it includes up to one poll round trip, a
 * few ms; a probe beyond the oldest POLL_PROBES unseen waits for its turn,
 * which can only overstate its latency). Reported:
 * achieved produce rate, p50/p90/p99/max event-to-servable, consumer lag when
 * producing stops and how long it takes to drain (at most 25 s; probes still
 * unseen then count with the time waited, so their quantiles are lower bounds), CPU of
 * strata, broker, producer, this process and everything else on the box. A second point
 * at BENCH_E2E_LOW_RATE (5000) events/s for BENCH_E2E_LOW_SECONDS (12) follows
 * on a fresh broker and server.
 *
 * BENCH_PARTS=1 or 2 runs one part. Results: a table on stdout and
 * bench/out/ingest.json. Temp dirs, the broker, Redis and strata are removed
 * or stopped at the end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import kafkajs from 'kafkajs';
import type { Registry, TopicDef } from '../src/config/registry.js';
import type { ExtractedEvent, StreamApplier as Applier } from '../src/ingest/stream-applier.js';
import type { TieredRecordStore as RecordStore } from '../src/cache/tiered-record-store.js';
import type { EventLog } from '../src/storage/event-log.js';
import { KafkaBroker } from '../test/support/kafka-broker.js';
import { RedisServer } from '../test/support/redis-server.js';

const { Kafka, logLevel } = kafkajs;

/**
 * The code under test comes from dist/ (what `strata serve` runs; `npm run
 * bench:ingest` builds it first), typed by its source. Not through tsx: its
 * esbuild transform keeps function names by wrapping every closure created in
 * a hot function (event-log.ts makes several per record) in a __name() call,
 * which alone costs several % of this path. BENCH_FROM=src measures src/ through tsx;
 * BENCH_FROM=<dir> another build (a copy of dist/ inside the repository, so that
 * its imports resolve: A/B runs of a change). Part 1 only: part 2's servers are
 * BENCH_E2E_SERVERS (default dist), a comma-separated list of such builds, each
 * run BENCH_E2E_RUNS (1) times per rate, interleaved so that a noisy neighbour
 * hits all of them alike.
 */
const FROM = process.env.BENCH_FROM ?? 'dist';
const codeRoot = FROM === 'src' || FROM === 'dist' ? new URL(`../${FROM}/`, import.meta.url) : pathToFileURL(`${resolve(FROM)}/`);
const load = async <T>(path: string): Promise<T> => (await import(new URL(path, codeRoot).href)) as T;
const [{ LruMemoryTier }, { RedisSharedTier }, { BloomGate }, { TieredRecordStore }, { loadRegistry }, { encodeConfluent }, { EventGenerator }, { createDecoder }, { StreamApplier }, { Watermark }, { createLogger }, { Metrics }, { LevelStore }, { recordKey, recordKeyPrefix }] =
  await Promise.all([
    load<typeof import('../src/cache/lru-memory-tier.js')>('cache/lru-memory-tier.js'),
    load<typeof import('../src/cache/redis-shared-tier.js')>('cache/redis-shared-tier.js'),
    load<typeof import('../src/cache/bloom-gate.js')>('cache/bloom-gate.js'),
    load<typeof import('../src/cache/tiered-record-store.js')>('cache/tiered-record-store.js'),
    load<typeof import('../src/config/registry.js')>('config/registry.js'),
    load<typeof import('../src/ingest/confluent-wire.js')>('ingest/confluent-wire.js'),
    load<typeof import('../src/ingest/event-generator.js')>('ingest/event-generator.js'),
    load<typeof import('../src/ingest/kafka-ingester.js')>('ingest/kafka-ingester.js'),
    load<typeof import('../src/ingest/stream-applier.js')>('ingest/stream-applier.js'),
    load<typeof import('../src/ingest/watermark.js')>('ingest/watermark.js'),
    load<typeof import('../src/observability/logger.js')>('observability/logger.js'),
    load<typeof import('../src/observability/metrics.js')>('observability/metrics.js'),
    load<typeof import('../src/storage/level-store.js')>('storage/level-store.js'),
    load<typeof import('../src/storage/keys.js')>('storage/keys.js'),
  ]);

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

const EVENTS = setting('BENCH_EVENTS', 100_000);
const ROUNDS = setting('BENCH_ROUNDS', 5);
/** The +L2 path is ~4× slower: it runs on the first BENCH_L2_EVENTS events, in at most BENCH_L2_ROUNDS rounds. */
const L2_EVENTS = setting('BENCH_L2_EVENTS', 30_000);
const L2_ROUNDS = setting('BENCH_L2_ROUNDS', 3);
const USERS = setting('BENCH_USERS', 50_000);
const HOT_USERS = setting('BENCH_HOT_USERS', 1_000);
const E2E_RATE = setting('BENCH_E2E_RATE', 20_000);
const E2E_SECONDS = setting('BENCH_E2E_SECONDS', 30);
const E2E_LOW_RATE = setting('BENCH_E2E_LOW_RATE', 5_000);
const E2E_LOW_SECONDS = setting('BENCH_E2E_LOW_SECONDS', 12);
const PARTS = (process.env.BENCH_PARTS ?? '1,2').split(',');
/** Part 1 paths to run, by name (default all), e.g. BENCH_PATHS='full L1+L3'. */
const ONLY_PATHS = process.env.BENCH_PATHS?.split(',');
const SERVER_PROF = process.env.BENCH_SERVER_PROF;
/** The serving-read L2 timeout of part 1's +L2 path: strata's --redis-timeout default. */
const REDIS_TIMEOUT_MS = setting('BENCH_REDIS_TIMEOUT', 25);
/** Attempts of one step before the +L2 path is given up as failing (the ingester would retry forever). */
const MAX_ATTEMPTS = 5;

const TOPIC = 'txn.events';
const PARTITIONS = 4;
/** KafkaIngester's STEP_MESSAGES. */
const STEP_MESSAGES = 2_000;
const HOUR_MS = 3_600_000;
const RETENTION_MS = 7 * 86_400_000;
/**
 * Producer tick: one send per tick, with one probe in it. 50 ms rather than
 * 10 ms because of the mock broker: librdkafka's mock answers a Fetch with at
 * most one stored message set per partition ("FIXME: Multiple messageSets ?"
 * in rdkafka_mock_handlers.c), i.e. one producer request's worth. With 10 ms
 * ticks at 5k/s that is ~12 messages per partition per fetch, and the
 * consumer stalls on round trips (measured: 2.5k/s applied of 5k/s produced,
 * strata at 0.6 cores); real Kafka returns everything up to the fetch size,
 * so a consumer that falls behind catches up in bigger batches. 50 ms ticks
 * give the mock's fetches 4× larger batches. BENCH_E2E_TICK_MS overrides.
 */
const TICK_MS = setting('BENCH_E2E_TICK_MS', 50);
/**
 * Probes read per poll, oldest first: reading every unseen probe (hundreds
 * when the consumer lags) every 5 ms costs strata more CPU than the events
 * being measured. Partitions apply in order, so the oldest are seen next.
 */
const POLL_PROBES = 32;
/** How long the consumer gets to catch up after producing stops. */
const DRAIN_LIMIT_MS = 25_000;

const REGISTRY_PATH = fileURLToPath(new URL('../examples/fraud/registry.yaml', import.meta.url));
const E2E_SERVERS = (process.env.BENCH_E2E_SERVERS ?? 'dist').split(',');
const E2E_RUNS = setting('BENCH_E2E_RUNS', 1);
const PRODUCER_SOURCE = fileURLToPath(new URL('./ingest-producer.c', import.meta.url));
const PRODUCER_CACHE = fileURLToPath(new URL('../node_modules/.cache/strata-ingest-producer/', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('./out/', import.meta.url));

const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const k = (value: number): string => `${(value / 1000).toFixed(1)}k`;

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

/** Kafka-like key → partition (FNV-1a; any stable hash does: one key, one partition, in order). */
function partitionOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index++) hash = Math.imul(hash ^ key.charCodeAt(index), 0x01000193);
  return (hash >>> 0) % PARTITIONS;
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU ms (user + system) a process has used so far, from /proc; NaN where there is none. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** CPU ms the whole machine has spent busy so far (all CPUs; steal included: another VM had the core), from /proc/stat. */
function machineBusyMs(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
    return ((user + nice + system + irq + softirq + steal) * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

// ───────────────────────────── part 1 ─────────────────────────────

interface Workload {
  readonly users: number;
  readonly messages: Buffer[];
  /** Message indexes per partition, in produce order. */
  readonly partitions: number[][];
  readonly cards: number;
  readonly v2: number;
}

function generateWorkload(topic: TopicDef, users: number, count: number, nowMs: number): Workload {
  const generator = new EventGenerator({ seed: 42, startTs: nowMs - HOUR_MS, users, topics: [TOPIC] });
  const messages: Buffer[] = [];
  const partitions: number[][] = Array.from({ length: PARTITIONS }, () => []);
  const cards = new Set<string>();
  let v2 = 0;
  for (let index = 0; index < count; index++) {
    generator.advanceTo(nowMs - HOUR_MS + Math.floor((index * HOUR_MS) / count));
    const { key, event, schemaVersion } = generator.next(TOPIC);
    const id = schemaVersion ?? 2;
    if (id === 2) v2++;
    messages.push(encodeConfluent(id, topic.writerTypes.get(id)!, event));
    partitions[partitionOf(key)]!.push(index);
    cards.add(key);
  }
  return { users, messages, partitions, cards: cards.size, v2 };
}

/** The first `count` events of a workload (the earliest event times), still in partition order. */
function prefix(workload: Workload, count: number): Workload {
  if (count >= workload.messages.length) return workload;
  const messages = workload.messages.slice(0, count);
  return { ...workload, messages, partitions: workload.partitions.map((indexes) => indexes.filter((index) => index < count)) };
}

interface Sample {
  readonly events: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly loopMs: number;
  readonly gcMs: number;
  /** Redis server CPU, for the +L2 path. */
  readonly redisCpuMs?: number;
  readonly retries?: number;
  /** Cores other processes kept busy meanwhile (the noise on a shared box). */
  readonly otherCores: number;
}

async function measure(events: number, body: () => Promise<{ retries?: number } | void>, redisCpu?: () => Promise<number>): Promise<Sample> {
  const redisBefore = await redisCpu?.();
  const gcBefore = gcMs;
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const machine = machineBusyMs();
  const started = performance.now();
  const extra = await body();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const machineUsed = machineBusyMs() - machine;
  const loop = performance.eventLoopUtilization(elu);
  // GC entries arrive asynchronously.
  await sleep(20);
  const redisAfter = await redisCpu?.();
  return {
    events,
    wallMs,
    cpuMs: (used.user + used.system) / 1000,
    loopMs: loop.active,
    gcMs: gcMs - gcBefore,
    // Redis's share is only known after the GC wait; it is at most a few % of the window.
    otherCores: Math.max(0, machineUsed - (used.user + used.system) / 1000 - (redisAfter === undefined ? 0 : redisAfter - redisBefore!)) / wallMs,
    ...(redisBefore === undefined ? {} : { redisCpuMs: redisAfter! - redisBefore }),
    ...(extra?.retries === undefined ? {} : { retries: extra.retries }),
  };
}

async function decodeOnly(topic: TopicDef, workload: Workload): Promise<void> {
  const decoder = createDecoder(topic, undefined);
  for (const message of workload.messages) {
    const decoded = await decoder.decode(message);
    if (!decoded.ok) throw new Error(`decode failed: ${decoded.detail}`);
  }
}

async function decodeExtract(topic: TopicDef, workload: Workload, applier: Applier): Promise<void> {
  const decoder = createDecoder(topic, undefined);
  const nowMs = Date.now();
  for (const message of workload.messages) {
    const decoded = await decoder.decode(message);
    if (!decoded.ok) throw new Error(`decode failed: ${decoded.detail}`);
    const extracted = applier.extract(TOPIC, decoded.event, nowMs);
    if (!extracted.ok) throw new Error(`extract failed: ${extracted.rejection.detail}`);
  }
}

interface FullOutcome {
  applied: number;
  late: number;
  retries: number;
  /** Events applied per card, to check one card's stored log against. */
  readonly perCard: Map<string, number>;
}

/**
 * KafkaIngester.handleBatch without Kafka: partitions in turn, each a run of
 * 2,000-message steps; each step decoded, extracted, checked against the
 * partition's watermark and applied in one write, then the watermark moves.
 * A step whose write fails (L2 timing out) is retried, as the ingester would.
 */
async function fullPath(topic: TopicDef, workload: Workload, applier: Applier): Promise<FullOutcome> {
  const decoder = createDecoder(topic, undefined);
  const watermarks = workload.partitions.map(() => new Watermark(topic.allowedLatenessMs));
  const cursors = workload.partitions.map(() => 0);
  const outcome: FullOutcome = { applied: 0, late: 0, retries: 0, perCard: new Map() };
  for (let busy = true; busy; ) {
    busy = false;
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const indexes = workload.partitions[partition]!;
      const start = cursors[partition]!;
      if (start >= indexes.length) continue;
      busy = true;
      const step = indexes.slice(start, start + STEP_MESSAGES);
      cursors[partition] = start + step.length;
      const watermark = watermarks[partition]!;
      for (let attempt = 0; ; attempt++) {
        const trial = new Watermark(topic.allowedLatenessMs, watermark.newestEventTs);
        const nowMs = Date.now();
        const toApply: { extracted: ExtractedEvent & { ok: true }; origin: { partition: number; offset: number } }[] = [];
        let late = 0;
        const cards: string[] = [];
        for (let position = 0; position < step.length; position++) {
          const decoded = await decoder.decode(workload.messages[step[position]!]!);
          if (!decoded.ok) throw new Error(`decode failed: ${decoded.detail}`);
          const extracted = applier.extract(TOPIC, decoded.event, nowMs);
          if (!extracted.ok) throw new Error(`extract failed: ${extracted.rejection.detail}`);
          if (!trial.admit(extracted.ts, nowMs)) late++;
          else {
            toApply.push({ extracted, origin: { partition, offset: start + position } });
            cards.push(decoded.event.card_id as string);
          }
        }
        try {
          await applier.apply(TOPIC, toApply, nowMs);
        } catch (error) {
          if (attempt + 1 >= MAX_ATTEMPTS) throw new Error(`a step of ${toApply.length} events failed ${MAX_ATTEMPTS} times in a row: ${(error as Error).message}`);
          outcome.retries++;
          await sleep(50);
          continue;
        }
        watermark.observe(trial.newestEventTs);
        outcome.applied += toApply.length;
        outcome.late += late;
        for (const card of cards) outcome.perCard.set(card, (outcome.perCard.get(card) ?? 0) + 1);
        break;
      }
    }
  }
  return outcome;
}

interface Stack {
  readonly store: RecordStore;
  readonly applier: Applier;
  close(): Promise<void>;
}

async function openStack(registry: Registry, redis: RedisServer | undefined, round: number): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-ingest-bench-'));
  const metrics = new Metrics({ processMetrics: false });
  const logger = createLogger('error');
  const l3 = await LevelStore.open({ dataDir, registry, retentionMs: RETENTION_MS, maxVersions: 1_000, maxEvents: 50_000 });
  const l2 =
    redis === undefined
      ? undefined
      : new RedisSharedTier({
          url: redis.url,
          keyPrefix: `bench${round}:`,
          timeoutMs: REDIS_TIMEOUT_MS,
          ttlMs: HOUR_MS,
          bloomGeometry: BloomGate.sharedGeometry(1_000_000),
          registry,
          metrics,
          logger,
        });
  if (l2 !== undefined && !(await l2.waitUntilReady(5_000))) throw new Error('redis did not become ready');
  const store = await TieredRecordStore.open({
    l1: new LruMemoryTier({ budgetBytes: 256 * 1024 ** 2, maxStalenessMs: l2 === undefined ? 0 : 60_000, metrics }),
    l2,
    l3,
    views: [...registry.views.keys()],
    bloomCapacity: 1_000_000,
    bloomSyncMs: 1_000,
    metrics,
    logger,
  });
  return {
    store,
    applier: new StreamApplier(registry, store, metrics, RETENTION_MS),
    close: async () => {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The stored log of one card holds exactly the events applied to it. */
async function checkStored(registry: Registry, stack: Stack, outcome: FullOutcome): Promise<void> {
  const view = registry.views.get('card_txn')!;
  const [card, expected] = [...outcome.perCard].sort((a, b) => b[1] - a[1])[0]!;
  const key = recordKey(recordKeyPrefix(view.name), ['string'], [card]);
  const [record] = await stack.store.read([{ view, id: key.toString('latin1') }]);
  const length = (record as EventLog | undefined)?.length;
  // The log keeps every event of the last hour (the longest window is 24 h), so nothing was pruned.
  if (length !== expected) throw new Error(`card ${card}: stored log has ${length} events, ${expected} were applied`);
}

interface PathResult {
  readonly name: string;
  readonly note: string;
  readonly samples: Sample[];
  /** Why the path could not be measured (it is not run again). */
  failure?: string;
}

async function part1(registry: Registry): Promise<{ results: PathResult[]; workloads: Record<string, unknown>; redis: string }> {
  const topic = registry.topics.get(TOPIC)!;
  const nowMs = Date.now();
  let started = performance.now();
  const workload = generateWorkload(topic, USERS, EVENTS, nowMs);
  const hot = generateWorkload(topic, HOT_USERS, EVENTS, nowMs);
  const bytes = workload.messages.reduce((sum, message) => sum + message.length, 0);
  console.log(
    `part 1: ${EVENTS} txn events (${Math.round((100 * workload.v2) / EVENTS)} % v2, ${Math.round(bytes / EVENTS)} B each) over ${workload.cards} cards` +
      ` (hot: ${hot.cards} cards), generated and encoded in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  let redis: RedisServer | undefined;
  let redisNote = 'not on PATH: skipped';
  try {
    execFileSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' });
    redis = await RedisServer.start();
    redisNote = `redis-server on 127.0.0.1:${redis.port}`;
  } catch {
    redis = undefined;
  }
  const redisCpu = async (): Promise<number> => {
    const info = await redis!.command('INFO', 'cpu');
    const field = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
    return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
  };

  const paths: { name: string; note: string; rounds?: number; run: (round: number) => Promise<Sample> }[] = [
    { name: 'decode', note: 'AvroEventDecoder.decode', run: () => measure(EVENTS, () => decodeOnly(topic, workload)) },
    {
      name: 'decode+extract',
      note: '+ StreamApplier.extract',
      run: async (round) => {
        const stack = await openStack(registry, undefined, round);
        try {
          return await measure(EVENTS, () => decodeExtract(topic, workload, stack.applier));
        } finally {
          await stack.close();
        }
      },
    },
    ...[
      { name: 'full L1+L3', note: `+ apply, steps of ${STEP_MESSAGES}, ~${(EVENTS / workload.cards).toFixed(1)} ev/card`, load: workload, withRedis: false },
      { name: 'full L1+L3 hot', note: `same, ${hot.cards} cards: logs grow to ~${Math.round(EVENTS / hot.cards)} ev`, load: hot, withRedis: false },
      ...(redis === undefined
        ? []
        : [{ name: 'full L1+L2+L3', note: `full path + Redis L2 (writeEvents waits for it), first ${Math.min(EVENTS, L2_EVENTS)} events, --redis-timeout ${REDIS_TIMEOUT_MS}ms`, load: prefix(workload, L2_EVENTS), withRedis: true }]),
    ].map(({ name, note, load, withRedis }) => ({
      name,
      note,
      rounds: withRedis ? Math.min(ROUNDS, L2_ROUNDS) : ROUNDS,
      run: async (round: number): Promise<Sample> => {
        const stack = await openStack(registry, withRedis ? redis : undefined, round);
        try {
          let outcome: FullOutcome | undefined;
          const sample = await measure(
            load.messages.length,
            async () => {
              outcome = await fullPath(topic, load, stack.applier);
              return { retries: outcome.retries };
            },
            withRedis ? redisCpu : undefined,
          );
          if (round === 0) await checkStored(registry, stack, outcome!);
          return { ...sample, events: outcome!.applied + outcome!.late };
        } finally {
          await stack.close();
        }
      },
    })),
  ];

  if (ONLY_PATHS !== undefined) paths.splice(0, paths.length, ...paths.filter((path) => ONLY_PATHS.includes(path.name)));
  const results: PathResult[] = paths.map(({ name, note }) => ({ name, note, samples: [] }));
  started = performance.now();
  try {
    // Paths interleaved within each round: a noisy neighbour hits all of them alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (let index = 0; index < paths.length; index++) {
        const result = results[index]!;
        if (result.failure !== undefined || round >= (paths[index]!.rounds ?? ROUNDS)) continue;
        try {
          result.samples.push(await paths[index]!.run(round));
        } catch (error) {
          result.failure = (error as Error).message;
          console.log(`  ${result.name}: FAILED in round ${round + 1}: ${result.failure}`);
        }
      }
    }
  } finally {
    await redis?.stop();
  }
  console.log(`${ROUNDS} rounds in ${((performance.now() - started) / 1000).toFixed(1)} s; redis: ${redisNote}`);
  return {
    results,
    workloads: { events: EVENTS, v2Share: workload.v2 / EVENTS, meanBytes: bytes / EVENTS, users: USERS, cards: workload.cards, hotUsers: HOT_USERS, hotCards: hot.cards },
    redis: redisNote,
  };
}

interface PathSummary {
  readonly name: string;
  readonly note: string;
  readonly eventsPerSec: number;
  readonly eventsPerCpuSec: number;
  readonly eventsPerLoopSec: number;
  readonly cores: number;
  readonly gcMsPerRound: number;
  readonly redisCpuMsPerRound?: number;
  readonly retries?: number;
  readonly rounds: number;
  readonly otherCores: number;
  readonly failure?: string;
}

function summarize(result: PathResult): PathSummary {
  const { samples } = result;
  const redis = samples.map((sample) => sample.redisCpuMs).filter((value): value is number => value !== undefined);
  return {
    name: result.name,
    note: result.note,
    eventsPerSec: median(samples.map((sample) => (sample.events * 1000) / sample.wallMs)),
    eventsPerCpuSec: median(samples.map((sample) => (sample.events * 1000) / sample.cpuMs)),
    eventsPerLoopSec: median(samples.map((sample) => (sample.events * 1000) / sample.loopMs)),
    cores: median(samples.map((sample) => sample.cpuMs / sample.wallMs)),
    gcMsPerRound: median(samples.map((sample) => sample.gcMs)),
    ...(redis.length === 0 ? {} : { redisCpuMsPerRound: median(redis) }),
    ...(samples.some((sample) => sample.retries !== undefined) ? { retries: samples.reduce((sum, sample) => sum + (sample.retries ?? 0), 0) } : {}),
    rounds: samples.length,
    otherCores: median(samples.map((sample) => sample.otherCores)),
    ...(result.failure === undefined ? {} : { failure: result.failure }),
  };
}

function printPart1(summaries: readonly PathSummary[]): void {
  const n = (value: number, width = 10): string => k(value).padStart(width);
  console.log(`\nPart 1 — in-process throughput, median of ${ROUNDS} rounds of ${EVENTS} events (the +L2 path: ${Math.min(ROUNDS, L2_ROUNDS)} rounds)`);
  console.log(`  ev/s = events per wall second; ev/CPU-s = per CPU second of the process (all threads, LevelDB's included);`);
  console.log(`  ev/loop-s = per second the event loop was not idle (on a busy box that includes waiting for a core); cores = CPU / wall;`);
  console.log(`  gc = GC pause ms per round (wall);`);
  console.log(`  others = cores other processes on the box kept busy meanwhile (of ${cpus().length})`);
  console.log(`${'path'.padEnd(16)}${'ev/s'.padStart(10)}${'ev/CPU-s'.padStart(10)}${'ev/loop-s'.padStart(10)}${'cores'.padStart(7)}${'gc ms'.padStart(7)}${'others'.padStart(7)}  note`);
  for (const summary of summaries) {
    const redis = summary.redisCpuMsPerRound === undefined ? '' : `; redis-server CPU ${Math.round(summary.redisCpuMsPerRound)} ms/round`;
    const retries = summary.retries ? `; ${summary.retries} step retries` : '';
    if (summary.rounds === 0) {
      console.log(`${summary.name.padEnd(16)}${'FAILED'.padStart(10)}  ${summary.note}: ${summary.failure}`);
      continue;
    }
    console.log(
      `${summary.name.padEnd(16)}${n(summary.eventsPerSec)}${n(summary.eventsPerCpuSec)}${n(summary.eventsPerLoopSec)}${summary.cores.toFixed(2).padStart(7)}${Math.round(summary.gcMsPerRound).toString().padStart(7)}${summary.otherCores.toFixed(2).padStart(7)}  ${summary.note}${redis}${retries}${summary.failure === undefined ? '' : `; FAILED after ${summary.rounds} rounds: ${summary.failure}`}`,
    );
  }
}

// ───────────────────────────── part 2 ─────────────────────────────

interface StrataChild {
  readonly child: ChildProcess;
  readonly http: string;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * What the README recommends for a process that ingests (NODE_OPTIONS): with
 * node's default 16 MB semi-spaces a young-generation collection came every
 * few fetches while the messages, decoded events and records of the fetches
 * in flight were still alive, so they were copied and promoted; GC took ~15 %
 * of the main thread at 20k events/s, ~6 % with 64 MB. Not a default of the
 * bin: a serving process gains nothing from it and its RSS grew 75-100 MB.
 */
const INGEST_NODE_FLAGS = ['--max-semi-space-size=64'];

async function startStrata(server: string, dataDir: string, bootstrap: string): Promise<StrataChild> {
  const mainJs = join(resolve(fileURLToPath(new URL('../', import.meta.url)), server), 'cli/main.js');
  const nodeArgs = [...INGEST_NODE_FLAGS, ...(SERVER_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${SERVER_PROF}`])];
  const args = [...nodeArgs, mainJs, 'serve', '--registry', REGISTRY_PATH, '--data-dir', dataDir, '--kafka-brokers', bootstrap, '--kafka-session-timeout', '3s', '--kafka-max-wait', process.env.BENCH_MAX_WAIT ?? '25ms'];
  const child = spawn(process.execPath, [...args, '--grpc-port', '0', '--http-port', '0', '--log-level', 'warn', '--shutdown-grace', '1s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
    if (process.env.BENCH_ECHO_STDERR) process.stderr.write(chunk);
  });
  const lines = createInterface({ input: child.stdout! });
  const http = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strata did not announce its ports within 30 s: ${stderr}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`strata exited (${code}) before serving: ${stderr}`)));
    lines.on('line', (line) => {
      const match = / http=(\S+)/.exec(line);
      if (match !== null) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    });
  });
  return {
    child,
    http,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Zigzag varint of an Avro long, written at `at` (ms timestamps take 6 bytes until 2039). */
function writeAvroLong(target: Buffer, at: number, value: number): number {
  let zigzag = value * 2;
  do {
    let byte = zigzag % 128;
    zigzag = Math.floor(zigzag / 128);
    if (zigzag > 0) byte |= 0x80;
    target[at++] = byte;
  } while (zigzag > 0);
  return at;
}

interface Template {
  readonly key: string;
  readonly value: Buffer;
  /** Where the value's event-time varint starts. */
  readonly tsOffset: number;
  /** How far behind send time its event time is. */
  readonly behindMs: number;
}

/**
 * Events for the producer, generated and encoded before the clock starts, so
 * that producing costs only a copy and a timestamp patch per event (the
 * generator and avsc would take ~12 µs each). Each keeps how far behind the
 * generator's clock its event time was (the generator's out-of-order and late
 * events); at send time the event time becomes send time minus that. Then one
 * probe per tick (and the warm-up's): a txn of a card never seen before.
 */
function buildTemplates(topic: TopicDef, rate: number, seconds: number, phase: string): { events: Template[]; probes: Template[] } {
  const count = Math.min(rate * seconds, 100_000);
  const startTs = Date.now();
  const generator = new EventGenerator({ seed: 7, startTs, users: USERS, topics: [TOPIC] });
  // An even placeholder whose zigzag's low 7 bits are 0: ts and ts + 1 differ first in the varint's first byte.
  const placeholder = Math.ceil(startTs / 64) * 64;
  const template = (key: string, id: number, event: Record<string, unknown>, behindMs: number): Template => {
    const type = topic.writerTypes.get(id)!;
    const value = encodeConfluent(id, type, { ...event, timestamp: placeholder });
    const other = encodeConfluent(id, type, { ...event, timestamp: placeholder + 1 });
    let at = 0;
    while (value[at] === other[at]) at++;
    return { key, value, tsOffset: at, behindMs };
  };
  const events: Template[] = [];
  for (let index = 0; index < count; index++) {
    const clock = startTs + Math.floor((index * 1000) / rate);
    generator.advanceTo(clock);
    const { key, event, schemaVersion } = generator.next(TOPIC);
    events.push(template(key, schemaVersion ?? 2, event, clock - (event.timestamp as number)));
  }
  const probes: Template[] = [];
  for (let index = 0; index <= Math.ceil((seconds * 1000) / TICK_MS) + 1; index++) {
    const card = `${phase}-p${index}`;
    const event = { txn_id: `probe-${card}`, card_id: card, user_id: 'u-probe', device_id: 'd-probe', amount: 12.5, currency: 'USD', merchant_category: 'grocery', geo_country: 'US', ip_address: '73.0.0.1', merchant_id: null, risk_score: 0.01 };
    probes.push(template(card, 2, event, 0));
  }
  // The patch must land exactly on the timestamp: check a few messages of each version by decoding them.
  for (const { value, tsOffset } of [...events.slice(0, 4), probes[0]!]) {
    const copy = Buffer.from(value);
    writeAvroLong(copy, tsOffset, startTs + 12_345);
    const decoded = topic.readerType!.decode(copy, 5, topic.readerType!.createResolver(topic.writerTypes.get(copy.readUInt32BE(1))!)) as { value: { timestamp: number } };
    if (decoded.value.timestamp !== startTs + 12_345) throw new Error('timestamp patch missed the timestamp field');
  }
  return { events, probes };
}

/** The templates file bench/ingest-producer.c reads (its header says the layout). */
function encodeTemplates({ events, probes }: { events: Template[]; probes: Template[] }): Buffer {
  const parts: Buffer[] = [Buffer.alloc(8)];
  parts[0]!.writeUInt32LE(events.length, 0);
  parts[0]!.writeUInt32LE(probes.length, 4);
  for (const { key, value, tsOffset, behindMs } of [...events, ...probes]) {
    const keyBytes = Buffer.from(key);
    const head = Buffer.alloc(6);
    head.writeUInt16LE(keyBytes.length, 0);
    head.writeUInt32LE(value.length, 2);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(tsOffset, 0);
    tail.writeInt32LE(behindMs, 4);
    parts.push(head.subarray(0, 2), keyBytes, head.subarray(2), value, tail);
  }
  return Buffer.concat(parts);
}

/** bench/ingest-producer.c, compiled once per source version (gcc, librdkafka-dev: what the test broker needs too). */
function producerBinary(): string {
  const hash = createHash('sha256').update(readFileSync(PRODUCER_SOURCE)).digest('hex').slice(0, 16);
  const binary = join(PRODUCER_CACHE, hash, 'ingest-producer');
  if (existsSync(binary)) return binary;
  mkdirSync(join(PRODUCER_CACHE, hash), { recursive: true });
  execFileSync('gcc', ['-O2', '-o', `${binary}.${process.pid}`, PRODUCER_SOURCE, '-lrdkafka']);
  renameSync(`${binary}.${process.pid}`, binary);
  return binary;
}

type ProducerLine = { type: 'ready' | 'warmed' } | { type: 'probe' | 'ack'; probe: number; at: number } | { type: 'done'; loadMs: number; produced: number; acked: number; unsent: number; failed: number };

interface ProducerChild {
  readonly pid: number | undefined;
  command(command: 'warmup' | 'go'): void;
  /** The next line of this type; every line also goes to onLine listeners. */
  next<T extends ProducerLine['type']>(type: T): Promise<Extract<ProducerLine, { type: T }>>;
  onLine(listener: (line: ProducerLine) => void): void;
  stop(): Promise<void>;
}

function parseProducerLine(line: string): ProducerLine {
  const [type, ...fields] = line.trim().split(' ');
  const numbers = fields.map(Number);
  if (type === 'ready' || type === 'warmed') return { type };
  if (type === 'probe' || type === 'ack') return { type, probe: numbers[0]!, at: numbers[1]! };
  if (type === 'done') return { type, loadMs: numbers[0]!, produced: numbers[1]!, acked: numbers[2]!, unsent: numbers[3]!, failed: numbers[4]! };
  throw new Error(`the producer said: ${line}`);
}

function startProducer(bootstrap: string, templatesPath: string, rate: number, seconds: number): ProducerChild {
  const child = spawn(producerBinary(), [bootstrap, TOPIC, templatesPath, String(rate), String(seconds), String(TICK_MS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const listeners: ((line: ProducerLine) => void)[] = [];
  const waiters = new Set<{ type: ProducerLine['type']; resolve: (line: ProducerLine) => void; reject: (error: Error) => void }>();
  let exited: Error | undefined;
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = parseProducerLine(text);
    for (const listener of listeners) listener(line);
    for (const waiter of waiters) {
      if (waiter.type !== line.type) continue;
      waiters.delete(waiter);
      waiter.resolve(line);
    }
  });
  child.once('exit', (code, signal) => {
    exited = new Error(`the producer exited (${signal ?? code})`);
    for (const waiter of waiters) waiter.reject(exited);
    waiters.clear();
  });
  return {
    pid: child.pid,
    command: (command) => void child.stdin!.write(`${command}\n`),
    next: <T extends ProducerLine['type']>(type: T) =>
      new Promise<Extract<ProducerLine, { type: T }>>((resolve, reject) => {
        if (exited !== undefined) return reject(exited);
        waiters.add({ type, resolve: resolve as (line: ProducerLine) => void, reject });
      }),
    onLine: (listener) => void listeners.push(listener),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

interface Probe {
  readonly card: string;
  readonly sentAt: number;
  ackedAt?: number;
  seenAt?: number;
}

/** Reads card_txn:txn_count_5m of the probes' cards; marks those at 1 as seen. */
async function pollOnce(http: string, probes: readonly Probe[]): Promise<void> {
  const response = await fetch(`${http}/get-online-features`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ features: ['card_txn:txn_count_5m'], entities: { card_id: probes.map((probe) => probe.card) } }),
  });
  const json = (await response.json()) as { results?: { values: unknown[] }[] };
  if (!response.ok || json.results === undefined) throw new Error(`get-online-features answered ${response.status}: ${JSON.stringify(json)}`);
  const now = performance.now();
  const values = json.results[1]!.values;
  probes.forEach((probe, index) => {
    const value = values[index];
    if ((value === 1 || value === '1') && probe.seenAt === undefined) probe.seenAt = now;
  });
}

async function metricValue(http: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && labels.split(',').every((label) => line.includes(label))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

interface E2EResult {
  /** The build strata ran from (BENCH_E2E_SERVERS). */
  readonly server: string;
  readonly targetRate: number;
  readonly seconds: number;
  readonly producedRate: number;
  readonly produced: number;
  readonly unsent: number;
  readonly appliedRate: number;
  readonly deadLettered: number;
  readonly probes: number;
  readonly probesSeen: number;
  /** Lower bounds where probes were never seen (probesSeen < probes). */
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number };
  readonly produceAckMs: { p50: number; p99: number };
  readonly lagAtEnd: number;
  /** Lag when the drain wait ended: 0 unless it timed out. */
  readonly lagLeft: number;
  readonly drainMs: number;
  readonly consumerReadyMs: number;
  readonly cores: { strata: number; broker: number; producer: number; bench: number; others: number };
  readonly strataEventsPerCpuSec: number;
}

async function endToEnd(topic: TopicDef, server: string, rate: number, seconds: number, phase: string): Promise<E2EResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-ingest-e2e-'));
  const templatesPath = join(dataDir, 'producer-templates.bin');
  writeFileSync(templatesPath, encodeTemplates(buildTemplates(topic, rate, seconds, phase)));
  const broker = await KafkaBroker.start({ topics: [{ name: TOPIC, partitions: PARTITIONS }, { name: `${TOPIC}.dlq`, partitions: 1 }] });
  let strata: StrataChild | undefined;
  const producer = startProducer(broker.bootstrap, templatesPath, rate, seconds);
  const kafka = new Kafka({ clientId: 'strata-ingest-bench', brokers: broker.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    const startedAt = performance.now();
    [strata] = await Promise.all([startStrata(server, dataDir, broker.bootstrap), producer.next('ready'), admin.connect()]);

    // Ready once the consumer has joined its group (the mock makes a first join wait 3 s) and applies.
    const warmup: Probe = { card: `${phase}-p0`, sentAt: performance.now() };
    producer.command('warmup');
    await producer.next('warmed');
    while (warmup.seenAt === undefined) {
      if (performance.now() - startedAt > 60_000) throw new Error(`strata did not apply a warm-up event within 60 s: ${strata.stderr()}`);
      await pollOnce(strata.http, [warmup]);
      if (warmup.seenAt === undefined) await sleep(50);
    }
    const consumerReadyMs = performance.now() - startedAt;

    // Probe n's send and ack times, in this process's clock (both processes read CLOCK_REALTIME).
    const probes: Probe[] = [];
    const probeNumbers = new Map<number, Probe>();
    producer.onLine((line) => {
      if (line.type === 'probe') {
        const probe: Probe = { card: `${phase}-p${line.probe}`, sentAt: line.at - performance.timeOrigin };
        probes.push(probe);
        probeNumbers.set(line.probe, probe);
      } else if (line.type === 'ack') {
        const probe = probeNumbers.get(line.probe);
        if (probe !== undefined) probe.ackedAt = line.at - performance.timeOrigin;
      }
    });
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const waiting = probes.filter((probe) => probe.seenAt === undefined).slice(0, POLL_PROBES);
        if (waiting.length > 0) await pollOnce(strata!.http, waiting);
        await sleep(5);
      }
    })();

    const appliedBefore = await metricValue(strata.http, 'strata_ingest_events_total', `topic="${TOPIC}",outcome="applied"`);
    const cpuBefore = { strata: processCpuMs(strata.child.pid), broker: processCpuMs(brokerPid(broker)), producer: processCpuMs(producer.pid), bench: process.cpuUsage(), machine: machineBusyMs() };
    const goAt = performance.now();
    producer.command('go');
    const done = await producer.next('done');
    if (done.failed > 0) throw new Error(`${done.failed} messages could not be produced`);
    const loadMs = done.loadMs;
    const cpuWindowMs = performance.now() - goAt;
    const cpuLoad = { strata: processCpuMs(strata.child.pid), broker: processCpuMs(brokerPid(broker)), producer: processCpuMs(producer.pid), bench: process.cpuUsage(cpuBefore.bench), machine: machineBusyMs() };

    // Lag = produced but not committed by the consumer group, when producing stops; then how long it takes to drain.
    const lag = async (): Promise<number> => {
      const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(TOPIC), admin.fetchOffsets({ groupId: 'strata-ingest', topics: [TOPIC] })]);
      const end = ends.reduce((sum, partition) => sum + Number(partition.high), 0);
      const done = committed[0]!.partitions.reduce((sum, partition) => sum + Math.max(0, Number(partition.offset)), 0);
      return end - done;
    };
    const lagAtEnd = await lag();
    const drainStart = performance.now();
    let drainMs = Number.NaN;
    let lagLeft = lagAtEnd;
    while (performance.now() - drainStart < DRAIN_LIMIT_MS) {
      lagLeft = await lag();
      if (lagLeft === 0 && probes.every((probe) => probe.seenAt !== undefined)) {
        drainMs = performance.now() - drainStart;
        break;
      }
      await sleep(50);
    }
    polling = false;
    await poller;
    const applied = (await metricValue(strata.http, 'strata_ingest_events_total', `topic="${TOPIC}",outcome="applied"`)) - appliedBefore;
    const deadLettered = await metricValue(strata.http, 'strata_ingest_events_total', `topic="${TOPIC}",outcome="dead_lettered"`);
    const cpuDrained = processCpuMs(strata.child.pid);

    const seen = probes.filter((probe) => probe.seenAt !== undefined);
    // A probe never seen counts with the time it waited so far: its latency is at least that.
    const endedAt = performance.now();
    const latencies = probes.map((probe) => (probe.seenAt ?? endedAt) - probe.sentAt).sort((a, b) => a - b);
    const acks = probes.filter((probe) => probe.ackedAt !== undefined).map((probe) => probe.ackedAt! - probe.sentAt).sort((a, b) => a - b);
    const benchCpuMs = (cpuLoad.bench.user + cpuLoad.bench.system) / 1000;
    return {
      server,
      targetRate: rate,
      seconds,
      producedRate: (done.acked * 1000) / loadMs,
      produced: done.acked,
      unsent: done.unsent,
      // Applied during load and drain, over the time until drained (the consumer's own rate).
      appliedRate: (applied * 1000) / (loadMs + (Number.isNaN(drainMs) ? 0 : drainMs)),
      deadLettered,
      probes: probes.length,
      probesSeen: seen.length,
      latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: latencies[latencies.length - 1]! },
      produceAckMs: { p50: quantile(acks, 0.5), p99: quantile(acks, 0.99) },
      lagAtEnd,
      lagLeft,
      drainMs,
      consumerReadyMs,
      cores: {
        strata: (cpuLoad.strata - cpuBefore.strata) / cpuWindowMs,
        broker: (cpuLoad.broker - cpuBefore.broker) / cpuWindowMs,
        producer: (cpuLoad.producer - cpuBefore.producer) / cpuWindowMs,
        bench: benchCpuMs / cpuWindowMs,
        others:
          Math.max(0, cpuLoad.machine - cpuBefore.machine - (cpuLoad.strata - cpuBefore.strata) - (cpuLoad.broker - cpuBefore.broker) - (cpuLoad.producer - cpuBefore.producer) - benchCpuMs) /
          cpuWindowMs,
      },
      strataEventsPerCpuSec: (applied * 1000) / (cpuDrained - cpuBefore.strata),
    };
  } finally {
    await Promise.allSettled([producer.stop(), admin.disconnect()]);
    await strata?.stop();
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The broker's process id, for its CPU time (KafkaBroker keeps its child private). */
function brokerPid(broker: KafkaBroker): number | undefined {
  return (broker as unknown as { child: ChildProcess }).child.pid;
}

function printPart2(results: readonly E2EResult[]): void {
  console.log('\nPart 2 — end to end: librdkafka producer → mock Kafka (4 partitions) → strata serve (child, embedded KafkaIngester) → HTTP read');
  console.log('  latency = probe send call → first /get-online-features with card_txn:txn_count_5m = 1 (ms); ack = send → broker ack (acks 1)');
  console.log('  lag = messages not yet committed by the group when producing stops; drain = time until lag 0 and every probe seen');
  console.log(`  cores = CPU / wall during the load of strata | broker | producer (its own process) | this process (the poller) | other processes on the box (of ${cpus().length});`);
  console.log('  ev/CPU-s = events applied per strata CPU second (load + drain); dlq = dead-lettered (the generator\'s late events)');
  console.log(
    `${'server'.padEnd(14)}${'target'.padStart(7)}${'sent/s'.padStart(8)}${'appl/s'.padStart(8)}${'probes'.padStart(8)}${'p50'.padStart(7)}${'p90'.padStart(7)}${'p99'.padStart(7)}${'max'.padStart(7)}${'ack99'.padStart(7)}${'lag'.padStart(8)}${'drain'.padStart(8)}${'cores s|b|pr|pl|o'.padStart(26)}${'ev/CPU-s'.padStart(10)}${'dlq'.padStart(6)}`,
  );
  for (const r of results) {
    const bound = r.probesSeen < r.probes ? '≥' : '';
    const ms = (value: number): string => (Number.isFinite(value) ? Math.round(value).toString() : '-').padStart(7);
    const lat = (value: number): string => `${bound}${Math.round(value)}`.padStart(7);
    console.log(
      `${r.server.padEnd(14)}${k(r.targetRate).padStart(7)}${k(r.producedRate).padStart(8)}${k(r.appliedRate).padStart(8)}${`${r.probesSeen}/${r.probes}`.padStart(8)}${lat(r.latencyMs.p50)}${lat(r.latencyMs.p90)}${lat(r.latencyMs.p99)}${lat(r.latencyMs.max)}${ms(r.produceAckMs.p99)}` +
        `${String(r.lagAtEnd).padStart(8)}${(Number.isNaN(r.drainMs) ? `>${DRAIN_LIMIT_MS / 1000}s` : `${(r.drainMs / 1000).toFixed(1)}s`).padStart(8)}` +
        `${`${r.cores.strata.toFixed(2)}|${r.cores.broker.toFixed(2)}|${r.cores.producer.toFixed(2)}|${r.cores.bench.toFixed(2)}|${r.cores.others.toFixed(2)}`.padStart(26)}${k(r.strataEventsPerCpuSec).padStart(10)}${String(r.deadLettered).padStart(6)}`,
    );
    if (r.lagLeft > 0) console.log(`  (after ${DRAIN_LIMIT_MS / 1000} s of draining ${r.lagLeft} events were still not committed, ${r.probes - r.probesSeen} probes not seen)`);
    if (r.unsent > 0) console.log(`  (${r.unsent} events of the ${k(r.targetRate)}/s schedule could not be sent: the producer fell more than two ticks behind)`);
  }
}

// ───────────────────────────── main ─────────────────────────────

async function main(): Promise<void> {
  const registry = loadRegistry(REGISTRY_PATH);
  const topic = registry.topics.get(TOPIC)!;
  const output: Record<string, unknown> = {
    when: new Date().toISOString(),
    host: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadAverageAtStart: loadavg() },
    settings: { e2eServers: E2E_SERVERS, e2eRuns: E2E_RUNS, events: EVENTS, rounds: ROUNDS, l2Events: L2_EVENTS, l2Rounds: L2_ROUNDS, tickMs: TICK_MS, redisTimeoutMs: REDIS_TIMEOUT_MS, users: USERS, hotUsers: HOT_USERS, stepMessages: STEP_MESSAGES, e2e: [{ rate: E2E_RATE, seconds: E2E_SECONDS }, { rate: E2E_LOW_RATE, seconds: E2E_LOW_SECONDS }] },
    targets: { eventsPerCoreSec: 30_000, p99EventToServableMs: 500, atRate: 20_000 },
  };
  let part1Summaries: PathSummary[] | undefined;
  if (PARTS.includes('1')) {
    const { results, workloads, redis } = await part1(registry);
    part1Summaries = results.map(summarize);
    output.part1 = { workload: workloads, redis, paths: part1Summaries, samples: Object.fromEntries(results.map((result) => [result.name, result.samples])) };
    printPart1(part1Summaries);
  }
  const e2e: E2EResult[] = [];
  if (PARTS.includes('2')) {
    console.log(`\npart 2: ${k(E2E_RATE)}/s for ${E2E_SECONDS} s, then ${k(E2E_LOW_RATE)}/s for ${E2E_LOW_SECONDS} s, each on a fresh broker and server`);
    for (const [rate, seconds, phase] of [
      [E2E_RATE, E2E_SECONDS, 'high'],
      [E2E_LOW_RATE, E2E_LOW_SECONDS, 'low'],
    ] as const) {
      for (let run = 0; run < E2E_RUNS; run++) {
        for (const server of E2E_SERVERS) {
          const result = await endToEnd(topic, server, rate, seconds, phase);
          e2e.push(result);
          console.log(
            `  ${server} ${k(rate)}/s done: ${k(result.producedRate)}/s sent, ${k(result.appliedRate)}/s applied, p99 ${Math.round(result.latencyMs.p99)} ms, others ${result.cores.others.toFixed(2)} cores (consumer ready after ${(result.consumerReadyMs / 1000).toFixed(1)} s)`,
          );
        }
      }
    }
    output.part2 = e2e;
    printPart2(e2e);
  }

  console.log('\nAgainst the targets:');
  const full = part1Summaries?.find((summary) => summary.name === 'full L1+L3');
  if (full !== undefined) {
    console.log(`  decode → extract → store: ${k(full.eventsPerCpuSec)} events per CPU-second (target ≥ 30k/core): ${full.eventsPerCpuSec >= 30_000 ? 'met' : 'NOT met'}`);
  }
  for (const server of E2E_SERVERS) {
    const highs = e2e.filter((result) => result.server === server && result.targetRate === E2E_RATE);
    if (highs.length === 0) continue;
    const produced = median(highs.map((result) => result.producedRate));
    const p99 = median(highs.map((result) => result.latencyMs.p99));
    console.log(
      `  ${server}: p99 event-to-servable at ${k(produced)}/s produced (median of ${highs.length}): ${Math.round(p99)} ms (target ≤ 500 ms at 20k/s): ${p99 <= 500 ? 'met' : 'NOT met'}` +
        (produced >= 0.95 * E2E_RATE ? '' : ` — but only ${k(produced)}/s could be produced on this box`),
    );
  }
  output.loadAverageAtEnd = loadavg();
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'ingest.json'), `${JSON.stringify(output, null, 2)}\n`);
  console.log(`\nwrote ${join(OUT_DIR, 'ingest.json')}`);
}

await main();
