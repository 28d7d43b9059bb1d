import type { FeatureRecord } from '../storage/record.js';

interface Slab {
  readonly memory: ArrayBuffer;
  /** Where the next record goes: slabs are filled front to back, never reused in place. */
  used: number;
  /** Footprint bytes of the records it holds. */
  live: number;
  readonly records: Set<FeatureRecord>;
}

/**
 * Where L1 keeps the bytes of the feature records it holds: packed into a
 * few large ArrayBuffers (slabs) instead of one buffer per record. Each
 * buffer costs ~180 B of native bookkeeping besides its heap object, and
 * every one of L1's ~100k buffers is tracked by each GC (see
 * ARRAY_BUFFER_NATIVE_BYTES).
 *
 * Space is never reused in place. A record taken in is copied to the end of
 * the current slab; when more than `maxIdleShare` of the slab bytes hold
 * records no longer here, the sparsest slab's records are copied to the
 * current one (FeatureRecord.moveTo repoints them, same bytes) and the slab
 * is dropped. A call still holding a record released meanwhile, or views
 * taken before a move, keeps reading the old slab, unchanged, which the GC
 * frees after the last of them: no reader can see bytes change under it.
 *
 * Cost, in the worst case for this scheme (releases uniformly at random,
 * so every slab stays ~90 % live; 100k records of 590 B, 256 KiB slabs,
 * 200k release + adopt, two runs): a release takes 1.4–1.7 µs at the
 * median; one in ~85 compacts a slab, 170–380 µs on the serving thread;
 * 4.8 µs per release on average (GC pauses included). An LRU releases mostly its oldest entries, which empties old
 * slabs first and compacts less.
 */
export class RecordSlabs {
  private readonly slabBytes: number;
  private readonly maxIdleShare: number;
  private readonly slabs = new Map<ArrayBuffer, Slab>();
  private current: Slab;
  private heldBytes = 0;
  private liveBytes = 0;

  constructor(options: { slabBytes: number; maxIdleShare: number }) {
    this.slabBytes = options.slabBytes;
    this.maxIdleShare = options.maxIdleShare;
    this.current = this.newSlab();
  }

  /** The largest footprint taken in: a quarter slab, so the tail a slab wastes stays small. */
  get maxFootprint(): number {
    return this.slabBytes >>> 2;
  }

  /** Slab bytes held, records and idle space. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Moves `record` (footprint ≤ maxFootprint) into the current slab, unless it is in one already. */
  adopt(record: FeatureRecord): void {
    const slab = this.slabs.get(record.bytes.buffer as ArrayBuffer);
    if (slab === undefined) this.place(record, record.footprint);
    // Released, then taken in again: its bytes are still where they were (space is never reused).
    else if (!slab.records.has(record)) this.hold(slab, record, record.footprint);
  }

  /** The record left L1: its space becomes idle, and a slab is compacted once too much is. */
  release(record: FeatureRecord): void {
    const slab = this.slabs.get(record.bytes.buffer as ArrayBuffer);
    if (slab === undefined || !slab.records.delete(record)) return;
    const footprint = record.footprint;
    slab.live -= footprint;
    this.liveBytes -= footprint;
    if (slab.live === 0 && slab !== this.current) this.drop(slab);
    else this.compact();
  }

  /** Forgets every record at once (L1 was cleared): no compaction on the way, and releases after this find nothing. */
  clear(): void {
    this.slabs.clear();
    this.heldBytes = 0;
    this.liveBytes = 0;
    this.current = this.newSlab();
  }

  private place(record: FeatureRecord, footprint: number): void {
    if (this.current.used + footprint > this.slabBytes) this.current = this.newSlab();
    const slab = this.current;
    record.moveTo(slab.memory, slab.used);
    slab.used = (slab.used + footprint + 3) & ~3;
    this.hold(slab, record, footprint);
  }

  /** Counts `record` (whose bytes are in `slab`) live. */
  private hold(slab: Slab, record: FeatureRecord, footprint: number): void {
    slab.live += footprint;
    slab.records.add(record);
    this.liveBytes += footprint;
  }

  /** Idle space: held bytes that hold no record, but for the current slab's unfilled end. */
  private get idleBytes(): number {
    return this.heldBytes - this.liveBytes - (this.slabBytes - this.current.used);
  }

  private compact(): void {
    // Each pass drops a slab at most as full as the average: bounded by the slabs there are.
    for (let passes = this.slabs.size; passes > 0 && this.idleBytes > this.maxIdleShare * this.heldBytes; passes--) {
      let sparsest: Slab | undefined;
      for (const slab of this.slabs.values()) if (slab !== this.current && (sparsest === undefined || slab.live < sparsest.live)) sparsest = slab;
      if (sparsest === undefined) return;
      for (const record of sparsest.records) this.place(record, record.footprint);
      this.liveBytes -= sparsest.live;
      this.drop(sparsest);
    }
  }

  private newSlab(): Slab {
    const slab: Slab = { memory: new ArrayBuffer(this.slabBytes), used: 0, live: 0, records: new Set() };
    this.slabs.set(slab.memory, slab);
    this.heldBytes += this.slabBytes;
    return slab;
  }

  private drop(slab: Slab): void {
    this.slabs.delete(slab.memory);
    this.heldBytes -= this.slabBytes;
  }
}
