/**
 * mulberry32: a tiny, fast, seeded PRNG returning floats in [0, 1). Used
 * wherever runs must repeat exactly: the bundled example's rows, randomized
 * tests, benchmarks.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
