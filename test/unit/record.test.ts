import { describe, expect, it } from 'vitest';
import { CorruptRecordError, FeatureRecord, RECORD_FORMAT, RECORD_OBJECT_OVERHEAD, SingleVersionRecords, encodeRecord, mergeVersions, nextRevision, packedValue, type Version } from '../../src/storage/record.js';
import { ByteSink } from '../../src/util/byte-sink.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { encodeTypedValue, NULL_VALUE } from '../../src/values/value-codec.js';

/** The project's seeded PRNG, with an integer helper: every run sees the same "random" cases. */
function prng(seed: number): { int(min: number, max: number): number } {
  const next = seededRandom(seed);
  return { int: (min, max) => min + Math.floor(next() * (max - min + 1)) };
}

const int64 = (value: number): Uint8Array => encodeTypedValue({ type: 'int64', value });
const text = (value: string): Uint8Array => encodeTypedValue({ type: 'string', value });
const version = (eventTs: number, createdTs: number, slots: (Uint8Array | undefined)[] = [int64(eventTs)]): Version => ({ eventTs, createdTs, slots });
const hex = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : Buffer.from(bytes).toString('hex'));

describe('encodeRecord / FeatureRecord.decode', () => {
  const versions: Version[] = [
    { eventTs: 3_000, createdTs: 3_500, slots: [int64(7), NULL_VALUE, text('DE')] },
    { eventTs: 2_000, createdTs: 2_100, slots: [undefined, text('x'.repeat(300)), NULL_VALUE] },
    { eventTs: -5, createdTs: 0, slots: [int64(-1), undefined, undefined] },
  ];
  const bytes = encodeRecord(0xdeadbeef, 42, 3, versions);
  const record = FeatureRecord.decode(bytes);

  it('keeps the header fields', () => {
    expect(bytes[0]).toBe(RECORD_FORMAT);
    expect(record.schema).toBe(0xdeadbeef);
    expect(record.revision).toBe(42);
    expect(record.featureCount).toBe(3);
    expect(record.versionCount).toBe(3);
  });

  it('keeps event and created times per version', () => {
    expect(record.versions().map((version) => version.eventTs)).toEqual([3_000, 2_000, -5]);
    expect(record.versions().map((version) => version.createdTs)).toEqual([3_500, 2_100, 0]);
  });

  it('distinguishes absent slots (undefined), NULL slots (empty) and values, including a value longer than 127 bytes', () => {
    expect(hex(record.value(0, 0))).toBe(hex(int64(7)));
    expect(record.value(0, 1)).toEqual(new Uint8Array(0));
    expect(hex(record.value(0, 2))).toBe(hex(text('DE')));
    expect(record.value(1, 0)).toBeUndefined();
    expect(hex(record.value(1, 1))).toBe(hex(text('x'.repeat(300))));
    expect(record.value(1, 2)).toEqual(new Uint8Array(0));
    expect(record.value(2, 1)).toBeUndefined();
    expect(record.value(2, 2)).toBeUndefined();
  });

  it('gives back the versions it was built from', () => {
    const back = record.versions();
    expect(back.map((v) => [v.eventTs, v.createdTs, v.slots.map(hex)])).toEqual(versions.map((v) => [v.eventTs, v.createdTs, v.slots.map(hex)]));
    expect(Buffer.from(encodeRecord(record.schema, record.revision, record.featureCount, back)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('encodes a record without versions', () => {
    const empty = FeatureRecord.decode(encodeRecord(1, 1, 4, []));
    expect(empty.versionCount).toBe(0);
    expect(empty.versionAt(Number.MAX_VALUE)).toBe(-1);
    expect(empty.versions()).toEqual([]);
  });

  it('stores the revision as a microsecond write clock', () => {
    const clock = 1_763_800_000_000_123;
    expect(FeatureRecord.decode(encodeRecord(1, clock, 1, [])).revision).toBe(clock);
    // Strictly increasing within a record even if the wall clock stands still or steps back.
    expect(nextRevision(clock, 1_000)).toBe(clock + 1);
    expect(nextRevision(5, 1_763_800_000_001)).toBe(1_763_800_000_001_000);
  });

  it('counts payload, offset table (16-bit: one start per version, a start and a length per cell) and object overhead in memoryBytes', () => {
    const padded = Math.ceil(bytes.byteLength / 4) * 4;
    expect(record.memoryBytes).toBe(padded + 2 * 3 + 2 * 2 * 3 * 3 + RECORD_OBJECT_OVERHEAD);
  });

  it('reads values of 127 bytes and more (varint lengths of two and three bytes), and records past 64 KiB (32-bit offsets)', () => {
    const sizes = [126, 127, 128, 300, 16_383, 16_384, 70_000];
    const values = sizes.map((size, index) => new Uint8Array(size).fill(index + 1));
    const versions = [20, 10].map((eventTs) => ({ eventTs, createdTs: eventTs + 1, slots: [...values, NULL_VALUE, undefined] }));
    const large = FeatureRecord.decode(encodeRecord(1, 9, values.length + 2, versions));
    expect(large.bytes.length).toBeGreaterThan(0xffff);
    expect(large.memoryBytes).toBe(Math.ceil(large.bytes.length / 4) * 4 + 4 * 2 * (1 + 2 * (values.length + 2)) + RECORD_OBJECT_OVERHEAD);
    expect(large.eventTs(1)).toBe(10);
    expect(large.createdTs(1)).toBe(11);
    expect(large.revision).toBe(9);
    for (const version of [0, 1]) {
      values.forEach((value, feature) => {
        const cell = large.cell(version, feature);
        expect(large.valueLength(cell)).toBe(value.length);
        expect(hex(large.bytes.subarray(large.valueStart(cell), large.valueStart(cell) + value.length))).toBe(hex(value));
      });
      expect(large.valueLength(large.cell(version, values.length))).toBe(0);
      expect(large.value(version, values.length + 1)).toBeUndefined();
    }
    const small = FeatureRecord.decode(encodeRecord(1, 9, 2, [{ eventTs: 5, createdTs: 6, slots: [values[1], values[3]] }]));
    expect(small.value(0, 1)!.length).toBe(300);
    expect(small.valueLength(small.cell(0, 0))).toBe(127);
  });

  it('holds a copy of the bytes, in memory it shares with nothing but its table', () => {
    const decoded = FeatureRecord.decode(bytes);
    expect(decoded.bytes).not.toBe(bytes);
    expect(hex(decoded.bytes)).toBe(hex(bytes));
    expect(decoded.bytes.byteOffset).toBe(0);
    expect(decoded.bytes.buffer.byteLength).toBe(decoded.memoryBytes - RECORD_OBJECT_OVERHEAD);
  });

  it('copies bytes that are a window on a larger buffer', () => {
    const slab = Buffer.alloc(bytes.length + 100, 0xee);
    slab.set(bytes, 37);
    const window = slab.subarray(37, 37 + bytes.length);
    const copy = FeatureRecord.decode(window);
    expect(copy.bytes.buffer).not.toBe(slab.buffer);
    expect(copy.bytes.byteOffset).toBe(0);
    expect(copy.bytes.buffer.byteLength).toBe(copy.memoryBytes - RECORD_OBJECT_OVERHEAD);
    slab.fill(0);
    expect(hex(copy.value(0, 2))).toBe(hex(text('DE')));
    expect(copy.schema).toBe(0xdeadbeef);
  });

  it('copies a small Buffer that lives in Node\'s shared allocation pool', () => {
    const pooled = Buffer.from(encodeRecord(1, 1, 1, [version(1, 1)]));
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.byteLength); // Buffer.from uses the 8 KiB pool
    const decoded = FeatureRecord.decode(pooled);
    expect(decoded.bytes.buffer.byteLength).toBe(decoded.memoryBytes - RECORD_OBJECT_OVERHEAD);
  });
});

describe('FeatureRecord.decode rejects corrupt bytes with CorruptRecordError', () => {
  const valid = encodeRecord(7, 3, 2, [
    { eventTs: 20, createdTs: 21, slots: [int64(1), text('abc')] },
    { eventTs: 10, createdTs: 11, slots: [NULL_VALUE, undefined] },
  ]);

  it('rejects empty bytes and an unknown format byte', () => {
    expect(() => FeatureRecord.decode(new Uint8Array(0))).toThrow(CorruptRecordError);
    const wrongFormat = Uint8Array.from(valid);
    wrongFormat[0] = 2;
    expect(() => FeatureRecord.decode(wrongFormat)).toThrow(CorruptRecordError);
  });

  it('rejects every truncation of a valid record', () => {
    for (let length = 0; length < valid.length; length++) {
      expect(() => FeatureRecord.decode(valid.slice(0, length)), `truncated to ${length} bytes`).toThrow(CorruptRecordError);
    }
  });

  it('rejects trailing bytes', () => {
    const longer = new Uint8Array(valid.length + 1);
    longer.set(valid);
    expect(() => FeatureRecord.decode(longer)).toThrow(/1 trailing bytes/);
  });

  it('rejects a slot length that runs past the end', () => {
    const bytes = encodeRecord(1, 1, 1, [version(1, 1, [int64(5)])]);
    bytes[19 + 16] = 0x7f; // slot varint claims 126 value bytes
    expect(() => FeatureRecord.decode(bytes)).toThrow(CorruptRecordError);
  });

  it('rejects a header claiming more versions than the bytes hold', () => {
    const bytes = Uint8Array.from(valid);
    new DataView(bytes.buffer).setUint32(15, 1_000);
    expect(() => FeatureRecord.decode(bytes)).toThrow(CorruptRecordError);
  });

  it('rejects a bare header claiming 100k versions of 65535 features as corrupt', () => {
    const header = new Uint8Array(19);
    const view = new DataView(header.buffer);
    header[0] = RECORD_FORMAT;
    view.setUint16(13, 0xffff);
    view.setUint32(15, 100_000); // cells = 6.5e9: "Invalid typed array length" without allocating
    expect(() => FeatureRecord.decode(header)).toThrow(CorruptRecordError);
  });
});

describe('FeatureRecord.versionAt', () => {
  const record = FeatureRecord.decode(encodeRecord(1, 1, 1, [version(300, 1), version(200, 1), version(100, 1)]));

  it.each([
    [99, -1],
    [100, 2],
    [150, 2],
    [200, 1],
    [299.5, 1],
    [300, 0],
    [1e15, 0],
    [Number.NEGATIVE_INFINITY, -1],
    [Number.POSITIVE_INFINITY, 0],
  ])('at %d reads version %d', (t, expected) => {
    expect(record.versionAt(t)).toBe(expected);
  });
});

describe('mergeVersions', () => {
  const NOW = 1_000_000;
  const KEEP_ALL = NOW; // retention reaching back to time 0
  const summary = (versions: readonly Version[]): [number, number, string | undefined][] => versions.map((v) => [v.eventTs, v.createdTs, hex(v.slots[0])]);

  it('orders versions newest event time first', () => {
    const merged = mergeVersions([version(10, 1)], [version(30, 1), version(20, 1)], NOW, KEEP_ALL);
    expect(merged.map((v) => v.eventTs)).toEqual([30, 20, 10]);
  });

  it('keeps, of two versions with the same event time, the one created later', () => {
    const older = version(10, 5, [int64(1)]);
    const newer = version(10, 6, [int64(2)]);
    expect(summary(mergeVersions([newer], [older], NOW, KEEP_ALL))).toEqual([[10, 6, hex(int64(2))]]);
    expect(summary(mergeVersions([older], [newer], NOW, KEEP_ALL))).toEqual([[10, 6, hex(int64(2))]]);
    expect(summary(mergeVersions([], [newer, older], NOW, KEEP_ALL))).toEqual([[10, 6, hex(int64(2))]]);
  });

  it('lets the later write win when event and created times are equal', () => {
    const first = version(10, 5, [int64(1)]);
    const second = version(10, 5, [int64(2)]);
    expect(summary(mergeVersions([first], [second], NOW, KEEP_ALL))).toEqual([[10, 5, hex(int64(2))]]);
    expect(summary(mergeVersions([], [first, second], NOW, KEEP_ALL))).toEqual([[10, 5, hex(int64(2))]]);
    expect(summary(mergeVersions([], [second, first], NOW, KEEP_ALL))).toEqual([[10, 5, hex(int64(1))]]);
  });

  it('keeps every version at or after now − retention plus the newest older one', () => {
    const existing = [version(990, 1), version(950, 1), version(900, 1), version(850, 1), version(800, 1)];
    const merged = mergeVersions(existing, [], 1_000, 100);
    expect(merged.map((v) => v.eventTs)).toEqual([990, 950, 900, 850]);
  });

  it('keeps only the newest version older than the horizon when none is newer', () => {
    expect(mergeVersions([version(5, 1), version(3, 1)], [version(4, 1)], 1_000, 100).map((v) => v.eventTs)).toEqual([5]);
  });

  it('keeps a version exactly at the horizon and the newest one before it', () => {
    expect(mergeVersions([version(900, 1), version(899, 1), version(898, 1)], [], 1_000, 100).map((v) => v.eventTs)).toEqual([900, 899]);
  });

  it('drops a late write older than the kept boundary version', () => {
    expect(mergeVersions([version(950, 1), version(850, 1)], [version(800, 9)], 1_000, 100).map((v) => v.eventTs)).toEqual([950, 850]);
  });

  it('keeps nothing more than the newest version with retention 0', () => {
    expect(mergeVersions([version(10, 1), version(5, 1)], [version(7, 1)], 1_000, 0).map((v) => v.eventTs)).toEqual([10]);
  });
});

describe('point-in-time reads after merging and pruning match a brute-force oracle', () => {
  interface Write extends Version {
    readonly seq: number;
  }

  /** The newest write with event time ≤ t; ties by the greatest created time, then the latest write. */
  function bruteForce(writes: readonly Write[], t: number): Write | undefined {
    let best: Write | undefined;
    for (const write of writes) {
      if (write.eventTs > t) continue;
      if (
        best === undefined ||
        write.eventTs > best.eventTs ||
        (write.eventTs === best.eventTs && (write.createdTs > best.createdTs || (write.createdTs === best.createdTs && write.seq > best.seq)))
      ) {
        best = write;
      }
    }
    return best;
  }

  it('agrees on versionAt(T) and every value for T ≥ now − retention over 400 seeded random histories', () => {
    const mismatches: string[] = [];
    let queries = 0;
    let prunedSteps = 0;
    for (let iteration = 0; iteration < 400; iteration++) {
      const random = prng(0x5eed0000 + iteration);
      const retention = [0, 1, 10, 50, 200, 1_000][random.int(0, 5)]!;
      let now = random.int(0, 1_000);
      let revision = 0;
      let bytes: Uint8Array | undefined;
      const writes: Write[] = [];
      const steps = random.int(1, 40);
      for (let step = 0; step < steps; step++) {
        now += random.int(0, 60);
        const incoming: Write[] = [];
        const batch = random.int(1, 3);
        for (let index = 0; index < batch; index++) {
          const seq = writes.length + incoming.length;
          const choice = random.int(0, 2);
          incoming.push({
            seq,
            // A narrow window makes equal event times (and equal created times) common.
            eventTs: now - random.int(-20, 250),
            createdTs: random.int(0, 8),
            slots: [int64(seq), choice === 0 ? undefined : choice === 1 ? NULL_VALUE : text(`w${seq}`)],
          });
        }
        writes.push(...incoming);
        const existing = bytes === undefined ? [] : FeatureRecord.decode(bytes).versions();
        bytes = encodeRecord(99, ++revision, 2, mergeVersions(existing, incoming, now, retention));

        const record = FeatureRecord.decode(bytes);
        if (record.versionCount < new Set(writes.map((write) => write.eventTs)).size) prunedSteps++;
        if (record.revision !== revision) mismatches.push(`seed ${iteration}: revision ${record.revision} ≠ ${revision}`);
        for (let index = 1; index < record.versionCount; index++) {
          if (!(record.eventTs(index - 1) > record.eventTs(index))) mismatches.push(`seed ${iteration}: event times not strictly descending`);
        }
        const horizon = now - retention;
        const probes = [horizon, now, now + 1_000, ...writes.map((write) => write.eventTs).filter((t) => t >= horizon)];
        for (let index = 0; index < 20; index++) probes.push(horizon + random.int(0, retention + 300));
        for (const t of probes) {
          queries++;
          const expected = bruteForce(writes, t);
          const at = record.versionAt(t);
          const where = `seed ${iteration} step ${step} T=${t} (now ${now}, retention ${retention})`;
          if (expected === undefined) {
            if (at !== -1) mismatches.push(`${where}: expected no version, got index ${at}`);
            continue;
          }
          if (at === -1) {
            mismatches.push(`${where}: expected write ${expected.seq}, got no version`);
            continue;
          }
          if (record.eventTs(at) !== expected.eventTs || record.createdTs(at) !== expected.createdTs) {
            mismatches.push(`${where}: expected (${expected.eventTs}, ${expected.createdTs}), got (${record.eventTs(at)}, ${record.createdTs(at)})`);
          }
          if (hex(record.value(at, 0)) !== hex(expected.slots[0]) || hex(record.value(at, 1)) !== hex(expected.slots[1])) {
            mismatches.push(`${where}: expected the values of write ${expected.seq}`);
          }
        }
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(queries).toBeGreaterThan(50_000);
    // The histories do exercise pruning (and the oracle still sees every write ever made).
    expect(prunedSteps).toBeGreaterThan(1_000);
  });
});

describe('mergeVersions with a version cap', () => {
  it('keeps only the newest maxVersions, whatever the retention', () => {
    const versions = Array.from({ length: 10 }, (_, index) => ({ eventTs: 1_000 + index, createdTs: 1, slots: [] }));
    const merged = mergeVersions([], versions, 2_000, 1_000_000, 3);
    expect(merged.map((version) => version.eventTs)).toEqual([1_009, 1_008, 1_007]);
  });
});

describe('SingleVersionRecords', () => {
  it('appends, for random rows of packed columns, the bytes encodeRecord makes of each row as one version', () => {
    const random = prng(5);
    const rows = 500;
    // Columns 2 and 4 are absent (features the file does not feed); values run from NULL to 300 bytes, past a one-byte length.
    const columns = [0, 1, undefined, 3, undefined].map((feature) => {
      if (feature === undefined) return undefined;
      const sink = new ByteSink(8);
      const ends = new Uint32Array(rows);
      for (let row = 0; row < rows; row++) {
        const kind = random.int(0, 9);
        if (kind > 0) sink.append(kind < 8 ? int64(random.int(-1_000_000, 1_000_000)) : text('v'.repeat(random.int(0, 300))));
        ends[row] = sink.length;
      }
      return { bytes: sink.bytes, ends };
    });
    const sink = new ByteSink(16);
    const records = new SingleVersionRecords(0xfeedbeef, 1_700_000_000_000_123, columns);
    const expected: Uint8Array[] = [];
    for (let row = 0; row < rows; row++) {
      const eventTs = random.int(-1_000, 2_000_000_000) * 1_000;
      const createdTs = eventTs + random.int(0, 5_000);
      records.append(sink, row, eventTs, createdTs);
      const slots = columns.map((column) => (column === undefined ? undefined : packedValue(column, row)));
      expected.push(encodeRecord(0xfeedbeef, 1_700_000_000_000_123, columns.length, [{ eventTs, createdTs, slots }]));
    }
    expect(Buffer.from(sink.bytes.subarray(0, sink.length)).toString('hex')).toBe(Buffer.concat(expected).toString('hex'));
  });
});
