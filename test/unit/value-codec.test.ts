import { fileURLToPath } from 'node:url';
import Long from 'long';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { ByteSink } from '../../src/util/byte-sink.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import {
  NULL_VALUE,
  VALUE_FIELD,
  VALUE_TYPES,
  encodeTypedValue,
  typedValueFromJson,
  typedValueFromMessage,
  valueAppender,
  valueBytesToJson,
  type TypedValue,
  type ValueMessage,
  type ValueType,
} from '../../src/values/value-codec.js';

const PROTO = fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url));
const ValueProto = new protobuf.Root().loadSync(PROTO, { keepCase: true }).lookupType('strata.v1.Value');

function encodeJson(type: ValueType, raw: unknown, field = 'f'): Uint8Array {
  const typed = typedValueFromJson(type, raw, field);
  if (typed === null) throw new Error('unexpected NULL');
  return encodeTypedValue(typed);
}

/** Decodes with protobufjs, proving the bytes are a valid `strata.v1.Value`. */
function decodeProto(bytes: Uint8Array): ValueMessage & protobuf.Message {
  return ValueProto.decode(bytes) as unknown as ValueMessage & protobuf.Message;
}

/** A protobufjs-decoded field value in comparable form: int64s as decimal strings, bytes as base64. */
function plain(value: unknown): unknown {
  if (Long.isLong(value)) return (value as Long).toString();
  if (typeof value === 'number') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object' && 'values' in value) return plain((value as { values: unknown }).values);
  return value;
}

interface RoundTrip {
  type: ValueType;
  input: unknown;
  /** The JSON text valueBytesToJson must render. */
  json: string;
  /** What protobufjs must decode from the bytes, in `plain` form. */
  decoded: unknown;
}

const ROUND_TRIPS: RoundTrip[] = [
  { type: 'int64', input: 42, json: '42', decoded: '42' },
  { type: 'int64', input: 0, json: '0', decoded: '0' },
  { type: 'int64', input: -7, json: '-7', decoded: '-7' },
  { type: 'int64', input: Number.MAX_SAFE_INTEGER, json: '9007199254740991', decoded: '9007199254740991' },
  { type: 'int64', input: '9007199254740993', json: '9007199254740993', decoded: '9007199254740993' },
  { type: 'int64', input: '9223372036854775807', json: '9223372036854775807', decoded: '9223372036854775807' },
  { type: 'int64', input: '-9223372036854775808', json: '-9223372036854775808', decoded: '-9223372036854775808' },
  { type: 'int64', input: '00012', json: '12', decoded: '12' },
  { type: 'double', input: 1.5, json: '1.5', decoded: 1.5 },
  { type: 'double', input: -0.1, json: '-0.1', decoded: -0.1 },
  { type: 'double', input: 1e300, json: '1e+300', decoded: 1e300 },
  { type: 'double', input: 3, json: '3', decoded: 3 },
  { type: 'double', input: 'NaN', json: '"NaN"', decoded: Number.NaN },
  { type: 'double', input: Number.NaN, json: '"NaN"', decoded: Number.NaN },
  { type: 'double', input: 'Infinity', json: '"Infinity"', decoded: Number.POSITIVE_INFINITY },
  { type: 'double', input: '-Infinity', json: '"-Infinity"', decoded: Number.NEGATIVE_INFINITY },
  { type: 'string', input: 'DE', json: '"DE"', decoded: 'DE' },
  { type: 'string', input: '', json: '""', decoded: '' },
  { type: 'string', input: 'héllo "q"\n\u{1F600}', json: JSON.stringify('héllo "q"\n\u{1F600}'), decoded: 'héllo "q"\n\u{1F600}' },
  { type: 'bool', input: true, json: 'true', decoded: true },
  { type: 'bool', input: false, json: 'false', decoded: false },
  { type: 'bytes', input: 'AAEC/w==', json: '"AAEC/w=="', decoded: 'AAEC/w==' },
  { type: 'bytes', input: '', json: '""', decoded: '' },
  { type: 'bytes', input: 'aGVsbG8gd29ybGQh', json: '"aGVsbG8gd29ybGQh"', decoded: 'aGVsbG8gd29ybGQh' },
  { type: 'list<int64>', input: [1, -2, '9223372036854775807'], json: '[1,-2,9223372036854775807]', decoded: ['1', '-2', '9223372036854775807'] },
  { type: 'list<int64>', input: ['-9223372036854775808'], json: '[-9223372036854775808]', decoded: ['-9223372036854775808'] },
  { type: 'list<double>', input: [0.5, 'NaN', -1, 'Infinity'], json: '[0.5,"NaN",-1,"Infinity"]', decoded: [0.5, Number.NaN, -1, Number.POSITIVE_INFINITY] },
  { type: 'list<double>', input: [2.25], json: '[2.25]', decoded: [2.25] },
  { type: 'list<string>', input: ['a', '', 'ü'], json: '["a","","ü"]', decoded: ['a', '', 'ü'] },
  { type: 'list<string>', input: [], json: '[]', decoded: [] },
];

describe('value codec round trips', () => {
  it('has a round-trip case for every value type', () => {
    expect(new Set(ROUND_TRIPS.map((test) => test.type))).toEqual(new Set(VALUE_TYPES));
  });

  it.each(ROUND_TRIPS)('$type $input → bytes → $json', ({ type, input, json }) => {
    expect(valueBytesToJson(encodeJson(type, input))).toBe(json);
  });

  it.each(ROUND_TRIPS)('$type $input encodes a protobuf strata.v1.Value with exactly the field $type uses', ({ type, input, decoded }) => {
    const bytes = encodeJson(type, input);
    const message = decodeProto(bytes);
    const field = VALUE_FIELD[type].name;
    expect(message.kind).toBe(field);
    expect(plain((message as unknown as Record<string, unknown>)[field])).toEqual(decoded);
    // Re-encoding what protobufjs decoded gives the same value back.
    expect(valueBytesToJson(ValueProto.encode(message).finish())).toBe(valueBytesToJson(bytes));
  });

  it.each(ROUND_TRIPS)('$type $input survives protobufjs decode → typedValueFromMessage → encode unchanged', ({ type, input }) => {
    const bytes = encodeJson(type, input);
    const typed = typedValueFromMessage(type, decodeProto(bytes), 'f');
    expect(typed).not.toBeNull();
    expect(Buffer.from(encodeTypedValue(typed!)).equals(Buffer.from(bytes))).toBe(true);
  });

  it.each(ROUND_TRIPS)(
    'renders bytes protobufjs wrote for $type $input the same way',
    ({ type, input, json }) => {
      const message = decodeProto(encodeJson(type, input));
      const reencoded = ValueProto.encode(ValueProto.fromObject(ValueProto.toObject(message, { longs: String, bytes: String, oneofs: true }))).finish();
      expect(valueBytesToJson(reencoded)).toBe(json);
    },
  );

  it('encodes int64 the same from a number, a digit string, a bigint and a Long', () => {
    const fromNumber = encodeTypedValue({ type: 'int64', value: -123456789 });
    expect(Buffer.from(encodeTypedValue({ type: 'int64', value: '-123456789' }))).toEqual(Buffer.from(fromNumber));
    expect(Buffer.from(encodeTypedValue({ type: 'int64', value: -123456789n }))).toEqual(Buffer.from(fromNumber));
    expect(Buffer.from(encodeTypedValue({ type: 'int64', value: Long.fromNumber(-123456789) }))).toEqual(Buffer.from(fromNumber));
    expect(valueBytesToJson(encodeTypedValue({ type: 'int64', value: 2n ** 62n }))).toBe(String(2n ** 62n));
  });

  it('renders a non-finite double as a JSON string and a finite one as a JSON number', () => {
    expect(JSON.parse(valueBytesToJson(encodeTypedValue({ type: 'double', value: Number.NaN })))).toBe('NaN');
    expect(JSON.parse(valueBytesToJson(encodeTypedValue({ type: 'double', value: 0.1 + 0.2 })))).toBe(0.1 + 0.2);
  });

  it('treats null as the NULL value and renders empty bytes as null', () => {
    for (const type of VALUE_TYPES) expect(typedValueFromJson(type, null, 'f')).toBeNull();
    expect(NULL_VALUE.length).toBe(0);
    expect(valueBytesToJson(NULL_VALUE)).toBe('null');
  });

  it('renders an empty list<int64> as []', () => {
    expect(valueBytesToJson(encodeJson('list<int64>', []))).toBe('[]');
  });

  it('renders an empty list<double> as []', () => {
    expect(valueBytesToJson(encodeJson('list<double>', []))).toBe('[]');
  });

  it('encodes empty numeric lists as valid protobuf that protobufjs reads as empty', () => {
    for (const type of ['list<int64>', 'list<double>'] as const) {
      const message = decodeProto(encodeJson(type, []));
      expect(message.kind).toBe(VALUE_FIELD[type].name);
      expect(plain((message as unknown as Record<string, unknown>)[VALUE_FIELD[type].name])).toEqual([]);
      // protobufjs itself writes an empty list as an empty submessage, which renders fine.
      const byProtobufjs = ValueProto.encode(ValueProto.fromObject({ [VALUE_FIELD[type].name]: { values: [] } })).finish();
      expect(valueBytesToJson(byProtobufjs)).toBe('[]');
    }
  });

  it('reads unpacked repeated int64 and double elements too', () => {
    // Value{int64_list_val: Int64List{values: 5, values: -1}} with values unpacked (wire type 0).
    const writer = protobuf.Writer.create();
    writer.uint32((6 << 3) | 2).fork().uint32(8).int64(5).uint32(8).int64(-1).ldelim();
    expect(valueBytesToJson(writer.finish())).toBe('[5,-1]');
    const doubles = protobuf.Writer.create();
    doubles.uint32((7 << 3) | 2).fork().uint32(9).double(0.5).uint32(9).double(2).ldelim();
    expect(valueBytesToJson(doubles.finish())).toBe('[0.5,2]');
  });

  it('refuses bytes whose field is not a Value field', () => {
    expect(() => valueBytesToJson(Uint8Array.of((9 << 3) | 0, 1))).toThrow(/unknown field 9/);
  });
});

describe('typedValueFromJson is strict', () => {
  function typeError(type: ValueType, raw: unknown, field = 'features.risk'): StrataError {
    let caught: unknown;
    try {
      typedValueFromJson(type, raw, field);
    } catch (error) {
      caught = error;
    }
    expect(caught, `${type} ${String(raw)} must be rejected`).toBeInstanceOf(StrataError);
    const error = caught as StrataError;
    expect(error.code).toBe('STRATA_VALUE_TYPE_MISMATCH');
    expect(error.kind).toBe('invalid_argument');
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    return error;
  }

  it.each([
    ['int64', 'abc', /expected int64 .*got the string "abc"/],
    ['int64', 1.5, /expected int64 .*got number 1.5/],
    ['int64', '1.5', /expected int64/],
    ['int64', 2 ** 53, /expected int64 .*got number 9007199254740992/],
    ['int64', true, /got boolean true/],
    ['int64', '', /got the string ""/],
    ['int64', '9223372036854775808', /9223372036854775808 is outside int64 \[-9223372036854775808, 9223372036854775807\]/],
    ['int64', '-9223372036854775809', /is outside int64/],
    ['int64', '18446744073709551616', /expected int64/],
    ['double', '12', /expected double, got the string "12"/],
    ['double', true, /expected double, got boolean true/],
    ['double', 'nan', /expected double/],
    ['string', 5, /expected string, got number 5/],
    ['string', ['a'], /got an array/],
    ['bool', 1, /expected bool, got number 1/],
    ['bool', 'true', /expected bool, got the string "true"/],
    ['bytes', 'not base64!', /expected bytes \(a base64 string\)/],
    ['bytes', 'abc', /expected bytes/],
    ['bytes', 12, /expected bytes/],
    ['list<int64>', 5, /expected list<int64> \(a JSON array\), got number 5/],
    ['list<string>', { a: 1 }, /got an object/],
  ] as const)('rejects %s given %j', (type, raw, pattern) => {
    expect(typeError(type, raw).message).toMatch(pattern);
  });

  it('names the offending element of a list', () => {
    let caught: unknown;
    try {
      typedValueFromJson('list<int64>', [1, 2, 'x'], 'features.ids');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StrataError);
    expect((caught as StrataError).field).toBe('features.ids[2]');
    expect((caught as StrataError).message).toMatch(/^features\.ids\[2\]: expected list<int64>/);
  });

  it('truncates a long offending string in the message', () => {
    expect(typeError('double', 'x'.repeat(100)).message).toContain(`"${'x'.repeat(40)}…"`);
  });

  it('accepts the int64 extremes and returns a digit string beyond 2^53 exactly', () => {
    const typed = typedValueFromJson('int64', '9223372036854775807', 'f');
    expect(String(typed!.value)).toBe('9223372036854775807');
    expect(typedValueFromJson('int64', -5, 'f')).toEqual({ type: 'int64', value: -5 });
  });

  it('accepts "-0" as the int64 0', () => {
    expect(String(typedValueFromJson('int64', '-0', 'f')!.value)).toBe('0');
  });
});

describe('typedValueFromMessage', () => {
  it('returns null for a Value with no field set', () => {
    expect(typedValueFromMessage('int64', {}, 'f')).toBeNull();
    expect(typedValueFromMessage('list<string>', decodeProto(new Uint8Array(0)), 'f')).toBeNull();
  });

  it('rejects a Value whose oneof field is not the declared type, naming the field and both kinds', () => {
    const message = decodeProto(encodeJson('string', 'DE'));
    let caught: unknown;
    try {
      typedValueFromMessage('int64', message, 'columns.account_age_days[3]');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StrataError);
    const error = caught as StrataError;
    expect(error.code).toBe('STRATA_VALUE_TYPE_MISMATCH');
    expect(error.field).toBe('columns.account_age_days[3]');
    expect(error.message).toBe('columns.account_age_days[3]: expected int64 (Value.int64_val), got Value.string_val');
  });

  it.each(VALUE_TYPES)('rejects every other kind for %s', (type) => {
    for (const other of VALUE_TYPES) {
      if (other === type) continue;
      const message = { kind: VALUE_FIELD[other].name } as ValueMessage;
      expect(() => typedValueFromMessage(type, message, 'f')).toThrow(`expected ${type} (Value.${VALUE_FIELD[type].name}), got Value.${VALUE_FIELD[other].name}`);
    }
  });

  it('reads a list message without values as an empty list', () => {
    expect(typedValueFromMessage('list<double>', { kind: 'double_list_val', double_list_val: {} }, 'f')).toEqual({ type: 'list<double>', value: [] });
  });
});

describe('valueAppender', () => {
  const random = seededRandom(11);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const texts = ['', 'DE', 'seg-7', 'x'.repeat(127), 'y'.repeat(128), 'ünï', '日本', 'emoji 😀', 'a"b\\c'];
  /** Values of each type, edges and random ones, in the forms the importer's readers hand over. */
  const samples: { [T in ValueType]: () => unknown } = {
    int64: () =>
      pick<() => unknown>([
        () => pick([0, -0, 1, -1, 127, 128, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, -(2 ** 32), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]),
        () => Math.floor((random() - 0.5) * 2 ** (1 + Math.floor(random() * 53))),
        () => Long.fromString('-9223372036854775808'),
        () => 2n ** 62n,
        () => '9223372036854775807',
      ])(),
    double: () => pick([0, -0, 1.5, -2.25, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MIN_VALUE, 1e300, random() * 1e6]),
    string: () => pick(texts) + (random() < 0.5 ? String(Math.floor(random() * 1000)) : ''),
    bool: () => random() < 0.5,
    bytes: () => Uint8Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)),
    'list<int64>': () => Array.from({ length: Math.floor(random() * 4) }, () => Math.floor((random() - 0.5) * 2 ** 40)),
    'list<double>': () => Array.from({ length: Math.floor(random() * 4) }, () => random()),
    'list<string>': () => Array.from({ length: Math.floor(random() * 4) }, () => pick(texts)),
  };

  it.each(VALUE_TYPES)('appends %s values back to back, each the bytes encodeTypedValue makes', (type) => {
    const sink = new ByteSink(4);
    const append = valueAppender(type);
    const values = Array.from({ length: 2_000 }, samples[type]);
    const expected: Uint8Array[] = [];
    for (const value of values) {
      append(sink, value);
      expected.push(encodeTypedValue({ type, value } as TypedValue));
    }
    expect(Buffer.from(sink.bytes.subarray(0, sink.length)).toString('hex')).toBe(Buffer.concat(expected).toString('hex'));
  });
});
