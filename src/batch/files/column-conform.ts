/**
 * Raw file values made Strata values: one converter per column, built once,
 * called once per value. Each accepts the forms the formats naturally give a
 * type — parquet's bigint int64s, Avro's Buffers, JSON's numbers and digit
 * strings, CSV's text — and returns the codec's TypedValue, which
 * `encodeTypedValue` (src/values/value-codec.ts) turns into the stored bytes.
 * Anything else throws an INVALID_ARGUMENT StrataError whose field is
 * `file:row N column X` and whose message shows the value.
 *
 * Text (CSV) is parsed: "12" is an int64, "1.5" a double, "true" a bool, a
 * list is JSON text ('[1,2]'), and an empty field is NULL for every type but
 * string, where only an empty unquoted field is. Typed formats are not
 * coerced: "1.5" in JSON is not a double, 1.5 is not an int64.
 */
import Long from 'long';
import type { JoinKeyType } from '../../config/registry.js';
import { invalid } from '../../errors.js';
import type { JoinKeyValue } from '../../storage/keys.js';
import type { PackedValues } from '../../storage/record.js';
import { ByteSink } from '../../util/byte-sink.js';
import { typedValueFromJson, valueAppender, type Int64Like, type TypedValue, type ValueType } from '../../values/value-codec.js';

/** Where values come from: the file, named in errors, and whether its values are text to be parsed. A RowReader is one. */
export interface ValueOrigin {
  readonly path: string;
  readonly textValues: boolean;
}

/**
 * One column's converter. `row` (the value's row in the file, from 0) only
 * names the value in an error: building a name for every value would cost
 * more than converting it.
 */
export type ValueConverter = (raw: unknown, row: number) => TypedValue | null;

/** Epoch milliseconds, or null for a missing value when the column is optional. */
export type TimestampConverter = (raw: unknown, row: number) => number | null;

/** A reading of one raw value as a type: the value, or undefined when the raw value is not one. */
type Reading<T> = (raw: unknown) => T | undefined;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** At most 15 digits is always a safe integer, so Number() is exact and the codec's Long path is not needed. */
const SHORT_INTEGER = /^-?\d{1,15}$/;
const DIGITS = /^-?\d+$/;
/** pandas writes an int column that has gaps as floats: "12.0". */
const INTEGRAL_DECIMAL = /^([+-]?\d+)\.0*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** How JSON carries non-finite doubles (the codec's own spelling). */
const NON_FINITE_JSON: ReadonlyMap<string, number> = new Map([
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
]);
/** …and how CSV writers spell them (pandas: inf, -inf; Spark: NaN, Infinity), compared lower-cased. */
const NON_FINITE_TEXT: ReadonlyMap<string, number> = new Map([
  ['nan', Number.NaN],
  ['inf', Number.POSITIVE_INFINITY],
  ['+inf', Number.POSITIVE_INFINITY],
  ['-inf', Number.NEGATIVE_INFINITY],
  ['infinity', Number.POSITIVE_INFINITY],
  ['+infinity', Number.POSITIVE_INFINITY],
  ['-infinity', Number.NEGATIVE_INFINITY],
]);
/** Compared as written, then lower-cased: pandas writes True/False, Spark true/false, SQL exports TRUE/FALSE. */
const BOOL_TEXT: ReadonlyMap<string, boolean> = new Map([
  ['true', true],
  ['false', false],
  ['True', true],
  ['False', false],
  ['TRUE', true],
  ['FALSE', false],
  ['1', true],
  ['0', false],
]);
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function int64FromBigint(raw: bigint): Int64Like | undefined {
  if (raw < INT64_MIN || raw > INT64_MAX) return undefined;
  // A safe bigint becomes a number: it encodes without a detour through text.
  const number = Number(raw);
  return Number.isSafeInteger(number) ? number : raw;
}

function int64FromDigits(text: string): Int64Like | undefined {
  const digits = text.charCodeAt(0) === 0x2b ? text.slice(1) : text;
  if (SHORT_INTEGER.test(digits)) return Number(digits);
  if (!DIGITS.test(digits)) return undefined;
  try {
    // The codec's JSON rule for digit strings, with its exact int64 range check.
    return typedValueFromJson('int64', digits, '')!.value as Int64Like;
  } catch {
    return undefined;
  }
}

const int64Value: Reading<Int64Like> = (raw) => {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined;
  if (typeof raw === 'bigint') return int64FromBigint(raw);
  if (typeof raw === 'string') return int64FromDigits(raw);
  if (Long.isLong(raw)) return raw as Long;
  return undefined;
};

const int64Text: Reading<Int64Like> = (raw) => {
  if (typeof raw !== 'string') return int64Value(raw);
  const value = int64FromDigits(raw);
  if (value !== undefined) return value;
  const integral = INTEGRAL_DECIMAL.exec(raw);
  return integral === null ? undefined : int64FromDigits(integral[1]!);
};

const doubleValue: Reading<number> = (raw) => {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'bigint') {
    // Only when exact: an INT64 column declared double is fine, a rounded id is not.
    const number = Number(raw);
    return Number.isFinite(number) && BigInt(number) === raw ? number : undefined;
  }
  if (typeof raw === 'string') return NON_FINITE_JSON.get(raw);
  return undefined;
};

const doubleText: Reading<number> = (raw) => {
  if (typeof raw !== 'string') return doubleValue(raw);
  if (DECIMAL.test(raw)) return Number(raw);
  return NON_FINITE_TEXT.get(raw.toLowerCase());
};

const boolValue: Reading<boolean> = (raw) => (typeof raw === 'boolean' ? raw : undefined);

const boolText: Reading<boolean> = (raw) => (typeof raw === 'string' ? (BOOL_TEXT.get(raw) ?? BOOL_TEXT.get(raw.toLowerCase())) : boolValue(raw));

const stringValue: Reading<string> = (raw) => {
  if (typeof raw === 'string') return raw;
  // Parquet BYTE_ARRAY without a string annotation, Avro bytes: text if it is valid UTF-8.
  if (raw instanceof Uint8Array) {
    try {
      return UTF8.decode(raw);
    } catch {
      return undefined;
    }
  }
  return undefined;
};

const bytesValue: Reading<Uint8Array> = (raw) => {
  if (raw instanceof Uint8Array) return raw;
  if (typeof raw !== 'string') return undefined;
  try {
    // Base64, the codec's JSON rule for bytes.
    return typedValueFromJson('bytes', raw, '')!.value as Uint8Array;
  } catch {
    return undefined;
  }
};

function listOf<T>(item: Reading<T>): Reading<T[]> {
  return (raw) => {
    if (!Array.isArray(raw)) return undefined;
    const list = new Array<T>(raw.length);
    for (let index = 0; index < raw.length; index++) {
      // A list element cannot be NULL in a Strata value, so null fails here too.
      const value = item(raw[index]);
      if (value === undefined) return undefined;
      list[index] = value;
    }
    return list;
  };
}

/** A list in a text field is JSON text: '[1, 2]', '["a", "b"]'. */
function listText<T>(list: Reading<T[]>): Reading<T[]> {
  return (raw) => {
    if (typeof raw !== 'string') return list(raw);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return undefined;
    }
    return list(parsed);
  };
}

const int64List = listOf(int64Value);
const doubleList = listOf(doubleValue);
const stringList = listOf(stringValue);

/** How each type is read from typed values and from text, and what an error says was expected. */
const READINGS: Readonly<Record<ValueType, { readonly typed: Reading<unknown>; readonly text: Reading<unknown>; readonly expected: string; readonly expectedText: string }>> = {
  int64: { typed: int64Value, text: int64Text, expected: 'an integer in the int64 range, or a string of its digits', expectedText: 'an integer in the int64 range' },
  double: { typed: doubleValue, text: doubleText, expected: 'a number', expectedText: 'a decimal number, NaN or Infinity' },
  string: { typed: stringValue, text: stringValue, expected: 'a string', expectedText: 'text' },
  bool: { typed: boolValue, text: boolText, expected: 'true or false', expectedText: 'true, false, 1 or 0' },
  bytes: { typed: bytesValue, text: bytesValue, expected: 'binary, or base64 text', expectedText: 'base64 text' },
  'list<int64>': { typed: int64List, text: listText(int64List), expected: 'an array of integers', expectedText: 'a JSON array of integers' },
  'list<double>': { typed: doubleList, text: listText(doubleList), expected: 'an array of numbers', expectedText: 'a JSON array of numbers' },
  'list<string>': { typed: stringList, text: listText(stringList), expected: 'an array of strings', expectedText: 'a JSON array of strings' },
};

/** `file:row N column X`, the field of every error a converter throws. */
export function valueLocation(origin: ValueOrigin, column: string, row: number): string {
  return `${origin.path}:row ${row} column ${column}`;
}

/** Reads one column's raw values as `type`: the TypedValue's value, null for a missing one; throws as a ValueConverter does. */
export type ValueReader = (raw: unknown, row: number) => unknown;

/** The reader for one column whose values are declared `type`: a converter without the TypedValue wrapper per value. */
export function valueReader(type: ValueType, origin: ValueOrigin, column: string): ValueReader {
  const reading = READINGS[type];
  const read = origin.textValues ? reading.text : reading.typed;
  // In text an empty field is NULL, except that a string may be empty when quoted ("" reaches here as '').
  const emptyIsNull = origin.textValues && type !== 'string';
  return (raw, row) => {
    if (raw === null || raw === undefined || (emptyIsNull && raw === '')) return null;
    const value = read(raw);
    if (value === undefined) {
      throw invalid('STRATA_VALUE_TYPE_MISMATCH', valueLocation(origin, column, row), `expected ${type} (${origin.textValues ? reading.expectedText : reading.expected}), got ${show(raw, origin)}`);
    }
    return value;
  };
}

/** The converter for one column whose values are declared `type`. */
export function valueConverter(type: ValueType, origin: ValueOrigin, column: string): ValueConverter {
  const read = valueReader(type, origin, column);
  return (raw, row) => {
    const value = read(raw, row);
    return value === null ? null : ({ type, value } as TypedValue);
  };
}

/**
 * The reader for a join key column (`joinKey` as the view names it, `column`
 * as the file does): every row needs a value, so a missing one is an error —
 * STRATA_VALUE_TYPE_MISMATCH, as for a null join key value in a request
 * (a key column absent altogether is the reader's STRATA_MISSING_COLUMN).
 */
export function joinKeyReader(type: JoinKeyType, origin: ValueOrigin, column: string, joinKey = column): (raw: unknown, row: number) => JoinKeyValue {
  const read = valueReader(type, origin, column);
  return (raw, row) => {
    const value = read(raw, row);
    if (value === null) throw invalid('STRATA_VALUE_TYPE_MISMATCH', valueLocation(origin, column, row), `join key ${joinKey} is missing; every row needs one (expected ${type})`);
    return value as JoinKeyValue;
  };
}

/** The widest range a Date holds, ±100 million days around the epoch. */
const MAX_EPOCH_MS = 8.64e15;
const MAX_EPOCH_MS_BIGINT = BigInt(MAX_EPOCH_MS);
const EPOCH_MS_TEXT = /^-?\d{1,16}$/;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;
const ZERO = 0x30;

/** The number `count` decimal digits at `at` spell, or -1 if they are not all digits. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let index = at; index < at + count; index++) {
    const digit = text.charCodeAt(index) - ZERO;
    // NaN past the end fails this too.
    if (!(digit >= 0 && digit <= 9)) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * ISO-8601 / RFC 3339 date-times in epoch ms: `2026-01-31T12:00:00Z`,
 * `2026-01-31 12:00:00.123+01:00`, `2026-01-31T12:00-0430`, `2026-01-31`.
 * Without a zone the time is UTC, as Feast and Spark read naive timestamps.
 * Digits past the millisecond are dropped. Scanned by hand rather than by a
 * regular expression: a CSV import parses one per row, and the match array
 * and its substrings cost more than the rest of the row's conformance.
 */
export function parseIso8601(text: string): number | undefined {
  const length = text.length;
  if (length < 10 || text.charCodeAt(4) !== 0x2d || text.charCodeAt(7) !== 0x2d) return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]!) return undefined;
  if (month === 2 && day === 29 && (year % 4 !== 0 || (year % 100 === 0 && year % 400 !== 0))) return undefined;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let ms = 0;
  let at = 10;
  const separator = text.charCodeAt(at);
  // T, t or a space, then hh:mm, then optionally :ss and a fraction after a point or comma.
  if (separator === 0x54 || separator === 0x74 || separator === 0x20) {
    hour = digitsAt(text, at + 1, 2);
    minute = text.charCodeAt(at + 3) === 0x3a ? digitsAt(text, at + 4, 2) : -1;
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return undefined;
    at += 6;
    if (text.charCodeAt(at) === 0x3a) {
      second = digitsAt(text, at + 1, 2);
      if (second < 0 || second > 59) return undefined;
      at += 3;
      const point = text.charCodeAt(at);
      if (point === 0x2e || point === 0x2c) {
        const first = ++at;
        for (let digit = text.charCodeAt(at) - ZERO; digit >= 0 && digit <= 9; digit = text.charCodeAt(++at) - ZERO) {
          if (at - first < 3) ms = ms * 10 + digit;
        }
        const digits = at - first;
        if (digits === 0 || digits > 9) return undefined;
        if (digits < 3) ms *= digits === 1 ? 100 : 10;
      }
    }
  }
  let offsetMinutes = 0;
  if (at < length) {
    const zone = text.charCodeAt(at);
    if (zone === 0x5a || zone === 0x7a) {
      at++;
    } else if (zone === 0x2b || zone === 0x2d) {
      const zoneHours = digitsAt(text, at + 1, 2);
      at += 3;
      let zoneMinutes = 0;
      if (at < length) {
        if (text.charCodeAt(at) === 0x3a) at++;
        zoneMinutes = digitsAt(text, at, 2);
        at += 2;
      }
      if (zoneHours < 0 || zoneHours > 23 || zoneMinutes < 0 || zoneMinutes > 59) return undefined;
      offsetMinutes = (zone === 0x2d ? -1 : 1) * (zoneHours * 60 + zoneMinutes);
    }
  }
  if (at !== length) return undefined;
  return daysSinceEpoch(year, month, day) * 86_400_000 + ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1_000 + ms;
}

/**
 * Days from 1970-01-01 to a proleptic Gregorian date, by arithmetic (Howard
 * Hinnant's days_from_civil): a third of Date.UTC's cost, and years 0-99 need
 * no special case.
 */
function daysSinceEpoch(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

const timestampValue: Reading<number> = (raw) => {
  if (typeof raw === 'number') return Number.isFinite(raw) && Math.abs(raw) <= MAX_EPOCH_MS ? Math.floor(raw) : undefined;
  if (raw instanceof Date) {
    const ms = raw.getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  if (typeof raw === 'bigint') return raw >= -MAX_EPOCH_MS_BIGINT && raw <= MAX_EPOCH_MS_BIGINT ? Number(raw) : undefined;
  if (typeof raw === 'string') return parseTimestampText(raw);
  return undefined;
};

/** A timestamp written as text, in epoch milliseconds: digits of epoch ms, or ISO-8601 (see parseIso8601); undefined for anything else. */
export function parseTimestampText(text: string): number | undefined {
  return EPOCH_MS_TEXT.test(text) ? timestampValue(Number(text)) : parseIso8601(text);
}

/**
 * The converter for a timestamp column (`event_timestamp`,
 * `created_timestamp`), in epoch milliseconds: from epoch ms as a number,
 * bigint or digit text; a Date; ISO-8601 text; or a parquet/Avro timestamp
 * logical type, which the readers deliver as epoch ms whatever its unit.
 * Missing values are errors unless `optional`, then null.
 */
export function timestampConverter(origin: ValueOrigin, column: string, options: { readonly optional?: boolean } = {}): TimestampConverter {
  const optional = options.optional === true;
  return (raw, row) => {
    if (raw === null || raw === undefined || raw === '') {
      if (optional) return null;
      throw invalid('STRATA_BAD_TIMESTAMP', valueLocation(origin, column, row), 'is missing; every row needs this timestamp');
    }
    const ms = timestampValue(raw);
    if (ms === undefined) {
      throw invalid(
        'STRATA_BAD_TIMESTAMP',
        valueLocation(origin, column, row),
        `expected a timestamp (epoch milliseconds, or ISO-8601 such as 2026-01-31T12:00:00Z), got ${show(raw, origin)}`,
      );
    }
    return ms;
  };
}

/** Converts a chunk's column: `values[i]` is row `rowOffset + i` of the file. */
export function conformColumn<T>(values: ArrayLike<unknown>, rowOffset: number, convert: (raw: unknown, row: number) => T): T[] {
  const converted = new Array<T>(values.length);
  for (let index = 0; index < values.length; index++) converted[index] = convert(values[index], rowOffset + index);
  return converted;
}

/** A chunk's column as the `Value` bytes L3 stores, packed (NULL: no bytes), and how many of its values are NULL. */
export interface EncodedColumn extends PackedValues {
  readonly nulls: number;
}

/** Bytes per value a column's first buffer is sized for; it grows when the values are longer. */
const EXPECTED_VALUE_BYTES = 12;

/**
 * Converts and encodes a chunk's column in one pass into one buffer, with
 * neither a TypedValue nor a Uint8Array per value (bench:import, 300k rows:
 * those and the protobuf Writer behind them were ~15 % of the import and
 * most of its garbage). Errors name `file:row N column X` as the reader's do.
 */
export function encodeColumn(values: ArrayLike<unknown>, rowOffset: number, type: ValueType, origin: ValueOrigin, column: string): EncodedColumn {
  const read = valueReader(type, origin, column);
  const append = valueAppender(type);
  const sink = new ByteSink(values.length * EXPECTED_VALUE_BYTES);
  const ends = new Uint32Array(values.length);
  let nulls = 0;
  for (let index = 0; index < values.length; index++) {
    const value = read(values[index], rowOffset + index);
    if (value === null) nulls++;
    else append(sink, value);
    ends[index] = sink.length;
  }
  return { bytes: sink.bytes, ends, nulls };
}

const MAX_SHOWN_CHARS = 40;

function clip(text: string): string {
  return text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}…` : text;
}

/** The offending value, as the error shows it. */
function show(raw: unknown, origin: ValueOrigin): string {
  if (typeof raw === 'string') return `the ${origin.textValues ? 'text' : 'string'} ${JSON.stringify(clip(raw))}`;
  if (typeof raw === 'number' || typeof raw === 'bigint') return `the number ${String(raw)}`;
  if (typeof raw === 'boolean') return String(raw);
  if (raw instanceof Date) return `the date ${Number.isNaN(raw.getTime()) ? 'Invalid Date' : raw.toISOString()}`;
  if (raw instanceof Uint8Array) return `${raw.length} byte${raw.length === 1 ? '' : 's'} of binary`;
  const json = JSON.stringify(raw, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)) ?? String(raw);
  return `${Array.isArray(raw) ? 'the array' : 'the object'} ${clip(json)}`;
}
