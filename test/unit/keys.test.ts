import Long from 'long';
import { describe, expect, it } from 'vitest';
import {
  RECORD_NAMESPACE,
  SCHEMA_NAMESPACE,
  recordKey,
  recordKeyPrefix,
  schemaKey,
  viewOfRecordKey,
  type JoinKeyValue,
} from '../../src/storage/keys.js';
import type { JoinKeyType } from '../../src/config/registry.js';

const hex = (key: Uint8Array): string => Buffer.from(key).toString('hex');
const key = (view: string, types: JoinKeyType[], values: JoinKeyValue[]): Buffer => recordKey(recordKeyPrefix(view), types, values);

describe('recordKeyPrefix', () => {
  it('is the record namespace, the view name and a 0x00 separator', () => {
    expect(hex(recordKeyPrefix('card'))).toBe('72' + Buffer.from('card').toString('hex') + '00');
    expect(recordKeyPrefix('card')[0]).toBe(RECORD_NAMESPACE);
  });
});

describe('recordKey', () => {
  it('lays out a string key as tag 0x01, length varint and utf8 bytes after the prefix', () => {
    expect(hex(key('v', ['string'], ['abc']))).toBe('7276' + '00' + '01' + '03' + '616263');
  });

  it('lays out an int64 key as tag 0x02 and 8 bytes big-endian two\'s complement', () => {
    expect(hex(key('v', ['int64'], [1]))).toBe('727600' + '02' + '0000000000000001');
    expect(hex(key('v', ['int64'], [-1]))).toBe('727600' + '02' + 'ffffffffffffffff');
    expect(hex(key('v', ['int64'], ['-9223372036854775808']))).toBe('727600' + '02' + '8000000000000000');
    expect(hex(key('v', ['int64'], ['9223372036854775807']))).toBe('727600' + '02' + '7fffffffffffffff');
  });

  it('keeps composite keys unambiguous: ("a","bc") differs from ("ab","c")', () => {
    const types: JoinKeyType[] = ['string', 'string'];
    expect(key('v', types, ['a', 'bc']).equals(key('v', types, ['ab', 'c']))).toBe(false);
    expect(key('v', types, ['', 'abc']).equals(key('v', types, ['abc', '']))).toBe(false);
    expect(key('v', types, ['a\u0000', 'b']).equals(key('v', types, ['a', '\u0000b']))).toBe(false);
  });

  it('gives distinct keys to every split of one string between two parts', () => {
    const whole = 'user-42device-7';
    const keys = new Set<string>();
    for (let cut = 0; cut <= whole.length; cut++) keys.add(hex(key('v', ['string', 'string'], [whole.slice(0, cut), whole.slice(cut)])));
    expect(keys.size).toBe(whole.length + 1);
  });

  it('distinguishes a string key from an int64 key with the same digits', () => {
    expect(key('v', ['string'], ['1']).equals(key('v', ['int64'], ['1']))).toBe(false);
  });

  it('gives the same bytes for an int64 as a number, a digit string, a bigint and a Long', () => {
    for (const value of ['0', '42', '-42', '9007199254740993', '-9007199254740993', '9223372036854775807', '-9223372036854775808']) {
      const fromString = key('v', ['int64'], [value]);
      expect(hex(key('v', ['int64'], [Long.fromString(value)])), value).toBe(hex(fromString));
      expect(hex(key('v', ['int64'], [BigInt(value)])), value).toBe(hex(fromString));
      if (Number.isSafeInteger(Number(value))) expect(hex(key('v', ['int64'], [Number(value)])), value).toBe(hex(fromString));
    }
  });

  it('keeps int64 values beyond 2^53 apart that a double would merge', () => {
    expect(key('v', ['int64'], ['9007199254740992']).equals(key('v', ['int64'], ['9007199254740993']))).toBe(false);
  });

  it('encodes unicode strings as utf8 with a byte (not code unit) length', () => {
    const value = 'Zoë 🚀 東京';
    const bytes = Buffer.from(value, 'utf8');
    const built = key('v', ['string'], [value]);
    expect(built[4]).toBe(bytes.length);
    expect(built.subarray(5).toString('utf8')).toBe(value);
    expect(key('v', ['string'], ['é']).equals(key('v', ['string'], ['e\u0301']))).toBe(false);
  });

  it('uses a multi-byte length varint for strings of 128 bytes and more', () => {
    const long = 'x'.repeat(300);
    const built = key('v', ['string'], [long]);
    // 300 = 0b10_0101100 → 0xac 0x02
    expect(hex(built.subarray(3, 6))).toBe('01ac02');
    expect(built.length).toBe(3 + 1 + 2 + 300);
    expect(built.subarray(6).toString('utf8')).toBe(long);
  });

  it('builds a composite key of mixed types in the given order', () => {
    const built = key('user_store', ['string', 'int64'], ['u1', 7]);
    expect(hex(built)).toBe(hex(recordKeyPrefix('user_store')) + '01' + '02' + Buffer.from('u1').toString('hex') + '02' + '0000000000000007');
  });

  it('returns a key with no spare bytes', () => {
    const built = key('v', ['string', 'int64'], ['ab', 1]);
    expect(built.length).toBe(3 + 4 + 9);
  });
});

describe('viewOfRecordKey', () => {
  it.each(['card_profile', 'v', 'user_device'])('recovers the view name %s from a record key', (view) => {
    expect(viewOfRecordKey(key(view, ['string', 'int64'], ['a', 5]))).toBe(view);
  });

  it('works on a key that is a window of a larger buffer', () => {
    const built = key('card_profile', ['string'], ['c1']);
    const slab = Buffer.alloc(built.length + 20, 0x41);
    built.copy(slab, 10);
    expect(viewOfRecordKey(slab.subarray(10, 10 + built.length))).toBe('card_profile');
  });

  it('works on the latin1 round trip used for L1 ids', () => {
    const built = key('device_reputation', ['string'], ['📱']);
    expect(viewOfRecordKey(Buffer.from(built.toString('latin1'), 'latin1'))).toBe('device_reputation');
  });
});

describe('schemaKey', () => {
  it('lays out a schema key as namespace, view and a big-endian fingerprint', () => {
    const built = schemaKey('card', 0x01020304);
    expect(built[0]).toBe(SCHEMA_NAMESPACE);
    expect(hex(built)).toBe('73' + Buffer.from('card').toString('hex') + '00' + '01020304');
  });

  it('keeps the record and schema namespaces apart', () => {
    expect(recordKeyPrefix('a')[0]).not.toBe(schemaKey('a', 1)[0]);
  });
});
