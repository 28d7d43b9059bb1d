/**
 * The 32-bit hashes of the record keys an import has staged, in an
 * open-addressed table: which rows may repeat an entity staged before. An
 * absent hash proves a key new; a present one only makes it a suspect
 * (another key may share the hash), which the importer then checks against
 * what it staged. 4–8 bytes per entity and no object, where the Set of key
 * strings it replaces held a string per entity: ~10 % of a 300k-row import's
 * time with the collections it caused (bench:import).
 */
export class KeyHashSet {
  /** 0 is an empty slot; a hash that is 0 is stored as 1 (a shared hash only makes more suspects). */
  private table: Int32Array;
  private size = 0;

  /** Sized for `expectedKeys` when known (the row count of parquet and Avro files), so that it never rehashes. */
  constructor(expectedKeys = 0) {
    this.table = new Int32Array(Math.max(1 << 16, 2 ** Math.ceil(Math.log2(2 * expectedKeys + 1))));
  }

  /** Adds the hash of a key; true when it was present already. */
  add(hash: number): boolean {
    const stored = hash === 0 ? 1 : hash;
    if (2 * (this.size + 1) > this.table.length) this.grow();
    const mask = this.table.length - 1;
    for (let slot = stored & mask; ; slot = (slot + 1) & mask) {
      const found = this.table[slot]!;
      if (found === stored) return true;
      if (found === 0) {
        this.table[slot] = stored;
        this.size++;
        return false;
      }
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Int32Array(old.length * 2);
    const mask = this.table.length - 1;
    for (const stored of old) {
      if (stored === 0) continue;
      let slot = stored & mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = stored;
    }
  }
}

/** FNV-1a of `bytes[start…end)`, its bits mixed (murmur3's finalizer) so that the table's low-bit slots spread. */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let index = start; index < end; index++) hash = Math.imul(hash ^ bytes[index]!, 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  return hash ^ (hash >>> 16);
}
