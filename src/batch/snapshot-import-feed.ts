/**
 * The main thread's end of a snapshot import's worker
 * (snapshot-import-worker.ts): its messages in order, its failures as the
 * errors they were in the worker, and the worker kept for the next import.
 */
import type { Worker } from 'node:worker_threads';
import { StrataError } from '../errors.js';
import { siblingModule, startModuleWorker } from '../util/module-worker.js';
import type { ChunkEncoding, ChunkFailure, ChunkMessage } from './snapshot-import-worker.js';

/** Why staging stopped: an input or audit failure, reported, as opposed to a storage failure, thrown. */
export class AuditFailure extends Error {}

/** What a failure in the worker throws here: the same error as had it been thrown on this thread. */
export function failureOf(failure: ChunkFailure): Error {
  switch (failure.kind) {
    case 'strata':
      return new StrataError(failure.code, failure.message, { field: failure.field });
    case 'max_rows':
      return new AuditFailure(failure.message);
    case 'unexpected': {
      const error = new Error(failure.message);
      if (failure.stack !== undefined) error.stack = failure.stack;
      return error;
    }
  }
}

/** How long a worker that finished an import waits for the next before it is ended. */
const IDLE_WORKER_MS = 30_000;

/**
 * A worker that finished its import, kept warm for the next one: a fresh
 * worker loads its modules and runs hyparquet and the encoders cold until
 * V8 optimizes them again, ~1.5–2 µs a row more CPU in a 300k-row import
 * (bench:import, parquet: 6.2–7.2 µs/row and 134–168k rows/s with a worker
 * per import, 4.5–5.0 µs/row and 200–215k rows/s warm, load average ~4.5).
 * One at most; it does not keep the process alive.
 */
let idle: { readonly worker: Worker; readonly timer: NodeJS.Timeout } | undefined;

/** Drops this module's listeners; removeAllListeners() would drop Node's own too (those that ref the worker's port while 'message' has listeners). */
function forget(worker: Worker): void {
  for (const event of ['message', 'error', 'exit']) worker.removeAllListeners(event);
}

function takeWorker(): Worker {
  if (idle === undefined) return startModuleWorker(siblingModule(import.meta.url, 'snapshot-import-worker'));
  const { worker, timer } = idle;
  idle = undefined;
  clearTimeout(timer);
  forget(worker);
  worker.ref();
  return worker;
}

async function releaseWorker(worker: Worker): Promise<void> {
  if (idle !== undefined) {
    await worker.terminate();
    return;
  }
  const end = (): void => {
    if (idle?.worker === worker) idle = undefined;
    void worker.terminate();
  };
  // An idle worker that fails (or is ended) just stops being the idle one.
  worker.on('error', end);
  worker.on('exit', end);
  worker.unref();
  idle = { worker, timer: setTimeout(end, IDLE_WORKER_MS).unref() };
}

/**
 * The worker of one import, its messages in order, at most a few chunks
 * ahead of this thread. Once it has said `done` or `failed` it is idle and
 * may serve the next import; closed before that, it is terminated.
 */
export class ChunkFeed {
  private readonly worker: Worker;
  private readonly arrived: ChunkMessage[] = [];
  private waiting: { resolve: (message: ChunkMessage) => void; reject: (error: Error) => void } | undefined;
  /** Why no more messages will come, other than the worker's own `done` or `failed`. */
  private broken: Error | undefined;
  private finished = false;

  constructor() {
    this.worker = takeWorker();
    this.worker.on('message', (message: ChunkMessage) => {
      if (message.type === 'done' || message.type === 'failed') this.finished = true;
      if (this.waiting === undefined) this.arrived.push(message);
      else this.waiting.resolve(message);
      this.waiting = undefined;
    });
    this.worker.on('error', (error) => this.break(error));
    this.worker.on('exit', (code) => this.break(new Error(`the snapshot import worker exited with code ${code} before it finished`)));
  }

  start(encoding: ChunkEncoding): void {
    this.worker.postMessage(encoding);
  }

  next(): Promise<ChunkMessage> {
    const message = this.arrived.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  /** A chunk was taken: the worker may encode one more. */
  taken(): void {
    this.worker.postMessage(null);
  }

  async close(): Promise<void> {
    forget(this.worker);
    if (this.finished && this.broken === undefined) await releaseWorker(this.worker);
    else await this.worker.terminate();
  }

  private break(error: Error): void {
    this.broken ??= error;
    this.waiting?.reject(this.broken);
    this.waiting = undefined;
  }
}
