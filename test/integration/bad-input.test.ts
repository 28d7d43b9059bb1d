import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, timestamp, type Json, type TestServer } from '../support/strata.js';

let strata: TestServer;
beforeAll(async () => {
  strata = await startTestServer({ 'max-rows': '50', 'max-features': '3', 'max-message-size': '64kb', 'max-response-size': '1mb' });
});
afterAll(async () => {
  await strata?.stop();
});

const card = (id: string) => ({ string_val: id });
const cardColumns = (rows: number, override: Record<string, unknown> = {}) => ({
  card_id: { values: Array.from({ length: rows }, (_, row) => card(`bad-${row}`)) },
  credit_limit: { values: Array.from({ length: rows }, () => ({ double_val: 1 })) },
  home_country: { values: Array.from({ length: rows }, () => ({ string_val: 'US' })) },
  account_age_days: { values: Array.from({ length: rows }, () => ({ int64_val: 3 })) },
  is_business: { values: Array.from({ length: rows }, () => ({ bool_val: false })) },
  ...override,
});
const without = (columns: Json, name: string): Json => Object.fromEntries(Object.entries(columns).filter(([key]) => key !== name));
const times = (rows: number) => Array.from({ length: rows }, () => timestamp(Date.now()));

/** A request sent as raw bytes, for bodies a well-behaved client library would never produce. */
function sendRaw(method: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    strata.grpc.client.makeUnaryRequest(`/strata.v1.FeatureService/${method}`, (bytes: Buffer) => bytes, (bytes: Buffer) => bytes, body, (error, reply) => (error ? reject(error) : resolve(reply!))),
  );
}

async function grpcError(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('expected the call to fail');
}

interface ReadCase {
  name: string;
  grpc: Json;
  http: Json;
  code: string;
  field: string;
}

const READ_CASES: ReadCase[] = [
  { name: 'unknown view', grpc: { features: { refs: ['nope:x'] }, entities: { card_id: { values: [card('a')] } } }, http: { features: ['nope:x'], entities: { card_id: ['a'] } }, code: 'STRATA_UNKNOWN_FEATURE_VIEW', field: 'features[0]' },
  { name: 'unknown feature', grpc: { features: { refs: ['card_profile:credit_limit', 'card_profile:nope'] }, entities: { card_id: { values: [card('a')] } } }, http: { features: ['card_profile:credit_limit', 'card_profile:nope'], entities: { card_id: ['a'] } }, code: 'STRATA_UNKNOWN_FEATURE', field: 'features[1]' },
  { name: 'unknown service', grpc: { feature_service: 'nope', entities: {} }, http: { feature_service: 'nope', entities: {} }, code: 'STRATA_UNKNOWN_FEATURE_SERVICE', field: 'feature_service' },
  { name: 'malformed ref', grpc: { features: { refs: ['credit_limit'] }, entities: {} }, http: { features: ['credit_limit'], entities: {} }, code: 'STRATA_MALFORMED_FEATURE_REF', field: 'features[0]' },
  { name: 'no features', grpc: { entities: { card_id: { values: [card('a')] } } }, http: { entities: { card_id: ['a'] } }, code: 'STRATA_NO_FEATURES', field: 'features' },
  { name: 'missing join key', grpc: { features: { refs: ['user_device:trusted'] }, entities: { user_id: { values: [card('u')] } } }, http: { features: ['user_device:trusted'], entities: { user_id: ['u'] } }, code: 'STRATA_MISSING_JOIN_KEY', field: 'entities.device_id' },
  { name: 'extra join key', grpc: { features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: [card('a')] }, user_id: { values: [card('u')] } } }, http: { features: ['card_profile:credit_limit'], entities: { card_id: ['a'], user_id: ['u'] } }, code: 'STRATA_UNEXPECTED_JOIN_KEY', field: 'entities.user_id' },
  { name: 'unequal columns', grpc: { features: { refs: ['user_device:trusted'] }, entities: { user_id: { values: [card('u'), card('v')] }, device_id: { values: [card('d')] } } }, http: { features: ['user_device:trusted'], entities: { user_id: ['u', 'v'], device_id: ['d'] } }, code: 'STRATA_COLUMN_LENGTH_MISMATCH', field: 'entities.device_id' },
  { name: 'wrong join key type', grpc: { features: { refs: ['store_stats:revenue'] }, entities: { store_id: { values: [{ int64_val: 1 }, card('seven')] } } }, http: { features: ['store_stats:revenue'], entities: { store_id: [1, 'seven'] } }, code: 'STRATA_VALUE_TYPE_MISMATCH', field: 'entities.store_id[1]' },
  { name: 'too many rows', grpc: { features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: Array.from({ length: 51 }, (_, row) => card(`r${row}`)) } } }, http: { features: ['card_profile:credit_limit'], entities: { card_id: Array.from({ length: 51 }, (_, row) => `r${row}`) } }, code: 'STRATA_TOO_MANY_ROWS', field: 'entities.card_id' },
  { name: 'too many features', grpc: { features: { refs: ['card_profile:credit_limit', 'card_profile:home_country', 'card_profile:account_age_days', 'card_profile:is_business'] }, entities: {} }, http: { features: ['card_profile:credit_limit', 'card_profile:home_country', 'card_profile:account_age_days', 'card_profile:is_business'], entities: {} }, code: 'STRATA_TOO_MANY_FEATURES', field: 'features' },
  { name: 'duplicate feature', grpc: { features: { refs: ['card_profile:credit_limit', 'card_profile:credit_limit'] }, entities: {} }, http: { features: ['card_profile:credit_limit', 'card_profile:credit_limit'], entities: {} }, code: 'STRATA_DUPLICATE_FEATURE', field: 'features[1]' },
  { name: 'as_of before retention', grpc: { features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: [card('a')] } }, as_of: timestamp(Date.now() - 8 * 86_400_000) }, http: { features: ['card_profile:credit_limit'], entities: { card_id: ['a'] }, as_of: Date.now() - 8 * 86_400_000 }, code: 'STRATA_AS_OF_BEFORE_RETENTION', field: 'as_of' },
];

describe('bad reads name the offending item', () => {
  it.each(READ_CASES)('$name → INVALID_ARGUMENT / 400 on $field', async ({ grpc, http, code, field }) => {
    const error = await grpcError(strata.grpc.getOnlineFeatures(grpc));
    const expectedGrpc = code === 'STRATA_AS_OF_BEFORE_RETENTION' ? GrpcStatus.OUT_OF_RANGE : GrpcStatus.INVALID_ARGUMENT;
    expect(error.code).toBe(expectedGrpc);
    expect(error.metadata.get('strata-error-code')).toEqual([code]);
    expect(error.metadata.get('strata-error-field')).toEqual([field]);
    expect(error.details).toContain(field);

    const response = await strata.http('/get-online-features', http);
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code, field });
  });

  it('rejects unparseable bodies and unknown JSON fields', async () => {
    const garbage = await grpcError(sendRaw('GetOnlineFeatures', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])));
    expect(garbage.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(garbage.metadata.get('strata-error-code')).toEqual(['STRATA_MALFORMED_REQUEST']);
    const notJson = await strata.http('/get-online-features', '{"features": [');
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatchObject({ code: 'STRATA_MALFORMED_REQUEST', field: 'body' });
    const unknown = await strata.http('/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: ['a'] }, featurs: [] });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatchObject({ code: 'STRATA_MALFORMED_REQUEST', field: 'featurs' });
  });

  it('rejects oversized messages with INVALID_ARGUMENT / 400', async () => {
    const huge = { features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: Array.from({ length: 40 }, () => card('x'.repeat(2_000))) } } };
    const error = await grpcError(strata.grpc.getOnlineFeatures(huge));
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.metadata.get('strata-error-code')).toEqual(['STRATA_MESSAGE_TOO_LARGE']);
    const response = await strata.http('/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: Array.from({ length: 40 }, () => 'x'.repeat(2_000)) } });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code: 'STRATA_MESSAGE_TOO_LARGE' });
  });

  it('names a non-ASCII join key safely in gRPC metadata', async () => {
    const error = await grpcError(strata.grpc.getOnlineFeatures({ features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: [card('a')] }, 'kärte\n': { values: [card('a')] } } }));
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.metadata.get('strata-error-field')).toEqual(['entities.k%C3%A4rte%0A']);
    expect(error.details).toContain('kärte');
  });

  it('refuses a response over --max-response-size with RESOURCE_EXHAUSTED / 413, even from a small request', async () => {
    // 40 kB in one record, asked for 50 times: a 2 MB answer to a 1 kB question (the limit here is 1 MB).
    const big = 'x'.repeat(40_000);
    await strata.grpc.writeFeatures({ feature_view: 'card_profile', columns: cardColumns(1, { card_id: { values: [card('huge')] }, home_country: { values: [{ string_val: big }] } }), event_timestamps: times(1) });
    const request = { features: { refs: ['card_profile:home_country'] }, entities: { card_id: { values: Array.from({ length: 50 }, () => card('huge')) } } };
    const error = await grpcError(strata.grpc.getOnlineFeatures(request));
    expect(error.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(error.metadata.get('strata-error-code')).toEqual(['STRATA_RESPONSE_TOO_LARGE']);
    const response = await strata.http('/get-online-features', { features: ['card_profile:home_country'], entities: { card_id: Array.from({ length: 50 }, () => 'huge') } });
    expect(response.status).toBe(413);
  });

  it('reads a map entry sent without a value as an empty column, not an internal error', async () => {
    const writer = protobuf.Writer.create();
    writer.uint32(10).fork().uint32(10).string('card_profile:credit_limit').ldelim();
    writer.uint32(26).fork().uint32(10).string('card_id').ldelim();
    const empty = await sendRaw('GetOnlineFeatures', Buffer.from(writer.finish()));
    expect(empty.length).toBeGreaterThan(0);
  });

  it('cuts long client-chosen names out of error messages', async () => {
    const name = 'k'.repeat(100_000);
    const error = await grpcError(strata.grpc.getOnlineFeatures({ features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: [card('a')] }, [name]: { values: [card('a')] } } }));
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.details.length).toBeLessThan(1_200);
    expect(String(error.metadata.get('strata-error-field')[0]).length).toBeLessThan(300);
  });

  it('answers unknown HTTP routes with 404 and a stable code', async () => {
    const response = await strata.http('/get-online-feature', {});
    expect(response.status).toBe(404);
    expect(response.json.error).toMatchObject({ code: 'STRATA_ROUTE_NOT_FOUND' });
  });
});

interface WriteCase {
  name: string;
  request: Json;
  code: string;
  field: string;
}

const WRITE_CASES: WriteCase[] = [
  { name: 'unknown view', request: { feature_view: 'nope', columns: cardColumns(2), event_timestamps: times(2) }, code: 'STRATA_UNKNOWN_FEATURE_VIEW', field: 'feature_view' },
  { name: 'missing feature column', request: { feature_view: 'card_profile', columns: without(cardColumns(2), 'is_business'), event_timestamps: times(2) }, code: 'STRATA_MISSING_COLUMN', field: 'columns.is_business' },
  { name: 'missing join key', request: { feature_view: 'card_profile', columns: without(cardColumns(2), 'card_id'), event_timestamps: times(2) }, code: 'STRATA_MISSING_JOIN_KEY', field: 'columns.card_id' },
  { name: 'extra column', request: { feature_view: 'card_profile', columns: { ...cardColumns(2), colour: { values: [card('r'), card('g')] } }, event_timestamps: times(2) }, code: 'STRATA_UNEXPECTED_COLUMN', field: 'columns.colour' },
  { name: 'unequal columns', request: { feature_view: 'card_profile', columns: cardColumns(2, { credit_limit: { values: [{ double_val: 1 }] } }), event_timestamps: times(2) }, code: 'STRATA_COLUMN_LENGTH_MISMATCH', field: 'columns.credit_limit' },
  { name: 'wrong value type in the last row', request: { feature_view: 'card_profile', columns: cardColumns(3, { account_age_days: { values: [{ int64_val: 1 }, { int64_val: 2 }, { string_val: 'three' }] } }), event_timestamps: times(3) }, code: 'STRATA_VALUE_TYPE_MISMATCH', field: 'columns.account_age_days[2]' },
  { name: 'too many rows', request: { feature_view: 'card_profile', columns: cardColumns(51), event_timestamps: times(51) }, code: 'STRATA_TOO_MANY_ROWS', field: 'event_timestamps' },
  { name: 'created timestamps of the wrong length', request: { feature_view: 'card_profile', columns: cardColumns(2), event_timestamps: times(2), created_timestamps: times(1) }, code: 'STRATA_COLUMN_LENGTH_MISMATCH', field: 'created_timestamps' },
  { name: 'bad timestamp', request: { feature_view: 'card_profile', columns: cardColumns(2), event_timestamps: [timestamp(Date.now()), { seconds: 1, nanos: -5 }] }, code: 'STRATA_BAD_TIMESTAMP', field: 'event_timestamps[1]' },
];

async function storedCards(): Promise<string[]> {
  const response = await strata.http('/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: Array.from({ length: 50 }, (_, row) => `bad-${row}`) } });
  const statuses = (response.json.results as { statuses: string[] }[])[1]!.statuses;
  return statuses.flatMap((status, row) => (status === 'NOT_FOUND' ? [] : [`bad-${row}`]));
}

describe('bad writes name the offending item and store nothing', () => {
  it.each(WRITE_CASES)('$name → INVALID_ARGUMENT on $field', async ({ request, code, field }) => {
    const error = await grpcError(strata.grpc.writeFeatures(request));
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error.metadata.get('strata-error-code')).toEqual([code]);
    expect(error.metadata.get('strata-error-field')).toEqual([field]);
    expect(await storedCards()).toEqual([]);
  });

  it('rejects bad Feast pushes with 400 naming the field, storing no row of them', async () => {
    const df = { card_id: ['bad-0', 'bad-1'], event_timestamp: ['2026-01-01T00:00:00Z', Date.now()], credit_limit: [1, 2], home_country: ['US', 'GB'], account_age_days: [1, 2.5], is_business: [true, false] };
    const response = await strata.http('/push', { push_source_name: 'card_profile', df, to: 'online' });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code: 'STRATA_VALUE_TYPE_MISMATCH', field: 'columns.account_age_days[1]' });
    const badTime = await strata.http('/push', { push_source_name: 'card_profile', df: { ...df, account_age_days: [1, 2], event_timestamp: ['yesterday', 1] } });
    expect(badTime.json.error).toMatchObject({ code: 'STRATA_BAD_TIMESTAMP', field: 'event_timestamps[0]' });
    const offline = await strata.http('/push', { push_source_name: 'card_profile', df: { ...df, account_age_days: [1, 2] }, to: 'offline' });
    expect(offline.json.error).toMatchObject({ field: 'to' });
    expect(await storedCards()).toEqual([]);
  });
});
