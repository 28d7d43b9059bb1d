/**
 * Feature values are kept, cached and sent as the bytes of a protobuf
 * `strata.v1.Value` message (proto/strata/v1/feature_service.proto). A value
 * is encoded once, when it is written; reads copy those bytes into responses
 * without decoding them. An empty byte string is the NULL value.
 */
import protobuf from 'protobufjs/minimal.js';
import Long from 'long';
import { invalid } from '../errors.js';

const { Writer, Reader } = protobuf;

export const VALUE_TYPES = [
  'int64',
  'double',
  'string',
  'bool',
  'bytes',
  'list<int64>',
  'list<double>',
  'list<string>',
] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

/** The oneof field of `Value` that carries each type; its number is the protobuf field number. */
export const VALUE_FIELD: Readonly<Record<ValueType, { readonly name: string; readonly number: number }>> = {
  int64: { name: 'int64_val', number: 1 },
  double: { name: 'double_val', number: 2 },
  string: { name: 'string_val', number: 3 },
  bool: { name: 'bool_val', number: 4 },
  bytes: { name: 'bytes_val', number: 5 },
  'list<int64>': { name: 'int64_list_val', number: 6 },
  'list<double>': { name: 'double_list_val', number: 7 },
  'list<string>': { name: 'string_list_val', number: 8 },
};

const TYPE_BY_FIELD_NUMBER: readonly (ValueType | undefined)[] = (() => {
  const table: (ValueType | undefined)[] = [];
  for (const type of VALUE_TYPES) table[VALUE_FIELD[type].number] = type;
  return table;
})();

export const NULL_VALUE: Uint8Array = new Uint8Array(0);

export type Int64Like = number | Long | bigint | string;

/** A value in its typed in-memory form, as decoded from a protobuf `Value` or parsed from JSON. */
export type TypedValue =
  | { type: 'int64'; value: Int64Like }
  | { type: 'double'; value: number }
  | { type: 'string'; value: string }
  | { type: 'bool'; value: boolean }
  | { type: 'bytes'; value: Uint8Array }
  | { type: 'list<int64>'; value: readonly Int64Like[] }
  | { type: 'list<double>'; value: readonly number[] }
  | { type: 'list<string>'; value: readonly string[] };

function toLong(value: Int64Like): Long {
  if (Long.isLong(value)) return value as Long;
  if (typeof value === 'bigint') return Long.fromString(value.toString());
  if (typeof value === 'string') return Long.fromString(value);
  return Long.fromNumber(value);
}

/** Encodes a typed value as `Value` message bytes. */
export function encodeTypedValue(typed: TypedValue): Uint8Array {
  const writer = Writer.create();
  const tag = (VALUE_FIELD[typed.type].number << 3) | (typed.type === 'int64' || typed.type === 'bool' ? 0 : typed.type === 'double' ? 1 : 2);
  writer.uint32(tag);
  switch (typed.type) {
    case 'int64':
      writer.int64(toLong(typed.value));
      break;
    case 'double':
      writer.double(typed.value);
      break;
    case 'string':
      writer.string(typed.value);
      break;
    case 'bool':
      writer.bool(typed.value);
      break;
    case 'bytes':
      writer.bytes(typed.value);
      break;
    case 'list<int64>':
      writer.fork().uint32(10).fork();
      for (const item of typed.value) writer.int64(toLong(item));
      writer.ldelim().ldelim();
      break;
    case 'list<double>':
      writer.fork().uint32(10).fork();
      for (const item of typed.value) writer.double(item);
      writer.ldelim().ldelim();
      break;
    case 'list<string>':
      writer.fork();
      for (const item of typed.value) writer.uint32(10).string(item);
      writer.ldelim();
      break;
  }
  return writer.finish();
}

const INT64_TEXT = /^-?\d{1,19}$/;
const INT64_MIN = Long.MIN_VALUE.toString();
const INT64_MAX = Long.MAX_VALUE.toString();

function int64FromJson(raw: unknown, field: string, expected: string): Int64Like {
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
  if (typeof raw === 'string' && INT64_TEXT.test(raw)) {
    const long = Long.fromString(raw);
    // Long.fromString wraps silently on overflow; round-tripping the canonical digits catches it.
    const canonical = raw.replace(/^(-?)0+(?=\d)/, '$1').replace(/^-0$/, '0');
    if (long.toString() === canonical) return long;
    throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `${raw} is outside int64 [${INT64_MIN}, ${INT64_MAX}]`);
  }
  throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected ${expected} (an integer, or a string of digits beyond 2^53), got ${describe(raw)}`);
}

function doubleFromJson(raw: unknown, field: string, expected: string): number {
  if (typeof raw === 'number') return raw;
  if (raw === 'NaN' || raw === 'Infinity' || raw === '-Infinity') return Number(raw);
  throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected ${expected}, got ${describe(raw)}`);
}

function stringFromJson(raw: unknown, field: string, expected: string): string {
  if (typeof raw === 'string') return raw;
  throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected ${expected}, got ${describe(raw)}`);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function listFromJson<T>(raw: unknown, field: string, type: ValueType, item: (raw: unknown, field: string, expected: string) => T): T[] {
  if (!Array.isArray(raw)) throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected ${type} (a JSON array), got ${describe(raw)}`);
  return raw.map((element, index) => item(element, `${field}[${index}]`, type));
}

/**
 * Parses a JSON value as `type`. `null` is the NULL value. Strict: a string is
 * not a number, a number is not a bool; int64 may be given as a digit string so
 * values beyond 2^53 survive JSON.
 */
export function typedValueFromJson(type: ValueType, raw: unknown, field: string): TypedValue | null {
  if (raw === null) return null;
  switch (type) {
    case 'int64':
      return { type, value: int64FromJson(raw, field, type) };
    case 'double':
      return { type, value: doubleFromJson(raw, field, type) };
    case 'string':
      return { type, value: stringFromJson(raw, field, type) };
    case 'bool':
      if (typeof raw === 'boolean') return { type, value: raw };
      throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected bool, got ${describe(raw)}`);
    case 'bytes':
      if (typeof raw === 'string' && raw.length % 4 === 0 && BASE64.test(raw)) return { type, value: Buffer.from(raw, 'base64') };
      throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected bytes (a base64 string), got ${describe(raw)}`);
    case 'list<int64>':
      return { type, value: listFromJson(raw, field, type, int64FromJson) };
    case 'list<double>':
      return { type, value: listFromJson(raw, field, type, doubleFromJson) };
    case 'list<string>':
      return { type, value: listFromJson(raw, field, type, stringFromJson) };
  }
}

/** A decoded protobuf `Value` message as protobufjs gives it: one oneof field set, or none for NULL. */
export interface ValueMessage {
  int64_val?: Int64Like;
  double_val?: number;
  string_val?: string;
  bool_val?: boolean;
  bytes_val?: Uint8Array;
  int64_list_val?: { values?: Int64Like[] };
  double_list_val?: { values?: number[] };
  string_list_val?: { values?: string[] };
  kind?: string;
}

/** Checks a protobuf `Value` against `type`; returns it typed, or null for NULL. */
export function typedValueFromMessage(type: ValueType, message: ValueMessage, field: string): TypedValue | null {
  const kind = message.kind;
  if (kind === undefined) return null;
  const expected = VALUE_FIELD[type].name;
  if (kind !== expected) {
    throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `expected ${type} (Value.${expected}), got Value.${kind}`);
  }
  switch (type) {
    case 'int64':
      return { type, value: message.int64_val! };
    case 'double':
      return { type, value: message.double_val! };
    case 'string':
      return { type, value: message.string_val! };
    case 'bool':
      return { type, value: message.bool_val! };
    case 'bytes':
      return { type, value: message.bytes_val! };
    case 'list<int64>':
      return { type, value: message.int64_list_val?.values ?? [] };
    case 'list<double>':
      return { type, value: message.double_list_val?.values ?? [] };
    case 'list<string>':
      return { type, value: message.string_list_val?.values ?? [] };
  }
}

function describe(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'an array';
  if (typeof raw === 'string') return `the string ${JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw)}`;
  if (typeof raw === 'object') return 'an object';
  return `${typeof raw} ${String(raw)}`;
}

function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : JSON.stringify(String(value));
}

/** A numeric `Value` (int64 as the nearest double); null for NULL and for values of other types. */
export function numberFromValueBytes(bytes: Uint8Array): number | null {
  if (bytes.length === 0) return null;
  const reader = Reader.create(bytes);
  const type = TYPE_BY_FIELD_NUMBER[reader.uint32() >>> 3];
  if (type === 'int64') {
    // protobufjs answers a Long when long.js is installed (it is), a number otherwise.
    const value = reader.int64() as unknown as number | { toNumber(): number };
    return typeof value === 'number' ? value : value.toNumber();
  }
  if (type === 'double') return reader.double();
  return null;
}

/**
 * Renders `Value` bytes as JSON text: int64 as a number (exact digits, even
 * beyond 2^53), bytes as base64, non-finite doubles as strings, NULL as null.
 */
export function valueBytesToJson(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'null';
  const reader = Reader.create(bytes);
  const tag = reader.uint32();
  const type = TYPE_BY_FIELD_NUMBER[tag >>> 3];
  switch (type) {
    case 'int64':
      return reader.int64().toString();
    case 'double':
      return jsonNumber(reader.double());
    case 'string':
      return JSON.stringify(reader.string());
    case 'bool':
      return reader.bool() ? 'true' : 'false';
    case 'bytes':
      return JSON.stringify(Buffer.from(reader.bytes()).toString('base64'));
    case 'list<int64>':
    case 'list<double>':
    case 'list<string>':
      return listToJson(type, Reader.create(reader.bytes()));
    default:
      throw new Error(`stored value has unknown field ${tag >>> 3}`);
  }
}

function listToJson(type: 'list<int64>' | 'list<double>' | 'list<string>', list: protobuf.Reader): string {
  const parts: string[] = [];
  while (list.pos < list.len) {
    const tag = list.uint32();
    if (type === 'list<string>') {
      parts.push(JSON.stringify(list.string()));
      continue;
    }
    const item = (): string => (type === 'list<int64>' ? list.int64().toString() : jsonNumber(list.double()));
    // Packed (wire type 2) is what we write; unpacked elements are accepted too.
    if ((tag & 7) !== 2) {
      parts.push(item());
      continue;
    }
    const end = list.uint32() + list.pos;
    while (list.pos < end) parts.push(item());
  }
  return `[${parts.join(',')}]`;
}
