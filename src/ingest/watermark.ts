/**
 * A partition's event-time watermark: the newest event time applied from it
 * minus the allowed lateness. An event older than the watermark is late. The
 * newest event time is committed with the partition's Kafka offset, so after
 * a restart or a partition move the same events are late as before.
 *
 * The newest event time never runs ahead of this server's clock: an event
 * stamped in the future (a producer's skewed clock, within the topic's
 * max_clock_skew) is applied at its own time but moves the watermark only up
 * to now, so the on-time events after it are not late — nor, once committed,
 * every event after a restart. The price: a step replayed later (a retry, or
 * a restart between applying it and committing its offset) judges events
 * ahead of the clock against a later clock, so one of them, or an on-time
 * event just behind it, can be judged otherwise the second time (applied
 * once, dead-lettered on the replay). Only such events: with every event
 * time at or behind the clock, replays judge as before.
 */
export class Watermark {
  private readonly allowedLatenessMs: number;
  private newest: number;

  constructor(allowedLatenessMs: number, newestEventTs = -Infinity) {
    this.allowedLatenessMs = allowedLatenessMs;
    this.newest = newestEventTs;
  }

  get newestEventTs(): number {
    return this.newest;
  }

  /** False for a late event; otherwise observes it, no further than `nowMs`, and answers true. */
  admit(eventTs: number, nowMs: number): boolean {
    if (eventTs < this.newest - this.allowedLatenessMs) return false;
    this.observe(Math.min(eventTs, nowMs));
    return true;
  }

  /** Takes a newest event time another watermark observed (a step's, once committed). */
  observe(eventTs: number): void {
    if (eventTs > this.newest) this.newest = eventTs;
  }

  /** The commit metadata that restores this watermark (see fromMetadata). */
  toMetadata(): string {
    return JSON.stringify({ newestEventTs: Number.isFinite(this.newest) ? this.newest : null });
  }

  /**
   * The watermark committed as `metadata`, no further ahead than `nowMs`: one
   * committed before future event times were held back (by an older Strata)
   * would otherwise keep finding every event late.
   */
  static fromMetadata(allowedLatenessMs: number, metadata: string | null | undefined, nowMs: number): Watermark {
    let newest = -Infinity;
    try {
      const parsed = metadata ? (JSON.parse(metadata) as { newestEventTs?: unknown }) : undefined;
      if (typeof parsed?.newestEventTs === 'number') newest = Math.min(parsed.newestEventTs, nowMs);
    } catch {
      // Metadata some other tool committed: start without a watermark.
    }
    return new Watermark(allowedLatenessMs, newest);
  }
}
