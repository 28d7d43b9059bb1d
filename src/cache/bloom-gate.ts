import { BloomFilter } from './bloom-filter.js';

/**
 * Per filter. A key passes the gate when the local filters or the shared one
 * say maybe, so never-written keys pass at up to about twice this: at 1 %
 * the loadtest measured 1.05 % passing (never-written-1x10-redis, target
 * ≤ 1 %); at 0.5 % a filter costs 11 bits a key instead of 9.6.
 */
export const FALSE_POSITIVE_RATE = 0.005;
/** Bumped whenever the saved layout or the hashing changes: an older save is then rebuilt rather than misread. */
const SAVED_GATE_VERSION = 1;

interface SavedGateHeader {
  readonly version: number;
  readonly views: readonly string[];
  readonly layers: readonly { readonly capacity: number; readonly falsePositiveRate: number }[];
  readonly sharedCapacity: number | null;
  readonly inLastLayer: number;
  readonly total: number;
  readonly nextRate: number;
}

/** What add returns without a shared part: one empty list for every key rather than a new one each. */
const NO_OFFSETS: readonly number[] = Object.freeze([]);

/**
 * Answers "might this record key have been written?" with no false
 * negatives, so keys never written are answered without an L2 or L3 lookup.
 *
 * Local part: filters over the keys this process wrote or found in its L3.
 * It grows by adding a filter twice the size of the last (with half its
 * false-positive rate, so the sum stays under 1 %) whenever the last fills
 * up. It lives in memory; a clean stop saves it (`save`) and the next start
 * restores it, otherwise (first start, a crash, another process having
 * written to L3) it is rebuilt from the record keys in L3, which keeps it
 * free of false negatives across restarts.
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

  /** `initial`: the capacity of the first local filter, or the local filters themselves (restore). */
  constructor(initial: number | BloomFilter[], sharedCapacity: number | undefined) {
    this.layers = typeof initial === 'number' ? [new BloomFilter(initial, FALSE_POSITIVE_RATE)] : initial;
    this.nextRate = FALSE_POSITIVE_RATE / 2;
    this.shared = sharedCapacity === undefined ? undefined : new BloomFilter(sharedCapacity, FALSE_POSITIVE_RATE);
  }

  /**
   * The gate `save` wrote, if it can stand in for a rebuild: it must know
   * every view of `views` (a view absent when it was saved may have records
   * it never saw) and be sized for at least `initialCapacity`. Undefined
   * otherwise.
   *
   * A save with a shared part of another geometry (another
   * --bloom-capacity, while L2 is on) is not used either: this process's
   * records may be in Redis, but the new geometry's shared bits there lack
   * their keys, so other replicas would gate them out. A rebuild adds every
   * key in L3 to the shared part, published on connecting. A save without a
   * shared part (the process ran without L2) is used, its shared part
   * starting empty: what it wrote meanwhile never reached Redis, and the
   * keys of records it put there before are in Redis's bits already, which
   * it reads back on connecting.
   */
  static restore(saved: Uint8Array, views: readonly string[], initialCapacity: number, sharedCapacity: number | undefined): BloomGate | undefined {
    const bytes = Buffer.from(saved.buffer, saved.byteOffset, saved.byteLength);
    const headerLength = bytes.readUInt32BE(0);
    const header = JSON.parse(bytes.toString('utf8', 4, 4 + headerLength)) as SavedGateHeader;
    if (header.version !== SAVED_GATE_VERSION) return undefined;
    const known = new Set(header.views);
    if (views.some((view) => !known.has(view))) return undefined;
    if (header.layers[0]!.capacity < initialCapacity) return undefined;
    if (sharedCapacity !== undefined && header.sharedCapacity !== null && header.sharedCapacity !== sharedCapacity) return undefined;
    let at = 4 + headerLength;
    const filled = (filter: BloomFilter): BloomFilter => {
      filter.merge(bytes.subarray(at, at + filter.byteSize));
      at += filter.byteSize;
      return filter;
    };
    const gate = new BloomGate(
      header.layers.map((layer) => filled(new BloomFilter(layer.capacity, layer.falsePositiveRate))),
      sharedCapacity,
    );
    if (header.sharedCapacity !== null) {
      if (gate.shared !== undefined) filled(gate.shared);
      else at += new BloomFilter(header.sharedCapacity, FALSE_POSITIVE_RATE).byteSize;
    }
    if (at !== bytes.length) return undefined;
    gate.inLastLayer = header.inLastLayer;
    gate.total = header.total;
    gate.nextRate = header.nextRate;
    return gate;
  }

  /** Everything `restore` needs, for a gate built over the record keys of `views`. */
  save(views: readonly string[]): Buffer {
    const header: SavedGateHeader = {
      version: SAVED_GATE_VERSION,
      views: [...views],
      layers: this.layers.map((layer) => ({ capacity: layer.capacity, falsePositiveRate: layer.falsePositiveRate })),
      sharedCapacity: this.shared?.capacity ?? null,
      inLastLayer: this.inLastLayer,
      total: this.total,
      nextRate: this.nextRate,
    };
    const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(headerBytes.length);
    return Buffer.concat([length, headerBytes, ...this.layers.map((layer) => layer.snapshot()), ...(this.shared === undefined ? [] : [this.shared.snapshot()])]);
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
