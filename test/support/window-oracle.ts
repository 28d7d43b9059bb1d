/**
 * The brute-force side of window oracles: each aggregation by its
 * definition over a plain list of events, for unit and end-to-end tests.
 */
import type { AggregationDef, ViewDef } from '../../src/config/registry.js';

/** An event as produced: its time and its fields by name. */
export interface OracleEvent {
  readonly ts: number;
  readonly [field: string]: unknown;
}

/** One aggregation over the events of its window, written as directly as possible: filter, then fold. */
export function aggregateBrute(aggregation: AggregationDef, inWindow: readonly OracleEvent[], columns: readonly string[]): unknown {
  const field = aggregation.column < 0 ? undefined : columns[aggregation.column]!;
  const passing = inWindow.filter((event) => aggregation.where.every((clause) => clause.values.has(event[columns[clause.column]!] as string)));
  // Events in time order, equal times in arrival order (the tests append in arrival order and sort stably).
  const values = passing.map((event) => (field === undefined ? null : event[field])).filter((value) => value !== null);
  switch (aggregation.fn) {
    case 'count':
      return passing.length;
    case 'sum':
      return (values as number[]).reduce((sum, value) => sum + value, 0);
    case 'avg':
      return values.length === 0 ? null : (values as number[]).reduce((sum, value) => sum + value, 0) / values.length;
    case 'min':
      return values.length === 0 ? null : Math.min(...(values as number[]));
    case 'max':
      return values.length === 0 ? null : Math.max(...(values as number[]));
    case 'last':
      return values.length === 0 ? null : values[values.length - 1];
    case 'first':
      return values.length === 0 ? null : values[0];
    case 'count_distinct':
      return new Set(values).size;
    case 'most_frequent': {
      const counts = new Map<unknown, number>();
      for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
      const best = Math.max(0, ...counts.values());
      // Ties: the tied value whose best-count occurrence came last.
      let winner: unknown = null;
      const running = new Map<unknown, number>();
      for (const value of values) {
        running.set(value, (running.get(value) ?? 0) + 1);
        if (running.get(value) === best) winner = value;
      }
      return winner;
    }
    case 'span':
      return passing.length === 0 ? null : (passing[passing.length - 1]!.ts - passing[0]!.ts) / 60_000;
  }
}

export function closeEnough(actual: unknown, expected: unknown): boolean {
  if (typeof actual === 'number' && typeof expected === 'number') return Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
  return actual === expected;
}


/**
 * The exclusive start of an aggregation's window at `at`: T − window, or
 * with snapshot tiles whose boundary (min(cutoff, tile-floor(T))) the window
 * reaches back past, T − window snapped back to the tile grid.
 */
export function windowStart(compute: AggregationDef, at: number, tiles?: { readonly cutoffMs: number; readonly tileMs: number }): number {
  if (compute.windowMs === 0) return -Infinity;
  const start = at - compute.windowMs;
  if (tiles === undefined || compute.tileSlots.length === 0 || start >= Math.min(tiles.cutoffMs, at - (at % tiles.tileMs))) return start;
  return start - (((start % tiles.tileMs) + tiles.tileMs) % tiles.tileMs);
}

/** Every aggregation of a stream view at `at` over the events visible then (by feature index; derived features left out). */
export function aggregationsAt(view: ViewDef, visible: readonly OracleEvent[], at: number, tiles?: { readonly cutoffMs: number; readonly tileMs: number }): unknown[] {
  const columns = (view.source as { columns: readonly string[] }).columns;
  const results: unknown[] = [];
  for (const feature of view.features) {
    const compute = feature.compute!;
    if (compute.kind !== 'aggregation') continue;
    const start = windowStart(compute, at, tiles);
    results[feature.index] = aggregateBrute(compute, visible.filter((event) => event.ts > start), columns);
  }
  return results;
}
