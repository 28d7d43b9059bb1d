import Long from 'long';
import type { JoinKeyType } from '../config/registry.js';
import { invalid } from '../errors.js';
import type { WireValues } from '../serving/wire-values.js';
import type { JoinKeyValue } from '../storage/keys.js';
import { encodeTypedValue, NULL_VALUE, typedValueFromMessage, type ValueMessage, type ValueType } from '../values/value-codec.js';
import type { TimestampMessage } from './proto.js';

/** Request values as protobufjs decodes them: `Value` messages and `google.protobuf.Timestamp`s. */
export const protoValues: WireValues = {
  /** `raw`: a protobufjs Value message, or — from the GetOnlineFeatures decoder (online-request.ts) — a string_val as a string, an int64_val as a Long. */
  joinKey(type: JoinKeyType, raw: unknown, column: string, row: number): JoinKeyValue {
    if (typeof raw === 'string' && type === 'string') return raw;
    if (Long.isLong(raw) && type === 'int64') return raw as Long;
    const message: ValueMessage = typeof raw === 'string' ? { kind: 'string_val', string_val: raw } : Long.isLong(raw) ? { kind: 'int64_val', int64_val: raw as Long } : (raw as ValueMessage);
    // The common case, without building the field name an error would need.
    if (type === 'string' ? message.kind === 'string_val' : message.kind === 'int64_val') return (type === 'string' ? message.string_val : message.int64_val)!;
    const field = `${column}[${row}]`;
    const typed = typedValueFromMessage(type, message, field);
    if (typed === null) throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `a join key value must not be null (expected ${type})`);
    return typed.value as JoinKeyValue;
  },

  feature(type: ValueType, raw: unknown, field: string): Uint8Array {
    const typed = typedValueFromMessage(type, raw as ValueMessage, field);
    return typed === null ? NULL_VALUE : encodeTypedValue(typed);
  },

  timestamp(raw: unknown, field: string): number {
    return timestampToMs(raw as TimestampMessage | null | undefined, field);
  },
};

/** google.protobuf.Timestamp → ms since the epoch (sub-millisecond precision is dropped). */
export function timestampToMs(message: TimestampMessage | null | undefined, field: string): number {
  if (message === null || message === undefined) throw invalid('STRATA_BAD_TIMESTAMP', field, 'is required');
  const seconds = Long.isLong(message.seconds) ? (message.seconds as Long).toNumber() : Number(message.seconds ?? 0);
  const nanos = message.nanos ?? 0;
  const ms = seconds * 1000 + Math.floor(nanos / 1_000_000);
  if (nanos < 0 || nanos > 999_999_999 || !Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15) {
    throw invalid('STRATA_BAD_TIMESTAMP', field, `seconds=${String(message.seconds)} nanos=${nanos} is not a valid timestamp`);
  }
  return ms;
}
