/**
 * Turns a Kafka message value into an event. A failure says why, so the
 * consumer can dead-letter the message with that reason; decoders throw only
 * for failures that may pass (a schema registry that is down), which the
 * consumer retries. Implementations: `AvroEventDecoder`, `JsonEventDecoder`.
 */
export type DecodeOutcome =
  | { readonly ok: true; readonly event: Record<string, unknown>; readonly schemaId?: number }
  | { readonly ok: false; readonly reason: 'undecodable' | 'unknown_schema' | 'invalid'; readonly detail: string };

export interface EventDecoder {
  /** Synchronous whenever nothing has to be fetched first (a schema id seen before): no promise per message on the hot path. */
  decode(value: Buffer | null): DecodeOutcome | Promise<DecodeOutcome>;
}
