import type { JoinKeyType } from '../config/registry.js';
import { invalid } from '../errors.js';
import type { WireValues } from '../serving/wire-values.js';
import type { JoinKeyValue } from '../storage/keys.js';
import { encodeTypedValue, NULL_VALUE, typedValueFromJson, type ValueType } from '../values/value-codec.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Request values as JSON gives them (Feast's HTTP shapes): plain values, RFC 3339 strings or epoch ms. */
export const jsonValues: WireValues = {
  joinKey(type: JoinKeyType, raw: unknown, column: string, row: number): JoinKeyValue {
    // The common case, without building the field name an error would need.
    if (type === 'string' ? typeof raw === 'string' : Number.isSafeInteger(raw)) return raw as JoinKeyValue;
    const field = `${column}[${row}]`;
    const typed = typedValueFromJson(type, raw, field);
    if (typed === null) throw invalid('STRATA_VALUE_TYPE_MISMATCH', field, `a join key value must not be null (expected ${type})`);
    return typed.value as JoinKeyValue;
  },

  feature(type: ValueType, raw: unknown, field: string): Uint8Array {
    const typed = typedValueFromJson(type, raw, field);
    return typed === null ? NULL_VALUE : encodeTypedValue(typed);
  },

  timestamp(raw: unknown, field: string): number {
    return parseJsonTimestamp(raw, field);
  },
};

export function parseJsonTimestamp(raw: unknown, field: string): number {
  if (typeof raw === 'number' && Number.isFinite(raw) && Math.abs(raw) <= 8.64e15) return Math.floor(raw);
  if (typeof raw === 'string' && RFC3339.test(raw)) {
    const ms = Date.parse(raw.replace(/^(.{10}) /, '$1T'));
    if (!Number.isNaN(ms)) return ms;
  }
  throw invalid('STRATA_BAD_TIMESTAMP', field, `expected an RFC 3339 timestamp (2026-01-31T12:00:00Z) or epoch milliseconds, got ${JSON.stringify(raw)}`);
}

/** RFC 3339 in UTC with milliseconds, as responses give it. */
export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}
