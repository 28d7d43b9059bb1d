/**
 * Latency histograms (HDR, microsecond resolution, 3 significant digits)
 * and the summary every result carries. Histograms cross process
 * boundaries as compressed base64, the HdrHistogram interchange format.
 */
import * as hdr from 'hdr-histogram-js';

/** Latencies above a minute are recorded as a minute: a request that slow has failed anyway. */
const HIGHEST_US = 60_000_000;

export type LatencyHistogram = hdr.Histogram;

export function newHistogram(): LatencyHistogram {
  return hdr.build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3 });
}

export function recordMicros(histogram: LatencyHistogram, micros: number): void {
  histogram.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(micros))));
}

export const encodeHistogram = (histogram: LatencyHistogram): string => hdr.encodeIntoCompressedBase64(histogram);

export function mergeHistograms(encoded: readonly string[]): LatencyHistogram {
  const merged = newHistogram();
  for (const text of encoded) merged.add(hdr.decodeFromCompressedBase64(text, 32));
  return merged;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export function summarize(histogram: LatencyHistogram): LatencySummary {
  const ms = (micros: number): number => Math.round(micros) / 1000;
  return {
    count: histogram.totalCount,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
  };
}
