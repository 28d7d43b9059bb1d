/**
 * `npm run loadtest` — builds dist/, then: starts Redis when a scenario
 * needs it, writes the data set through a real `strata serve`, runs every
 * scenario file of loadtest/scenarios against the server it describes
 * (and the no-op baseline where asked), prints the table, writes
 * loadtest/out/report.{json,md} and latency-vs-load.svg, and exits 1 when a
 * target of loadtest/targets.json is missed (2 on a bad scenario/target file).
 *
 *   npm run loadtest -- [--only a,b] [--quick] [--entities N] [--out DIR]
 *
 * --quick: 100k entities and a third of every warm-up and duration, for
 * trying changes; its figures are not the published ones.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { ClassicLevel } from 'classic-level';
import { bytesMethod } from '../src/server/grpc-edge.js';
import { RedisServer } from '../test/support/redis-server.js';
import { encodeRead, encodeWrite, entityId, ghostId, GET_ONLINE_FEATURES, grpcFrame, readJson, REGISTRY_PATH, WRITE_FEATURES } from './dataset.js';
import { distinctRows, keySampler } from './key-distribution.js';
import { h2load, httpLoad, nodeLoad, type LoadResult, type Window } from './load-drivers.js';
import { consoleTable, judge, writeReports, type ScenarioResult } from './report.js';
import { cpuSnapshot, killAllChildren, notableLogs, scrapeTiers, scrapeValue, SERVER_SETUP_RULE, SMALL_BOX_NODE_FLAGS, startNoop, startStrata, terminate, tierDelta, watchRss, type StrataProcess, type TierCounters, windowNoise, type WindowNoise } from './processes.js';
import type { NoopKind } from './noop-server-process.js';
import { loadScenarios, loadTargets, ScenarioFileError, type Scenario, type ServerSpec, type Target } from './scenario.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const WRITE_BATCH = 1_000;
const WRITES_IN_FLIGHT = 4;
/** Requests a pool holds at most; beyond, the pool repeats (bounded memory for long closed-loop runs). */
const MAX_POOL = 600_000;
const KEY_SEED = 0x10ad;
const PREFILL_SEED = 0xf111;
const PREFILL_ROWS = 100;
const PREFILL_IN_FLIGHT = 4;
const CALIBRATION_ENTITIES = 20_000;

function fail(message: string, code: number): never {
  process.stderr.write(`loadtest: ${message}\n`);
  process.exit(code);
}

const { values: flags } = (() => {
  try {
    return parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, entities: { type: 'string' }, out: { type: 'string' } }, strict: true });
  } catch (error) {
    return fail((error as Error).message, 2);
  }
})();
const quick = flags.quick === true;
const entityCount = Number(flags.entities ?? (quick ? 100_000 : 1_000_000));
if (!Number.isInteger(entityCount) || entityCount < 1_000 || entityCount > 10_000_000) fail('--entities must be an integer from 1000 to 10000000', 2);
const outDir = flags.out ?? join(HERE, 'out');

let scenarios: Scenario[];
let targets: Target[];
try {
  const all = loadScenarios(join(HERE, 'scenarios'));
  const only = flags.only?.split(',').map((name) => name.trim());
  for (const name of only ?? []) if (!all.some((scenario) => scenario.name === name)) fail(`--only: no scenario ${name} (have: ${all.map((scenario) => scenario.name).join(', ')})`, 2);
  scenarios = only === undefined ? all : all.filter((scenario) => only.includes(scenario.name));
  targets = loadTargets(join(HERE, 'targets.json'), all).filter((target) => scenarios.some((scenario) => scenario.name === target.scenario));
} catch (error) {
  if (error instanceof ScenarioFileError) fail(error.message, 2);
  throw error;
}
if (scenarios.some((scenario) => scenario.load.generator === 'h2load')) {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    fail('h2load not found: install Debian\'s nghttp2-client (apt-get install nghttp2-client)', 2);
  }
}

const workDir = mkdtempSync(join(tmpdir(), 'strata-loadtest-'));
process.on('exit', () => {
  killAllChildren();
  rmSync(workDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => fail(`${signal}: stopped`, 130));

const log = (text: string): void => void process.stderr.write(`${text}\n`);
const scaled = (seconds: number): number => (quick ? Math.max(1, Math.round(seconds / 3)) : seconds);

// ---- gRPC calls of the harness itself ----------------------------------------------------------------

function unary(target: string, path: string, request: Buffer): Promise<Buffer> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  const method = bytesMethod(path);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, { deadline: Date.now() + 60_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  }).finally(() => client.close());
}

/**
 * Reads `scenario.prefillReadsPerEntity` × entities keys drawn like the
 * scenario's (another seed, so the measured requests stay fresh draws),
 * PREFILL_ROWS to a request over one connection with a few calls in flight.
 */
async function prefill(server: StrataProcess, scenario: Scenario): Promise<void> {
  const { keys } = scenario.request;
  // Per entity of the key space the scenario draws from: a hot set's own size.
  const keySpace = keys.dist === 'hot' ? keys.size : entityCount;
  const reads = Math.round(scenario.prefillReadsPerEntity * keySpace);
  if (reads === 0) return;
  const started = Date.now();
  const sample = keySampler(scenario.request.keys, entityCount, PREFILL_SEED);
  const shape = { features: scenario.request.features, by: scenario.request.by } as const;
  const client = new grpc.Client(server.grpcTarget, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  const method = bytesMethod(GET_ONLINE_FEATURES);
  let remaining = reads;
  const reader = async (): Promise<void> => {
    while (remaining > 0) {
      // Distinct rows: no more than the key space holds.
      const rows = Math.min(PREFILL_ROWS, remaining, keySpace);
      remaining -= rows;
      const request = encodeRead(distinctRows(sample, rows).map(entityId), shape);
      await new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, { deadline: Date.now() + 60_000 }, (error) => (error ? reject(error) : resolve()));
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: PREFILL_IN_FLIGHT }, reader));
  } finally {
    client.close();
  }
  log(`  prefilled with ${reads.toLocaleString('en-US')} reads in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function seed(server: StrataProcess): Promise<void> {
  const started = Date.now();
  const eventMs = started - 60_000;
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < entityCount) {
      const from = next;
      next = Math.min(entityCount, next + WRITE_BATCH);
      await unary(server.grpcTarget, WRITE_FEATURES, encodeWrite(from, next, eventMs));
    }
  };
  await Promise.all(Array.from({ length: WRITES_IN_FLIGHT }, writer));
  log(`seeded ${entityCount.toLocaleString('en-US')} entities × 50 features in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * What one entity costs in L1 (its record, key and entry overhead, by L1's
 * own accounting): read CALIBRATION_ENTITIES entities into an L1 large
 * enough for all of them and divide. "10 % of data" for L1 means room for
 * 10 % of the entities' records as L1 holds them.
 */
/**
 * Runs LevelDB's compactions of the bulk load to the end before anything is
 * measured: the seeder leaves level-0 tables behind, which the next server
 * to open the store would otherwise compact in a background thread during
 * the first scenario's window (about 2 s of work after the 1M-entity load).
 */
async function settle(dataDir: string): Promise<void> {
  const started = Date.now();
  const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    await db.compactRange(Buffer.alloc(0), Buffer.alloc(64, 0xff));
  } finally {
    await db.close();
  }
  log(`settled L3 (LevelDB compactions of the load run to the end) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function l1BytesPerEntity(dataDir: string): Promise<number> {
  const server = await startServer({ l1: { kind: 'mib', mib: 1024 }, redis: false, workers: 1 }, dataDir, 0, undefined);
  try {
    const count = Math.min(CALIBRATION_ENTITIES, entityCount);
    for (let from = 0; from < count; from += 100) {
      const ids = Array.from({ length: Math.min(100, count - from) }, (_, offset) => entityId(from + offset));
      await unary(server.grpcTarget, GET_ONLINE_FEATURES, encodeRead(ids, { features: 50, by: 'service' }));
    }
    const bytes = await scrapeValue(server.httpBase, 'strata_l1_bytes');
    const entries = await scrapeValue(server.httpBase, 'strata_l1_entries');
    if (entries !== count) throw new Error(`L1 calibration: expected ${count} entries, found ${entries}`);
    return bytes / entries;
  } finally {
    await terminate(server.child, 30_000);
  }
}

function directoryBytes(directory: string): number {
  return readdirSync(directory, { withFileTypes: true }).reduce((sum, entry) => {
    const path = join(directory, entry.name);
    return sum + (entry.isDirectory() ? directoryBytes(path) : statSync(path).size);
  }, 0);
}

// ---- servers -------------------------------------------------------------------------------------

function l1BudgetBytes(spec: ServerSpec, dataBytes: number): number {
  switch (spec.l1.kind) {
    case 'off':
      return 0;
    case 'mib':
      return spec.l1.mib * 1024 * 1024;
    case 'share-of-data':
      return Math.round(spec.l1.share * dataBytes);
  }
}

async function startServer(spec: ServerSpec, dataDir: string, dataBytes: number, redis: RedisServer | undefined): Promise<StrataProcess> {
  const budget = l1BudgetBytes(spec, dataBytes);
  return startStrata(
    [
      '--registry',
      REGISTRY_PATH,
      '--data-dir',
      dataDir,
      '--l1-budget',
      String(budget),
      ...(spec.redis ? ['--redis-url', redis!.url] : []),
      ...(spec.workers > 1 ? ['--workers', String(spec.workers)] : []),
    ],
    budget,
  );
}

function describeSetup(spec: ServerSpec, dataBytes: number): string {
  const budget = l1BudgetBytes(spec, dataBytes);
  return `L1 ${budget === 0 ? 'off' : `${(budget / 1024 ** 2).toFixed(0)} MiB`}, ${spec.redis ? 'Redis' : 'no Redis'}${spec.workers > 1 ? `, ${spec.workers} workers` : ''}`;
}

// ---- requests ------------------------------------------------------------------------------------

function requestCount(scenario: Scenario, rate: number | undefined): number {
  if (scenario.load.generator === 'h2load') return 1;
  const seconds = scaled(scenario.warmupS) + scaled(scenario.durationS);
  // Open loop: one request per scheduled call, so no request repeats and caches see the distribution as drawn.
  return Math.min(MAX_POOL, rate === undefined ? MAX_POOL : Math.ceil(rate * seconds * 1.02) + 100);
}

/**
 * Each scenario and rate draws its own keys. With one seed for all, a scenario
 * run after another on the same server asked for exactly the keys the one
 * before had just put in L1: zipf-1x50-redis after zipf-10x50-redis read
 * 99.8 % L1 hits instead of ~85 %.
 */
function keySeed(scenario: Scenario, rate: number | undefined): number {
  let seed = KEY_SEED;
  for (const char of `${scenario.name}@${rate ?? 'max'}`) seed = Math.imul(seed ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return seed;
}

function requestIds(scenario: Scenario, rate: number | undefined, count: number): string[][] {
  const { keys, rows } = scenario.request;
  const sample = keySampler(keys, entityCount, keySeed(scenario, rate));
  const name = keys.dist === 'never-written' ? ghostId : entityId;
  return Array.from({ length: count }, () => distinctRows(sample, rows).map(name));
}

// ---- one scenario ---------------------------------------------------------------------------------

interface Running {
  readonly spec: ServerSpec;
  readonly server: StrataProcess;
}

async function measure(server: StrataProcess | undefined, run: (window: Window) => Promise<LoadResult>, warmupS: number, durationS: number): Promise<{ load: LoadResult; tiers: TierCounters | undefined; noise: WindowNoise | undefined }> {
  let before: Promise<TierCounters> | undefined;
  let cpuBefore: ReturnType<typeof cpuSnapshot>;
  const load = await run({
    warmupS,
    durationS,
    onStart: () => {
      cpuBefore = cpuSnapshot();
      if (server !== undefined) {
        before = scrapeTiers(server.httpBase);
        // Awaited after the window; until then a failure must not count as unhandled.
        before.catch(() => undefined);
      }
    },
  });
  const cpuAfter = cpuSnapshot();
  let tiers: TierCounters | undefined;
  try {
    tiers = server === undefined || before === undefined ? undefined : tierDelta(await scrapeTiers(server.httpBase), await before);
  } catch (error) {
    // A server whose event loop is seconds behind does not answer /metrics in time either: report the run without tier counts.
    log(`  /metrics did not answer: ${(error as Error).message}; tier hit rates not measured`);
  }
  return { load, tiers, noise: windowNoise(cpuBefore, cpuAfter) };
}

async function runScenario(scenario: Scenario, running: Running, dataBytes: number): Promise<ScenarioResult[]> {
  const { server } = running;
  const rates: readonly (number | undefined)[] = scenario.load.mode === 'open' ? scenario.load.rates : [undefined];
  const shape = { features: scenario.request.features, by: scenario.request.by } as const;
  const warmupS = scaled(scenario.warmupS);
  const durationS = scaled(scenario.durationS);
  const results: ScenarioResult[] = [];
  for (const rate of rates) {
    const ids = requestIds(scenario, rate, requestCount(scenario, rate));
    const peak = watchRss(server.child.pid!);
    let measured: Awaited<ReturnType<typeof measure>>;
    let baseline: LoadResult | undefined;
    let edgeBaseline: LoadResult | undefined;
    const load = scenario.load;
    if (load.generator === 'autocannon') {
      const bodies = ids.map((rowIds) => readJson(rowIds, shape));
      const check = await fetch(`${server.httpBase}/get-online-features`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[0] });
      if (check.status !== 200) throw new Error(`${scenario.name}: the first request answered ${check.status}: ${await check.text()}`);
      measured = await measure(server, (window) => httpLoad(`${server.httpBase}/get-online-features`, bodies, load.connections, window), warmupS, durationS);
    } else {
      const frames = ids.map((rowIds) => grpcFrame(encodeRead(rowIds, shape)));
      // One real call first: it must succeed, and its response is what the baseline answers.
      const response = await unary(server.grpcTarget, GET_ONLINE_FEATURES, frames[0]!.subarray(5));
      const drive = (target: string) => (window: Window): Promise<LoadResult> =>
        load.generator === 'h2load'
          ? h2load(target, GET_ONLINE_FEATURES, frames[0]!, load.connections, load.inflight, window)
          : nodeLoad(target, GET_ONLINE_FEATURES, frames, load.mode === 'open' ? { mode: 'open', rate: rate! } : { mode: 'closed', inflight: load.inflight }, load.processes, window);
      const noopLoad = async (kind: NoopKind): Promise<LoadResult> => {
        const noop = await startNoop(response, kind);
        try {
          const noopMeasured = await measure(undefined, drive(noop.target), warmupS, durationS);
          if (noopMeasured.noise !== undefined) log(`  ${kind} no-op window: ${noiseText(noopMeasured.noise)}`);
          return noopMeasured.load;
        } finally {
          await terminate(noop.child, 5_000);
        }
      };
      if (scenario.baseline) {
        baseline = await noopLoad('grpc-js');
        // Closed loop only: the throughput ceiling of Strata's own transport, for the ratio that says what its work costs.
        if (load.mode === 'closed') edgeBaseline = await noopLoad('edge');
      }
      measured = await measure(server, drive(server.grpcTarget), warmupS, durationS);
    }
    const result: ScenarioResult = {
      scenario: scenario.name,
      description: scenario.description,
      setup: describeSetup(running.spec, dataBytes),
      offeredRps: rate,
      load: measured.load,
      baseline,
      edgeBaseline,
      tiers: measured.tiers,
      l1BudgetBytes: l1BudgetBytes(running.spec, dataBytes),
      peakRss: peak.stop(),
      noise: measured.noise,
    };
    results.push(result);
    const { latency } = measured.load;
    log(
      `  ${scenario.name}${rate === undefined ? '' : ` @ ${rate} rps`}: ${Math.round(measured.load.achievedRps)} rps, p50 ${latency.p50Ms} p99 ${latency.p99Ms} p99.9 ${latency.p999Ms} ms` +
        `${baseline === undefined ? '' : ` (baseline ${Math.round(baseline.achievedRps)} rps, p99 ${baseline.latency.p99Ms} ms)`}` +
        `${edgeBaseline === undefined ? '' : ` (edge no-op ${Math.round(edgeBaseline.achievedRps)} rps)`}` +
        `${measured.load.sendLagP99Ms === undefined ? '' : `, send lag p99 ${measured.load.sendLagP99Ms} ms`}` +
        `${measured.noise === undefined ? '' : `; ${noiseText(measured.noise)}`}`,
    );
  }
  for (const line of notableLogs(server)) log(`  server: ${line}`);
  return results;
}

function noiseText(noise: WindowNoise): string {
  return `others ${noise.othersCores.toFixed(2)}, stolen ${noise.stolenCores.toFixed(2)} cores`;
}

function revision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: HERE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', '../src'], { cwd: HERE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty === '' ? head : `${head} + uncommitted changes in src/`;
  } catch {
    return 'unknown revision';
  }
}

// ---- the run ----------------------------------------------------------------------------------------

function firstOfSetup(scenario: Scenario): number {
  const setup = JSON.stringify(scenario.server);
  return scenarios.findIndex((candidate) => JSON.stringify(candidate.server) === setup);
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  // Read now: a commit made while the run goes on is not what it measured.
  const measuredRevision = revision();
  const redis = scenarios.some((scenario) => scenario.server.redis) ? await RedisServer.start() : undefined;
  const dataDir = join(workDir, 'data');
  log(`loadtest: ${scenarios.length} scenarios, ${entityCount.toLocaleString('en-US')} entities${quick ? ' (quick)' : ''}; work dir ${workDir}`);

  // Written with Redis on (when any scenario uses it), so L2 holds every record as a replica's writes would leave it.
  const seeder = await startServer({ l1: { kind: 'off' }, redis: redis !== undefined, workers: 1 }, dataDir, 0, redis);
  await seed(seeder);
  await terminate(seeder.child, 60_000);
  await settle(dataDir);
  const l3Bytes = directoryBytes(dataDir);
  const perEntity = await l1BytesPerEntity(dataDir);
  const dataBytes = Math.round(perEntity * entityCount);
  log(`L3 holds ${(l3Bytes / 1024 ** 2).toFixed(0)} MiB on disk; L1 would need ${(dataBytes / 1024 ** 2).toFixed(0)} MiB for every entity (${Math.round(perEntity)} B each)`);

  const results: ScenarioResult[] = [];
  let running: Running | undefined;
  const stopRunning = async (): Promise<void> => {
    if (running === undefined) return;
    await terminate(running.server.child, 30_000);
    running = undefined;
  };
  // Scenarios on the same server run back to back (one start each), in file order otherwise.
  const bySetup = [...scenarios].sort((a, b) => firstOfSetup(a) - firstOfSetup(b));
  for (const scenario of bySetup) {
    if (running === undefined || JSON.stringify(running.spec) !== JSON.stringify(scenario.server)) {
      await stopRunning();
      const server = await startServer(scenario.server, dataDir, dataBytes, redis);
      running = { spec: scenario.server, server };
    }
    log(`${scenario.name}: ${describeSetup(scenario.server, dataBytes)}`);
    await prefill(running.server, scenario);
    results.push(...(await runScenario(scenario, running, dataBytes)));
  }
  await stopRunning();
  await redis?.stop();

  const verdicts = judge(targets, results);
  const files = writeReports(outDir, { startedAt, revision: measuredRevision, machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version} (strata: ${SERVER_SETUP_RULE}; no-op baselines: ${SMALL_BOX_NODE_FLAGS.join(' ')})`, entities: entityCount, dataBytes, l3Bytes, command: `npm run loadtest${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}` }, scenarios, results, verdicts);
  process.stdout.write(`\n${consoleTable(results, verdicts)}\n\nreports: ${files.json}, ${files.markdown}${files.chart === undefined ? '' : `, ${files.chart}`}\n`);
  if (verdicts.some((verdict) => !verdict.met)) process.exit(1);
}

main().then(
  () => process.exit(0),
  (error: Error) => fail(error.stack ?? error.message, 1),
);
