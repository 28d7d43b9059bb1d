import { describe, expect, it } from 'vitest';
import { Watermark } from '../../src/ingest/watermark.js';

const LATENESS = 5_000;
const NOW = 1_796_601_600_000; // 2026-12-07T00:00:00Z
const HOUR = 3_600_000;

describe('Watermark', () => {
  it('admits the first event whatever its time, and then events up to the allowed lateness behind the newest', () => {
    const watermark = new Watermark(LATENESS);
    expect(watermark.admit(NOW - HOUR, NOW)).toBe(true);
    expect(watermark.newestEventTs).toBe(NOW - HOUR);
    expect(watermark.admit(NOW - 10_000, NOW)).toBe(true);
    // Exactly on the watermark is on time; a millisecond before it is late.
    expect(watermark.admit(NOW - 10_000 - LATENESS, NOW)).toBe(true);
    expect(watermark.admit(NOW - 10_000 - LATENESS - 1, NOW)).toBe(false);
    // Out of order within the lateness: admitted, and the newest stays where it was.
    expect(watermark.admit(NOW - 12_000, NOW)).toBe(true);
    expect(watermark.newestEventTs).toBe(NOW - 10_000);
  });

  it('does not observe a late event', () => {
    const watermark = new Watermark(LATENESS, NOW);
    expect(watermark.admit(NOW - LATENESS - 1, NOW)).toBe(false);
    expect(watermark.newestEventTs).toBe(NOW);
  });

  it('moves the newest event time no further than the clock, so an event ahead of it makes no on-time event late', () => {
    const watermark = new Watermark(LATENESS, NOW - 1_000);
    expect(watermark.admit(NOW + 30_000, NOW)).toBe(true);
    expect(watermark.newestEventTs).toBe(NOW);
    // 4 s behind the clock: on time, though 34 s behind the event admitted before it.
    expect(watermark.admit(NOW - 4_000, NOW)).toBe(true);
    expect(watermark.admit(NOW - LATENESS - 1, NOW)).toBe(false);
    // As the clock moves on, so may the watermark: up to the event's own time.
    expect(watermark.admit(NOW + 30_000, NOW + 10_000)).toBe(true);
    expect(watermark.newestEventTs).toBe(NOW + 10_000);
    expect(watermark.admit(NOW + 30_000, NOW + HOUR)).toBe(true);
    expect(watermark.newestEventTs).toBe(NOW + 30_000);
  });

  it('commits its newest event time as metadata and is restored from it', () => {
    const watermark = new Watermark(LATENESS);
    expect(watermark.toMetadata()).toBe('{"newestEventTs":null}');
    watermark.admit(NOW - 2_000, NOW);
    const restored = Watermark.fromMetadata(LATENESS, watermark.toMetadata(), NOW + 1_000);
    expect(restored.newestEventTs).toBe(NOW - 2_000);
    expect(restored.admit(NOW - 2_000 - LATENESS - 1, NOW + 1_000)).toBe(false);
  });

  it('restores a committed watermark that ran ahead of the clock (microseconds taken for milliseconds) as the clock', () => {
    const restored = Watermark.fromMetadata(LATENESS, JSON.stringify({ newestEventTs: NOW * 1_000 }), NOW);
    expect(restored.newestEventTs).toBe(NOW);
    expect(restored.admit(NOW - 1_000, NOW)).toBe(true);
  });

  it('starts without a watermark from missing or foreign metadata', () => {
    for (const metadata of [undefined, null, '', 'not json', '{"offset": 3}']) {
      const restored = Watermark.fromMetadata(LATENESS, metadata, NOW);
      expect(restored.newestEventTs).toBe(-Infinity);
      expect(restored.admit(0, NOW)).toBe(true);
    }
  });
});
