/**
 * How often each key was asked for lately, approximately: TinyLFU's
 * count-min sketch. Four small counters per key (indexes by double hashing
 * one FNV-1a pass over the id), read as their minimum, so a key is never
 * under-counted and rarely over-counted. A key's first ask only sets its
 * bits in a doorkeeper bit set: keys asked for once (a scan) never reach the
 * counters, which would otherwise fill with their collisions. Every
 * `sampleSize` asks all counters are halved and the doorkeeper cleared, so
 * popularity fades and the sketch follows a workload that shifts.
 */
const COUNTERS_PER_KEY = 4;
const DOORKEEPER_BITS_PER_KEY = 2;
/** Counters saturate here: frequencies only need comparing, and a small cap makes halving forget quickly. */
const MAX_COUNT = 15;
/** Halve after this many asks per counter slot (TinyLFU's sample size W over the table's width). */
const SAMPLE_PER_SLOT = 10;

// The two hashes of the last id hashed: module scratch, so an ask allocates nothing.
let firstHash = 0;
let stepHash = 0;

function hashId(id: string): void {
  let h = 0x811c9dc5;
  for (let index = 0; index < id.length; index++) h = Math.imul(h ^ id.charCodeAt(index), 0x01000193);
  firstHash = h;
  // An odd step visits distinct slots of a power-of-two table.
  stepHash = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) | 1;
}

/** Four bits a counter, eight counters a word: MAX_COUNT fits, and halving is one shift and mask per word. */
const COUNTERS_PER_WORD = 8;
const HALF_OF_EACH_COUNTER = 0x77777777;

export class FrequencySketch {
  private readonly counters: Uint32Array;
  private readonly mask: number;
  /** Eight bits per counter slot: it holds every key asked for within a sample, most of them once. */
  private readonly doorkeeper: Uint8Array;
  private readonly doorkeeperMask: number;
  private readonly sampleSize: number;
  private asks = 0;

  /** `expectedKeys`: about how many keys compete at once; the table gets the next power of two at or above it. */
  constructor(expectedKeys: number) {
    const width = 2 ** Math.ceil(Math.log2(Math.max(1024, expectedKeys)));
    this.counters = new Uint32Array(width / COUNTERS_PER_WORD);
    this.mask = width - 1;
    this.doorkeeper = new Uint8Array(width);
    this.doorkeeperMask = width * 8 - 1;
    this.sampleSize = SAMPLE_PER_SLOT * width;
  }

  increment(id: string): void {
    hashId(id);
    if (++this.asks >= this.sampleSize) this.halve();
    if (!this.passDoorkeeper()) return;
    for (let round = 0, h = firstHash; round < COUNTERS_PER_KEY; round++, h = (h + stepHash) | 0) {
      const slot = h & this.mask;
      const shift = (slot & 7) << 2;
      if (((this.counters[slot >>> 3]! >>> shift) & MAX_COUNT) < MAX_COUNT) this.counters[slot >>> 3]! += 1 << shift;
    }
  }

  /** Asks counted lately: the doorkeeper's one, plus the counters' least. */
  frequency(id: string): number {
    hashId(id);
    if (!this.doorkeeperHas()) return 0;
    let least = MAX_COUNT;
    for (let round = 0, h = firstHash; round < COUNTERS_PER_KEY; round++, h = (h + stepHash) | 0) {
      const slot = h & this.mask;
      least = Math.min(least, (this.counters[slot >>> 3]! >>> ((slot & 7) << 2)) & MAX_COUNT);
    }
    return 1 + least;
  }

  /** For the id hashed last: true when the doorkeeper had seen it; marks it seen either way. */
  private passDoorkeeper(): boolean {
    let seen = true;
    for (let round = 0, h = firstHash ^ stepHash; round < DOORKEEPER_BITS_PER_KEY; round++, h = (h + stepHash) | 0) {
      const bit = h & this.doorkeeperMask;
      const mask = 1 << (bit & 7);
      if ((this.doorkeeper[bit >>> 3]! & mask) === 0) {
        seen = false;
        this.doorkeeper[bit >>> 3]! |= mask;
      }
    }
    return seen;
  }

  private doorkeeperHas(): boolean {
    for (let round = 0, h = firstHash ^ stepHash; round < DOORKEEPER_BITS_PER_KEY; round++, h = (h + stepHash) | 0) {
      const bit = h & this.doorkeeperMask;
      if ((this.doorkeeper[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }

  private halve(): void {
    for (let word = 0; word < this.counters.length; word++) this.counters[word] = (this.counters[word]! >>> 1) & HALF_OF_EACH_COUNTER;
    this.doorkeeper.fill(0);
    this.asks >>>= 1;
  }
}
