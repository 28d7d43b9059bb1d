/**
 * `google.protobuf.Struct` / `Value` as protobufjs decodes them → the plain
 * JS values JSON.parse would have given for the same object, so PushEvents
 * over gRPC and POST /push-events check events alike. protobufjs defines the
 * well-known types with camelCase field names (`numberValue`, …) whatever
 * `keepCase` says.
 */
import { invalid } from '../errors.js';

export interface StructMessage {
  fields?: Record<string, ValueMessage | null | undefined>;
}

export interface ValueMessage {
  /** The oneof's set member; protobufjs defines it as a virtual property. */
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMessage | null;
  listValue?: { values?: (ValueMessage | null | undefined)[] } | null;
}

/** JSON has no NaN or Infinity; neither does a pushed event. */
function finite(value: number, field: string): number {
  if (!Number.isFinite(value)) throw invalid('STRATA_INVALID_EVENT', field, `must be a finite number, got ${value}`);
  return value;
}

/** A Value as JSON.parse would give it; an unset Value is null. `field` names it in errors (`events[2].amount`). */
export function valueToJs(value: ValueMessage | null | undefined, field: string): unknown {
  switch (value?.kind) {
    case undefined:
    case 'nullValue':
      return null;
    case 'numberValue':
      return finite(value.numberValue ?? 0, field);
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'structValue':
      return structToJs(value.structValue, field);
    case 'listValue':
      return (value.listValue?.values ?? []).map((item, index) => valueToJs(item, `${field}.${index}`));
  }
}

/** A Struct as a plain object (own properties only, so a `__proto__` key is just a key). */
export function structToJs(struct: StructMessage | null | undefined, field: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(struct?.fields ?? {}).map(([key, value]) => [key, valueToJs(value, `${field}.${key}`)]));
}
