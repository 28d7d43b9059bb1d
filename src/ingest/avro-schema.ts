import { readFileSync } from 'node:fs';
import avsc from 'avsc';
import { StrataError } from '../errors.js';

/**
 * The one set of avsc options every schema is parsed with, whether it comes
 * from a file or a registry: writer and reader types must agree on how values
 * look. Unions are never wrapped (false is avsc's 'never'), so
 * ["null","string"] decodes to null or a plain string; a union avsc cannot
 * unwrap (two branches of one JS type) is refused at parse time instead of
 * decoding to `{string: …}` objects. Longs decode to JS numbers (avsc refuses
 * values beyond 2^53 rather than round them).
 */
const parseOptions = () => ({ wrapUnions: false }) as const;

/**
 * Parses an Avro schema given as JSON text or an already-parsed object.
 * Throws a plain Error naming what is wrong. Fresh options per call: avsc
 * keeps named types in the options' registry, and v1 and v2 of one record
 * share a name.
 */
export function parseAvroSchema(json: string | object): avsc.Type {
  const schema: unknown = typeof json === 'string' ? JSON.parse(json) : json;
  return avsc.Type.forSchema(schema as Parameters<typeof avsc.Type.forSchema>[0], parseOptions());
}

/** Reads and parses an .avsc file; a missing or bad file is a configuration error naming the path. */
export function loadAvroSchemaFile(path: string): avsc.Type {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new StrataError('STRATA_CONFIG_INVALID', `${path}: cannot read the Avro schema: ${(error as Error).message}`, { cause: error });
  }
  try {
    return parseAvroSchema(text);
  } catch (error) {
    throw new StrataError('STRATA_CONFIG_INVALID', `${path}: not a valid Avro schema: ${(error as Error).message}`, { cause: error });
  }
}
