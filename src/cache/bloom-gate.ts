import { BloomFilter } from './bloom-filter.js';

/**
 * Per filter. A key passes the gate when the local filters or the shared one
 * say maybe, so never-written keys pass at up to about twice this: at 1 %
 * the loadtest measured 1.05 % passing (never-written-1x10-redis, target
 * ≤ 1 %); at 0.5 % a filter costs 11 bits a key instead of 9.6.
 */
export const FALSE_POSITIVE_RATE = 0.005;
/** What add returns without a shared part: one empty list for every key rather than a new one each. */
const NO_OFFSETS: readonly number[] = Object.freeze([]);

/**
 * Answers "might this record key have been written?" with no false
 * negatives, so keys never written are answered without an L2 or L3 lookup.
 *
 * Local part: filters over the keys this process wrote or found in its L3.
 * It grows by adding a filter twice the size of the last (with half its
 * false-positive rate, so the sum stays under 1 %) whenever the last fills
 * up. It lives in memory: at start it is rebuilt from the record keys in L3,
 * which keeps it free of false negatives across restarts.
 *
 * Shared part (only with L2): one fixed-size filter whose bits every replica
 * ORs into a Redis string and reads back every `--bloom-sync`, so a key
 * written through another replica passes this gate within that interval.
 * Its size comes from `--bloom-capacity`, which must be the same on every
 * replica (the geometry is part of the Redis key, so mismatched replicas
 * simply do not share).
 */
export class BloomGate {
  private readonly layers: BloomFilter[];
  private readonly shared: BloomFilter | undefined;
  private inLastLayer = 0;
  private total = 0;
  private nextRate: number;

  constructor(initialCapacity: number, sharedCapacity: number | undefined) {
    this.layers = [new BloomFilter(initialCapacity, FALSE_POSITIVE_RATE)];
    this.nextRate = FALSE_POSITIVE_RATE / 2;
    this.shared = sharedCapacity === undefined ? undefined : new BloomFilter(sharedCapacity, FALSE_POSITIVE_RATE);
  }

  /** Names the shared filter's geometry: replicas share bits only when it matches. */
  static sharedGeometry(capacity: number): string {
    const filter = new BloomFilter(capacity, FALSE_POSITIVE_RATE);
    return `${filter.bitCount}x${filter.hashCount}`;
  }

  get size(): number {
    return this.total;
  }

  mightContain(key: Uint8Array): boolean {
    const layers = this.layers;
    for (let index = layers.length - 1; index >= 0; index--) if (layers[index]!.has(key)) return true;
    return this.shared?.has(key) ?? false;
  }

  /** Adds a key; returns the shared filter's bit offsets for it (to publish), or none without a shared part. */
  add(key: Uint8Array): readonly number[] {
    let offsets: readonly number[] = NO_OFFSETS;
    if (this.shared !== undefined) {
      this.shared.add(key);
      offsets = this.shared.offsets(key);
    }
    if (this.layers.some((layer) => layer.has(key))) return offsets;
    let last = this.layers[this.layers.length - 1]!;
    if (this.inLastLayer >= last.capacity) {
      last = new BloomFilter(last.capacity * 2, this.nextRate);
      this.nextRate /= 2;
      this.layers.push(last);
      this.inLastLayer = 0;
    }
    last.add(key);
    this.inLastLayer++;
    this.total++;
    return offsets;
  }

  /** ORs in the shared bits other replicas published. */
  mergeShared(bits: Uint8Array): void {
    this.shared?.merge(bits);
  }

  /** The shared filter's bits, to publish whole after (re)connecting to L2. */
  sharedSnapshot(): Buffer | undefined {
    return this.shared?.snapshot();
  }
}
