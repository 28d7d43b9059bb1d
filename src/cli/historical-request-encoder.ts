/**
 * GetHistoricalFeaturesRequest messages as a client sends them
 * (proto/strata/v1/feature_service.proto): first the query, then chunks of
 * entity rows, columnar. Encoded with protobufjs's Writer straight from the
 * column arrays, with no message object per row.
 */
import Long from 'long';
import protobuf from 'protobufjs/minimal.js';
import type { JoinKeyType } from '../config/registry.js';
import type { JoinKeyValue } from '../storage/keys.js';

const { Writer } = protobuf;

const TAG_FEATURES = 0x0a; // 1, FeatureList { 1 repeated string refs }
const TAG_REF = 0x0a;
const TAG_FEATURE_SERVICE = 0x12; // 2
const TAG_ENTITIES = 0x1a; // 3, map entry { 1 key, 2 RepeatedValue { 1 repeated Value } }
const TAG_ENTRY_KEY = 0x0a;
const TAG_ENTRY_VALUE = 0x12;
const TAG_VALUE = 0x0a;
const TAG_INT64_VAL = 0x08; // Value.int64_val
const TAG_STRING_VAL = 0x1a; // Value.string_val
const TAG_FULL_FEATURE_NAMES = 0x28; // 5, varint
const TAG_EVENT_TIMESTAMP = 0x32; // 6, Timestamp { 1 int64 seconds, 2 int32 nanos }
const TAG_SECONDS = 0x08;
const TAG_NANOS = 0x10;
const TAG_ENTITIES_PATH = 0x3a; // 7

export interface HistoricalQuery {
  /** Exactly one of features (view:feature refs) and featureService. */
  readonly features?: readonly string[];
  readonly featureService?: string;
  readonly fullFeatureNames?: boolean;
  /** A file on the server's disk to read the rows from, instead of sending them. */
  readonly entitiesPath?: string;
}

/** The first message of a call. */
export function encodeQuery(query: HistoricalQuery): Uint8Array {
  const writer = Writer.create();
  if (query.features !== undefined) {
    writer.uint32(TAG_FEATURES).fork();
    for (const ref of query.features) writer.uint32(TAG_REF).string(ref);
    writer.ldelim();
  }
  if (query.featureService !== undefined) writer.uint32(TAG_FEATURE_SERVICE).string(query.featureService);
  if (query.fullFeatureNames === true) writer.uint32(TAG_FULL_FEATURE_NAMES).bool(true);
  if (query.entitiesPath !== undefined) writer.uint32(TAG_ENTITIES_PATH).string(query.entitiesPath);
  return writer.finish();
}

/** A join key column of rows to send: string keys as strings, int64 keys as numbers, bigints, Longs or digit strings. */
export interface KeyColumn {
  readonly name: string;
  readonly type: JoinKeyType;
  readonly values: ArrayLike<JoinKeyValue>;
}

/** Rows `from`…`to - 1` of the columns, with their times in epoch ms. */
export function encodeRows(keys: readonly KeyColumn[], times: ArrayLike<number>, from: number, to: number): Uint8Array {
  const writer = Writer.create();
  for (const { name, type, values } of keys) {
    writer.uint32(TAG_ENTITIES).fork().uint32(TAG_ENTRY_KEY).string(name).uint32(TAG_ENTRY_VALUE).fork();
    for (let row = from; row < to; row++) {
      writer.uint32(TAG_VALUE).fork();
      if (type === 'string') writer.uint32(TAG_STRING_VAL).string(values[row] as string);
      else writer.uint32(TAG_INT64_VAL).int64(int64Of(values[row]!));
      writer.ldelim();
    }
    writer.ldelim().ldelim();
  }
  for (let row = from; row < to; row++) {
    // Timestamp wants whole seconds (negative before 1970) and non-negative nanos.
    const seconds = Math.floor(times[row]! / 1000);
    const nanos = (times[row]! - seconds * 1000) * 1_000_000;
    writer.uint32(TAG_EVENT_TIMESTAMP).fork();
    if (seconds !== 0) writer.uint32(TAG_SECONDS).int64(seconds);
    if (nanos !== 0) writer.uint32(TAG_NANOS).int32(nanos);
    writer.ldelim();
  }
  return writer.finish();
}

function int64Of(value: JoinKeyValue): Long | number | string {
  return typeof value === 'bigint' ? Long.fromString(value.toString()) : (value as Long | number | string);
}
