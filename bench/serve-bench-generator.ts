/**
 * Load generator of `npm run bench:serve`, a child process forked by
 * bench/serve-bench.ts (it exits when its parent goes away). On `init` it
 * opens `channels` grpc-js clients (one TCP connection each) and pre-encodes
 * its request pool; on each `run` it keeps exactly `inflight` unary calls
 * outstanding (closed loop) for warmup + duration, and reports the calls
 * that completed inside the measured window: throughput and latency
 * percentiles measured with process.hrtime.bigint().
 */
import * as grpc from '@grpc/grpc-js';
import { seededRandom } from '../src/util/seeded-random.js';
import {
  CLIENT_OPTIONS,
  cardId,
  encodeRead,
  hotSet,
  identity,
  percentile,
  type FromGenerator,
  type GeneratorInit,
  type GeneratorRun,
  type PoolSpec,
  type RunStats,
  type ToGenerator,
} from './serve-bench-shared.js';

if (process.send === undefined) {
  process.stderr.write('serve-bench-generator: run by bench/serve-bench.ts (needs an IPC channel)\n');
  process.exit(2);
}

// grpc-js captures `new Error()` per call for the stack of a failed call; at thousands of calls a second
// that capture is a measurable share of the generator's CPU. Statuses and details are all the bench reads.
Error.stackTraceLimit = 0;

const send = (message: FromGenerator): void => {
  process.send?.(message);
};

let init: GeneratorInit | undefined;
let clients: grpc.Client[] = [];
let pool: Buffer[] = [];
let running = false;

function buildPool(spec: PoolSpec): Buffer[] {
  const random = seededRandom(spec.seed);
  const space = spec.keySpace.kind === 'hot' ? hotSet(spec.keySpace.entityCount, spec.keySpace.hotCount, spec.keySpace.hotSeed) : undefined;
  const spaceSize = space?.length ?? spec.keySpace.entityCount;
  if (spec.rows > spaceSize) throw new Error(`${spec.rows} rows per request > ${spaceSize} keys to draw from`);
  const requests: Buffer[] = [];
  const picked = new Set<number>();
  for (let request = 0; request < spec.poolSize; request++) {
    picked.clear();
    const ids: string[] = [];
    // Distinct rows in one request: the server reads each distinct entity once, so duplicates would shrink the work.
    for (let guard = 0; ids.length < spec.rows && guard < spec.rows * 100; guard++) {
      const slot = Math.floor(random() * spaceSize);
      if (picked.has(slot)) continue;
      picked.add(slot);
      ids.push(cardId(space === undefined ? slot : space[slot]!));
    }
    requests.push(encodeRead(ids));
  }
  return requests;
}

function run(command: GeneratorRun): Promise<RunStats> {
  const config = init!;
  const latencies = new Float64Array(Math.max(1, command.maxRequests));
  const startNs = process.hrtime.bigint();
  const windowStart = startNs + BigInt(Math.round(command.warmupMs * 1e6));
  const windowEnd = windowStart + BigInt(Math.round(command.durationMs * 1e6));
  let recorded = 0;
  let errors = 0;
  let firstError: string | undefined;
  let capped = false;
  let lastCompletion = windowStart;
  let next = 0;
  let outstanding = 0;
  let stopIssuing = false;
  let startSignalled = false;
  let endSignalled = false;
  let finished = false;

  const signalStart = (): void => {
    if (startSignalled) return;
    startSignalled = true;
    send({ type: 'window', id: command.id, edge: 'start' });
  };
  const signalEnd = (): void => {
    signalStart();
    if (endSignalled) return;
    endSignalled = true;
    send({ type: 'window', id: command.id, edge: 'end' });
  };

  return new Promise((resolve) => {
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(startTimer);
      clearTimeout(endTimer);
      signalEnd();
      const sorted = latencies.subarray(0, recorded).sort();
      const windowMs = capped ? Number(lastCompletion - windowStart) / 1e6 : command.durationMs;
      resolve({
        requests: recorded,
        errors,
        firstError,
        windowMs,
        rps: windowMs > 0 ? (recorded / windowMs) * 1000 : 0,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        p999: percentile(sorted, 0.999),
        max: recorded > 0 ? sorted[recorded - 1]! : Number.NaN,
        capped,
      });
    };
    const startTimer = setTimeout(signalStart, command.warmupMs);
    // Ends the run at windowEnd; calls still out finish (each has its own deadline), none is issued after it.
    const endTimer = setTimeout(() => {
      stopIssuing = true;
      signalEnd();
      if (outstanding === 0) finish();
    }, command.warmupMs + command.durationMs);

    const issue = (slot: number): void => {
      const client = clients[slot % clients.length]!;
      const request = pool[next]!;
      next = next + 1 === pool.length ? 0 : next + 1;
      outstanding++;
      const sent = process.hrtime.bigint();
      client.makeUnaryRequest(config.method, identity, identity, request, { deadline: Date.now() + config.callTimeoutMs }, (error) => {
        const done = process.hrtime.bigint();
        outstanding--;
        const inWindow = done >= windowStart && done <= windowEnd;
        if (error) {
          if (inWindow) errors++;
          firstError ??= `${grpc.status[error.code] ?? error.code}: ${error.details || error.message}`;
        } else if (inWindow && !capped) {
          latencies[recorded++] = Number(done - sent) / 1e6;
          lastCompletion = done;
          if (recorded === latencies.length) {
            capped = true;
            stopIssuing = true;
          }
        }
        if (!stopIssuing && done < windowEnd) {
          // After an error, go through the macrotask queue so a refused connection cannot spin synchronously.
          if (error) setImmediate(() => (stopIssuing ? outstanding === 0 && finish() : issue(slot)));
          else issue(slot);
        } else if (outstanding === 0) {
          finish();
        }
      });
    };
    for (let slot = 0; slot < config.inflight; slot++) issue(slot);
  });
}

process.on('message', (raw) => {
  const message = raw as ToGenerator;
  try {
    if (message.type === 'init') {
      const started = Date.now();
      init = message;
      pool = buildPool(message.pool);
      clients = Array.from({ length: message.channels }, () => new grpc.Client(message.target, grpc.credentials.createInsecure(), CLIENT_OPTIONS));
      send({ type: 'ready', poolSize: pool.length, requestBytes: pool.reduce((sum, request) => sum + request.length, 0) / pool.length, buildMs: Date.now() - started });
    } else if (message.type === 'run') {
      if (init === undefined || running) throw new Error(init === undefined ? 'run before init' : 'run while running');
      running = true;
      run(message).then((stats) => {
        running = false;
        send({ type: 'result', id: message.id, stats });
      });
    } else if (message.type === 'exit') {
      for (const client of clients) client.close();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 200).unref();
    }
  } catch (error) {
    send({ type: 'failed', message: (error as Error).stack ?? String(error) });
  }
});

// The parent owns this process: when it goes away (crash, kill -9), so does the generator.
process.on('disconnect', () => process.exit(0));
