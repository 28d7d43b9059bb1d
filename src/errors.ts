/**
 * The one error catalogue. Every failure a client or operator can see has a
 * stable code here; `src/server/status-edge.ts` is the only place that turns
 * these into gRPC statuses and HTTP codes. Codes are part of the API: never
 * rename one, add a new one instead.
 */

export type ErrorKind =
  | 'invalid_argument'
  | 'out_of_range'
  | 'not_found'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'unimplemented'
  | 'internal';

interface CatalogueEntry {
  readonly kind: ErrorKind;
  readonly summary: string;
}

export const ERROR_CATALOGUE = {
  STRATA_MALFORMED_FEATURE_REF: { kind: 'invalid_argument', summary: 'a feature reference is not of the form view:feature' },
  STRATA_UNKNOWN_FEATURE_VIEW: { kind: 'invalid_argument', summary: 'the feature view is not in the registry' },
  STRATA_UNKNOWN_FEATURE: { kind: 'invalid_argument', summary: 'the feature is not in its view' },
  STRATA_UNKNOWN_FEATURE_SERVICE: { kind: 'invalid_argument', summary: 'the feature service is not in the registry' },
  STRATA_NO_FEATURES: { kind: 'invalid_argument', summary: 'the request names no features' },
  STRATA_DUPLICATE_FEATURE: { kind: 'invalid_argument', summary: 'a feature is requested twice' },
  STRATA_MISSING_JOIN_KEY: { kind: 'invalid_argument', summary: 'a join key the requested views need is missing' },
  STRATA_UNEXPECTED_JOIN_KEY: { kind: 'invalid_argument', summary: 'a join key no requested view uses was given' },
  STRATA_COLUMN_LENGTH_MISMATCH: { kind: 'invalid_argument', summary: 'columns of one request have different lengths' },
  STRATA_VALUE_TYPE_MISMATCH: { kind: 'invalid_argument', summary: 'a value does not have the declared type' },
  STRATA_MISSING_COLUMN: { kind: 'invalid_argument', summary: 'a write lacks a feature column of the view' },
  STRATA_UNEXPECTED_COLUMN: { kind: 'invalid_argument', summary: 'a write has a column the view does not declare' },
  STRATA_BAD_TIMESTAMP: { kind: 'invalid_argument', summary: 'a timestamp is missing or unreadable' },
  STRATA_NOT_A_PUSH_VIEW: { kind: 'invalid_argument', summary: 'the view is not fed by pushes' },
  STRATA_NOT_A_BATCH_VIEW: { kind: 'invalid_argument', summary: 'the view is not fed by snapshot files' },
  STRATA_IMPORT_IN_PROGRESS: { kind: 'failed_precondition', summary: 'an import of the view is already under way' },
  STRATA_SNAPSHOT_REJECTED: { kind: 'invalid_argument', summary: 'a snapshot import failed its audit or could not read a file; the previous generation keeps serving' },
  STRATA_SERVER_FILES_DISABLED: { kind: 'failed_precondition', summary: 'the request names a file on the server, and the server was started without --server-files-dir' },
  STRATA_PATH_OUTSIDE_FILES_DIR: { kind: 'invalid_argument', summary: 'a server-side file path lies outside --server-files-dir (after resolving symlinks and ..)' },
  STRATA_UNKNOWN_TOPIC: { kind: 'invalid_argument', summary: 'no stream view consumes the topic' },
  STRATA_INVALID_EVENT: { kind: 'invalid_argument', summary: 'a pushed event does not fit its topic\'s schema or views' },
  STRATA_TOO_MANY_ROWS: { kind: 'invalid_argument', summary: 'more entity rows than the per-call limit' },
  STRATA_TOO_MANY_FEATURES: { kind: 'invalid_argument', summary: 'more features than the per-call limit' },
  STRATA_MESSAGE_TOO_LARGE: { kind: 'invalid_argument', summary: 'the request body is larger than the limit' },
  STRATA_MALFORMED_REQUEST: { kind: 'invalid_argument', summary: 'the request body cannot be parsed' },
  STRATA_UNSUPPORTED_ENCODING: { kind: 'unimplemented', summary: 'the request message is compressed with an encoding the server does not take (grpc-accept-encoding lists those it does)' },
  STRATA_RESPONSE_TOO_LARGE: { kind: 'resource_exhausted', summary: 'the response would be larger than the limit' },
  STRATA_AS_OF_BEFORE_RETENTION: { kind: 'out_of_range', summary: 'as_of is older than the history kept' },
  STRATA_ROUTE_NOT_FOUND: { kind: 'not_found', summary: 'no such HTTP route' },
  STRATA_STORAGE_UNAVAILABLE: { kind: 'unavailable', summary: 'the durable store cannot be read or written' },
  STRATA_SHUTTING_DOWN: { kind: 'unavailable', summary: 'the server is shutting down' },
  STRATA_STREAMING_UNAVAILABLE: { kind: 'unavailable', summary: 'the grpc-js server behind the gRPC port (streaming calls, health, reflection) could not take or finish the call; retry' },
  STRATA_OVERLOADED: { kind: 'unavailable', summary: 'an online read was refused because the server is too far behind (--shed-loop-delay); retry with backoff' },
  STRATA_DEADLINE_EXCEEDED: { kind: 'deadline_exceeded', summary: 'the request ran past its deadline' },
  STRATA_INTERNAL: { kind: 'internal', summary: 'an unexpected internal failure' },
  STRATA_CONFIG_INVALID: { kind: 'failed_precondition', summary: 'the configuration is invalid' },
  STRATA_NO_STREAM_VIEWS: { kind: 'failed_precondition', summary: 'PushEvents needs a registry with stream views; this one has none' },
  STRATA_SCHEMA_REGISTRY_UNAVAILABLE: { kind: 'unavailable', summary: 'the schema registry cannot be reached or failed; retry later' },
  STRATA_SCHEMA_UNUSABLE: { kind: 'failed_precondition', summary: 'a registered writer schema is not Avro or cannot be parsed' },
  STRATA_FILE_UNUSABLE: { kind: 'invalid_argument', summary: 'a batch file has an unknown format, cannot be opened, read or written, or is not well-formed' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** The request item the error is about, e.g. `features[2]` or `entities.card_id`. */
  readonly field: string | undefined;
  /** More of the answer, as JSON members beside `error` in an HTTP error body (e.g. a rejected import's report). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown; details?: Readonly<Record<string, unknown>> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.code = code;
    this.kind = ERROR_CATALOGUE[code].kind;
    this.field = options.field;
    this.details = options.details;
  }
}

/** Shorthand for the most common case: a bad request item, named. */
export function invalid(code: ErrorCode, field: string, message: string): StrataError {
  return new StrataError(code, `${field}: ${message}`, { field });
}

/** What every edge answers a call that arrives while the server drains: retryable, elsewhere. */
export function shuttingDown(): StrataError {
  return new StrataError('STRATA_SHUTTING_DOWN', 'the server is shutting down; retry on another replica');
}

/** Any thrown value as a StrataError, so nothing reaches a client as UNKNOWN. */
export function asStrataError(error: unknown): StrataError {
  if (error instanceof StrataError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StrataError('STRATA_INTERNAL', `internal error: ${message}`, { cause: error });
}
