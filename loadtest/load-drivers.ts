/**
 * The three ways the harness puts load on a server, all ending in the same
 * LoadResult: Node generator processes (open or closed loop, varying
 * requests), h2load (closed loop, one request body, the fastest generator on
 * this machine), and autocannon for the HTTP gateway.
 */
import { execFile, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { LoadJob, LoadMessage, LoadOutcome } from './grpc-load-process.js';
import { mergeHistograms, newHistogram, recordMicros, summarize, type LatencySummary } from './latency.js';
import { track, withTimeout } from './processes.js';

const LOAD_PROCESS = fileURLToPath(new URL('./grpc-load-process.ts', import.meta.url));
const CALL_TIMEOUT_MS = 10_000;

export interface LoadResult {
  readonly achievedRps: number;
  readonly latency: LatencySummary;
  readonly ok: number;
  readonly errors: Record<string, number>;
  /** Open loop: p99 of how late the generator sent versus schedule (its own saturation), ms. */
  readonly sendLagP99Ms: number | undefined;
}

export interface Window {
  readonly warmupS: number;
  readonly durationS: number;
  /** Called once when the measured window starts (after the warm-up): the harness reads /metrics there. */
  readonly onStart: () => void;
}

function runLoadProcess(job: LoadJob, onStarted: () => void): Promise<LoadOutcome> {
  const child = track(fork(LOAD_PROCESS, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  return withTimeout(
    new Promise<LoadOutcome>((resolve, reject) => {
      child.on('message', (raw) => {
        const message = raw as LoadMessage;
        if (message.type === 'started') onStarted();
        else resolve(message.outcome);
      });
      child.once('exit', (code) => reject(new Error(`load generator exited (${code}) without a result`)));
      child.send(job);
    }),
    job.warmupMs + job.durationMs + CALL_TIMEOUT_MS + 30_000,
    'load generator',
  );
}

/**
 * gRPC load from `processes` generator processes, each with its share of
 * the rate (open) or of the in-flight calls (closed) and its own HTTP/2
 * connection, starting at different points of the request pool.
 */
export async function nodeLoad(
  target: string,
  path: string,
  frames: readonly Buffer[],
  load: { readonly mode: 'open'; readonly rate: number } | { readonly mode: 'closed'; readonly inflight: number },
  processes: number,
  window: Window,
): Promise<LoadResult> {
  const windowStart = once(() => setTimeout(window.onStart, window.warmupS * 1000));
  const outcomes = await Promise.all(
    Array.from({ length: processes }, (_, index) =>
      runLoadProcess({
        target,
        path,
        frames,
        firstFrame: Math.floor((frames.length * index) / processes),
        load: load.mode === 'open' ? { mode: 'open', rate: load.rate / processes } : { mode: 'closed', inflight: Math.max(1, Math.round(load.inflight / processes)) },
        connections: 1,
        warmupMs: window.warmupS * 1000,
        durationMs: window.durationS * 1000,
        callTimeoutMs: CALL_TIMEOUT_MS,
      }, windowStart),
    ),
  );
  const errors: Record<string, number> = {};
  for (const outcome of outcomes) for (const [reason, count] of Object.entries(outcome.errors)) errors[reason] = (errors[reason] ?? 0) + count;
  const ok = outcomes.reduce((sum, outcome) => sum + outcome.ok, 0);
  const sendLag = load.mode === 'open' ? summarize(mergeHistograms(outcomes.map((outcome) => outcome.sendLag))).p99Ms : undefined;
  return { achievedRps: ok / window.durationS, latency: summarize(mergeHistograms(outcomes.map((outcome) => outcome.histogram))), ok, errors, sendLagP99Ms: sendLag };
}

function once(action: () => void): () => void {
  let done = false;
  return () => {
    if (!done) action();
    done = true;
  };
}

function execFileText(file: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
    track(child);
  });
}

/**
 * Closed-loop maximum throughput with h2load: `connections` HTTP/2
 * connections of `inflight / connections` streams each, one request body.
 * Per-request times come from h2load's log file, so percentiles are exact.
 */
export async function h2load(target: string, path: string, frame: Buffer, connections: number, inflight: number, window: Window): Promise<LoadResult> {
  const directory = mkdtempSync(join(tmpdir(), 'strata-h2load-'));
  try {
    const body = join(directory, 'request.bin');
    const log = join(directory, 'requests.log');
    writeFileSync(body, frame);
    const windowTimer = setTimeout(window.onStart, window.warmupS * 1000);
    const output = await execFileText(
      'h2load',
      [
        `--clients=${connections}`,
        `--max-concurrent-streams=${Math.max(1, Math.round(inflight / connections))}`,
        '--threads=1',
        `--warm-up-time=${window.warmupS}s`,
        `--duration=${window.durationS}s`,
        `--data=${body}`,
        '--header=content-type: application/grpc',
        '--header=te: trailers',
        `--log-file=${log}`,
        `http://${target}${path}`,
      ],
      Math.ceil((window.warmupS + window.durationS) * 1000) + 60_000,
    ).finally(() => clearTimeout(windowTimer));
    const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
    if (requests === null) throw new Error(`cannot read h2load's summary:\n${output}`);
    const histogram = newHistogram();
    const lines = readFileSync(log, 'utf8').split('\n');
    // The log has the warm-up's requests too: keep those that started in the measured window, the last durationS seconds.
    const rows = lines.filter((line) => line !== '').map((line) => line.split('\t').map(Number) as [number, number, number]);
    const lastStart = rows.reduce((latest, row) => Math.max(latest, row[0]), 0);
    let ok = 0;
    let failed = 0;
    for (const [startedUs, status, micros] of rows) {
      if (startedUs < lastStart - window.durationS * 1e6) continue;
      // Status 0: a request in flight when h2load switched from warm-up to measuring; it has no outcome of its own.
      if (status === 0) continue;
      if (status === 200) {
        ok++;
        recordMicros(histogram, micros);
      } else failed++;
    }
    const errors: Record<string, number> = {};
    if (failed > 0) errors.http = failed;
    const notDone = Number(requests[6]) + Number(requests[7]);
    if (notDone > 0) errors['h2load-errored'] = notDone;
    return { achievedRps: ok / window.durationS, latency: summarize(histogram), ok, errors, sendLagP99Ms: undefined };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function autocannonRun(url: string, bodies: readonly string[], connections: number, durationS: number, onResponse?: (statusCode: number, responseMs: number) => void): Promise<void> {
  let next = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections,
        duration: durationS,
        timeout: CALL_TIMEOUT_MS / 1000,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: [{ setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length]! }) }],
      },
      (error) => (error ? reject(error) : resolve()),
    );
    if (onResponse !== undefined) instance.on('response', (_client, statusCode, _bytes, responseTime) => onResponse(statusCode, responseTime));
  });
}

/** The HTTP gateway, closed loop over `connections` keep-alive connections (after an unrecorded warm-up run). */
export async function httpLoad(url: string, bodies: readonly string[], connections: number, window: Window): Promise<LoadResult> {
  if (window.warmupS > 0) await autocannonRun(url, bodies, connections, window.warmupS);
  window.onStart();
  const histogram = newHistogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  await autocannonRun(url, bodies, connections, window.durationS, (statusCode, responseMs) => {
    if (statusCode === 200) {
      ok++;
      recordMicros(histogram, responseMs * 1000);
    } else errors[`http ${statusCode}`] = (errors[`http ${statusCode}`] ?? 0) + 1;
  });
  return { achievedRps: ok / window.durationS, latency: summarize(histogram), ok, errors, sendLagP99Ms: undefined };
}
