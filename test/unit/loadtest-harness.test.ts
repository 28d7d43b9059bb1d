import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distinctRows, keySampler, zipfHeadShare } from '../../loadtest/key-distribution.js';
import { newHistogram, recordMicros, encodeHistogram, mergeHistograms, summarize } from '../../loadtest/latency.js';
import { judge, metric, type ScenarioResult } from '../../loadtest/report.js';
import { windowNoise } from '../../loadtest/processes.js';
import { loadScenarios, loadTargets, parseScenario, ScenarioFileError } from '../../loadtest/scenario.js';

const LOADTEST = fileURLToPath(new URL('../../loadtest/', import.meta.url));

const minimal = {
  description: 'd',
  server: { l1: '10% of data', redis: true },
  request: { rows: 1, features: 50, keys: { dist: 'zipf', s: 0.99 } },
  load: { generator: 'node', mode: 'open', rates: [5000] },
};

function parse(overrides: Record<string, unknown>): ReturnType<typeof parseScenario> {
  return parseScenario('scenarios/x.json', JSON.stringify({ ...minimal, ...overrides }));
}

describe('scenario files', () => {
  it('every bundled scenario and target parses', () => {
    const scenarios = loadScenarios(join(LOADTEST, 'scenarios'));
    expect(scenarios.length).toBeGreaterThan(5);
    expect(loadTargets(join(LOADTEST, 'targets.json'), scenarios).length).toBeGreaterThan(5);
  });

  it('reads a scenario with its defaults', () => {
    const scenario = parse({});
    expect(scenario.name).toBe('x');
    expect(scenario.server).toEqual({ l1: { kind: 'share-of-data', share: 0.1 }, redis: true, workers: 1 });
    expect(scenario.request).toEqual({ rows: 1, features: 50, by: 'service', keys: { dist: 'zipf', s: 0.99 } });
    expect(scenario.load).toEqual({ generator: 'node', mode: 'open', rates: [5000], processes: 1 });
  });

  it.each([
    [{ extra: 1 }, 'scenarios/x.json: extra: unknown key'],
    [{ server: { l1: 'lots' } }, 'scenarios/x.json: server.l1: must be "off"'],
    [{ request: { ...minimal.request, features: 20 } }, 'scenarios/x.json: request.features: must be 10 or 50'],
    [{ request: { ...minimal.request, keys: { dist: 'zipf', s: 9 } } }, 'scenarios/x.json: request.keys.s: must be a number from 0.1 to 3'],
    [{ load: { generator: 'h2load' } }, 'scenarios/x.json: request.keys.dist: h2load sends one request body'],
    [{ load: { generator: 'node', mode: 'open', rates: [] } }, 'scenarios/x.json: load.rates: must be a non-empty list'],
    [{ chart: true }, 'scenarios/x.json: chart: only an open-loop scenario with several rates'],
    [{ prefill_reads_per_entity: 11 }, 'scenarios/x.json: prefill_reads_per_entity: must be a number from 0 to 10'],
    [{ request: { ...minimal.request, keys: { dist: 'never-written' } }, prefill_reads_per_entity: 1 }, 'scenarios/x.json: prefill_reads_per_entity: never-written keys need no prefill'],
    [{ request: { ...minimal.request, keys: { dist: 'hot', size: 1 } }, load: { generator: 'h2load' }, prefill_reads_per_entity: 1 }, 'scenarios/x.json: prefill_reads_per_entity: h2load sends one request body'],
  ])('rejects %j naming file, field and rule', (overrides, message) => {
    expect(() => parse(overrides)).toThrow(ScenarioFileError);
    expect(() => parse(overrides)).toThrow(message);
  });
});

describe('key distributions', () => {
  it('Zipf draws match the distribution: the head share of 10k draws is within 2 points of the exact share', () => {
    const sample = keySampler({ dist: 'zipf', s: 0.99 }, 100_000, 7);
    const counts = new Map<number, number>();
    for (let draw = 0; draw < 10_000; draw++) {
      const key = sample();
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const top100 = [...counts.values()].sort((a, b) => b - a).slice(0, 100).reduce((sum, count) => sum + count, 0) / 10_000;
    expect(Math.abs(top100 - zipfHeadShare(100_000, 0.99, 100))).toBeLessThan(0.02);
  });

  it('is deterministic per seed and stays in range', () => {
    const a = keySampler({ dist: 'uniform' }, 1_000, 1);
    const b = keySampler({ dist: 'uniform' }, 1_000, 1);
    const draws = Array.from({ length: 100 }, () => a());
    expect(Array.from({ length: 100 }, () => b())).toEqual(draws);
    expect(draws.every((key) => key >= 0 && key < 1_000)).toBe(true);
  });

  it('a hot set has exactly its size of distinct keys, spread over the key space', () => {
    const sample = keySampler({ dist: 'hot', size: 50 }, 1_000_000, 3);
    const seen = new Set(Array.from({ length: 5_000 }, () => sample()));
    expect(seen.size).toBe(50);
    expect(Math.max(...seen) - Math.min(...seen)).toBeGreaterThan(500_000);
  });

  it('gives distinct rows, and says so when the distribution cannot', () => {
    const rows = distinctRows(keySampler({ dist: 'zipf', s: 1.2 }, 10_000, 5), 100);
    expect(new Set(rows).size).toBe(100);
    expect(() => distinctRows(keySampler({ dist: 'hot', size: 3 }, 1_000, 5), 4)).toThrow('cannot draw 4 distinct');
  });
});

describe('latency histograms', () => {
  it('merge across processes and report percentiles in ms', () => {
    const a = newHistogram();
    const b = newHistogram();
    for (let micros = 1; micros <= 1_000; micros++) recordMicros(micros % 2 === 0 ? a : b, micros);
    const merged = summarize(mergeHistograms([encodeHistogram(a), encodeHistogram(b)]));
    expect(merged.count).toBe(1_000);
    expect(merged.p50Ms).toBeCloseTo(0.5, 2);
    expect(merged.p99Ms).toBeCloseTo(0.99, 2);
    expect(merged.maxMs).toBeCloseTo(1, 2);
  });
});

describe('window noise', () => {
  it('splits what the window lost into busy CPU outside the run and CPU the hypervisor stole', () => {
    const cores = availableParallelism();
    // A window of 1,000 ticks per CPU: others busy 200 ticks (busy 500, of which 300 ours), 100 ticks stolen.
    const before = { busy: 1_000, steal: 50, total: 10_000, ours: 700 };
    const after = { busy: 1_500, steal: 150, total: 10_000 + 1_000 * cores, ours: 1_000 };
    expect(windowNoise(before, after)).toEqual({ othersCores: 0.2, stolenCores: 0.1 });
    // Our own ticks counted past the machine's (tick rounding) never read as negative noise.
    expect(windowNoise(before, { ...after, ours: 2_000 })?.othersCores).toBe(0);
    expect(windowNoise(before, undefined)).toBeUndefined();
  });
});

describe('targets', () => {
  const result = (overrides: Partial<ScenarioResult>): ScenarioResult => ({
    scenario: 's',
    description: '',
    setup: '',
    offeredRps: 5000,
    load: { achievedRps: 5000, latency: { count: 1, p50Ms: 0.3, p90Ms: 0.5, p99Ms: 0.9, p999Ms: 2, maxMs: 3 }, ok: 99, errors: { timeout: 1 }, sendLagP99Ms: 0.1 },
    baseline: { achievedRps: 6000, latency: { count: 1, p50Ms: 0.2, p90Ms: 0.3, p99Ms: 0.5, p999Ms: 1, maxMs: 2 }, ok: 100, errors: {}, sendLagP99Ms: 0.1 },
    edgeBaseline: undefined,
    tiers: { lookups: 100, l1Hits: 72, l2Lookups: 28, l2Hits: 20, l3Lookups: 8, l3Hits: 8, bloomNegatives: 0 },
    l1BudgetBytes: 100 * 1024 * 1024,
    peakRss: { totalBytes: 300 * 1024 * 1024, anonBytes: 220 * 1024 * 1024, fileBytes: 80 * 1024 * 1024 },
    noise: { othersCores: 0, stolenCores: 0 },
    ...overrides,
  });

  it('derives rates from tier counters, memory over budget, errors and the baseline ratio', () => {
    const measured = result({});
    expect(metric(measured, 'l1HitRate')).toBeCloseTo(0.72);
    expect(metric(measured, 'l1l2HitRate')).toBeCloseTo(0.92);
    expect(metric(measured, 'noStoreLookupRate')).toBeCloseTo(0.72);
    // L2 answers counted in the window for lookups counted before it: not past 100 %, and not past what L2 missed.
    expect(metric(result({ tiers: { lookups: 100, l1Hits: 90, l2Lookups: 12, l2Hits: 12, l3Lookups: 0, l3Hits: 0, bloomNegatives: 0 } }), 'l1l2HitRate')).toBe(1);
    // Never-written keys the bloom gate answers are not L1 or L2 hits; without L2 only L1 counts.
    expect(metric(result({ tiers: { lookups: 100, l1Hits: 50, l2Lookups: 40, l2Hits: 30, l3Lookups: 10, l3Hits: 0, bloomNegatives: 10 } }), 'l1l2HitRate')).toBeCloseTo(0.8);
    expect(metric(result({ tiers: { lookups: 100, l1Hits: 60, l2Lookups: 0, l2Hits: 0, l3Lookups: 40, l3Hits: 40, bloomNegatives: 0 } }), 'l1l2HitRate')).toBeCloseTo(0.6);
    expect(metric(measured, 'rssOverL1BudgetMb')).toBeCloseTo(200);
    expect(metric(measured, 'errorRate')).toBeCloseTo(0.01);
    expect(metric(measured, 'ratioToBaseline')).toBeCloseTo(5000 / 6000);
    expect(metric(measured, 'ratioToEdgeNoop')).toBeUndefined();
    expect(metric(result({ edgeBaseline: { ...measured.baseline!, achievedRps: 8000 } }), 'ratioToEdgeNoop')).toBeCloseTo(5000 / 8000);
  });

  it('meets, misses, and counts an unmeasured target as missed', () => {
    const verdicts = judge(
      [
        { scenario: 's', rate: 5000, metric: 'p99Ms', min: undefined, max: 1, label: 'fast' },
        { scenario: 's', rate: undefined, metric: 'rssOverL1BudgetMb', min: undefined, max: 150, label: 'small' },
        { scenario: 'other', rate: undefined, metric: 'p99Ms', min: undefined, max: 1, label: 'absent' },
      ],
      [result({})],
    );
    expect(verdicts.map((verdict) => verdict.met)).toEqual([true, false, false]);
  });

  it('misses a latency target when no call answered (an empty histogram reads 0 ms)', () => {
    const failed = result({ load: { achievedRps: 0, latency: { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 }, ok: 0, errors: { 'connection-lost': 100 }, sendLagP99Ms: 0.1 } });
    const [verdict] = judge([{ scenario: 's', rate: 5000, metric: 'p99Ms', min: undefined, max: 2, label: 'fast' }], [failed]);
    expect(verdict).toMatchObject({ value: undefined, met: false });
  });
});
