/**
 * Load shedding for online reads. A server that cannot keep up lets calls
 * wait until their clients' deadlines pass; the clients then cancel them,
 * and past ~1,000 cancelled streams in a burst Node's HTTP/2 layer treats
 * the connection as a rapid-reset attack and closes it, failing every call
 * on it (seen in the loadtest: every call "connection-lost" while the
 * server lived). Answering UNAVAILABLE at once while the event loop is far
 * behind costs a fraction of a read, keeps the backlog short and tells
 * clients to back off or try another replica.
 *
 * The signal is how late a timer fires: every request waits behind the
 * same loop iterations, so that delay is the queueing time they all see.
 * One late sample is a single long task (a GC, a bloom merge of tens of
 * megabytes) that has ended, not a backlog: shedding starts only when
 * LATE_SAMPLES_TO_SHED samples in a row are late, and stops at the first
 * on-time one.
 */
import { StrataError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

const SAMPLE_EVERY_MS = 20;
const LATE_SAMPLES_TO_SHED = 2;

export class OverloadGuard {
  private readonly limitMs: number;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private expectedAt = 0;
  private lastDelayMs = 0;
  private lateSamples = 0;
  private shedding = false;
  private refusedSinceChange = 0;

  /** `limitMs` 0 never sheds. */
  constructor(limitMs: number, logger: Logger) {
    this.limitMs = limitMs;
    this.logger = logger;
  }

  start(): void {
    if (this.limitMs === 0 || this.timer !== undefined) return;
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The error to answer a read with while the server is overloaded, else undefined. */
  refusal(): StrataError | undefined {
    if (!this.shedding) return undefined;
    this.refusedSinceChange++;
    return new StrataError('STRATA_OVERLOADED', `the server is overloaded (its event loop runs ${Math.round(this.lastDelayMs)} ms behind, limit ${this.limitMs} ms); retry with backoff or on another replica`);
  }

  private schedule(): void {
    this.expectedAt = performance.now() + SAMPLE_EVERY_MS;
    this.timer = setTimeout(() => this.sample(), SAMPLE_EVERY_MS);
    // Sampling alone must not keep a stopping process alive.
    this.timer.unref();
  }

  private sample(): void {
    this.lastDelayMs = Math.max(0, performance.now() - this.expectedAt);
    this.lateSamples = this.lastDelayMs > this.limitMs ? this.lateSamples + 1 : 0;
    const overloaded = this.lateSamples >= LATE_SAMPLES_TO_SHED;
    if (overloaded !== this.shedding) {
      if (overloaded) this.logger.warn('shedding online reads: the event loop is behind', { delayMs: Math.round(this.lastDelayMs), limitMs: this.limitMs });
      else this.logger.info('stopped shedding online reads', { refused: this.refusedSinceChange });
      this.shedding = overloaded;
      this.refusedSinceChange = 0;
    }
    this.schedule();
  }
}
