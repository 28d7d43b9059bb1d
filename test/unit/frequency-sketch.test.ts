import { describe, expect, it } from 'vitest';
import { FrequencySketch } from '../../src/cache/frequency-sketch.js';

describe('FrequencySketch', () => {
  it('counts a key from its second ask (the first only passes the doorkeeper), up to 1 + 15', () => {
    const sketch = new FrequencySketch(1 << 16);
    expect(sketch.frequency('a')).toBe(0);
    sketch.increment('a');
    expect(sketch.frequency('a')).toBe(1);
    for (let asks = 2; asks <= 40; asks++) {
      sketch.increment('a');
      expect(sketch.frequency('a')).toBe(Math.min(asks, 16));
    }
  });

  it('keeps the counters of keys sharing a word apart (four bits each, eight to a word)', () => {
    const sketch = new FrequencySketch(1 << 20);
    const keys = Array.from({ length: 2_000 }, (_, index) => `key-${index}`);
    // Key i asked 1 + i % 15 times: every count from 1 to 15, next to one another in the table.
    keys.forEach((key, index) => {
      for (let asks = 0; asks <= index % 15; asks++) sketch.increment(key);
    });
    // A count-min sketch never under-counts, and at this load seldom over-counts.
    const exact = keys.filter((key, index) => sketch.frequency(key) === 1 + (index % 15)).length;
    keys.forEach((key, index) => expect(sketch.frequency(key)).toBeGreaterThanOrEqual(1 + (index % 15)));
    expect(exact / keys.length).toBeGreaterThan(0.99);
  });

  it('halves every counter and forgets the doorkeeper after a sample of asks', () => {
    const sketch = new FrequencySketch(1024);
    for (let asks = 0; asks < 15; asks++) sketch.increment('hot');
    expect(sketch.frequency('hot')).toBe(15);
    // 10 asks per slot of the 1024-slot table make a sample; the last ask triggers the halving.
    for (let ask = 0; ask < 10 * 1024 - 15; ask++) sketch.increment(`cold-${ask % 97}`);
    // The counters went from 14 to 7, and the doorkeeper's bit is gone: a key not asked since reads 0.
    expect(sketch.frequency('hot')).toBe(0);
    sketch.increment('hot');
    expect(sketch.frequency('hot')).toBe(1 + 7);
  });
});
