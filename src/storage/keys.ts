/**
 * L3 key layout. Every key starts with a one-byte namespace:
 *
 *   'r' view-name 0x00 entity-key        → feature record (see record.ts)
 *   's' view-name 0x00 u32 fingerprint   → JSON [{name, type}]: a schema some record was written with
 *   'm' name                             → store metadata (e.g. whether the example was seeded)
 *
 * entity-key is the view's join key values in the view's entity order, each
 * as a tag byte then the value: 0x01 varint(length) utf8 for strings, 0x02
 * and 8 bytes big-endian two's complement for int64. The length prefix makes
 * composite keys unambiguous ("a","bc" ≠ "ab","c"). The same bytes, after a
 * configurable prefix, are the L2 (Redis) key, and their latin1 string is the
 * L1 key.
 */
import Long from 'long';
import type { JoinKeyType } from '../config/registry.js';
import type { Int64Like } from '../values/value-codec.js';

export const RECORD_NAMESPACE = 0x72; // 'r'
export const SCHEMA_NAMESPACE = 0x73; // 's'
export const META_NAMESPACE = 0x6d; // 'm'

const STRING_TAG = 0x01;
const INT64_TAG = 0x02;

/** `'r' view 0x00`: the prefix of every record key of a view. */
export function recordKeyPrefix(view: string): Buffer {
  return Buffer.concat([Buffer.of(RECORD_NAMESPACE), Buffer.from(view, 'utf8'), Buffer.of(0)]);
}

export function schemaKey(view: string, fingerprint: number): Buffer {
  const key = Buffer.alloc(1 + Buffer.byteLength(view) + 1 + 4);
  key[0] = SCHEMA_NAMESPACE;
  key.write(view, 1, 'utf8');
  key.writeUInt32BE(fingerprint, key.length - 4);
  return key;
}

export function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(META_NAMESPACE), Buffer.from(name, 'utf8')]);
}

/** The view name of a record key (keys are only ever built by recordKey, so the separator exists). */
export function viewOfRecordKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset + 1, key.indexOf(0, 1) - 1).toString('utf8');
}

export type JoinKeyValue = string | Int64Like;

/**
 * Builds a record key from a view's prefix and its join key values (already
 * type-checked by the caller).
 */
export function recordKey(prefix: Buffer, types: readonly JoinKeyType[], values: readonly JoinKeyValue[]): Buffer {
  let size = prefix.length;
  for (let index = 0; index < types.length; index++) {
    size += types[index] === 'int64' ? 9 : 1 + 5 + Buffer.byteLength(values[index] as string);
  }
  const key = Buffer.allocUnsafe(size);
  prefix.copy(key, 0);
  let at = prefix.length;
  for (let index = 0; index < types.length; index++) {
    const value = values[index]!;
    if (types[index] === 'int64') {
      key[at++] = INT64_TAG;
      const long = Long.isLong(value) ? (value as Long) : Long.fromValue(typeof value === 'bigint' ? value.toString() : (value as number | string));
      key.writeInt32BE(long.high, at);
      key.writeInt32BE(long.low, at + 4);
      at += 8;
    } else {
      key[at++] = STRING_TAG;
      const text = value as string;
      let length = Buffer.byteLength(text);
      while (length >= 0x80) {
        key[at++] = (length & 0x7f) | 0x80;
        length >>>= 7;
      }
      key[at++] = length;
      at += key.write(text, at, 'utf8');
    }
  }
  return key.subarray(0, at);
}
