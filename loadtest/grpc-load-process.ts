/**
 * One load-generator process (forked by the harness, one job, then exit).
 * It speaks gRPC over its own minimal HTTP/2 framing (h2-wire-client.ts)
 * with pre-framed request bodies — neither grpc-js nor node:http2, whose
 * per-call costs cap a process at a few thousand calls/s here — and records
 * every call's latency in an HDR histogram.
 *
 * Open loop: request i is due at start + i/rate whatever happened before;
 * its latency runs from that due time, so a stalled server is charged for
 * every request it delayed (no coordinated omission). Sending late because
 * this process was busy is charged too, and reported as send lag so a
 * saturated generator is visible rather than blamed on the server.
 * Closed loop: `inflight` calls always outstanding; latency from send.
 */
import { H2WireClient, type CallOutcome } from './h2-wire-client.js';
import { encodeHistogram, newHistogram, recordMicros } from './latency.js';

export interface LoadJob {
  readonly target: string;
  readonly path: string;
  /** gRPC-framed request bodies, sent round-robin from a per-process offset. */
  readonly frames: readonly Buffer[];
  readonly firstFrame: number;
  readonly load: { readonly mode: 'open'; readonly rate: number } | { readonly mode: 'closed'; readonly inflight: number };
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly callTimeoutMs: number;
}

/** What a generator process reports: when its clock starts (so the harness can time its /metrics scrapes), then its outcome. */
export type LoadMessage = { readonly type: 'started' } | { readonly type: 'done'; readonly outcome: LoadOutcome };

export interface LoadOutcome {
  /** Latency of the calls that answered grpc-status 0 within the measured window. */
  readonly histogram: string;
  /** How late open-loop sends left versus their due time (empty for closed loop). */
  readonly sendLag: string;
  readonly ok: number;
  /** Failed calls in the window, by kind (see CallOutcome; `overload`: not sent, too many outstanding). */
  readonly errors: Record<string, number>;
  readonly windowMs: number;
}

/** Open-loop calls allowed outstanding before further due calls are counted as failed (`overload`) rather than queued without bound. */
const MAX_OUTSTANDING = 20_000;
/** Above this gap to the next due send the loop sleeps on a timer; timers are only ~1 ms precise. */
const TIMER_ABOVE_MS = 2;
/**
 * Below it, the loop naps at most this long between checks (Atomics.wait:
 * µs precision, but nothing else runs meanwhile, so a response arriving
 * during a nap is timed up to this much late — counted against the server).
 */
const MAX_NAP_MS = 0.1;
const napCell = new Int32Array(new SharedArrayBuffer(4));

async function run(job: LoadJob): Promise<LoadOutcome> {
  const [host, port] = job.target.split(':') as [string, string];
  const sessions = await Promise.all(Array.from({ length: job.connections }, () => H2WireClient.connect(host, Number(port), job.path)));
  const expiry = setInterval(() => {
    const now = performance.now();
    for (const session of sessions) session.expire(now, job.callTimeoutMs);
  }, 100);
  const latency = newHistogram();
  const sendLag = newHistogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let frameIndex = job.firstFrame;
  let sessionIndex = 0;
  let outstanding = 0;
  const start = performance.now();
  process.send!({ type: 'started' });
  const windowStart = start + job.warmupMs;
  const windowEnd = windowStart + job.durationMs;
  const inWindow = (at: number): boolean => at >= windowStart && at < windowEnd;
  const fail = (at: number, reason: string): void => {
    if (inWindow(at)) errors[reason] = (errors[reason] ?? 0) + 1;
  };

  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let sending = true;

  /** Sends one call; `from` is when its latency starts (its due time, open loop). */
  const call = (from: number, onClose: () => void): void => {
    outstanding++;
    sessions[sessionIndex++ % sessions.length]!.call(job.frames[frameIndex++ % job.frames.length]!, (outcome: CallOutcome) => {
      outstanding--;
      if (outcome !== 'ok') fail(from, outcome);
      else if (inWindow(from)) {
        ok++;
        recordMicros(latency, (performance.now() - from) * 1000);
      }
      onClose();
    });
  };

  const drained = (): void => {
    if (!sending && outstanding === 0) finish();
  };

  if (job.load.mode === 'open') {
    const intervalMs = 1000 / job.load.rate;
    let due = start;
    const tick = (): void => {
      const now = performance.now();
      while (due <= now && due < windowEnd) {
        if (outstanding >= MAX_OUTSTANDING) fail(due, 'overload');
        else {
          if (inWindow(due)) recordMicros(sendLag, (now - due) * 1000);
          call(due, drained);
        }
        due += intervalMs;
      }
      if (due >= windowEnd) {
        sending = false;
        drained();
        return;
      }
      const gap = due - performance.now();
      if (gap > TIMER_ABOVE_MS) setTimeout(tick, gap - TIMER_ABOVE_MS / 2);
      else {
        // Nap instead of spinning: a spinning generator takes a core from the server on a 2-core machine.
        if (gap > 0) Atomics.wait(napCell, 0, 0, Math.min(gap, MAX_NAP_MS));
        setImmediate(tick);
      }
    };
    tick();
  } else {
    const next = (): void => {
      if (performance.now() < windowEnd) {
        const sentAt = performance.now();
        call(sentAt, next);
      } else {
        sending = false;
        drained();
      }
    };
    for (let slot = 0; slot < job.load.inflight; slot++) next();
  }
  await finished;
  clearInterval(expiry);
  for (const session of sessions) session.close();
  return { histogram: encodeHistogram(latency), sendLag: encodeHistogram(sendLag), ok, errors, windowMs: job.durationMs };
}

process.once('message', (job: LoadJob) => {
  run(job).then(
    (outcome) => process.send!({ type: 'done', outcome }, () => process.exit(0)),
    (error: Error) => {
      process.stderr.write(`load generator: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
});
