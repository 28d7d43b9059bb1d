import { describe, expect, it } from 'vitest';
import { BloomFilter } from '../../src/cache/bloom-filter.js';
import { BloomGate, FALSE_POSITIVE_RATE } from '../../src/cache/bloom-gate.js';
import { recordKey, recordKeyPrefix } from '../../src/storage/keys.js';

const CARD = recordKeyPrefix('card_profile');
const STORE = recordKeyPrefix('store_stats');

function addedKey(index: number): Buffer {
  return index % 3 === 0 ? recordKey(STORE, ['int64'], [index]) : recordKey(CARD, ['string'], [`card-${index}`]);
}
function neverAddedKey(index: number): Buffer {
  return index % 3 === 0 ? recordKey(STORE, ['int64'], [-index - 1]) : recordKey(CARD, ['string'], [`card-x${index}`]);
}

describe('BloomGate (local part only)', () => {
  const COUNT = 200_000;
  const added = Array.from({ length: COUNT }, (_, index) => addedKey(index));
  const gate = new BloomGate(1_000, undefined);
  // Layer capacities 1000, 2000, 4000, …: check all keys so far right after each growth.
  const checkpoints = new Set<number>();
  for (let filled = 1_000, layer = 1_000; filled < COUNT; layer *= 2, filled += layer) checkpoints.add(filled + 1);
  const missedAtCheckpoints: number[] = [];
  for (let index = 0; index < COUNT; index++) {
    gate.add(added[index]!);
    if (checkpoints.has(index + 1)) {
      let missed = 0;
      for (let earlier = 0; earlier <= index; earlier++) if (!gate.mightContain(added[earlier]!)) missed++;
      missedAtCheckpoints.push(missed);
    }
  }

  it('grows past its initial capacity several times', () => {
    // 1000 + 2000 + … + 128000 = 255000 ≥ 200k: eight layers, seven growths.
    expect(missedAtCheckpoints.length).toBeGreaterThanOrEqual(7);
  });

  it('has no false negatives right after each growth', () => {
    expect(missedAtCheckpoints.every((missed) => missed === 0)).toBe(true);
  });

  it('has no false negatives over all 200k added keys', () => {
    let missed = 0;
    for (let index = 0; index < COUNT; index++) if (!gate.mightContain(added[index]!)) missed++;
    expect(missed).toBe(0);
  });

  it('keeps the false-positive rate over 100k never-added keys under 3 %', () => {
    let positives = 0;
    for (let index = 0; index < 100_000; index++) if (gate.mightContain(neverAddedKey(index))) positives++;
    expect(positives / 100_000).toBeLessThan(0.03);
  });

  it('counts the keys added, less the few its layers already (falsely) contained', () => {
    expect(gate.size).toBeLessThanOrEqual(COUNT);
    expect(gate.size).toBeGreaterThan(COUNT * 0.95);
  });

  it('does not count a key added twice', () => {
    const small = new BloomGate(1_000, undefined);
    small.add(addedKey(1));
    small.add(addedKey(1));
    expect(small.size).toBe(1);
  });

  it('answers no for every key while empty', () => {
    const empty = new BloomGate(1_000, undefined);
    for (let index = 0; index < 1_000; index++) expect(empty.mightContain(addedKey(index))).toBe(false);
  });

  it('has no shared part: add returns no offsets and there is no snapshot', () => {
    const small = new BloomGate(1_000, undefined);
    expect(small.add(addedKey(1))).toEqual([]);
    expect(small.sharedSnapshot()).toBeUndefined();
    small.mergeShared(new Uint8Array(16).fill(0xff));
    expect(small.mightContain(neverAddedKey(1))).toBe(false);
  });
});

describe('BloomGate shared part', () => {
  const SHARED = 10_000;

  it('names its geometry as bitCount x hashCount of a filter of the shared capacity at the gate false-positive rate', () => {
    const filter = new BloomFilter(SHARED, FALSE_POSITIVE_RATE);
    expect(BloomGate.sharedGeometry(SHARED)).toBe(`${filter.bitCount}x${filter.hashCount}`);
    expect(BloomGate.sharedGeometry(SHARED)).not.toBe(BloomGate.sharedGeometry(SHARED * 2));
    expect(new BloomGate(1_000, SHARED).sharedSnapshot()!.length * 8).toBe(filter.bitCount);
  });

  it('returns, for each added key, the shared bit offsets to publish', () => {
    const gate = new BloomGate(1_000, SHARED);
    const offsets = gate.add(addedKey(7));
    const filter = new BloomFilter(SHARED, FALSE_POSITIVE_RATE);
    expect(offsets).toEqual(filter.offsets(addedKey(7)));
    // Adding again (already known locally) still returns the offsets.
    expect(gate.add(addedKey(7))).toEqual(offsets);
  });

  it('lets a replica learn keys written through another from its snapshot', () => {
    const writer = new BloomGate(1_000, SHARED);
    const reader = new BloomGate(1_000, SHARED);
    for (let index = 0; index < 5_000; index++) writer.add(addedKey(index));
    expect(reader.mightContain(addedKey(0))).toBe(false);
    reader.mergeShared(writer.sharedSnapshot()!);
    for (let index = 0; index < 5_000; index++) expect(reader.mightContain(addedKey(index))).toBe(true);
    expect(reader.size).toBe(0);
  });

  it('lets a replica learn keys from the offsets published with SETBIT (Redis bit order)', () => {
    const writer = new BloomGate(1_000, SHARED);
    const reader = new BloomGate(1_000, SHARED);
    const redisString = new Uint8Array(reader.sharedSnapshot()!.length);
    for (let index = 0; index < 2_000; index++) {
      for (const offset of writer.add(addedKey(index))) redisString[offset >>> 3]! |= 0x80 >>> (offset & 7); // SETBIT key offset 1
    }
    reader.mergeShared(redisString);
    for (let index = 0; index < 2_000; index++) expect(reader.mightContain(addedKey(index))).toBe(true);
  });

  it('has no false negatives and a false-positive rate under 3 % with local and shared parts together', () => {
    const gate = new BloomGate(1_000, SHARED);
    for (let index = 0; index < SHARED; index++) gate.add(addedKey(index));
    let missed = 0;
    for (let index = 0; index < SHARED; index++) if (!gate.mightContain(addedKey(index))) missed++;
    expect(missed).toBe(0);
    let positives = 0;
    for (let index = 0; index < 50_000; index++) if (gate.mightContain(neverAddedKey(index))) positives++;
    expect(positives / 50_000).toBeLessThan(0.03);
  });

  it('keeps no false negatives when the shared filter holds more keys than it was sized for', () => {
    const gate = new BloomGate(1_000, 1_000);
    const other = new BloomGate(1_000, 1_000);
    for (let index = 0; index < 10_000; index++) other.add(addedKey(index));
    gate.mergeShared(other.sharedSnapshot()!);
    for (let index = 0; index < 10_000; index++) expect(gate.mightContain(addedKey(index))).toBe(true);
  });
});

describe('BloomGate save and restore', () => {
  const VIEWS = ['card_profile', 'store_stats'];
  const gateWith = (count: number, shared: number | undefined): BloomGate => {
    const gate = new BloomGate(1_000, shared);
    for (let index = 0; index < count; index++) gate.add(addedKey(index));
    return gate;
  };

  it('restores every layer and the shared part: same answers for added and never-added keys, and it keeps growing', () => {
    const original = gateWith(5_000, 10_000);
    const restored = BloomGate.restore(original.save(VIEWS), VIEWS, 1_000, 10_000)!;
    expect(restored.size).toBe(original.size);
    for (let index = 0; index < 5_000; index++) expect(restored.mightContain(addedKey(index))).toBe(true);
    for (let index = 0; index < 20_000; index++) expect(restored.mightContain(neverAddedKey(index))).toBe(original.mightContain(neverAddedKey(index)));
    expect(restored.sharedSnapshot()).toEqual(original.sharedSnapshot());
    for (let index = 5_000; index < 20_000; index++) restored.add(addedKey(index));
    // Exactly where a gate that was never saved would be after the same adds.
    expect(restored.save(VIEWS)).toEqual(gateWith(20_000, 10_000).save(VIEWS));
    for (let index = 0; index < 20_000; index++) expect(restored.mightContain(addedKey(index))).toBe(true);
  });

  it.each([
    ['a view it was not built over', ['card_profile', 'store_stats', 'new_view'], 1_000, undefined, undefined],
    ['a larger --bloom-capacity', VIEWS, 2_000, undefined, undefined],
    // The new geometry's shared bits would lack this process's keys, which other replicas read from L2.
    ['another shared capacity', VIEWS, 1_000, 20_000, 10_000],
  ])('is not used for %s', (_what, views, capacity, savedShared, shared) => {
    expect(BloomGate.restore(gateWith(100, savedShared).save(VIEWS), views, capacity, shared)).toBeUndefined();
  });

  it.each([
    ['saved without L2, restored with it', undefined, 10_000],
    ['saved with L2, restored without it', 10_000, undefined],
  ])('%s: keeps every local key, and the shared part starts empty', (_what, savedShared, shared) => {
    const original = gateWith(3_000, savedShared);
    const restored = BloomGate.restore(original.save(VIEWS), VIEWS, 1_000, shared)!;
    expect(restored.size).toBe(original.size);
    for (let index = 0; index < 3_000; index++) expect(restored.mightContain(addedKey(index))).toBe(true);
    expect(restored.sharedSnapshot()).toEqual(shared === undefined ? undefined : new BloomGate(1_000, shared).sharedSnapshot());
    // A key added after the restore is published to the shared part as usual.
    if (shared !== undefined) expect(restored.add(addedKey(3_000)).length).toBeGreaterThan(0);
  });

  it('is not used when cut short', () => {
    const saved = gateWith(100, undefined).save(VIEWS);
    expect(BloomGate.restore(saved.subarray(0, saved.length - 1), VIEWS, 1_000, undefined)).toBeUndefined();
  });
});
