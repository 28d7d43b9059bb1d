/**
 * Which entities a scenario's requests name. Every distribution is seeded,
 * so a scenario file always produces the same requests.
 */
import { seededRandom } from '../src/util/seeded-random.js';

export type KeySpec =
  /** Zipf over ranks 1..entities with exponent `s`: P(rank k) ∝ 1/k^s. */
  | { readonly dist: 'zipf'; readonly s: number }
  | { readonly dist: 'uniform' }
  /** Uniform over a fixed set of `size` entities (small enough to stay in L1). */
  | { readonly dist: 'hot'; readonly size: number }
  /** Ids that were never written. */
  | { readonly dist: 'never-written' };

/** Draws entity indexes in [0, entityCount). */
export type KeySampler = () => number;

/**
 * Spreads ranks over the key space: rank r ↦ (r · STRIDE) mod n. STRIDE is
 * prime and larger than any entity count used, so this is a permutation; it
 * keeps the hottest entities from sitting next to each other in LevelDB key
 * order, as they would not in real data.
 */
const STRIDE = 2_147_483_647;

function scatter(rank: number, entityCount: number): number {
  return Number((BigInt(rank) * BigInt(STRIDE)) % BigInt(entityCount));
}

/**
 * Zipf by inversion of the exact cumulative distribution (a Float64Array of
 * n entries: 8 MB for a million entities, built once per scenario).
 */
function zipfSampler(entityCount: number, s: number, random: () => number): KeySampler {
  const cumulative = new Float64Array(entityCount);
  let total = 0;
  for (let rank = 0; rank < entityCount; rank++) {
    total += 1 / Math.pow(rank + 1, s);
    cumulative[rank] = total;
  }
  const ranks = new Int32Array(entityCount);
  for (let rank = 0; rank < entityCount; rank++) ranks[rank] = scatter(rank, entityCount);
  return () => {
    const target = random() * total;
    let low = 0;
    let high = entityCount - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle]! < target) low = middle + 1;
      else high = middle;
    }
    return ranks[low]!;
  };
}

export function keySampler(spec: KeySpec, entityCount: number, seed: number): KeySampler {
  const random = seededRandom(seed);
  switch (spec.dist) {
    case 'zipf':
      return zipfSampler(entityCount, spec.s, random);
    case 'uniform':
    case 'never-written':
      return () => Math.floor(random() * entityCount);
    case 'hot': {
      const size = Math.min(spec.size, entityCount);
      return () => scatter(Math.floor(random() * size), entityCount);
    }
  }
}

/** `rows` distinct entity indexes (a request's rows are distinct entities, as a ranking request's candidates are). */
export function distinctRows(sample: KeySampler, rows: number): number[] {
  const chosen = new Set<number>();
  // Bounded: with heavy skew the hottest keys repeat many times before a new one comes up.
  for (let tries = 0; chosen.size < rows && tries < rows * 10_000; tries++) chosen.add(sample());
  if (chosen.size < rows) throw new Error(`cannot draw ${rows} distinct entities from this distribution`);
  return [...chosen];
}

/** The share of draws the `top` most likely ranks receive (for documenting a scenario's skew). */
export function zipfHeadShare(entityCount: number, s: number, top: number): number {
  let head = 0;
  let total = 0;
  for (let rank = 1; rank <= entityCount; rank++) {
    const weight = 1 / Math.pow(rank, s);
    total += weight;
    if (rank <= top) head += weight;
  }
  return head / total;
}
