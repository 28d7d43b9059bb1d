import type avsc from 'avsc';
import { StrataError } from '../errors.js';
import { parseAvroSchema } from '../config/avro.js';
import type { SchemaSource } from './schema-source.js';

export interface ConfluentSchemaRegistryOptions {
  /** Per lookup, connect to last body byte. */
  readonly timeoutMs: number;
  /** How long an id the registry does not know stays unknown before it is asked again (default 60 s). */
  readonly unknownIdRecheckMs?: number;
}

/** The registry's error_code for "schema id not found"; any other 404 is a wrong URL, not an unknown id. */
const SCHEMA_NOT_FOUND = 40403;
/** Garbage headers can name any id; remember only this many unknown ones. */
const MAX_UNKNOWN_IDS = 1024;
const MAX_BODY_IN_ERRORS = 200;

/**
 * Writer schemas from a Confluent Schema Registry: `GET {base}/schemas/ids/{id}`.
 * Ids are immutable, so a parsed type is kept for good, as is a schema found
 * unusable; lookups in flight for one id share one request. An unknown id is
 * asked again after `unknownIdRecheckMs`, so a registry restored late does not
 * dead-letter an id for ever — and a flood of garbage ids does not become a
 * flood of requests.
 */
export class ConfluentSchemaRegistry implements SchemaSource {
  readonly #baseUrl: string;
  readonly #timeoutMs: number;
  readonly #unknownIdRecheckMs: number;
  readonly #lookups = new Map<number, Promise<avsc.Type | undefined>>();
  readonly #unknownUntil = new Map<number, number>();

  constructor(baseUrl: string, options: ConfluentSchemaRegistryOptions) {
    if (!/^https?:\/\//.test(baseUrl) || !URL.canParse(baseUrl)) {
      throw new StrataError('STRATA_CONFIG_INVALID', `schema registry URL ${JSON.stringify(baseUrl)} is not an http(s) URL`);
    }
    if (!(options.timeoutMs > 0 && Number.isFinite(options.timeoutMs))) {
      throw new StrataError('STRATA_CONFIG_INVALID', `schema registry timeout must be a positive number of ms, got ${options.timeoutMs}`);
    }
    this.#baseUrl = baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs;
    this.#unknownIdRecheckMs = options.unknownIdRecheckMs ?? 60_000;
  }

  writerType(schemaId: number): Promise<avsc.Type | undefined> {
    const unknownUntil = this.#unknownUntil.get(schemaId);
    if (unknownUntil !== undefined) {
      if (Date.now() < unknownUntil) return Promise.resolve(undefined);
      this.#unknownUntil.delete(schemaId);
    }
    let lookup = this.#lookups.get(schemaId);
    if (lookup === undefined) {
      lookup = this.#fetch(schemaId);
      this.#lookups.set(schemaId, lookup);
      lookup.then(
        (type) => {
          if (type !== undefined) return;
          this.#lookups.delete(schemaId);
          if (this.#unknownUntil.size >= MAX_UNKNOWN_IDS) this.#unknownUntil.delete(this.#unknownUntil.keys().next().value!);
          this.#unknownUntil.set(schemaId, Date.now() + this.#unknownIdRecheckMs);
        },
        (error: StrataError) => {
          if (error.code !== 'STRATA_SCHEMA_UNUSABLE') this.#lookups.delete(schemaId);
        },
      );
    }
    return lookup;
  }

  async #fetch(schemaId: number): Promise<avsc.Type | undefined> {
    const url = `${this.#baseUrl}/schemas/ids/${schemaId}`;
    let status: number;
    let body: string;
    try {
      const response = await fetch(url, {
        headers: { accept: 'application/vnd.schemaregistry.v1+json, application/json' },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      status = response.status;
      body = await response.text();
    } catch (error) {
      throw unavailable(`schema registry: GET ${url} failed: ${describeFetchFailure(error, this.#timeoutMs)}`, error);
    }
    if (status === 404 && errorCode(body) === SCHEMA_NOT_FOUND) return undefined;
    if (status !== 200) {
      const hint = status === 404 ? ` (no error_code ${SCHEMA_NOT_FOUND}: is the registry URL right?)` : '';
      throw unavailable(`schema registry: GET ${url} answered ${status}${hint}: ${body.slice(0, MAX_BODY_IN_ERRORS)}`);
    }
    let answer: { schema?: unknown; schemaType?: unknown; references?: unknown };
    try {
      answer = JSON.parse(body) as typeof answer;
    } catch {
      throw unavailable(`schema registry: GET ${url} answered 200 with a body that is not JSON: ${body.slice(0, MAX_BODY_IN_ERRORS)}`);
    }
    if (typeof answer?.schema !== 'string') throw unavailable(`schema registry: GET ${url} answered 200 without a "schema" string`);
    const unusable = (why: string, cause?: unknown): StrataError =>
      new StrataError('STRATA_SCHEMA_UNUSABLE', `schema id ${schemaId}: ${why}`, cause === undefined ? {} : { cause });
    if (answer.schemaType !== undefined && answer.schemaType !== 'AVRO') throw unusable(`registered as ${String(answer.schemaType)}, not AVRO`);
    if (Array.isArray(answer.references) && answer.references.length > 0) throw unusable('uses schema references, which are not resolved');
    try {
      return parseAvroSchema(answer.schema);
    } catch (error) {
      throw unusable(`not a valid Avro schema: ${(error as Error).message}`, error);
    }
  }
}

function unavailable(message: string, cause?: unknown): StrataError {
  return new StrataError('STRATA_SCHEMA_REGISTRY_UNAVAILABLE', message, cause === undefined ? {} : { cause });
}

function errorCode(body: string): unknown {
  try {
    return (JSON.parse(body) as { error_code?: unknown } | null)?.error_code;
  } catch {
    return undefined;
  }
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, …) is in the cause. */
function describeFetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  const detail = cause?.code ?? cause?.message;
  return `${error instanceof Error ? error.message : String(error)}${detail ? ` (${detail})` : ''}`;
}
