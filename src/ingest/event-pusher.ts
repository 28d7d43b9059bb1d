/**
 * PushEvents, protocol-neutral: JSON events for a topic enter the same path
 * as consumed ones — conformed to the topic's reader schema, checked against
 * its views, judged against a watermark — so demos and the embedded default
 * need no broker. The call is all or nothing for bad events: one invalid
 * event rejects the call, naming it, and nothing is applied. Late events are
 * not applied and are listed in the answer (pushes have no dead-letter topic;
 * the caller holds them). The push watermark is per topic and lives in this
 * process only.
 */
import type { Registry } from '../config/registry.js';
import { invalid } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { conformEvent } from './conform-event.js';
import type { ExtractedEvent, StreamApplier } from './stream-applier.js';
import { Watermark } from './watermark.js';

export interface PushOutcome {
  readonly applied: number;
  /** Indexes of events older than the watermark, not applied. */
  readonly late: readonly number[];
}

export class EventPusher {
  private readonly registry: Registry;
  private readonly applier: StreamApplier;
  private readonly metrics: Metrics;
  /** The server's --max-rows (not --max-events, which bounds what an entity keeps). */
  private readonly maxEventsPerCall: number;
  private readonly watermarks = new Map<string, Watermark>();
  /** Pushes to one topic run one at a time, so the watermark judges them in order. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(registry: Registry, applier: StreamApplier, metrics: Metrics, maxEventsPerCall: number) {
    this.registry = registry;
    this.applier = applier;
    this.metrics = metrics;
    this.maxEventsPerCall = maxEventsPerCall;
  }

  push(topic: unknown, events: unknown, nowMs: number): Promise<PushOutcome> {
    if (typeof topic !== 'string' || !this.applier.topics.includes(topic)) {
      throw invalid('STRATA_UNKNOWN_TOPIC', 'topic', `${JSON.stringify(topic) ?? 'nothing'} is not a topic any stream view consumes (topics: ${this.applier.topics.join(', ') || 'none'})`);
    }
    if (!Array.isArray(events) || events.length === 0) throw invalid('STRATA_INVALID_EVENT', 'events', 'must be a non-empty list of events');
    if (events.length > this.maxEventsPerCall) throw invalid('STRATA_TOO_MANY_ROWS', 'events', `${events.length} events exceed the limit of ${this.maxEventsPerCall} per call`);
    const readerType = this.registry.topics.get(topic)!.readerType;
    const extracted = events.map((raw: unknown, index): ExtractedEvent & { ok: true } => {
      let event = raw as Record<string, unknown>;
      if (readerType !== undefined) {
        const conformed = conformEvent(readerType, raw);
        if (!conformed.ok) throw invalid('STRATA_INVALID_EVENT', `events[${index}]${conformed.field ? `.${conformed.field}` : ''}`, conformed.rule);
        event = conformed.event;
      } else if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw invalid('STRATA_INVALID_EVENT', `events[${index}]`, 'must be a JSON object');
      }
      const result = this.applier.extract(topic, event, nowMs);
      if (!result.ok) throw invalid('STRATA_INVALID_EVENT', `events[${index}]${result.rejection.field ? `.${result.rejection.field}` : ''}`, result.rejection.detail);
      return result;
    });
    const run = (this.chains.get(topic) ?? Promise.resolve()).then(() => this.applyInOrder(topic, extracted, nowMs));
    this.chains.set(topic, run.catch(() => undefined));
    return run;
  }

  private async applyInOrder(topic: string, extracted: readonly (ExtractedEvent & { ok: true })[], nowMs: number): Promise<PushOutcome> {
    const current = this.watermarks.get(topic) ?? new Watermark(this.registry.topics.get(topic)!.allowedLatenessMs);
    const trial = new Watermark(this.registry.topics.get(topic)!.allowedLatenessMs, current.newestEventTs);
    const late: number[] = [];
    const toApply = extracted.flatMap((event, index) => {
      if (trial.admit(event.ts, nowMs)) return [{ extracted: event, origin: undefined }];
      late.push(index);
      return [];
    });
    await this.applier.apply(topic, toApply, nowMs);
    this.watermarks.set(topic, trial);
    if (late.length > 0) this.metrics.ingestEvents.inc({ topic, outcome: 'late_rejected' }, late.length);
    return { applied: toApply.length, late };
  }
}
