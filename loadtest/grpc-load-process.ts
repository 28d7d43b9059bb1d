/**
 * One load-generator process (forked by the harness, one job, then exit).
 * It speaks gRPC as plain HTTP/2 from node:http2 with pre-framed request
 * bodies — no grpc-js client, whose per-call cost caps a process near 8k
 * RPS here — and records every call's latency in an HDR histogram.
 *
 * Open loop: request i is due at start + i/rate whatever happened before;
 * its latency runs from that due time, so a stalled server is charged for
 * every request it delayed (no coordinated omission). Sending late because
 * this process was busy is charged too, and reported as send lag so a
 * saturated generator is visible rather than blamed on the server.
 * Closed loop: `inflight` calls always outstanding; latency from send.
 */
import http2 from 'node:http2';
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
  /** Failed calls in the window, by grpc-status (or stream error code). */
  readonly errors: Record<string, number>;
  readonly windowMs: number;
}

/** Open-loop calls allowed outstanding before further due calls are counted as failed (`overload`) rather than queued without bound. */
const MAX_OUTSTANDING = 20_000;
/** Below this gap to the next due send the loop spins (setImmediate); above, it sleeps. Timers are only ~1 ms precise. */
const SPIN_BELOW_MS = 2;
const WINDOW_BYTES = 32 * 1024 * 1024;

function connect(target: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${target}`, { settings: { enablePush: false, initialWindowSize: WINDOW_BYTES } });
    session.once('error', reject);
    session.once('connect', () => {
      session.off('error', reject);
      session.on('error', () => undefined); // per-call failures are counted on their streams
      session.setLocalWindowSize(WINDOW_BYTES);
      resolve(session);
    });
  });
}

async function run(job: LoadJob): Promise<LoadOutcome> {
  const sessions = await Promise.all(Array.from({ length: job.connections }, () => connect(job.target)));
  const headers = { ':method': 'POST', ':path': job.path, 'content-type': 'application/grpc', te: 'trailers' };
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
    const session = sessions[sessionIndex++ % sessions.length]!;
    const stream = session.request(headers, { endStream: false });
    let status: string | undefined;
    stream.on('response', (responseHeaders) => {
      // A trailers-only response (an error) carries grpc-status in the headers.
      const early = responseHeaders['grpc-status'];
      if (early !== undefined) status = String(early);
    });
    stream.on('trailers', (trailers) => {
      status = String(trailers['grpc-status']);
    });
    stream.on('data', () => undefined);
    stream.on('error', (error: NodeJS.ErrnoException) => {
      status ??= error.code ?? 'stream-error';
    });
    stream.setTimeout(job.callTimeoutMs, () => {
      status = 'timeout';
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on('close', () => {
      outstanding--;
      if (status === '0') {
        if (inWindow(from)) {
          ok++;
          recordMicros(latency, (performance.now() - from) * 1000);
        }
      } else fail(from, status ?? 'no-status');
      onClose();
    });
    stream.end(job.frames[frameIndex++ % job.frames.length]);
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
      if (gap > SPIN_BELOW_MS) setTimeout(tick, gap - SPIN_BELOW_MS / 2);
      else setImmediate(tick);
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
