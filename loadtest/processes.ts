/**
 * The processes of a load-test run: the Strata server under test (the built
 * CLI, `node dist/cli/main.js serve`), the no-op baseline server, Redis,
 * and the load generators. Every child is tracked and killed when the run
 * ends, however it ends.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { NoopKind } from './noop-server-process.js';

const MAIN_JS = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const NOOP_SERVER = fileURLToPath(new URL('./noop-server-process.ts', import.meta.url));

const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function killAllChildren(): void {
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL if the child has not exited after `graceMs`. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- the server under test ------------------------------------------------------------------------

export interface StrataProcess {
  readonly child: ChildProcess;
  readonly grpcTarget: string;
  readonly httpBase: string;
  readonly logTail: string[];
}

/**
 * How the README says to run Strata on a box of 2 vCPUs or fewer, given to
 * every server of a run (Strata and the no-op baselines alike). Node's
 * default of 4 V8 platform threads oversubscribes 2 cores shared with the
 * load generator and Redis: a full GC's parallel phases likely wait for
 * helper threads that are not running. zipf-1x50-redis --quick, alternating,
 * default vs 1: p99 38.1/17.7, 15.9/4.5, 18.7/3.9, 6.8/5.9 ms; full size
 * 15.5 ms with full-GC pauses of 18-33 ms (38-158 ms in the two runs before,
 * pauses 25-142 ms). L1-hot h2load 4x16 on the example server: 25.8-27.8k
 * rps with 4, 27.3-28.2k with 1.
 */
export const SMALL_BOX_NODE_FLAGS = ['--v8-pool-size=1'];

/**
 * Strata's memory setting on a small box (README, Configuration): a young
 * generation of 4 MiB semi-spaces instead of the 16 MiB V8 grows to under
 * load. A 1×10 call leaves ~19 KB of garbage (two thirds of it node:http2's)
 * that dies young either way. Two-scenario runs (100×50 then Zipf 1×50, full
 * size, 20:20-20:50 UTC 12-07): Zipf peak RSS 259 / 260 / 273 MiB with it
 * against 298 / 336 / 443 without (young generation 7.5-8 MiB against
 * 26-30), 100×50 212 / 219 / 214 against 245 / 250 / 245; h2load L1-hot
 * 21.6k / 16.4k rps against 22.2k / 18.0k and open loop 5k p99 8.1 / 6.5 ms
 * against 9.5 / 6.7, alternating: no cost this box's noise shows. Not given
 * to the no-op baselines: a smaller nursery could only lower their ceiling.
 */
const STRATA_MEMORY_NODE_FLAGS = ['--max-semi-space-size=4'];

/**
 * V8's heap limit for a Strata server: its L1 budget plus this much, as on
 * a box sized for it. Node derives the limit from the memory it sees (a
 * container's limit, else the host's: 4,144 MiB on this 24 GiB box), and
 * V8 lets the old generation grow between full GCs by up to 4× its live
 * size under a limit of 2 GiB or more, 1.3–2× under less (heap-controller.cc,
 * MaxGrowingFactor). With the host's limit a Zipf server's old generation
 * reached 120–180 MiB in two of seven two-scenario runs (peak RSS 329 and
 * 454 MiB; 253–276 in the others; 12-07 21:50–22:45, alternating); with
 * L1 + 512 MiB it peaked at 73–81 MiB (Zipf 261–269 MiB, five runs), with
 * L1 + 256 at 73–75 (252 and 258 MiB, two runs). The write-heavy seeder,
 * the largest heap of a run, peaked at 109–122 MiB of old generation
 * under either.
 */
const HEAP_HEADROOM_MIB = 256;

/**
 * Node flags for a strata server with an L1 of `l1BudgetBytes`.
 * LOADTEST_SERVER_PROF=<dir>: each writes a V8 CPU profile there when it
 * stops (node refuses --cpu-prof in NODE_OPTIONS). LOADTEST_SERVER_FLAGS:
 * more flags, last so they win, such as --trace-gc-nvp, whose output
 * LOADTEST_SERVER_STDOUT=<file> keeps.
 */
function serverNodeFlags(l1BudgetBytes: number): string[] {
  return [
    ...SMALL_BOX_NODE_FLAGS,
    ...STRATA_MEMORY_NODE_FLAGS,
    `--max-old-space-size=${Math.ceil(l1BudgetBytes / 1024 ** 2) + HEAP_HEADROOM_MIB}`,
    ...(process.env.LOADTEST_SERVER_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.LOADTEST_SERVER_PROF}`]),
    ...(process.env.LOADTEST_SERVER_FLAGS ?? '').split(' ').filter((flag) => flag !== ''),
  ];
}

/**
 * The Dockerfile's glibc setting. By default glibc raises its mmap threshold
 * to the size of the first mmapped block freed, so after L1's first slab
 * (256 KiB) is dropped, slabs come from the main heap, between short-lived
 * buffers, and the holes they leave stay resident (the heap shrinks only
 * from its top). A fixed threshold keeps each slab its own mapping, returned
 * when freed. Zipf 1×50 peak RSS, two pairs alternating (12-08 00:00–00:17):
 * 251 / 252 MiB without, 242 / 237 with; p99 no worse.
 */
const SERVER_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** How the report names a server's setup (the glibc setting as the servers get it; the heap limit depends on each server's budget). */
export const SERVER_SETUP_RULE = [
  ...Object.entries(SERVER_MALLOC_ENV).map(([name, value]) => `${name}=${process.env[name] ?? value}`),
  ...SMALL_BOX_NODE_FLAGS,
  ...STRATA_MEMORY_NODE_FLAGS,
  `--max-old-space-size=<L1 budget + ${HEAP_HEADROOM_MIB} MiB>`,
].join(' ');
const SERVER_STDOUT = process.env.LOADTEST_SERVER_STDOUT;

/**
 * The environment of a server child: the Dockerfile's glibc setting unless
 * the caller's shell sets it (to compare), and nothing STRATA_* or REDIS_URL
 * from that shell (it would change the setup, or be refused).
 */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...SERVER_MALLOC_ENV };
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('STRATA_') && name !== 'REDIS_URL') env[name] = value;
  return env;
}

export async function startStrata(args: readonly string[], l1BudgetBytes: number): Promise<StrataProcess> {
  const child = track(spawn(process.execPath, [...serverNodeFlags(l1BudgetBytes), MAIN_JS, 'serve', '--host', '127.0.0.1', '--grpc-port', '0', '--http-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() }));
  const logTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    logTail.push(line);
    if (logTail.length > 100) logTail.shift();
  });
  const banner = await withTimeout(
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (SERVER_STDOUT !== undefined) appendFileSync(SERVER_STDOUT, `${Date.now()} ${line}\n`);
        if (line.startsWith('strata serving ')) resolve(line);
      });
      child.once('exit', (code, signal) => reject(new Error(`strata serve exited (${code ?? signal}) before serving:\n${logTail.slice(-20).join('\n')}`)));
    }),
    180_000,
    'strata serve start',
  );
  const grpc = / grpc=\S+:(\d+)/.exec(banner);
  const http = / http=\S+:(\d+)/.exec(banner);
  if (grpc === null || http === null) throw new Error(`cannot read the ports from: ${banner}`);
  return { child, grpcTarget: `127.0.0.1:${grpc[1]}`, httpBase: `http://127.0.0.1:${http[1]}`, logTail };
}

/** Server log lines worth showing next to a result: warnings, errors, and compaction sweeps (background work that may overlap a window). */
export function notableLogs(server: StrataProcess): string[] {
  return server.logTail.filter((line) => /"level":"(warn|error)"|compaction sweep/.test(line));
}

export interface NoopProcess {
  readonly child: ChildProcess;
  readonly target: string;
}

export async function startNoop(response: Buffer, kind: NoopKind): Promise<NoopProcess> {
  // With this process's execArgv (tsx's loader), so it can be a .ts file.
  const child = track(fork(NOOP_SERVER, [], { execArgv: [...process.execArgv, ...SMALL_BOX_NODE_FLAGS], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      child.once('message', (message) => resolve((message as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`no-op server exited (${code})`)));
      child.send({ response, kind });
    }),
    30_000,
    'no-op server start',
  );
  return { child, target: `127.0.0.1:${port}` };
}

// ---- what the server reports ----------------------------------------------------------------------

export interface TierCounters {
  readonly lookups: number;
  readonly l1Hits: number;
  readonly l2Lookups: number;
  readonly l2Hits: number;
  readonly l3Lookups: number;
  readonly l3Hits: number;
  readonly bloomNegatives: number;
}

/** Record-lookup counters from the server's /metrics (cumulative since it started). */
export async function scrapeTiers(httpBase: string): Promise<TierCounters> {
  const response = await fetch(`${httpBase}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  const tier = new Map<string, number>();
  let bloomNegatives = 0;
  for (const line of text.split('\n')) {
    const lookup = /^strata_tier_lookups_total\{(?=.*tier="(\w+)")(?=.*result="(\w+)").*\}\s+(\S+)/.exec(line);
    if (lookup !== null) tier.set(`${lookup[1]} ${lookup[2]}`, Number(lookup[3]));
    const bloom = /^strata_bloom_negatives_total\s+(\S+)/.exec(line);
    if (bloom !== null) bloomNegatives = Number(bloom[1]);
  }
  const get = (key: string): number => tier.get(key) ?? 0;
  const l2Lookups = get('l2 hit') + get('l2 miss') + get('l2 error');
  const l3Lookups = get('l3 hit') + get('l3 miss') + get('l3 error');
  const l1Lookups = get('l1 hit') + get('l1 miss');
  return {
    // Without L1 every lookup goes to the bloom gate and below.
    lookups: l1Lookups > 0 ? l1Lookups : l2Lookups > 0 ? l2Lookups + bloomNegatives : l3Lookups + bloomNegatives,
    l1Hits: get('l1 hit'),
    l2Lookups,
    l2Hits: get('l2 hit'),
    l3Lookups,
    l3Hits: get('l3 hit'),
    bloomNegatives,
  };
}

/** One unlabelled gauge or counter from /metrics. */
export async function scrapeValue(httpBase: string, name: string): Promise<number> {
  const text = await (await fetch(`${httpBase}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const line = new RegExp(`^${name}\\s+(\\S+)$`, 'm').exec(text);
  if (line === null) throw new Error(`/metrics has no ${name}`);
  return Number(line[1]);
}

export function tierDelta(after: TierCounters, before: TierCounters): TierCounters {
  return {
    lookups: after.lookups - before.lookups,
    l1Hits: after.l1Hits - before.l1Hits,
    l2Lookups: after.l2Lookups - before.l2Lookups,
    l2Hits: after.l2Hits - before.l2Hits,
    l3Lookups: after.l3Lookups - before.l3Lookups,
    l3Hits: after.l3Hits - before.l3Hits,
    bloomNegatives: after.bloomNegatives - before.bloomNegatives,
  };
}

/** A process and all its descendants (a `--workers` server is several processes). Linux /proc. */
function processTree(rootPid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let current: number | undefined = pid; current !== undefined && current > 1; current = parentOf.get(current)) if (current === rootPid) return true;
    return false;
  };
  return [...parentOf.keys()].filter(inTree);
}

/** Resident memory of a process tree, in bytes: anonymous (heap, stacks) and file-backed (binaries, mmapped tables) apart. */
export interface Resident {
  readonly totalBytes: number;
  readonly anonBytes: number;
  readonly fileBytes: number;
}

function statusKb(status: string, field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match === null ? 0 : Number(match[1]) * 1024;
}

export function treeResident(rootPid: number): Resident {
  let totalBytes = 0;
  let anonBytes = 0;
  let fileBytes = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      totalBytes += statusKb(status, 'VmRSS');
      anonBytes += statusKb(status, 'RssAnon');
      fileBytes += statusKb(status, 'RssFile') + statusKb(status, 'RssShmem');
    } catch {
      // exited meanwhile
    }
  }
  return { totalBytes, anonBytes, fileBytes };
}

/** Samples a process tree's RSS every `everyMs` until stopped; returns the sample with the highest total. */
export function watchRss(pid: number, everyMs = 250): { stop(): Resident } {
  let peak = treeResident(pid);
  const sample = (): void => {
    const now = treeResident(pid);
    if (now.totalBytes > peak.totalBytes) peak = now;
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

// ---- CPU used elsewhere on the machine -------------------------------------------------------------

export interface CpuSnapshot {
  readonly busy: number;
  readonly steal: number;
  readonly total: number;
  readonly ours: number;
}

/** CPU a measurement window lost, in cores' worth: to processes outside the run, and to the hypervisor (steal: the vCPUs were not running). */
export interface WindowNoise {
  readonly othersCores: number;
  readonly stolenCores: number;
}

/**
 * Busy and stolen ticks of all CPUs (/proc/stat) and busy ticks of this
 * process tree. Processes of other sandboxes share the kernel without being
 * visible to `ps`; the difference is the only way to see them. Steal is the
 * time a vCPU was runnable but the hypervisor ran something else: every
 * process here, server and generator alike, stops for it.
 */
export function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    let ours = 0;
    for (const pid of processTree(process.pid)) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // utime, stime, and cutime, cstime: descendants that exited during the window (generators, h2load) still count.
        ours += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      } catch {
        // exited meanwhile
      }
    }
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal, ours };
  } catch {
    return undefined;
  }
}

export function windowNoise(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): WindowNoise | undefined {
  if (before === undefined || after === undefined) return undefined;
  const wallTicksPerCpu = (after.total - before.total) / availableParallelism();
  if (wallTicksPerCpu <= 0) return undefined;
  return {
    othersCores: Math.max(0, after.busy - before.busy - (after.ours - before.ours)) / wallTicksPerCpu,
    stolenCores: (after.steal - before.steal) / wallTicksPerCpu,
  };
}
