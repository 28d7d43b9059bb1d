import type avsc from 'avsc';
import { CONFLUENT_HEADER_BYTES, CONFLUENT_MAGIC_BYTE } from './confluent-wire.js';
import type { DecodeOutcome, EventDecoder } from './event-decoder.js';
import type { SchemaSource } from './schema-source.js';
import { StrataError } from '../errors.js';

type Reading = { readonly resolver: avsc.Resolver } | { readonly unreadable: string };

/**
 * Avro events in the Confluent wire format, read through one reader schema:
 * each writer schema (by id) is resolved to the reader once, so events
 * written with v1 and v2 of a schema come out alike, with reader defaults for
 * fields the writer lacked. Malformed bytes, unknown ids and writer schemas
 * the reader cannot resolve are outcomes for the dead-letter queue; only a
 * SchemaSource failure that may pass (registry down) throws.
 */
export class AvroEventDecoder implements EventDecoder {
  readonly #readerType: avsc.Type;
  readonly #schemas: SchemaSource;
  /** By writer schema id; ids never change meaning, so neither does the answer. */
  readonly #readings = new Map<number, Reading>();

  constructor(readerType: avsc.Type, schemaSource: SchemaSource) {
    this.#readerType = readerType;
    this.#schemas = schemaSource;
  }

  decode(value: Buffer | null): DecodeOutcome | Promise<DecodeOutcome> {
    if (value === null) return undecodable('the message has no value (a tombstone)');
    if (value.length < CONFLUENT_HEADER_BYTES) return undecodable(`truncated: ${value.length} bytes, shorter than the 5-byte Confluent header`);
    if (value[0] !== CONFLUENT_MAGIC_BYTE) {
      return undecodable(`bad magic byte 0x${value[0]!.toString(16).padStart(2, '0')}, expected 0x00 (not the Confluent Avro wire format)`);
    }
    const schemaId = value.readUInt32BE(1);
    const known = this.#readings.get(schemaId);
    if (known !== undefined) return this.#decodeAs(value, schemaId, known);
    return this.#reading(schemaId).then((reading) => this.#decodeAs(value, schemaId, reading));
  }

  #decodeAs(value: Buffer, schemaId: number, reading: Reading | undefined): DecodeOutcome {
    if (reading === undefined) return { ok: false, reason: 'unknown_schema', detail: `schema id ${schemaId} is not registered` };
    if ('unreadable' in reading) return { ok: false, reason: 'unknown_schema', detail: reading.unreadable };
    let decoded: { value: unknown; offset: number };
    try {
      decoded = this.#readerType.decode(value, CONFLUENT_HEADER_BYTES, reading.resolver);
    } catch (error) {
      return undecodable(`malformed Avro payload for schema id ${schemaId}: ${(error as Error).message}`);
    }
    const payloadBytes = value.length - CONFLUENT_HEADER_BYTES;
    if (decoded.offset < 0) return undecodable(`truncated Avro payload: ${payloadBytes} bytes end inside a record of schema id ${schemaId}`);
    const trailing = value.length - decoded.offset;
    if (trailing > 0) return undecodable(`${trailing} trailing byte${trailing === 1 ? '' : 's'} after the record of schema id ${schemaId} (${payloadBytes}-byte payload)`);
    return { ok: true, event: decoded.value as Record<string, unknown>, schemaId };
  }

  async #reading(schemaId: number): Promise<Reading | undefined> {
    let writerType: avsc.Type | undefined;
    try {
      writerType = await this.#schemas.writerType(schemaId);
    } catch (error) {
      if (!(error instanceof StrataError && error.code === 'STRATA_SCHEMA_UNUSABLE')) throw error;
      return this.#remember(schemaId, { unreadable: error.message });
    }
    if (writerType === undefined) return undefined;
    try {
      return this.#remember(schemaId, { resolver: this.#readerType.createResolver(writerType) });
    } catch (error) {
      const reader = this.#readerType.name ?? 'the reader schema';
      return this.#remember(schemaId, { unreadable: `schema id ${schemaId} cannot be read as ${reader}: ${(error as Error).message}` });
    }
  }

  #remember(schemaId: number, reading: Reading): Reading {
    this.#readings.set(schemaId, reading);
    return reading;
  }
}

function undecodable(detail: string): DecodeOutcome {
  return { ok: false, reason: 'undecodable', detail };
}
