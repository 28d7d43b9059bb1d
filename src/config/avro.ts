/**
 * Avro schemas are parsed in one place, with one set of options, so the
 * registry's reader schemas and every writer schema (local file or schema
 * registry) resolve against each other. Nullable unions decode to the plain
 * value or null; longs to JS numbers (avsc refuses values beyond 2^53).
 */
import avsc from 'avsc';

export type AvroType = avsc.Type;

export function parseAvroSchema(json: string): AvroType {
  return avsc.Type.forSchema(JSON.parse(json) as avsc.Schema, { wrapUnions: false });
}
