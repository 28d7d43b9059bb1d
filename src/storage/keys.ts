/**
 * L3 key layout. Every key starts with a one-byte namespace:
 *
 *   'r' view-name 0x00 entity-key        → feature record (see record.ts)
 *   's' view-name 0x00 u32 fingerprint   → JSON [{name, type}]: a schema some record was written with
 *   'g' view-name                        → u32 published snapshot generation of a view with a batch
 *                                          half, f64 its cutoff (0: none; older stores: absent)
 *   'n' view-name                        → u32 next snapshot generation to stage (bumped when one starts)
 *   'm' "bloom-gate"                     → the bloom gate a clean stop left (BloomGate.save); every open
 *                                          removes it, so only the next start after a clean stop sees it
 *   'm' "last-sweep"                     → f64 start of the last complete compaction sweep, then the utf8
 *                                          settings it compacted for (registry digest and retention limits)
 *
 * Snapshot records carry their generation in the prefix:
 * 'r' view-name 0x00 'G' u32 generation entity-key. A published generation
 * is read through its prefix alone, so records of a generation being staged,
 * or of one replaced, are never seen beside it (in L3, L2 or L1).
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
import { writeAscii } from '../util/byte-sink.js';
import type { Int64Like } from '../values/value-codec.js';

export const RECORD_NAMESPACE = 0x72; // 'r'
export const SCHEMA_NAMESPACE = 0x73; // 's'
const PUBLISHED_GENERATION_NAMESPACE = 0x67; // 'g'
const NEXT_GENERATION_NAMESPACE = 0x6e; // 'n'
export const SAVED_BLOOM_GATE_KEY = Buffer.from('mbloom-gate', 'latin1');
export const LAST_SWEEP_KEY = Buffer.from('mlast-sweep', 'latin1');
/** After a batch view's prefix; the entity key's own tags (0x01, 0x02) cannot be mistaken for it. */
const GENERATION_TAG = 0x47; // 'G'

export const STRING_TAG = 0x01;
const INT64_TAG = 0x02;

/** `'r' view 0x00`: the prefix of every record key of a view. */
export function recordKeyPrefix(view: string): Buffer {
  return Buffer.concat([Buffer.of(RECORD_NAMESPACE), Buffer.from(view, 'utf8'), Buffer.of(0)]);
}

/** The prefix of the records of one snapshot generation of a batch view. */
export function generationPrefix(view: string, generation: number): Buffer {
  const prefix = recordKeyPrefix(view);
  const key = Buffer.alloc(prefix.length + 5);
  prefix.copy(key);
  key[prefix.length] = GENERATION_TAG;
  key.writeUInt32BE(generation, prefix.length + 1);
  return key;
}

/** Whether a record key belongs to a snapshot generation rather than to the view's pushed or streamed records. */
export function isSnapshotKey(key: Uint8Array): boolean {
  return key[key.indexOf(0, 1) + 1] === GENERATION_TAG;
}

export function publishedGenerationKey(view: string): Buffer {
  return Buffer.concat([Buffer.of(PUBLISHED_GENERATION_NAMESPACE), Buffer.from(view, 'utf8')]);
}

export function nextGenerationKey(view: string): Buffer {
  return Buffer.concat([Buffer.of(NEXT_GENERATION_NAMESPACE), Buffer.from(view, 'utf8')]);
}

export function schemaKey(view: string, fingerprint: number): Buffer {
  const key = Buffer.alloc(1 + Buffer.byteLength(view) + 1 + 4);
  key[0] = SCHEMA_NAMESPACE;
  key.write(view, 1, 'utf8');
  key.writeUInt32BE(fingerprint, key.length - 4);
  return key;
}

/** The view name of a record key (keys are only ever built by recordKey, so the separator exists). */
export function viewOfRecordKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset + 1, key.indexOf(0, 1) - 1).toString('utf8');
}

export type JoinKeyValue = string | Int64Like;

/**
 * Writes the record key of entity row `row` into `target` at `offset`
 * (`target` must have recordKeyLength bytes there) and returns the offset
 * after it. `columns` holds
 * the view's join key values column by column, in the view's entity order,
 * already type-checked by the caller.
 */
export function writeRecordKey(target: Buffer, prefix: Buffer, types: readonly JoinKeyType[], columns: readonly (readonly JoinKeyValue[])[], row: number, offset = 0): number {
  prefix.copy(target, offset);
  let at = offset + prefix.length;
  for (let index = 0; index < types.length; index++) {
    const value = columns[index]![row]!;
    if (types[index] === 'int64') {
      target[at++] = INT64_TAG;
      const long = Long.isLong(value) ? (value as Long) : Long.fromValue(typeof value === 'bigint' ? value.toString() : (value as number | string));
      target.writeInt32BE(long.high, at);
      target.writeInt32BE(long.low, at + 4);
      at += 8;
    } else {
      target[at++] = STRING_TAG;
      const text = value as string;
      // Short ASCII text, most keys: a one-byte length and the characters, with no native call (bench:import: ~5 % of the import).
      if (text.length < 0x80 && writeAscii(target, at + 1, text)) {
        target[at] = text.length;
        at += 1 + text.length;
        continue;
      }
      let length = Buffer.byteLength(text);
      while (length >= 0x80) {
        target[at++] = (length & 0x7f) | 0x80;
        length >>>= 7;
      }
      target[at++] = length;
      at += target.write(text, at, 'utf8');
    }
  }
  return at;
}

/** An upper bound of writeRecordKey's length for row `row`. */
export function recordKeyLength(prefix: Buffer, types: readonly JoinKeyType[], columns: readonly (readonly JoinKeyValue[])[], row: number): number {
  let size = prefix.length;
  for (let index = 0; index < types.length; index++) {
    // Three UTF-8 bytes per UTF-16 unit at most: a bound without measuring the text.
    size += types[index] === 'int64' ? 9 : 1 + 5 + 3 * (columns[index]![row] as string).length;
  }
  return size;
}

/** The record key of one entity: its join key values in the view's entity order. */
export function recordKey(prefix: Buffer, types: readonly JoinKeyType[], values: readonly JoinKeyValue[]): Buffer {
  const columns = values.map((value) => [value]);
  const key = Buffer.alloc(recordKeyLength(prefix, types, columns, 0));
  return key.subarray(0, writeRecordKey(key, prefix, types, columns, 0));
}
