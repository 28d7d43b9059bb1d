import type avsc from 'avsc';
import { conformEvent } from './conform-event.js';
import { CONFLUENT_HEADER_BYTES, CONFLUENT_MAGIC_BYTE } from './confluent-wire.js';
import type { DecodeOutcome, EventDecoder } from './event-decoder.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Events as UTF-8 JSON objects. With a reader schema each event is conformed
 * to it (defaults filled, types checked, see conformEvent), so JSON and Avro
 * topics feed aggregations the same shape; without one, any object passes.
 */
export class JsonEventDecoder implements EventDecoder {
  readonly #readerType: avsc.Type | undefined;

  constructor(readerType: avsc.Type | undefined) {
    this.#readerType = readerType;
  }

  decode(value: Buffer | null): DecodeOutcome {
    if (value === null) return undecodable('the message has no value (a tombstone)');
    if (value.length >= CONFLUENT_HEADER_BYTES && value[0] === CONFLUENT_MAGIC_BYTE) {
      return undecodable(`not JSON: starts like Confluent Avro (schema id ${value.readUInt32BE(1)}); is the topic's format right?`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(UTF8.decode(value));
    } catch (error) {
      return undecodable(error instanceof SyntaxError ? `not JSON: ${error.message}` : 'not UTF-8 text');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return undecodable(`expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}`);
    }
    if (this.#readerType === undefined) return { ok: true, event: parsed as Record<string, unknown> };
    const conformed = conformEvent(this.#readerType, parsed);
    if (!conformed.ok) return { ok: false, reason: 'invalid', detail: `${conformed.field}: ${conformed.rule}` };
    return { ok: true, event: conformed.event };
  }
}

function undecodable(detail: string): DecodeOutcome {
  return { ok: false, reason: 'undecodable', detail };
}
