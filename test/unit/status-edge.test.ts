import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, StrataError, invalid, shuttingDown, type ErrorCode, type ErrorKind } from '../../src/errors.js';
import { ERROR_CODE_KEY, ERROR_FIELD_KEY, grpcCodeName, toGrpcError, toHttpError } from '../../src/server/status-edge.js';

const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

const EXPECTED: Record<ErrorKind, { grpc: GrpcStatus; http: number }> = {
  invalid_argument: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  out_of_range: { grpc: GrpcStatus.OUT_OF_RANGE, http: 400 },
  not_found: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  resource_exhausted: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413 },
  failed_precondition: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 412 },
  unavailable: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  deadline_exceeded: { grpc: GrpcStatus.DEADLINE_EXCEEDED, http: 504 },
  unimplemented: { grpc: GrpcStatus.UNIMPLEMENTED, http: 501 },
  internal: { grpc: GrpcStatus.INTERNAL, http: 500 },
};

describe('toGrpcError', () => {
  it.each(CODES)('maps %s to a gRPC status other than OK and UNKNOWN', (code) => {
    const { error, response } = toGrpcError(new StrataError(code, 'x'));
    expect(error.code).toBe(code);
    expect(response.code).toBeTypeOf('number');
    expect(response.code).not.toBe(GrpcStatus.UNKNOWN);
    expect(response.code).not.toBe(GrpcStatus.OK);
    expect(response.code).toBe(EXPECTED[ERROR_CATALOGUE[code].kind].grpc);
    expect(grpcCodeName(error)).toBe(GrpcStatus[response.code!]);
  });

  it('carries the message as details and the code and field as trailing metadata', () => {
    const { response } = toGrpcError(invalid('STRATA_MISSING_JOIN_KEY', 'entities.card_id', 'join key card_id is required'));
    expect(response.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(response.details).toBe('entities.card_id: join key card_id is required');
    expect(response.metadata!.get(ERROR_CODE_KEY)).toEqual(['STRATA_MISSING_JOIN_KEY']);
    expect(response.metadata!.get(ERROR_FIELD_KEY)).toEqual(['entities.card_id']);
  });

  it('omits the field metadata when the error has no field', () => {
    const { response } = toGrpcError(new StrataError('STRATA_SHUTTING_DOWN', 'bye'));
    expect(response.metadata!.get(ERROR_FIELD_KEY)).toEqual([]);
    expect(response.code).toBe(GrpcStatus.UNAVAILABLE);
  });

  it('refuses a call that arrives while the server drains with retryable UNAVAILABLE / 503 STRATA_SHUTTING_DOWN', () => {
    const { response } = toGrpcError(shuttingDown());
    expect(response.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(response.metadata!.get(ERROR_CODE_KEY)).toEqual(['STRATA_SHUTTING_DOWN']);
    expect(toHttpError(shuttingDown())).toMatchObject({ status: 503, error: { code: 'STRATA_SHUTTING_DOWN' } });
  });

  it('turns anything else thrown into INTERNAL, never UNKNOWN', () => {
    for (const thrown of [new Error('boom'), 'text', undefined, { weird: true }]) {
      const { error, response } = toGrpcError(thrown);
      expect(error.code).toBe('STRATA_INTERNAL');
      expect(response.code).toBe(GrpcStatus.INTERNAL);
      expect(response.metadata!.get(ERROR_CODE_KEY)).toEqual(['STRATA_INTERNAL']);
    }
  });

  it('maps an error whose field holds non-ASCII client input without throwing', () => {
    const { response } = toGrpcError(invalid('STRATA_UNEXPECTED_JOIN_KEY', 'entities.kärte', 'no requested feature view is keyed by kärte'));
    expect(response.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });

  it('maps an error whose field holds a newline without throwing', () => {
    const { response } = toGrpcError(invalid('STRATA_UNEXPECTED_COLUMN', 'columns.a\nb', 'no such column'));
    expect(response.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });
});

describe('toHttpError', () => {
  it.each(CODES)('maps %s to a 4xx or 5xx HTTP status', (code) => {
    const { status } = toHttpError(new StrataError(code, 'x'));
    expect(status).toBe(EXPECTED[ERROR_CATALOGUE[code].kind].http);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
  });

  it('writes a JSON body with code, message and field', () => {
    const { status, body } = toHttpError(invalid('STRATA_UNKNOWN_FEATURE', 'features[0]', 'feature view card_profile has no feature "nope"'));
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual({
      error: { code: 'STRATA_UNKNOWN_FEATURE', message: 'features[0]: feature view card_profile has no feature "nope"', field: 'features[0]' },
    });
  });

  it('puts an error\'s details beside the error (a rejected import\'s report)', () => {
    const { status, body } = toHttpError(new StrataError('STRATA_SNAPSHOT_REJECTED', 'not published', { field: 'files', details: { report: { published: false } } }));
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual({ error: { code: 'STRATA_SNAPSHOT_REJECTED', message: 'not published', field: 'files' }, report: { published: false } });
  });

  it('leaves the field out of the body when there is none', () => {
    const { status, body } = toHttpError(new StrataError('STRATA_ROUTE_NOT_FOUND', 'no route GET /nope'));
    expect(status).toBe(404);
    expect(JSON.parse(body)).toEqual({ error: { code: 'STRATA_ROUTE_NOT_FOUND', message: 'no route GET /nope' } });
  });

  it('turns a plain Error into a 500 STRATA_INTERNAL body', () => {
    const { error, status, body } = toHttpError(new RangeError('index out of range'));
    expect(error.code).toBe('STRATA_INTERNAL');
    expect(status).toBe(500);
    expect(JSON.parse(body)).toEqual({ error: { code: 'STRATA_INTERNAL', message: 'internal error: index out of range' } });
  });

  it('keeps non-ASCII fields intact in the JSON body', () => {
    const { body } = toHttpError(invalid('STRATA_UNEXPECTED_JOIN_KEY', 'entities.kärte', 'unknown'));
    expect(JSON.parse(body).error.field).toBe('entities.kärte');
  });
});
