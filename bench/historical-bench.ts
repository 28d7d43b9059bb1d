/**
 * Historical retrieval benchmark: output rows per second of
 * GetHistoricalFeatures for 10 features, against the target of
 * ≥ 100k rows/s on this machine.
 *
 *   npm run bench:historical                                (builds first: runs dist/cli/main.js)
 *   BENCH_SERVER_PROF=/tmp/prof npm run bench:historical     (CPU profiles of the strata servers)
 *
 * A `strata serve` child process (dist/, temp data dir, bench/registry-wide.yaml,
 * L1 on, no Redis) is seeded through WriteFeatures with BENCH_ENTITIES
 * (20000) cards × BENCH_VERSIONS (8) versions of card_features (10 features:
 * 4 double, 4 int64, 2 string) at random times over the last 3 days. Each
 * round asks for BENCH_ROWS (500000) rows, (card, t) drawn at random, t
 * uniform over the same 3 days (a few % of the cards never written, a few %
 * of the rows before a card's first version), every row answered with 10
 * values. Paths, BENCH_ROUNDS (5) rounds each:
 *   streamed     this process sends the rows (messages of 8192 rows, encoded
 *                before the clock starts) and counts the answered rows
 *                (decoding only enough of each chunk to count them)
 *   file         entities_path: the server reads the same rows from a parquet file
 *   streamed, L1 off   the same server restarted with --l1-budget 0: every
 *                record comes from LevelDB, read once per call (ScanReads)
 *   cli          `strata historical` (dist/) from the parquet file to a parquet
 *                output, once: what a user waits for, file writing included
 * Reported per path: the median of output rows/s (wall, from the first
 * message sent to the last answer), min and max over rounds, and the strata
 * server's CPU per round as rows per server CPU-second; the load average
 * before and after (the machine is shared: a load above its 2 cores means
 * the figures are lower bounds). Results: a table on stdout and
 * bench/out/historical.json. BENCH_PATHS=streamed,file,cli,l1-off (the default) picks
 * paths. Temp dirs are removed and servers stopped at the end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { openRowWriter } from '../src/batch/files/row-writer.js';
import { encodeQuery, encodeRows } from '../src/cli/historical-request-encoder.js';
import { loadRegistry } from '../src/config/registry.js';
import { seededRandom } from '../src/util/seeded-random.js';

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

const ENTITIES = setting('BENCH_ENTITIES', 20_000);
const VERSIONS = setting('BENCH_VERSIONS', 8);
const ROWS = setting('BENCH_ROWS', 500_000);
const ROUNDS = setting('BENCH_ROUNDS', 5);
const ROWS_PER_MESSAGE = 8_192;
const SPAN_MS = 3 * 86_400_000;
const SERVER_PROF = process.env.BENCH_SERVER_PROF;
const PATHS = new Set((process.env.BENCH_PATHS ?? 'streamed,file,cli,l1-off').split(','));

const REGISTRY_PATH = fileURLToPath(new URL('./registry-wide.yaml', import.meta.url));
const PROTO_PATH = fileURLToPath(new URL('../proto/strata/v1/feature_service.proto', import.meta.url));
const STRATA_MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('./out/', import.meta.url));
const WriteFeaturesRequest = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true }).lookupType('strata.v1.WriteFeaturesRequest');
const view = loadRegistry(REGISTRY_PATH).views.get('card_features')!;
const REFS = view.features.map((feature) => feature.ref);
const identity = (bytes: Buffer): Buffer => bytes;

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const k = (value: number): string => `${(value / 1000).toFixed(1)}k`;
/** A few % of the requested cards were never written. */
const cardId = (index: number): string => `card-${String(index).padStart(7, '0')}`;

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU ms (user + system) a process has used so far, from /proc. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

interface StrataChild {
  readonly child: ChildProcess;
  readonly client: grpc.Client;
  readonly target: string;
  stop(): Promise<void>;
}

async function startStrata(dataDir: string, extra: string[]): Promise<StrataChild> {
  const nodeArgs = SERVER_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${SERVER_PROF}`];
  const args = [...nodeArgs, STRATA_MAIN, 'serve', '--registry', REGISTRY_PATH, '--data-dir', dataDir, '--grpc-port', '0', '--http-port', '0', '--log-level', 'warn', '--max-rows', '10000', ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8_000)));
  const target = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strata did not announce its ports within 60 s: ${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`strata exited (${code}) before serving: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /grpc=(\S+)/.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      resolve(match[1]!);
    });
  });
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  return {
    child,
    client,
    target,
    stop: async () => {
      client.close();
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function unary(client: grpc.Client, method: string, body: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/strata.v1.FeatureService/${method}`, identity, identity, Buffer.from(body), { deadline: Date.now() + 60_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  });
}

/** Deterministic raw value of a feature of a card's version. */
function featureValue(type: string, entity: number, version: number, feature: number): Record<string, unknown> {
  if (type === 'double') return { double_val: entity * 0.25 + version + feature };
  if (type === 'int64') return { int64_val: entity * 7 + version * 1000 + feature };
  return { string_val: `v${(entity + version) % 97}-${feature}` };
}

async function seed(client: grpc.Client, rand: () => number, nowMs: number): Promise<void> {
  const batch = 1_000;
  for (let version = 0; version < VERSIONS; version++) {
    for (let first = 0; first < ENTITIES; first += batch) {
      const entities = Array.from({ length: Math.min(batch, ENTITIES - first) }, (_, offset) => first + offset);
      const columns: Record<string, { values: Record<string, unknown>[] }> = { card_id: { values: entities.map((entity) => ({ string_val: cardId(entity) })) } };
      for (const feature of view.features) columns[feature.name] = { values: entities.map((entity) => featureValue(feature.type, entity, version, feature.index)) };
      const event_timestamps = entities.map(() => {
        const ms = nowMs - SPAN_MS + Math.floor(rand() * SPAN_MS);
        return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
      });
      await unary(client, 'WriteFeatures', WriteFeaturesRequest.encode(WriteFeaturesRequest.fromObject({ feature_view: view.name, columns, event_timestamps })).finish());
    }
  }
}

/** Rows answered in one response chunk: its event_timestamps (field 3), the rest skipped by length. */
function rowsIn(bytes: Buffer): number {
  const reader = protobuf.Reader.create(bytes);
  let rows = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 3) rows++;
    reader.skipType(tag & 7);
  }
  return rows;
}

/** One call: writes `messages` as the call takes them, counts the answered rows; resolves with the rows and the wall ms. */
function runCall(client: grpc.Client, messages: readonly Uint8Array[]): Promise<{ rows: number; ms: number }> {
  const started = performance.now();
  const call = client.makeBidiStreamRequest('/strata.v1.FeatureService/GetHistoricalFeatures', identity, identity);
  let rows = 0;
  const done = new Promise<{ rows: number; ms: number }>((resolve, reject) => {
    call.on('data', (bytes: Buffer) => (rows += rowsIn(bytes)));
    call.on('error', reject);
    call.on('end', () => resolve({ rows, ms: performance.now() - started }));
  });
  void (async () => {
    for (const message of messages) {
      if (!call.write(Buffer.from(message))) await new Promise((resolve) => call.once('drain', resolve));
    }
    call.end();
  })();
  return done;
}

interface PathResult {
  readonly path: string;
  readonly rowsPerSecond: number[];
  readonly rowsPerServerCpuSecond: number[];
}

async function measure(path: string, server: StrataChild, messages: readonly Uint8Array[]): Promise<PathResult> {
  const rowsPerSecond: number[] = [];
  const rowsPerServerCpuSecond: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cpuBefore = processCpuMs(server.child.pid!);
    const { rows, ms } = await runCall(server.client, messages);
    const cpuMs = processCpuMs(server.child.pid!) - cpuBefore;
    if (rows !== ROWS) throw new Error(`${path}: ${rows} rows answered, ${ROWS} asked`);
    rowsPerSecond.push((rows * 1000) / ms);
    rowsPerServerCpuSecond.push((rows * 1000) / cpuMs);
    process.stdout.write(`  ${path} round ${round + 1}: ${k((rows * 1000) / ms)} rows/s, ${k((rows * 1000) / cpuMs)} rows per server CPU-s\n`);
  }
  return { path, rowsPerSecond, rowsPerServerCpuSecond };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'strata-historical-bench-'));
  const dataDir = join(scratch, 'data');
  const loadBefore = loadavg();
  const results: PathResult[] = [];
  let cliRowsPerSecond = Number.NaN;
  process.stdout.write(`bench:historical — ${ENTITIES} cards × ${VERSIONS} versions, ${ROWS} rows × ${REFS.length} features per call, ${ROUNDS} rounds; load average ${loadBefore.map((load) => load.toFixed(2)).join(' ')}\n`);
  // The file path reads rows.parquet from the scratch dir: the only files the server may read.
  const filesDir = ['--server-files-dir', scratch];
  let server = await startStrata(dataDir, filesDir);
  try {
    const rand = seededRandom(42);
    const nowMs = Date.now();
    const seedStarted = performance.now();
    await seed(server.client, rand, nowMs);
    process.stdout.write(`seeded ${ENTITIES * VERSIONS} versions in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s\n`);

    // 3 % of the rows ask for cards never written.
    const cards = Array.from({ length: ROWS }, () => cardId(Math.floor(rand() * ENTITIES * 1.03)));
    const times = Array.from({ length: ROWS }, () => nowMs - SPAN_MS + Math.floor(rand() * SPAN_MS));
    const messages = [encodeQuery({ features: REFS })];
    for (let from = 0; from < ROWS; from += ROWS_PER_MESSAGE) messages.push(encodeRows([{ name: 'card_id', type: 'string', values: cards }], times, from, Math.min(ROWS, from + ROWS_PER_MESSAGE)));
    const parquet = join(scratch, 'rows.parquet');
    const writer = await openRowWriter(parquet, [{ name: 'card_id', type: 'string' }, { name: 'event_timestamp', type: 'timestamp' }]);
    await writer.write({ length: ROWS, columns: new Map<string, unknown[]>([['card_id', cards], ['event_timestamp', times]]) });
    await writer.close();

    if (PATHS.has('streamed')) results.push(await measure('streamed', server, messages));
    if (PATHS.has('file')) results.push(await measure('file', server, [encodeQuery({ features: REFS, entitiesPath: parquet })]));
    if (PATHS.has('cli')) {
      const cliStarted = performance.now();
      const summary = execFileSync(process.execPath, [STRATA_MAIN, 'historical', '--entities', parquet, '--features', REFS.join(','), '--out', join(scratch, 'training.parquet'), '--target', server.target], { encoding: 'utf8' });
      cliRowsPerSecond = (ROWS * 1000) / (performance.now() - cliStarted);
      process.stdout.write(`  cli: ${summary.trim()} (${k(cliRowsPerSecond)} rows/s with process start)\n`);
    }
    if (PATHS.has('l1-off')) {
      await server.stop();
      server = await startStrata(dataDir, ['--l1-budget', '0', ...filesDir]);
      results.push(await measure('streamed, L1 off', server, messages));
    }
  } finally {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  process.stdout.write(`\n| path | rows/s (median) | min–max | rows per server CPU-s (median) |\n|---|---:|---:|---:|\n`);
  for (const result of results) {
    process.stdout.write(`| ${result.path} | ${k(median(result.rowsPerSecond))} | ${k(Math.min(...result.rowsPerSecond))}–${k(Math.max(...result.rowsPerSecond))} | ${k(median(result.rowsPerServerCpuSecond))} |\n`);
  }
  if (PATHS.has('cli')) process.stdout.write(`| cli (parquet → parquet, once) | ${k(cliRowsPerSecond)} | | |\n`);
  process.stdout.write(`\nload average before ${loadBefore.map((load) => load.toFixed(2)).join(' ')}, after ${loadAfter.map((load) => load.toFixed(2)).join(' ')} (${cpus().length} cores)\n`);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(
    join(OUT_DIR, 'historical.json'),
    `${JSON.stringify({ settings: { entities: ENTITIES, versions: VERSIONS, rows: ROWS, features: REFS.length, rounds: ROUNDS }, host: { cpus: cpus().length, node: process.version }, loadBefore, loadAfter, results, cliRowsPerSecond }, null, 2)}\n`,
  );
}

await main();
