import { describe, expect, it } from 'vitest';
import { RecordSlabs } from '../../src/cache/record-slabs.js';
import { FeatureRecord, encodeRecord, type Version } from '../../src/storage/record.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { encodeTypedValue, NULL_VALUE } from '../../src/values/value-codec.js';

const SLAB_BYTES = 4096;
const IDLE_SHARE = 0.1;

/** Versions whose every byte follows from `seed`, so a record can be checked against them at any time. */
function versionsOf(seed: number, versionCount = 1 + (seed % 3)): Version[] {
  return Array.from({ length: versionCount }, (_, version) => ({
    eventTs: 1_000_000 + seed * 10 - version,
    createdTs: 2_000_000 + seed,
    slots: [encodeTypedValue({ type: 'int64', value: seed }), encodeTypedValue({ type: 'string', value: `s${seed}`.repeat(1 + (seed % 7)) }), seed % 2 === 0 ? NULL_VALUE : undefined],
  }));
}

function recordOf(seed: number): FeatureRecord {
  return FeatureRecord.decode(encodeRecord(1, seed, 3, versionsOf(seed)));
}

/** Versions with their slots as hex, so value bytes compare whatever array type holds them. */
function readable(versions: readonly Version[]): unknown[] {
  return versions.map(({ eventTs, createdTs, slots }) => ({ eventTs, createdTs, slots: slots.map((slot) => (slot === undefined ? undefined : Buffer.from(slot).toString('hex'))) }));
}

function expectIntact(record: FeatureRecord, seed: number): void {
  expect(record.revision).toBe(seed);
  expect(readable(record.versions())).toEqual(readable(versionsOf(seed)));
}

describe('RecordSlabs', () => {
  it('moves a record into a shared slab: same bytes, same reads', () => {
    const slabs = new RecordSlabs({ slabBytes: SLAB_BYTES, maxIdleShare: IDLE_SHARE });
    const records = [1, 2, 3].map(recordOf);
    for (const record of records) slabs.adopt(record);
    records.forEach((record, index) => expectIntact(record, index + 1));
    expect(new Set(records.map((record) => record.bytes.buffer)).size).toBe(1);
    expect(records[0]!.bytes.buffer.byteLength).toBe(SLAB_BYTES);
    expect(slabs.bytes).toBe(SLAB_BYTES);
    slabs.adopt(records[0]!);
    expect(slabs.bytes).toBe(SLAB_BYTES);
  });

  it('takes a released record back in where it is, and counts it live again', () => {
    const slabs = new RecordSlabs({ slabBytes: SLAB_BYTES, maxIdleShare: IDLE_SHARE });
    const records: FeatureRecord[] = [];
    // Enough records that the first slab is full and another is current.
    for (let seed = 0; records.length === 0 || records[0]!.bytes.buffer === records.at(-1)!.bytes.buffer; seed++) {
      records.push(recordOf(seed));
      slabs.adopt(records.at(-1)!);
    }
    const first = records[0]!;
    const firstSlab = first.bytes.buffer;
    slabs.release(first);
    slabs.adopt(first);
    expect(first.bytes.buffer).toBe(firstSlab);
    // Its slab empties but for it: counted live, it is moved out before the slab is dropped (uncounted, it would stay behind).
    for (const record of records.slice(1)) if (record.bytes.buffer === firstSlab) slabs.release(record);
    expect(first.bytes.buffer).not.toBe(firstSlab);
    expectIntact(first, 0);
  });

  it('never changes bytes a call still holds: a released record, and views taken before its slab was compacted', () => {
    const slabs = new RecordSlabs({ slabBytes: SLAB_BYTES, maxIdleShare: IDLE_SHARE });
    const held = Array.from({ length: 60 }, (_, index) => recordOf(index));
    for (const record of held) slabs.adopt(record);
    const released = held[3]!;
    const valueBefore = released.value(0, 1)!;
    const keptView = held[4]!.value(0, 1)!;
    const keptBuffer = held[4]!.bytes.buffer;
    slabs.release(released);
    // Churn until every slab of the start has been compacted away.
    for (let index = 0; index < 60; index++) if (index !== 3 && index !== 4) slabs.release(held[index]!);
    for (let seed = 100; seed < 400; seed++) {
      const record = recordOf(seed);
      slabs.adopt(record);
      if (seed % 4 !== 0) slabs.release(record);
    }
    expect(held[4]!.bytes.buffer).not.toBe(keptBuffer);
    expectIntact(released, 3);
    expectIntact(held[4]!, 4);
    expect(Buffer.from(valueBefore).toString('hex')).toBe(Buffer.from(encodeTypedValue({ type: 'string', value: 's3'.repeat(4) })).toString('hex'));
    expect(Buffer.from(keptView).toString('hex')).toBe(Buffer.from(encodeTypedValue({ type: 'string', value: 's4'.repeat(5) })).toString('hex'));
  });

  it('against an oracle: random adopts and releases leave every held record intact and idle space bounded', () => {
    const random = seededRandom(2026);
    const slabs = new RecordSlabs({ slabBytes: SLAB_BYTES, maxIdleShare: IDLE_SHARE });
    const live = new Map<number, FeatureRecord>();
    let liveBytes = 0;
    let nextSeed = 0;
    for (let step = 0; step < 20_000; step++) {
      // Grow to ~300 records, then churn around that size.
      if (live.size === 0 || random() < (live.size < 300 ? 0.7 : 0.5)) {
        const seed = nextSeed++;
        const record = recordOf(seed);
        slabs.adopt(record);
        live.set(seed, record);
        liveBytes += record.footprint;
      } else {
        const seeds = [...live.keys()];
        const seed = seeds[Math.floor(random() * seeds.length)]!;
        const record = live.get(seed)!;
        slabs.release(record);
        live.delete(seed);
        liveBytes -= record.footprint;
        // After a release (what compacts): idle space beyond the current slab's unfilled end stays within the share.
        expect(slabs.bytes - liveBytes).toBeLessThanOrEqual(IDLE_SHARE * slabs.bytes + SLAB_BYTES);
      }
      if (step % 1000 === 0) for (const [seed, record] of live) expectIntact(record, seed);
    }
    for (const [seed, record] of live) expectIntact(record, seed);
  });
});
