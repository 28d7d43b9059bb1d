/**
 * Avro schemas are parsed in one place, with one set of options, so the
 * registry's reader schemas and every writer schema (local file or schema
 * registry) resolve against each other. Unions are never wrapped, so
 * ["null","string"] decodes to null or a plain string (a union avsc cannot
 * unwrap is refused at parse time); longs decode to JS numbers (avsc refuses
 * values beyond 2^53 rather than round them). Each call gets a fresh options
 * object: avsc records named types in it, and v1 and v2 of one record would
 * otherwise clash as duplicate names.
 */
import { readFileSync } from 'node:fs';
import avsc from 'avsc';
import { StrataError } from '../errors.js';

export type AvroType = avsc.Type;

/** Parses an Avro schema given as JSON text or an already-parsed object. Throws a plain Error naming what is wrong. */
export function parseAvroSchema(json: string | object): AvroType {
  const schema: unknown = typeof json === 'string' ? JSON.parse(json) : json;
  return avsc.Type.forSchema(schema as avsc.Schema, { wrapUnions: false });
}

/** Reads and parses an .avsc file; a missing or bad file is a configuration error naming the path. */
export function loadAvroSchemaFile(path: string): AvroType {
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
