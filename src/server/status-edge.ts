/**
 * The one place where domain errors become protocol statuses. Handlers throw
 * StrataErrors (or anything else, which becomes STRATA_INTERNAL); this maps
 * them for gRPC and HTTP, so no client ever sees UNKNOWN.
 */
import { Metadata, status as GrpcStatus, type ServerErrorResponse } from '@grpc/grpc-js';
import { asStrataError, type ErrorKind, type StrataError } from '../errors.js';

const GRPC_CODE: Readonly<Record<ErrorKind, GrpcStatus>> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  out_of_range: GrpcStatus.OUT_OF_RANGE,
  not_found: GrpcStatus.NOT_FOUND,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  failed_precondition: GrpcStatus.FAILED_PRECONDITION,
  unavailable: GrpcStatus.UNAVAILABLE,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  unimplemented: GrpcStatus.UNIMPLEMENTED,
  internal: GrpcStatus.INTERNAL,
};

const HTTP_CODE: Readonly<Record<ErrorKind, number>> = {
  invalid_argument: 400,
  out_of_range: 400,
  not_found: 404,
  resource_exhausted: 413,
  failed_precondition: 412,
  unavailable: 503,
  deadline_exceeded: 504,
  unimplemented: 501,
  internal: 500,
};

/** Trailing metadata keys carrying the stable error code and the offending request item. */
export const ERROR_CODE_KEY = 'strata-error-code';
export const ERROR_FIELD_KEY = 'strata-error-field';

/** Messages and fields quote client-chosen names; past these lengths they are cut (a 100 KB status stalls grpc-js). */
const MAX_MESSAGE_CHARS = 1_000;
const MAX_FIELD_CHARS = 200;

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}…(${text.length - limit} more characters)`;
}

/** Metadata values must be printable ASCII; a field can hold client-chosen names, so anything else is %-escaped. */
function metadataSafe(text: string): string {
  return grpcMessageSafe(truncate(text, MAX_FIELD_CHARS));
}

/** A gRPC status as the error's code, details and the trailer fields every protocol edge sends with it. */
export interface GrpcFailure {
  readonly error: StrataError;
  readonly code: GrpcStatus;
  readonly details: string;
  /** Trailing metadata: the stable error code, and the offending field when there is one. */
  readonly fields: Readonly<Record<string, string>>;
}

export function toGrpcFailure(thrown: unknown): GrpcFailure {
  const error = asStrataError(thrown);
  const fields: Record<string, string> = { [ERROR_CODE_KEY]: error.code };
  if (error.field !== undefined) fields[ERROR_FIELD_KEY] = metadataSafe(error.field);
  return { error, code: GRPC_CODE[error.kind], details: truncate(error.message, MAX_MESSAGE_CHARS), fields };
}

/** The same failure for a grpc-js handler's callback or stream. */
export function toGrpcError(thrown: unknown): { error: StrataError; response: Partial<ServerErrorResponse> } {
  const { error, code, details, fields } = toGrpcFailure(thrown);
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(fields)) metadata.set(key, value);
  return { error, response: { code, details, metadata } };
}

const PRINTABLE_WITHOUT_PERCENT = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * grpc-message and metadata values are percent-encoded UTF-8 outside
 * printable ASCII (and % itself). Works on bytes so that a lone surrogate in
 * a client-chosen name becomes U+FFFD instead of throwing.
 */
export function grpcMessageSafe(text: string): string {
  if (PRINTABLE_WITHOUT_PERCENT.test(text)) return text;
  let encoded = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

export function toHttpError(thrown: unknown): { error: StrataError; status: number; body: string } {
  const error = asStrataError(thrown);
  const body = JSON.stringify({ error: { code: error.code, message: truncate(error.message, MAX_MESSAGE_CHARS), ...(error.field === undefined ? {} : { field: truncate(error.field, MAX_FIELD_CHARS) }) }, ...error.details });
  return { error, status: HTTP_CODE[error.kind], body };
}

export function grpcCodeName(error: StrataError): string {
  return GrpcStatus[GRPC_CODE[error.kind]];
}
