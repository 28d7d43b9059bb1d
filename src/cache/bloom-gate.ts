import { BloomFilter } from './bloom-filter.js';

const FALSE_POSITIVE_RATE = 0.01;

/**
 * Answers "might this record key have been written?" with no false
 * negatives. It grows by adding a filter twice the size of the last one (with
 * half its false-positive rate, so the sum stays under 2 %) whenever the last
 * fills up. It lives in memory only: at start it is rebuilt from the record
 * keys in L3 (see TieredRecordStore.open), which is what makes it free of
 * false negatives across restarts.
 */
export class BloomGate {
  private readonly layers: BloomFilter[];
  private inLastLayer = 0;
  private total = 0;
  private nextRate: number;

  constructor(initialCapacity: number) {
    this.layers = [new BloomFilter(initialCapacity, FALSE_POSITIVE_RATE)];
    this.nextRate = FALSE_POSITIVE_RATE / 2;
  }

  get size(): number {
    return this.total;
  }

  mightContain(key: Uint8Array): boolean {
    const layers = this.layers;
    for (let index = layers.length - 1; index >= 0; index--) if (layers[index]!.has(key)) return true;
    return false;
  }

  add(key: Uint8Array): void {
    if (this.mightContain(key)) return;
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
  }
}
