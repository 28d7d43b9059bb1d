/**
 * A partition's event-time watermark: the newest event time applied from it
 * minus the allowed lateness. An event older than the watermark is late. The
 * newest event time is committed with the partition's Kafka offset, so after
 * a restart or a partition move the same events are late as before.
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

  isLate(eventTs: number): boolean {
    return eventTs < this.newest - this.allowedLatenessMs;
  }

  observe(eventTs: number): void {
    if (eventTs > this.newest) this.newest = eventTs;
  }

  /** The commit metadata that restores this watermark (see fromMetadata). */
  toMetadata(): string {
    return JSON.stringify({ newestEventTs: Number.isFinite(this.newest) ? this.newest : null });
  }

  static fromMetadata(allowedLatenessMs: number, metadata: string | null | undefined): Watermark {
    let newest = -Infinity;
    try {
      const parsed = metadata ? (JSON.parse(metadata) as { newestEventTs?: unknown }) : undefined;
      if (typeof parsed?.newestEventTs === 'number') newest = parsed.newestEventTs;
    } catch {
      // Metadata some other tool committed: start without a watermark.
    }
    return new Watermark(allowedLatenessMs, newest);
  }
}
