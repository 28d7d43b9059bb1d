import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { AvroEventDecoder } from '../../src/ingest/avro-event-decoder.js';
import { parseAvroSchema } from '../../src/config/avro.js';
import { ConfluentSchemaRegistry } from '../../src/ingest/confluent-schema-registry.js';
import { encodeConfluent } from '../../src/ingest/confluent-wire.js';
import { freePort } from '../support/ports.js';
import { SchemaRegistryFixture } from '../support/schema-registry-fixture.js';

const schemaText = (file: string) => readFileSync(fileURLToPath(new URL(`../../examples/fraud/schemas/${file}`, import.meta.url)), 'utf8');
const TXN_V1 = schemaText('txn_event.v1.avsc');
const TXN_V2 = schemaText('txn_event.v2.avsc');

const txn = {
  txn_id: 't1',
  card_id: 'c0001',
  user_id: 'u0001',
  device_id: 'd0001',
  amount: 42.5,
  currency: 'USD',
  merchant_category: 'fuel',
  geo_country: 'US',
  ip_address: '73.1.2.3',
  timestamp: 1_704_067_200_000,
};

let fixture: SchemaRegistryFixture;

beforeEach(async () => {
  fixture = await SchemaRegistryFixture.start(new Map([[1, TXN_V1], [2, TXN_V2]]));
});

afterEach(async () => {
  await fixture.close();
});

const retryable = { name: 'StrataError', code: 'STRATA_SCHEMA_REGISTRY_UNAVAILABLE', kind: 'unavailable' };

describe('ConfluentSchemaRegistry', () => {
  it('fetches a schema once per id and keeps it', async () => {
    const registry = new ConfluentSchemaRegistry(`${fixture.url}/`, { timeoutMs: 2_000 });
    const first = await registry.writerType(1);
    expect(first?.name).toBe('strata.examples.TxnEvent');
    expect(await registry.writerType(1)).toBe(first);
    expect((await registry.writerType(2))?.equals(parseAvroSchema(TXN_V2))).toBe(true);
    expect(fixture.requestsFor(1)).toBe(1);
    expect(fixture.requestsFor(2)).toBe(1);
  });

  it('shares one request among concurrent lookups of an id', async () => {
    const registry = new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 2_000 });
    const types = await Promise.all(Array.from({ length: 20 }, () => registry.writerType(2)));
    expect(new Set(types).size).toBe(1);
    expect(types[0]).toBeDefined();
    expect(fixture.requests).toBe(1);
  });

  it('answers undefined for an id the registry does not know, and asks again only after unknownIdRecheckMs', async () => {
    const registry = new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 2_000, unknownIdRecheckMs: 300 });
    expect(await registry.writerType(9)).toBeUndefined();
    expect(await registry.writerType(9)).toBeUndefined();
    expect(fixture.requestsFor(9)).toBe(1);
    fixture.register(9, TXN_V1);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await registry.writerType(9))?.name).toBe('strata.examples.TxnEvent');
    expect(fixture.requestsFor(9)).toBe(2);
  });

  it.each([500, 503])('throws a retryable error when the registry answers %i, and does not keep the failure', async (status) => {
    const registry = new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 2_000 });
    fixture.failWith(status);
    const failure = registry.writerType(1);
    await expect(failure).rejects.toBeInstanceOf(StrataError);
    await expect(failure).rejects.toMatchObject({ ...retryable, message: expect.stringContaining(`answered ${status}`) });
    fixture.recover();
    expect((await registry.writerType(1))?.name).toBe('strata.examples.TxnEvent');
    expect(fixture.requestsFor(1)).toBe(2);
  });

  it('throws a retryable error when the registry does not answer in time', async () => {
    const registry = new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 200 });
    fixture.hang();
    const started = Date.now();
    await expect(registry.writerType(1)).rejects.toMatchObject({ ...retryable, message: expect.stringContaining('no answer within 200 ms') });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('throws a retryable error when nothing listens at the URL', async () => {
    const registry = new ConfluentSchemaRegistry(`http://127.0.0.1:${await freePort()}`, { timeoutMs: 2_000 });
    await expect(registry.writerType(1)).rejects.toMatchObject({ ...retryable, message: expect.stringContaining('ECONNREFUSED') });
  });

  it('takes a 404 that is not "schema not found" for a wrong URL: retryable, never undefined', async () => {
    const registry = new ConfluentSchemaRegistry(`${fixture.url}/wrong/prefix`, { timeoutMs: 2_000 });
    await expect(registry.writerType(1)).rejects.toMatchObject({ ...retryable, message: expect.stringContaining('is the registry URL right?') });
  });

  it('refuses a schema that is not Avro, for good', async () => {
    fixture.register(5, { schema: 'syntax = "proto3"; message Txn {}', schemaType: 'PROTOBUF' });
    fixture.register(6, '{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}');
    const registry = new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 2_000 });
    await expect(registry.writerType(5)).rejects.toMatchObject({ code: 'STRATA_SCHEMA_UNUSABLE', message: 'schema id 5: registered as PROTOBUF, not AVRO' });
    await expect(registry.writerType(6)).rejects.toMatchObject({ code: 'STRATA_SCHEMA_UNUSABLE', message: expect.stringMatching(/^schema id 6: not a valid Avro schema: /) });
    await expect(registry.writerType(6)).rejects.toMatchObject({ code: 'STRATA_SCHEMA_UNUSABLE' });
    expect(fixture.requestsFor(6)).toBe(1);
  });

  it('rejects a base URL that is not http(s) and a timeout that is not positive', () => {
    expect(() => new ConfluentSchemaRegistry('registry:8081', { timeoutMs: 1_000 })).toThrow(/is not an http\(s\) URL/);
    expect(() => new ConfluentSchemaRegistry('http://', { timeoutMs: 1_000 })).toThrow(/is not an http\(s\) URL/);
    expect(() => new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 0 })).toThrow(/timeout must be a positive number/);
  });
});

describe('AvroEventDecoder over ConfluentSchemaRegistry', () => {
  it('decodes v1 and v2 events, throws while the registry is down, and dead-letters unknown and unusable ids', async () => {
    const reader = parseAvroSchema(TXN_V2);
    const decoder = new AvroEventDecoder(reader, new ConfluentSchemaRegistry(fixture.url, { timeoutMs: 2_000 }));
    const v1 = encodeConfluent(1, parseAvroSchema(TXN_V1), txn);
    const v2 = encodeConfluent(2, reader, { ...txn, currency: 'CHF', merchant_id: 'm-fuel-001', risk_score: 0.5 });

    fixture.failWith(500);
    await expect(decoder.decode(v1)).rejects.toMatchObject(retryable);
    fixture.recover();
    expect(await decoder.decode(v1)).toEqual({ ok: true, event: { ...txn, merchant_id: null, risk_score: 0 }, schemaId: 1 });
    expect(await decoder.decode(v2)).toEqual({ ok: true, event: { ...txn, currency: 'CHF', merchant_id: 'm-fuel-001', risk_score: 0.5 }, schemaId: 2 });

    // Once resolved, an id needs the registry no more.
    fixture.failWith(500);
    expect(await decoder.decode(v1)).toMatchObject({ ok: true, schemaId: 1 });
    fixture.recover();

    fixture.register(5, { schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' });
    expect(await decoder.decode(encodeConfluent(5, reader, { ...txn, merchant_id: null, risk_score: 0 }))).toEqual({
      ok: false,
      reason: 'unknown_schema',
      detail: 'schema id 5: registered as PROTOBUF, not AVRO',
    });
    expect(await decoder.decode(encodeConfluent(8, reader, { ...txn, merchant_id: null, risk_score: 0 }))).toEqual({
      ok: false,
      reason: 'unknown_schema',
      detail: 'schema id 8 is not registered',
    });
  });
});
