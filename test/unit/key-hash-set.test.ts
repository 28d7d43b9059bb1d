import { describe, expect, it } from 'vitest';
import { hashBytes, KeyHashSet } from '../../src/batch/key-hash-set.js';

describe('KeyHashSet', () => {
  it('answers false for a hash it has not seen and true for one it has, across its growth', () => {
    const set = new KeyHashSet();
    const keys = Array.from({ length: 200_000 }, (_, index) => Buffer.from(`card-${index}`));
    expect(keys.map((key) => set.add(hashBytes(key, 0, key.length))).filter(Boolean).length).toBeLessThan(20);
    expect(keys.every((key) => set.add(hashBytes(key, 0, key.length)))).toBe(true);
  });

  it('keeps a hash of 0 (its empty-slot mark) like any other', () => {
    const set = new KeyHashSet();
    expect(set.add(0)).toBe(false);
    expect(set.add(0)).toBe(true);
  });

  it('hashes only the bytes in range', () => {
    const bytes = Buffer.from('xxcard-1yy');
    expect(hashBytes(bytes, 2, 8)).toBe(hashBytes(Buffer.from('card-1'), 0, 6));
    expect(hashBytes(bytes, 2, 8)).not.toBe(hashBytes(Buffer.from('card-2'), 0, 6));
  });
});
