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
  return truncate(text, MAX_FIELD_CHARS).replace(/[^\x20-\x7e]|%/g, (char) => encodeURIComponent(char));
}

export function toGrpcError(thrown: unknown): { error: StrataError; response: Partial<ServerErrorResponse> } {
  const error = asStrataError(thrown);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, error.code);
  if (error.field !== undefined) metadata.set(ERROR_FIELD_KEY, metadataSafe(error.field));
  return { error, response: { code: GRPC_CODE[error.kind], details: truncate(error.message, MAX_MESSAGE_CHARS), metadata } };
}

export function toHttpError(thrown: unknown): { error: StrataError; status: number; body: string } {
  const error = asStrataError(thrown);
  const body = JSON.stringify({ error: { code: error.code, message: truncate(error.message, MAX_MESSAGE_CHARS), ...(error.field === undefined ? {} : { field: truncate(error.field, MAX_FIELD_CHARS) }) }, ...error.details });
  return { error, status: HTTP_CODE[error.kind], body };
}

export function grpcCodeName(error: StrataError): string {
  return GrpcStatus[GRPC_CODE[error.kind]];
}
