import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { AvroEventDecoder } from '../../src/ingest/avro-event-decoder.js';
import { loadAvroSchemaFile, parseAvroSchema } from '../../src/config/avro.js';
import { conformEvent } from '../../src/ingest/conform-event.js';
import { encodeConfluent } from '../../src/ingest/confluent-wire.js';
import { JsonEventDecoder } from '../../src/ingest/json-event-decoder.js';
import { LocalSchemaFiles } from '../../src/ingest/local-schema-files.js';
import type { SchemaSource } from '../../src/ingest/schema-source.js';

const schema = (file: string) => loadAvroSchemaFile(fileURLToPath(new URL(`../../examples/fraud/schemas/${file}`, import.meta.url)));
const txnV1 = schema('txn_event.v1.avsc');
const txnV2 = schema('txn_event.v2.avsc');
const click = schema('click_event.avsc');

const V1 = 1;
const V2 = 2;
const CLICK = 3;
const source = new LocalSchemaFiles(new Map([[V1, txnV1], [V2, txnV2], [CLICK, click]]));

const v1Event = (n: number) => ({
  txn_id: `t${n}`,
  card_id: 'c0001',
  user_id: 'u0001',
  device_id: 'd0001',
  amount: 12.5 + n,
  currency: 'EUR',
  merchant_category: 'grocery',
  geo_country: 'DE',
  ip_address: '91.1.2.3',
  // Beyond 2^32, so a long that came out as anything but a JS number would show.
  timestamp: 1_704_067_200_000 + n,
});
const v2Event = (n: number) => ({ ...v1Event(n), currency: 'JPY', amount: 1800 + n, merchant_id: `m-${n}`, risk_score: 0.25 });

describe('AvroEventDecoder', () => {
  const decoder = new AvroEventDecoder(txnV2, source);

  it('reads v1 and v2 events, interleaved, through the v2 reader schema with its defaults for what v1 lacks', async () => {
    const messages = Array.from({ length: 6 }, (_, n) => (n % 2 === 0 ? encodeConfluent(V1, txnV1, v1Event(n)) : encodeConfluent(V2, txnV2, v2Event(n))));
    const outcomes = await Promise.all(messages.map((message) => decoder.decode(message)));
    outcomes.forEach((outcome, n) => {
      const expected = n % 2 === 0 ? { ...v1Event(n), merchant_id: null, risk_score: 0 } : v2Event(n);
      expect(outcome).toEqual({ ok: true, event: expected, schemaId: n % 2 === 0 ? V1 : V2 });
    });
    const first = outcomes[0]!;
    expect(first.ok && typeof first.event.timestamp).toBe('number');
  });

  it('reads a null merchant_id as plain null, not a wrapped union', async () => {
    const outcome = await decoder.decode(encodeConfluent(V2, txnV2, { ...v2Event(1), merchant_id: null }));
    expect(outcome.ok && outcome.event.merchant_id).toBeNull();
  });

  it('reads v2 events through the v1 reader: new fields dropped, new currencies as the enum default', async () => {
    const outcome = await new AvroEventDecoder(txnV1, source).decode(encodeConfluent(V2, txnV2, v2Event(3)));
    const { merchant_id: _merchant, risk_score: _risk, ...asV1 } = v2Event(3);
    expect(outcome).toEqual({ ok: true, event: { ...asV1, currency: 'USD' }, schemaId: V2 });
  });

  it.each([
    ['an empty value', Buffer.alloc(0), /^truncated: 0 bytes, shorter than the 5-byte Confluent header$/],
    ['a value shorter than the header', Buffer.from([0, 0, 0]), /^truncated: 3 bytes/],
    ['JSON', Buffer.from('{"txn_id":"t1"}'), /^bad magic byte 0x7b, expected 0x00/],
    ['random bytes', Buffer.from('ffe1d2c3b4a59687', 'hex'), /^bad magic byte 0xff/],
  ])('finds %s undecodable', async (_, value, detail) => {
    const outcome = await decoder.decode(value);
    expect(outcome).toMatchObject({ ok: false, reason: 'undecodable' });
    expect(!outcome.ok && outcome.detail).toMatch(detail);
  });

  it('finds a tombstone undecodable', async () => {
    expect(await decoder.decode(null)).toEqual({ ok: false, reason: 'undecodable', detail: 'the message has no value (a tombstone)' });
  });

  it('finds a payload cut short undecodable', async () => {
    const whole = encodeConfluent(V2, txnV2, v2Event(1));
    for (const length of [5, 6, 20, whole.length - 1]) {
      const outcome = await decoder.decode(whole.subarray(0, length));
      expect(outcome).toMatchObject({ ok: false, reason: 'undecodable' });
      expect(!outcome.ok && outcome.detail).toMatch(/^truncated Avro payload: \d+ bytes end inside a record of schema id 2$/);
    }
  });

  it('finds bytes after the record undecodable', async () => {
    const outcome = await decoder.decode(Buffer.concat([encodeConfluent(V1, txnV1, v1Event(1)), Buffer.from([0])]));
    expect(outcome).toMatchObject({ ok: false, reason: 'undecodable' });
    expect(!outcome.ok && outcome.detail).toMatch(/^1 trailing byte after the record of schema id 1/);
  });

  it('finds an enum index out of range undecodable, saying why', async () => {
    // Four empty strings, a double, then currency index 7 (zigzag varint 14).
    const payload = Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.alloc(8), Buffer.from([14])]);
    const outcome = await decoder.decode(Buffer.concat([Buffer.from([0, 0, 0, 0, V1]), payload]));
    expect(outcome).toMatchObject({ ok: false, reason: 'undecodable' });
    expect(!outcome.ok && outcome.detail).toMatch(/^malformed Avro payload for schema id 1: .*enum index: 7/);
  });

  it('sends an unregistered schema id to unknown_schema', async () => {
    const message = encodeConfluent(77, txnV2, v2Event(1));
    expect(await decoder.decode(message)).toEqual({ ok: false, reason: 'unknown_schema', detail: 'schema id 77 is not registered' });
  });

  it('sends a writer schema the reader cannot resolve to unknown_schema, naming both', async () => {
    const event = { user_id: 'u1', session_id: 's1', device_id: 'd1', page: '/', category: 'home', action: 'view', timestamp: 1 };
    const outcome = await decoder.decode(encodeConfluent(CLICK, click, event));
    expect(outcome).toMatchObject({ ok: false, reason: 'unknown_schema' });
    expect(!outcome.ok && outcome.detail).toMatch(/^schema id 3 cannot be read as strata\.examples\.TxnEvent: /);
  });

  it('lets a schema source failure that may pass propagate, and succeeds once it has passed', async () => {
    let down = true;
    const flaky: SchemaSource = {
      writerType: async (id) => {
        if (down) throw new StrataError('STRATA_SCHEMA_REGISTRY_UNAVAILABLE', 'registry down');
        return source.writerType(id);
      },
    };
    const flakyDecoder = new AvroEventDecoder(txnV2, flaky);
    const message = encodeConfluent(V1, txnV1, v1Event(1));
    await expect(flakyDecoder.decode(message)).rejects.toMatchObject({ code: 'STRATA_SCHEMA_REGISTRY_UNAVAILABLE', kind: 'unavailable' });
    down = false;
    expect(await flakyDecoder.decode(message)).toMatchObject({ ok: true, schemaId: V1 });
  });
});

describe('parseAvroSchema', () => {
  it('parses two versions of one named record side by side', () => {
    const text = JSON.stringify(txnV1.schema());
    expect(parseAvroSchema(text).equals(parseAvroSchema(JSON.parse(text) as object))).toBe(true);
  });

  it('refuses a union it could only decode wrapped', () => {
    expect(() => parseAvroSchema('["int", "long"]')).toThrow(/ambiguous unwrapped union/);
  });
});

describe('JsonEventDecoder', () => {
  const decoder = new JsonEventDecoder(txnV2);
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));

  it('conforms an event to the reader schema: defaults filled, undeclared fields dropped', async () => {
    expect(await decoder.decode(json({ ...v1Event(1), note: 'not in the schema' }))).toEqual({ ok: true, event: { ...v1Event(1), merchant_id: null, risk_score: 0 } });
  });

  it.each([
    ['amount', { amount: 'abc' }, 'amount: expected double, got "abc"'],
    ['currency', { currency: 'GBP' }, 'currency: expected one of USD, EUR, JPY, CHF, got "GBP"'],
    ['merchant_id', { merchant_id: 5 }, 'merchant_id: expected null or string, got 5'],
    ['timestamp', { timestamp: 1.5 }, 'timestamp: expected long, got 1.5'],
    ['timestamp as a date string', { timestamp: '2024-01-01T00:00:00Z' }, 'timestamp: expected long, got "2024-01-01T00:00:00Z"'],
    ['risk_score null', { risk_score: null }, 'risk_score: expected double, got null'],
  ])('finds a bad %s invalid, naming the field', async (_, change, detail) => {
    expect(await decoder.decode(json({ ...v2Event(1), ...change }))).toEqual({ ok: false, reason: 'invalid', detail });
  });

  it('finds a missing field without a default invalid', async () => {
    const { card_id: _card, ...event } = v2Event(1);
    expect(await decoder.decode(json(event))).toEqual({ ok: false, reason: 'invalid', detail: 'card_id: missing, and the schema gives it no default' });
  });

  it.each([
    ['not JSON', Buffer.from('{"txn_id": '), /^not JSON: /],
    ['a JSON array', Buffer.from('[1, 2]'), /^expected a JSON object, got an array$/],
    ['a JSON string', Buffer.from('"t1"'), /^expected a JSON object, got string$/],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /^not UTF-8 text$/],
    ['Avro', encodeConfluent(V1, txnV1, v1Event(1)), /^not JSON: starts like Confluent Avro \(schema id 1\)/],
  ])('finds %s undecodable', async (_, value, detail) => {
    const outcome = await decoder.decode(value);
    expect(outcome).toMatchObject({ ok: false, reason: 'undecodable' });
    expect(!outcome.ok && outcome.detail).toMatch(detail);
  });

  it('passes any object through when there is no reader schema', async () => {
    expect(await new JsonEventDecoder(undefined).decode(json({ anything: [1, 2] }))).toEqual({ ok: true, event: { anything: [1, 2] } });
  });
});

describe('conformEvent', () => {
  it('names no field when the event is not an object', () => {
    expect(conformEvent(txnV2, [v2Event(1)])).toEqual({ ok: false, field: '', rule: expect.stringMatching(/^expected a JSON object, got \[/) });
  });

  it('fills defaults and names the path of a violation in nested records, arrays and maps', () => {
    const basket = parseAvroSchema({
      type: 'record',
      name: 'Basket',
      fields: [
        { name: 'items', type: { type: 'array', items: { type: 'record', name: 'Item', fields: [{ name: 'sku', type: 'string' }, { name: 'qty', type: 'int', default: 1 }] } } },
        { name: 'tags', type: { type: 'map', values: 'long' }, default: {} },
        { name: 'coupon', type: ['null', { type: 'record', name: 'Coupon', fields: [{ name: 'code', type: 'string' }, { name: 'pct', type: 'double', default: 10 }] }], default: null },
      ],
    });
    expect(conformEvent(basket, { items: [{ sku: 'a' }], coupon: { code: 'X' } })).toEqual({
      ok: true,
      event: { items: [{ sku: 'a', qty: 1 }], tags: {}, coupon: { code: 'X', pct: 10 } },
    });
    expect(conformEvent(basket, { items: [{ sku: 'a' }, { sku: 7 }] })).toEqual({ ok: false, field: 'items.1.sku', rule: 'expected string, got 7' });
    expect(conformEvent(basket, { items: [], tags: { seen: 'often' } })).toEqual({ ok: false, field: 'tags.seen', rule: 'expected long, got "often"' });
  });
});
