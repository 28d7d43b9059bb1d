import { describe, expect, it } from 'vitest';
import { BloomFilter } from '../../src/cache/bloom-filter.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';

const CARD = recordKeyPrefix('card_profile');
const USER_DEVICE = recordKeyPrefix('user_device');

/** Realistic record keys: the same shapes the gate sees in production. */
function addedKey(index: number): Buffer {
  return index % 2 === 0 ? recordKey(CARD, ['string'], [`card-${index}`]) : recordKey(USER_DEVICE, ['string', 'int64'], [`user-${index}`, index * 7919]);
}
function neverAddedKey(index: number): Buffer {
  return index % 2 === 0 ? recordKey(CARD, ['string'], [`card-x${index}`]) : recordKey(USER_DEVICE, ['string', 'int64'], [`user-${index}`, -index - 1]);
}

/** Reads bit `offset` in Redis order (bit 0 = high bit of byte 0). */
function redisBit(bytes: Uint8Array, offset: number): boolean {
  return (bytes[offset >>> 3]! & (0x80 >>> (offset & 7))) !== 0;
}

describe('BloomFilter', () => {
  const COUNT = 200_000;
  const added = Array.from({ length: COUNT }, (_, index) => addedKey(index));
  const filter = new BloomFilter(COUNT, 0.01);
  for (const key of added) filter.add(key);

  it('sizes itself with the optimal bit and hash counts for its capacity and rate', () => {
    // m = -n ln p / ln²2 ≈ 9.585 bits per key and k = m/n ln 2 ≈ 6.64 → 7 for 1 %.
    expect(filter.bitCount % 8).toBe(0);
    expect(filter.bitCount / COUNT).toBeCloseTo(9.585, 2);
    expect(filter.hashCount).toBe(7);
    expect(filter.byteSize).toBe(filter.bitCount / 8);
    expect(new BloomFilter(1, 0.01).bitCount).toBe(64);
  });

  it('has no false negatives over 200k added keys', () => {
    let missing = 0;
    for (const key of added) if (!filter.has(key)) missing++;
    expect(missing).toBe(0);
  });

  it('keeps the false-positive rate over 100k never-added keys near the configured 1 % (under 3 %)', () => {
    let positives = 0;
    for (let index = 0; index < 100_000; index++) if (filter.has(neverAddedKey(index))) positives++;
    expect(positives / 100_000).toBeLessThan(0.03);
    expect(positives / 100_000).toBeLessThan(0.015);
  });

  it('answers no for everything while empty', () => {
    const empty = new BloomFilter(1_000, 0.01);
    for (let index = 0; index < 1_000; index++) expect(empty.has(addedKey(index))).toBe(false);
  });

  it('handles the empty key', () => {
    const small = new BloomFilter(10, 0.01);
    expect(small.has(new Uint8Array(0))).toBe(false);
    small.add(new Uint8Array(0));
    expect(small.has(new Uint8Array(0))).toBe(true);
  });

  it('returns hashCount offsets below bitCount: exactly the bits add() sets, in Redis bit order', () => {
    const small = new BloomFilter(1_000, 0.01);
    const key = addedKey(12345);
    const offsets = small.offsets(key);
    expect(offsets).toHaveLength(small.hashCount);
    for (const offset of offsets) {
      expect(Number.isInteger(offset)).toBe(true);
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset).toBeLessThan(small.bitCount);
    }
    small.add(key);
    const snapshot = small.snapshot();
    const set: number[] = [];
    for (let offset = 0; offset < small.bitCount; offset++) if (redisBit(snapshot, offset)) set.push(offset);
    expect(set).toEqual([...new Set(offsets)].sort((a, b) => a - b));
  });

  it('merges another filter\'s bits so it answers yes for that filter\'s keys', () => {
    const a = new BloomFilter(5_000, 0.01);
    const b = new BloomFilter(5_000, 0.01);
    for (let index = 0; index < 5_000; index++) a.add(addedKey(index));
    b.add(neverAddedKey(1));
    b.merge(a.snapshot());
    for (let index = 0; index < 5_000; index++) expect(b.has(addedKey(index))).toBe(true);
    expect(b.has(neverAddedKey(1))).toBe(true);
  });

  it('merges a shorter bit string (a Redis string not yet grown to full length)', () => {
    const a = new BloomFilter(1_000, 0.01);
    a.add(addedKey(1));
    const b = new BloomFilter(1_000, 0.01);
    const maxOffset = Math.max(...a.offsets(addedKey(1)));
    b.merge(a.snapshot().subarray(0, (maxOffset >>> 3) + 1));
    expect(b.has(addedKey(1))).toBe(true);
  });

  it('hands out a snapshot that is a copy', () => {
    const small = new BloomFilter(100, 0.01);
    small.add(addedKey(1));
    small.snapshot().fill(0);
    expect(small.has(addedKey(1))).toBe(true);
  });
});
