import type { GeneratedEvent, GeneratorTopic } from '../../ingest/event-generator.js';

export interface OutgoingEvent {
  readonly topic: GeneratorTopic;
  readonly generated: GeneratedEvent;
}

/**
 * Where `strata generate` sends events: Kafka, a server's push-events
 * endpoint, or an NDJSON file. Implementations: KafkaEventSink,
 * PushEventSink, NdjsonFileEventSink.
 */
export interface EventSink {
  /** Paced sinks get events as the wall clock reaches them at --rate; an unpaced one as fast as it takes them. */
  readonly paced: boolean;
  /** Where the events go, for the summary line. */
  readonly target: string;
  /** Sends one batch, in order within each topic; several batches may be in flight. */
  send(batch: readonly OutgoingEvent[]): Promise<void>;
  /** Waits for everything sent, then releases connections and files. */
  close(): Promise<void>;
}
