import type { JoinKeyType } from '../config/registry.js';
import type { JoinKeyValue } from '../storage/keys.js';
import type { ValueType } from '../values/value-codec.js';

/**
 * How one protocol's request values become typed values. The gRPC and HTTP
 * edges each implement it; serving validates and plans once for both. Every
 * method throws an INVALID_ARGUMENT StrataError naming `field` on bad input.
 */
export interface WireValues {
  /** `column` and `row` name the value in errors (`column[row]`); nothing is built from them unless it is bad. */
  joinKey(type: JoinKeyType, raw: unknown, column: string, row: number): JoinKeyValue;
  /** Encoded `Value` bytes; the empty array for NULL. */
  feature(type: ValueType, raw: unknown, field: string): Uint8Array;
  /** Milliseconds since the epoch. */
  timestamp(raw: unknown, field: string): number;
}
