/**
 * gRPC serving benchmark: GetOnlineFeatures throughput and latency of a real
 * `strata serve` child process, against a no-op grpc-js server measured the
 * same way in the same invocation.
 *
 *   npm run bench:serve          (builds dist/ first)
 *
 * Steps: start `node dist/cli/main.js serve` on a temp data dir with
 * bench/registry.yaml; write N entities through WriteFeatures; capture one
 * real single-row response for the no-op baseline server; then, with a load
 * generator child process (several grpc-js channels, a fixed number of calls
 * in flight, closed loop, pre-encoded requests), measure
 *   baseline  no-op server, single-row requests
 *   a         1 row × 10 features, keys from a 10k hot set, L1 on (default budget)
 *   b         100 rows × 10 features, hot set, L1 on
 *   c         1 row × 10 features, keys uniform over all N, server restarted with --l1-budget 0
 *   d         100 rows × 10 features, uniform, --l1-budget 0
 * in rounds (every scenario of a phase once per round, so slow patches of a
 * noisy machine spread over all scenarios) and report the median of the runs.
 * Nothing is written into the repository; the temp dir is removed at the end.
 *
 * Knobs (environment): BENCH_ENTITIES (100000), BENCH_HOT (10000),
 * BENCH_RUNS (3), BENCH_PRIME_S (3: one unrecorded run per generator before
 * its first measured run; grpc-js takes seconds of load to reach full speed),
 * BENCH_WARMUP_S (1.5: unrecorded start of every run), BENCH_DURATION_S (6),
 * BENCH_INFLIGHT (32), BENCH_CHANNELS (4), BENCH_POOL (10000),
 * BENCH_MAX_S (480: the whole run is aborted past it).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import {
  CLIENT_OPTIONS,
  FEATURES,
  GET_ONLINE_FEATURES,
  Proto,
  REGISTRY_PATH,
  WRITE_FEATURES,
  cardId,
  encodeRead,
  encodeWrite,
  hotSet,
  median,
  rowValues,
  unary,
  type FromGenerator,
  type FromNoopServer,
  type PoolSpec,
  type RunStats,
  type ToGenerator,
} from './serve-bench-shared.js';

// ---- settings -----------------------------------------------------------------------------------------

function setting(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${name}=${text}: must be a number from ${min} to ${max}`);
  return value;
}

const ENTITIES = Math.round(setting('BENCH_ENTITIES', 100_000, 1_000, 2_000_000));
const HOT = Math.round(setting('BENCH_HOT', 10_000, 100, ENTITIES));
const RUNS = Math.round(setting('BENCH_RUNS', 3, 1, 9));
const PRIME_MS = setting('BENCH_PRIME_S', 3, 0, 60) * 1000;
const WARMUP_MS = setting('BENCH_WARMUP_S', 1.5, 0, 60) * 1000;
const DURATION_MS = setting('BENCH_DURATION_S', 6, 0.5, 120) * 1000;
const INFLIGHT = Math.round(setting('BENCH_INFLIGHT', 32, 1, 1024));
const CHANNELS = Math.round(setting('BENCH_CHANNELS', 4, 1, 64));
const POOL = Math.round(setting('BENCH_POOL', 10_000, 100, 100_000));
const MAX_MS = setting('BENCH_MAX_S', 480, 30, 3600) * 1000;
const WRITE_BATCH = 1000;
const WIDE_ROWS = 100;
const CALL_TIMEOUT_MS = 10_000;
const HOT_SEED = 0x5eed;

const MAIN_JS = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const GENERATOR = fileURLToPath(new URL('./serve-bench-generator.ts', import.meta.url));
const NOOP_SERVER = fileURLToPath(new URL('./serve-bench-noop-server.ts', import.meta.url));

// ---- child processes and cleanup --------------------------------------------------------------------

const children = new Set<ChildProcess>();
const workDir = mkdtempSync(join(tmpdir(), 'strata-serve-bench-'));
const benchStarted = Date.now();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  return alive(child) ? new Promise((resolve) => child.once('exit', () => resolve())) : Promise.resolve();
}

/** SIGTERM, then SIGKILL if the child has not exited after `graceMs`. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (!alive(child)) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

process.on('exit', () => {
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
  rmSync(workDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nserve-bench: ${signal}, stopping children and removing ${workDir}\n`);
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  process.stderr.write(`serve-bench: still running after ${MAX_MS / 1000}s (BENCH_MAX_S), aborting\n`);
  process.exit(3);
}, MAX_MS);
watchdog.unref();

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- the Strata server ------------------------------------------------------------------------------

interface StrataProcess {
  readonly child: ChildProcess;
  readonly grpcTarget: string;
  readonly httpBase: string;
  readonly banner: string;
  readonly logLines: string[];
}

/** The environment of a server child: no STRATA_* or REDIS_URL from the caller's shell (they would change the setup or be refused). */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('STRATA_') && name !== 'REDIS_URL') env[name] = value;
  return env;
}

async function startStrata(dataDir: string, extraArgs: string[]): Promise<StrataProcess> {
  const args = [MAIN_JS, 'serve', '--registry', REGISTRY_PATH, '--data-dir', dataDir, '--host', '127.0.0.1', '--grpc-port', '0', '--http-port', '0', ...extraArgs];
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() }));
  const logLines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    logLines.push(line);
    if (logLines.length > 200) logLines.splice(0, logLines.length - 200);
  });
  const banner = await withTimeout(
    new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        if (line.startsWith('strata serving ')) resolve(line);
      });
      child.once('exit', (code, signal) => reject(new Error(`strata serve exited (${code ?? signal}) before serving:\n${logLines.slice(-20).join('\n')}`)));
      child.once('error', reject);
    }),
    60_000,
    'strata serve start',
  );
  const grpcMatch = / grpc=(\S+):(\d+)/.exec(banner);
  const httpMatch = / http=(\S+):(\d+)/.exec(banner);
  if (grpcMatch === null || httpMatch === null) throw new Error(`cannot parse ports from: ${banner}`);
  return { child, grpcTarget: `127.0.0.1:${grpcMatch[2]}`, httpBase: `http://127.0.0.1:${httpMatch[2]}`, banner, logLines };
}

async function stopStrata(server: StrataProcess): Promise<void> {
  await terminate(server.child, 20_000);
}

/** Interesting server log lines: warnings, errors, and the bloom rebuild. */
function notableLogs(server: StrataProcess): string[] {
  return server.logLines.filter((line) => /"level":"(warn|error)"|bloom gate rebuilt/.test(line));
}

// ---- /metrics ---------------------------------------------------------------------------------------

type Counters = Map<string, number>;

async function scrape(httpBase: string): Promise<Counters> {
  const response = await fetch(`${httpBase}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  const counters: Counters = new Map();
  for (const line of text.split('\n')) {
    const tier = /^strata_tier_lookups_total\{(?=.*tier="(\w+)")(?=.*result="(\w+)").*\}\s+(\S+)/.exec(line);
    if (tier !== null) counters.set(`${tier[1]} ${tier[2]}`, Number(tier[3]));
    const bloom = /^strata_bloom_negatives_total\s+(\S+)/.exec(line);
    if (bloom !== null) counters.set('bloom negative', Number(bloom[1]));
  }
  return counters;
}

function tierLines(httpBase: string): Promise<string[]> {
  return fetch(`${httpBase}/metrics`, { signal: AbortSignal.timeout(5_000) })
    .then((response) => response.text())
    .then((text) => text.split('\n').filter((line) => /^strata_(tier_lookups_total|bloom_negatives_total|bloom_keys|l1_entries|l1_bytes)\b/.test(line)));
}

function subtract(after: Counters, before: Counters): Counters {
  const delta: Counters = new Map();
  for (const [key, value] of after) delta.set(key, value - (before.get(key) ?? 0));
  return delta;
}

function add(into: Counters, more: Counters): void {
  for (const [key, value] of more) into.set(key, (into.get(key) ?? 0) + value);
}

/** `abc1234` or `abc1234 + uncommitted changes in src/`: what was measured (the build is of the working tree). */
function revision(): string {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repo, encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty === '' ? head : `${head} + uncommitted changes in src/`;
  } catch {
    return 'unknown revision';
  }
}

// ---- CPU used elsewhere on the machine ----------------------------------------------------------------

/**
 * CPU the rest of the machine used during a window: busy ticks of all CPUs
 * (/proc/stat) minus the ticks of this process and its children
 * (/proc/PID/stat). Processes of other sandboxes can share the kernel
 * without being visible to `ps`, so this is the only way to see them.
 * Linux only; undefined elsewhere.
 */
interface CpuSnapshot {
  readonly busy: number;
  readonly total: number;
  readonly ours: number;
}

function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    let ours = 0;
    for (const pid of [process.pid, ...[...children].map((child) => child.pid)]) {
      if (pid === undefined) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ours += Number(after[11]) + Number(after[12]); // utime, stime (fields 14 and 15)
      } catch {
        // exited meanwhile
      }
    }
    return { busy: user + nice + system + irq + softirq, total: user + nice + system + idle + iowait + irq + softirq + steal, ours };
  } catch {
    return undefined;
  }
}

/** Cores' worth of CPU used by other processes between two snapshots (ours: the same for this process tree). */
function cpuBetween(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): { others: number; ours: number } | undefined {
  if (before === undefined || after === undefined) return undefined;
  const wallTicksPerCpu = (after.total - before.total) / availableParallelism();
  if (wallTicksPerCpu <= 0) return undefined;
  const ours = after.ours - before.ours;
  return { others: Math.max(0, after.busy - before.busy - ours) / wallTicksPerCpu, ours: ours / wallTicksPerCpu };
}

// ---- the load generator -----------------------------------------------------------------------------

class Generator {
  private readonly child: ChildProcess;
  private nextRunId = 1;
  private readonly listeners = new Set<(message: FromGenerator) => void>();
  readonly name: string;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    child.on('message', (message) => {
      for (const listener of this.listeners) listener(message as FromGenerator);
    });
  }

  static async start(name: string, target: string, pool: PoolSpec): Promise<{ generator: Generator; ready: Extract<FromGenerator, { type: 'ready' }> }> {
    // The child inherits this process's execArgv, i.e. tsx's loader, so it can be a .ts file.
    const child = track(fork(GENERATOR, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const generator = new Generator(name, child);
    const ready = generator.next((message) => message.type === 'ready', 120_000, `${name}: generator init`);
    generator.send({ type: 'init', target, method: GET_ONLINE_FEATURES, pool, channels: CHANNELS, inflight: INFLIGHT, callTimeoutMs: CALL_TIMEOUT_MS });
    return { generator, ready: (await ready) as Extract<FromGenerator, { type: 'ready' }> };
  }

  private send(message: ToGenerator): void {
    this.child.send(message);
  }

  /** The next message matching `accept`; rejects on a `failed` message, on the child's exit, or after `ms`. */
  private next(accept: (message: FromGenerator) => boolean, ms: number, what: string): Promise<FromGenerator> {
    let listener: ((message: FromGenerator) => void) | undefined;
    let onExit: (() => void) | undefined;
    const promise = new Promise<FromGenerator>((resolve, reject) => {
      listener = (message) => {
        if (message.type === 'failed') reject(new Error(`${what}: ${message.message}`));
        else if (accept(message)) resolve(message);
      };
      onExit = () => reject(new Error(`${what}: generator exited (${this.child.exitCode ?? this.child.signalCode})`));
      this.listeners.add(listener);
      this.child.once('exit', onExit);
    });
    return withTimeout(promise, ms, what).finally(() => {
      this.listeners.delete(listener!);
      this.child.off('exit', onExit!);
    });
  }

  /** One closed-loop run; `onWindow` is called when the measured window starts and ends. */
  async run(warmupMs: number, durationMs: number, onWindow: (edge: 'start' | 'end') => void = () => {}): Promise<RunStats> {
    const id = this.nextRunId++;
    const windowListener = (message: FromGenerator): void => {
      if (message.type === 'window' && message.id === id) onWindow(message.edge);
    };
    this.listeners.add(windowListener);
    try {
      const result = this.next((message) => message.type === 'result' && message.id === id, warmupMs + durationMs + CALL_TIMEOUT_MS + 15_000, `${this.name}: run`);
      this.send({ type: 'run', id, warmupMs, durationMs, maxRequests: Math.min(5_000_000, Math.ceil((durationMs / 1000) * 200_000)) });
      return ((await result) as Extract<FromGenerator, { type: 'result' }>).stats;
    } finally {
      this.listeners.delete(windowListener);
    }
  }

  async stop(): Promise<void> {
    if (alive(this.child)) this.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited(this.child);
    clearTimeout(timer);
  }
}

// ---- the no-op baseline server -----------------------------------------------------------------------

async function startNoopServer(response: Buffer): Promise<{ child: ChildProcess; target: string }> {
  const child = track(fork(NOOP_SERVER, [response.toString('base64')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const message = await withTimeout(
    new Promise<FromNoopServer>((resolve, reject) => {
      child.once('message', (raw) => resolve(raw as FromNoopServer));
      child.once('exit', (code, signal) => reject(new Error(`no-op server exited (${code ?? signal})`)));
    }),
    30_000,
    'no-op server start',
  );
  if (message.type !== 'listening') throw new Error(`no-op server: ${message.message}`);
  return { child, target: `127.0.0.1:${message.port}` };
}

// ---- data load, checks, warm pass ------------------------------------------------------------------

async function loadEntities(target: string): Promise<{ ms: number; rows: number }> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), CLIENT_OPTIONS);
  const started = Date.now();
  const eventMs = Date.now() - 60_000;
  let nextFrom = 0;
  let rows = 0;
  const worker = async (): Promise<void> => {
    while (nextFrom < ENTITIES) {
      const from = nextFrom;
      const to = Math.min(ENTITIES, from + WRITE_BATCH);
      nextFrom = to;
      const response = await unary(client, WRITE_FEATURES, encodeWrite(from, to, eventMs), 30_000);
      rows += (Proto.WriteFeaturesResponse.decode(response) as unknown as { rows_written: number }).rows_written;
    }
  };
  try {
    await Promise.all(Array.from({ length: 4 }, worker));
  } finally {
    client.close();
  }
  if (rows !== ENTITIES) throw new Error(`WriteFeatures stored ${rows} rows, expected ${ENTITIES}`);
  return { ms: Date.now() - started, rows };
}

interface DecodedResponse {
  metadata?: { feature_names?: string[] };
  results?: { values?: { double_val?: number; string_val?: string }[]; statuses?: number[] }[];
}

/** Reads `indexes` and checks every value is PRESENT and credit_limit is what was written. */
async function checkRead(client: grpc.Client, indexes: readonly number[]): Promise<Buffer> {
  const bytes = await unary(client, GET_ONLINE_FEATURES, encodeRead(indexes.map(cardId)), 10_000);
  const decoded = Proto.GetOnlineFeaturesResponse.decode(bytes) as protobuf.Message & DecodedResponse;
  const results = decoded.results ?? [];
  if (results.length !== 1 + FEATURES.length) throw new Error(`check read: ${results.length} result vectors, expected ${1 + FEATURES.length}`);
  results.forEach((vector, column) => {
    const statuses = vector.statuses ?? [];
    if (statuses.length !== indexes.length || statuses.some((status) => status !== 1)) {
      throw new Error(`check read: column ${decoded.metadata?.feature_names?.[column]} statuses ${JSON.stringify(statuses.slice(0, 10))}, expected all PRESENT`);
    }
  });
  indexes.forEach((index, row) => {
    const got = results[1]!.values?.[row]?.double_val;
    const want = rowValues(index).credit_limit!.double_val;
    if (got !== want) throw new Error(`check read: ${cardId(index)} credit_limit = ${got}, expected ${want}`);
  });
  return bytes;
}

/** Reads every hot entity once (100 rows per call), so L1 holds the whole hot set when a hot run starts. */
async function warmPass(target: string, hot: Int32Array): Promise<void> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), CLIENT_OPTIONS);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < hot.length) {
      const from = next;
      next = Math.min(hot.length, from + WIDE_ROWS);
      await unary(client, GET_ONLINE_FEATURES, encodeRead(Array.from(hot.subarray(from, next), cardId)), 10_000);
    }
  };
  try {
    await Promise.all(Array.from({ length: 2 }, worker));
  } finally {
    client.close();
  }
}

// ---- scenarios --------------------------------------------------------------------------------------

interface Scenario {
  readonly key: string;
  readonly label: string;
  readonly rows: number;
  readonly generator: Generator;
  /** The Strata server it targets (undefined for the baseline). */
  readonly server: StrataProcess | undefined;
  readonly warmHot: Int32Array | undefined;
  readonly runs: RunStats[];
  readonly tiers: Counters;
  /** Per run: cores' worth of CPU used by other processes during the measured window (Linux). */
  readonly otherCpu: number[];
}

function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

function int(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—';
}

/** Lookups some tier (or the bloom gate) answered: the denominator of the tier shares. */
function answered(counters: Counters): number {
  return ['l1 hit', 'bloom negative', 'l2 hit', 'l3 hit', 'l3 miss'].reduce((sum, key) => sum + (counters.get(key) ?? 0), 0);
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '—';
}

async function measure(scenario: Scenario, round: number): Promise<void> {
  if (scenario.warmHot !== undefined && scenario.server !== undefined) await warmPass(scenario.server.grpcTarget, scenario.warmHot);
  const server = scenario.server;
  let before: Promise<Counters> | undefined;
  let after: Promise<Counters> | undefined;
  let cpuBefore: CpuSnapshot | undefined;
  let cpuAfter: CpuSnapshot | undefined;
  const stats = await scenario.generator.run(WARMUP_MS, DURATION_MS, (edge) => {
    if (edge === 'start') cpuBefore = cpuSnapshot();
    else cpuAfter = cpuSnapshot();
    if (server === undefined) return;
    if (edge === 'start') before = scrape(server.httpBase);
    else after = scrape(server.httpBase);
  });
  const cpu = cpuBetween(cpuBefore, cpuAfter);
  if (cpu !== undefined) scenario.otherCpu.push(cpu.others);
  const cpuNote = cpu === undefined ? '' : `  cpu: bench ${fmt(cpu.ours)} + others ${fmt(cpu.others)} cores`;
  let tierNote = '';
  if (before !== undefined && after !== undefined) {
    const delta = subtract(await after, await before);
    add(scenario.tiers, delta);
    const lookups = answered(delta);
    tierNote = `  answered by: L1 ${pct(delta.get('l1 hit') ?? 0, lookups)}, L3 ${pct((delta.get('l3 hit') ?? 0) + (delta.get('l3 miss') ?? 0), lookups)}`;
  }
  scenario.runs.push(stats);
  const errors = stats.errors > 0 ? `  ERRORS ${stats.errors} (${stats.firstError})` : '';
  const capped = stats.capped ? '  (capped at maxRequests)' : '';
  console.log(
    `  round ${round}/${RUNS}  ${scenario.key.padEnd(8)} ${int(stats.rps).padStart(7)} rps  p50 ${fmt(stats.p50).padStart(6)} ms  p99 ${fmt(stats.p99).padStart(6)} ms  p99.9 ${fmt(stats.p999).padStart(6)} ms  (${int(stats.requests)} calls)${cpuNote}${tierNote}${errors}${capped}`,
  );
}

async function rounds(scenarios: readonly Scenario[]): Promise<void> {
  for (let round = 1; round <= RUNS; round++) {
    // Rotate the order each round so no scenario always runs first (right after a warm pass or a restart).
    const order = scenarios.map((_, index) => scenarios[(index + round - 1) % scenarios.length]!);
    for (const scenario of order) await measure(scenario, round);
  }
}

function printTable(scenarios: readonly Scenario[], baselineRps: number): void {
  const header = ['scenario', 'RPS (median)', 'rows/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'vs baseline', 'errors', 'other CPU', 'RPS of each run'];
  const rows = scenarios.map((scenario) => {
    const rps = median(scenario.runs.map((run) => run.rps));
    return [
      `${scenario.key}  ${scenario.label}`,
      int(rps),
      int(rps * scenario.rows),
      fmt(median(scenario.runs.map((run) => run.p50))),
      fmt(median(scenario.runs.map((run) => run.p99))),
      fmt(median(scenario.runs.map((run) => run.p999))),
      `${fmt(rps / baselineRps, 3)}×`,
      String(scenario.runs.reduce((sum, run) => sum + run.errors, 0)),
      scenario.otherCpu.length > 0 ? fmt(median(scenario.otherCpu)) : '—',
      scenario.runs.map((run) => int(run.rps)).join(' / '),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, column) => (column === 0 || column === cells.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((width, column) => (column === 0 || column === widths.length - 1 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

function printTiers(scenarios: readonly Scenario[]): void {
  console.log('| scenario | row lookups | per call | L1 hit | bloom negative | L2 hit | L3 hit | L3 miss |');
  console.log('|:---------|------------:|---------:|-------:|---------------:|-------:|-------:|--------:|');
  for (const scenario of scenarios) {
    if (scenario.server === undefined) continue;
    const t = (key: string): number => scenario.tiers.get(key) ?? 0;
    const lookups = answered(scenario.tiers);
    const calls = scenario.runs.reduce((sum, run) => sum + run.requests, 0);
    console.log(
      `| ${scenario.key} | ${int(lookups)} | ${fmt(lookups / Math.max(1, calls), 1)} | ${pct(t('l1 hit'), lookups)} | ${pct(t('bloom negative'), lookups)} | ${pct(t('l2 hit'), lookups)} | ${pct(t('l3 hit'), lookups)} | ${pct(t('l3 miss'), lookups)} |`,
    );
  }
}

// ---- main -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run npm run build (npm run bench:serve does)`);
  const dataDir = join(workDir, 'data');
  const cpuModel = cpus()[0]?.model ?? 'unknown cpu';
  console.log(`strata serve benchmark — ${revision()}, node ${process.version}, ${availableParallelism()} cores (${cpuModel}), data ${dataDir}`);
  console.log(
    `  ${ENTITIES.toLocaleString('en-US')} entities, hot set ${HOT.toLocaleString('en-US')}, ${FEATURES.length} features; generator: 1 process, ${CHANNELS} channels, ${INFLIGHT} calls in flight (closed loop), ` +
      `pool ${POOL.toLocaleString('en-US')} pre-encoded requests; ${RUNS} runs × (${WARMUP_MS / 1000}s warmup + ${DURATION_MS / 1000}s measured) per scenario, after ${PRIME_MS / 1000}s priming per generator`,
  );

  // Phase 1: default L1.
  const hot = hotSet(ENTITIES, HOT, HOT_SEED);
  const serverHot = await startStrata(dataDir, []);
  console.log(`\n[phase 1] ${serverHot.banner}`);
  const load = await loadEntities(serverHot.grpcTarget);
  console.log(`  loaded ${int(load.rows)} rows via WriteFeatures (${WRITE_BATCH}-row batches) in ${(load.ms / 1000).toFixed(1)} s (${int((load.rows / load.ms) * 1000)} rows/s)`);

  const checkClient = new grpc.Client(serverHot.grpcTarget, grpc.credentials.createInsecure(), CLIENT_OPTIONS);
  const singleResponse = await checkRead(checkClient, [hot[0]!]);
  await checkRead(checkClient, Array.from(hot.subarray(0, WIDE_ROWS)));
  await checkRead(checkClient, Array.from({ length: WIDE_ROWS }, (_, row) => (row * 997 + 13) % ENTITIES));
  checkClient.close();
  console.log(`  check reads OK (all PRESENT, values as written); single-row response = ${singleResponse.length} bytes, captured for the baseline`);

  const noop = await startNoopServer(singleResponse);
  const hotSpace = { kind: 'hot', entityCount: ENTITIES, hotCount: HOT, hotSeed: HOT_SEED } as const;
  const allSpace = { kind: 'all', entityCount: ENTITIES } as const;
  const scenario = async (key: string, label: string, target: string, server: StrataProcess | undefined, pool: PoolSpec, warm: boolean): Promise<Scenario> => {
    const { generator, ready } = await Generator.start(key, target, pool);
    const primed = PRIME_MS > 0 ? await generator.run(0, PRIME_MS) : undefined;
    const primeNote = primed === undefined ? '' : `; primed ${PRIME_MS / 1000}s at ${int(primed.rps)} rps${primed.errors > 0 ? `, ERRORS ${primed.errors} (${primed.firstError})` : ''}`;
    console.log(`  ${key}: pool of ${int(ready.poolSize)} requests (${int(ready.requestBytes)} bytes each on average) built in ${ready.buildMs} ms${primeNote}`);
    return { key, label, rows: pool.rows, generator, server, warmHot: warm ? hot : undefined, runs: [], tiers: new Map(), otherCpu: [] };
  };
  const baseline = await scenario('baseline', 'no-op grpc-js server, 1-row requests', noop.target, undefined, { rows: 1, keySpace: hotSpace, poolSize: POOL, seed: 1 }, false);
  const a = await scenario('a', '1 row × 10 feat, L1 hot', serverHot.grpcTarget, serverHot, { rows: 1, keySpace: hotSpace, poolSize: POOL, seed: 1 }, true);
  const b = await scenario('b', `${WIDE_ROWS} rows × 10 feat, L1 hot`, serverHot.grpcTarget, serverHot, { rows: WIDE_ROWS, keySpace: hotSpace, poolSize: POOL, seed: 2 }, true);
  await rounds([baseline, a, b]);
  console.log(`\n  /metrics of the L1 server after the hot scenarios (cumulative, includes load, checks and warm passes):`);
  for (const line of await tierLines(serverHot.httpBase)) console.log(`    ${line}`);
  await Promise.all([a.generator.stop(), b.generator.stop()]);
  await stopStrata(serverHot);
  const hotLogs = notableLogs(serverHot);

  // Phase 2: the same data dir, L1 off.
  const serverCold = await startStrata(dataDir, ['--l1-budget', '0']);
  console.log(`\n[phase 2] ${serverCold.banner}`);
  const c = await scenario('c', '1 row × 10 feat, L1 off', serverCold.grpcTarget, serverCold, { rows: 1, keySpace: allSpace, poolSize: POOL, seed: 3 }, false);
  const d = await scenario('d', `${WIDE_ROWS} rows × 10 feat, L1 off`, serverCold.grpcTarget, serverCold, { rows: WIDE_ROWS, keySpace: allSpace, poolSize: POOL, seed: 4 }, false);
  await rounds([c, d]);
  console.log(`\n  /metrics of the L1-off server after the cold scenarios (cumulative):`);
  for (const line of await tierLines(serverCold.httpBase)) console.log(`    ${line}`);
  await Promise.all([baseline.generator.stop(), c.generator.stop(), d.generator.stop()]);
  await Promise.all([stopStrata(serverCold), terminate(noop.child, 5_000)]);
  const coldLogs = notableLogs(serverCold);

  const all = [baseline, a, b, c, d];
  const baselineRps = median(baseline.runs.map((run) => run.rps));
  console.log(`\nResults — median of ${RUNS} runs each (p50/p99/p99.9: median of the per-run percentiles; latency = client-side, call start to response, ${INFLIGHT} in flight):\n`);
  printTable(all, baselineRps);
  console.log(`\nother CPU: cores' worth of CPU used during the measured windows by processes outside this benchmark (median of the runs;`);
  console.log(`  from /proc/stat; other sandboxes on this kernel are invisible to ps). High values mean the run measured a shared machine.`);
  console.log(`\nWhich tier answered (strata_tier_lookups_total deltas over the measured windows, all runs):\n`);
  printTiers(all);
  console.log('\nServer log lines of note:');
  for (const line of [...hotLogs.map((l) => `  [L1 on ] ${l}`), ...coldLogs.map((l) => `  [L1 off] ${l}`)]) console.log(line);
  console.log(`\ntotal time ${((Date.now() - benchStarted) / 1000).toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`serve-bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
