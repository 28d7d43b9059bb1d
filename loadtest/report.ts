/**
 * What a run produces: one ScenarioResult per scenario and rate, the target
 * verdicts, and the report files — a console table, JSON, Markdown, and an
 * SVG chart of latency against achieved rate.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult } from './load-drivers.js';
import type { Resident, TierCounters, WindowNoise } from './processes.js';
import type { MetricName, Scenario, Target } from './scenario.js';

export interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly setup: string;
  /** Requests/s offered (open loop) or undefined (closed loop: as fast as answered). */
  readonly offeredRps: number | undefined;
  readonly load: LoadResult;
  readonly baseline: LoadResult | undefined;
  /** Closed loop: the same load against Strata's gRPC listener with a handler that does nothing. */
  readonly edgeBaseline: LoadResult | undefined;
  readonly tiers: TierCounters | undefined;
  readonly l1BudgetBytes: number;
  /** The server tree's RSS at its highest sample, split into anonymous and file-backed. */
  readonly peakRss: Resident;
  /** How noisy the machine was during the window. */
  readonly noise: WindowNoise | undefined;
}

export interface Verdict {
  readonly target: Target;
  readonly value: number | undefined;
  readonly met: boolean;
}

const MIB = 1024 * 1024;

export function metric(result: ScenarioResult, name: MetricName): number | undefined {
  const { load, baseline, edgeBaseline, tiers } = result;
  const calls = load.ok + Object.values(load.errors).reduce((sum, count) => sum + count, 0);
  switch (name) {
    case 'achievedRps':
      return load.achievedRps;
    case 'ratioToBaseline':
      return baseline === undefined || baseline.achievedRps === 0 ? undefined : load.achievedRps / baseline.achievedRps;
    case 'ratioToEdgeNoop':
      return edgeBaseline === undefined || edgeBaseline.achievedRps === 0 ? undefined : load.achievedRps / edgeBaseline.achievedRps;
    // No call answered: there is no latency to hold against a target (an empty histogram reads 0).
    case 'p50Ms':
      return load.ok === 0 ? undefined : load.latency.p50Ms;
    case 'p99Ms':
      return load.ok === 0 ? undefined : load.latency.p99Ms;
    case 'p999Ms':
      return load.ok === 0 ? undefined : load.latency.p999Ms;
    case 'errorRate':
      return calls === 0 ? undefined : (calls - load.ok) / calls;
    case 'l1HitRate':
      return tiers === undefined || tiers.lookups === 0 ? undefined : tiers.l1Hits / tiers.lookups;
    case 'l1l2HitRate':
      // Counted from L2's misses rather than its hits: a lookup is counted when L1 misses, its L2 outcome
      // when Redis answers, so calls straddling the window's edges put hits on one side of the ratio only
      // (the 1M Zipf run at 5k rps read 100.1 %). Straddling misses are few: the error stays small and below 100 %.
      if (tiers === undefined || tiers.lookups === 0) return undefined;
      return tiers.l2Lookups === 0 ? tiers.l1Hits / tiers.lookups : 1 - (tiers.l2Lookups - tiers.l2Hits + tiers.bloomNegatives) / tiers.lookups;
    case 'noStoreLookupRate':
      // With L2, every lookup that reaches L3 went through L2 first: count each once.
      return tiers === undefined || tiers.lookups === 0 ? undefined : 1 - (tiers.l2Lookups > 0 ? tiers.l2Lookups : tiers.l3Lookups) / tiers.lookups;
    case 'rssOverL1BudgetMb':
      return (result.peakRss.totalBytes - result.l1BudgetBytes) / MIB;
  }
}

export function judge(targets: readonly Target[], results: readonly ScenarioResult[]): Verdict[] {
  return targets.map((target) => {
    const result = results.find((candidate) => candidate.scenario === target.scenario && (target.rate === undefined || candidate.offeredRps === target.rate));
    const value = result === undefined ? undefined : metric(result, target.metric);
    const met = value !== undefined && (target.min === undefined || value >= target.min) && (target.max === undefined || value <= target.max);
    return { target, value, met };
  });
}

// ---- formatting ---------------------------------------------------------------------------------------

const fixed = (value: number | undefined, digits: number): string => (value === undefined ? '–' : value.toFixed(digits));
const rate = (value: number | undefined): string => (value === undefined ? '–' : Math.round(value).toLocaleString('en-US'));
const percent = (value: number | undefined): string => (value === undefined ? '–' : `${(value * 100).toFixed(1)}%`);

function errorsText(load: LoadResult): string {
  const entries = Object.entries(load.errors);
  return entries.length === 0 ? '0' : entries.map(([reason, count]) => `${count} ${reason}`).join(', ');
}

function vsBaseline(result: ScenarioResult): string {
  const baseline = result.baseline;
  if (baseline === undefined) return '–';
  if (result.offeredRps === undefined) {
    const edge = result.edgeBaseline === undefined ? '' : `; ${fixed(metric(result, 'ratioToEdgeNoop'), 2)}× edge no-op (${rate(result.edgeBaseline.achievedRps)})`;
    return `${fixed(metric(result, 'ratioToBaseline'), 2)}× rps (${rate(baseline.achievedRps)})${edge}`;
  }
  return `p99 ${fixed(baseline.latency.p99Ms, 2)} ms`;
}

const COLUMNS = ['scenario', 'offered', 'achieved', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'baseline', 'L1 hit', 'L1+L2', 'no L2/L3', 'peak RSS MiB (anon + file)', 'noise: others + stolen'] as const;

function row(result: ScenarioResult): string[] {
  const { load } = result;
  return [
    result.scenario,
    result.offeredRps === undefined ? 'max' : rate(result.offeredRps),
    rate(load.achievedRps),
    fixed(load.latency.p50Ms, 2),
    fixed(load.latency.p99Ms, 2),
    fixed(load.latency.p999Ms, 2),
    fixed(load.latency.maxMs, 1),
    errorsText(load),
    vsBaseline(result),
    percent(metric(result, 'l1HitRate')),
    percent(metric(result, 'l1l2HitRate')),
    percent(metric(result, 'noStoreLookupRate')),
    `${rate(result.peakRss.totalBytes / MIB)} (${rate(result.peakRss.anonBytes / MIB)} + ${rate(result.peakRss.fileBytes / MIB)})`,
    result.noise === undefined ? '–' : `${result.noise.othersCores.toFixed(2)} + ${result.noise.stolenCores.toFixed(2)} cores`,
  ];
}

function verdictLine(verdict: Verdict): string {
  const { target, value } = verdict;
  const bound = target.min !== undefined ? `≥ ${target.min}` : `≤ ${target.max}`;
  return `${verdict.met ? 'met   ' : 'MISSED'}  ${target.label}: ${target.metric} ${value === undefined ? 'not measured' : fixed(value, 3)} (target ${bound}; ${target.scenario}${target.rate === undefined ? '' : ` at ${target.rate} rps`})`;
}

export function consoleTable(results: readonly ScenarioResult[], verdicts: readonly Verdict[]): string {
  const rows = [COLUMNS.slice(), ...results.map(row)];
  const widths = COLUMNS.map((_, column) => Math.max(...rows.map((cells) => cells[column]!.length)));
  const lines = rows.map((cells) => cells.map((cell, column) => (column === 0 || column === 7 || column === 8 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
  lines.splice(1, 0, widths.map((width) => '-'.repeat(width)).join('  '));
  return [...lines, '', ...verdicts.map(verdictLine)].join('\n');
}

export interface RunInfo {
  readonly startedAt: string;
  readonly revision: string;
  readonly machine: string;
  readonly entities: number;
  /** What L1 would need to hold every entity (its own accounting): the "data" of "L1 = 10 % of data". */
  readonly dataBytes: number;
  /** The data set's size on disk in LevelDB (compressed). */
  readonly l3Bytes: number;
  readonly command: string;
}

export function markdown(info: RunInfo, scenarios: readonly Scenario[], results: readonly ScenarioResult[], verdicts: readonly Verdict[], chartFile: string | undefined): string {
  const table = [`| ${COLUMNS.join(' | ')} |`, `|${COLUMNS.map(() => '---').join('|')}|`, ...results.map((result) => `| ${row(result).join(' | ')} |`)];
  return [
    `# Load test ${info.startedAt}`,
    '',
    `\`${info.command}\` at ${info.revision} on ${info.machine}; ${info.entities.toLocaleString('en-US')} entities × 50 features: ${(info.l3Bytes / MIB).toFixed(0)} MiB in LevelDB on disk, ${(info.dataBytes / MIB).toFixed(0)} MiB as L1 would hold them all.`,
    '',
    ...table,
    '',
    'Latencies in ms (HDR histograms): open loop from each request\'s scheduled send time, closed loop from its send. "baseline": a no-op grpc-js server answering the same response bytes under the same load (closed loop: achieved-rate ratio; open loop: its p99); closed loop also against Strata\'s own node:http2 listener with a handler that does nothing ("edge no-op", the ceiling of its transport). "no L2/L3": lookups answered by L1 or the bloom gate. "noise": CPU that processes outside the run used during the window, and CPU the hypervisor took from the machine\'s vCPUs (steal: while stolen, nothing here runs, server and generator alike).',
    '',
    '## Targets',
    '',
    ...verdicts.map((verdict) => `- ${verdictLine(verdict)}`),
    '',
    ...(chartFile === undefined ? [] : ['## Latency against load', '', `![latency against load](${chartFile})`, '']),
    '## Scenarios',
    '',
    ...scenarios.map((scenario) => `- **${scenario.name}**: ${scenario.description}`),
    '',
  ].join('\n');
}

/** p50 and p99 against achieved rate for each charted scenario (and its baseline), log-scale latency. */
export function latencyChart(series: readonly { readonly name: string; readonly points: readonly { readonly rps: number; readonly p50Ms: number; readonly p99Ms: number }[] }[]): string {
  const width = 760;
  const height = 420;
  const left = 70;
  const right = 190;
  const top = 30;
  const bottom = 50;
  const all = series.flatMap((line) => line.points);
  const maxRps = Math.max(1, ...all.map((point) => point.rps)) * 1.05;
  const latencies = all.flatMap((point) => [point.p50Ms, point.p99Ms]).filter((value) => value > 0);
  const minLog = Math.floor(Math.log10(Math.max(0.01, Math.min(...latencies, 1))));
  const maxLog = Math.ceil(Math.log10(Math.max(...latencies, 1)));
  const x = (rps: number): number => left + (rps / maxRps) * (width - left - right);
  const y = (ms: number): number => top + (1 - (Math.log10(Math.max(ms, 10 ** minLog)) - minLog) / Math.max(1, maxLog - minLog)) * (height - top - bottom);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">GetOnlineFeatures latency against achieved load (open loop)</text>`,
  ];
  for (let power = minLog; power <= maxLog; power++) {
    const ms = 10 ** power;
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(ms)}" y2="${y(ms)}" stroke="#ddd"/>`, `<text x="${left - 8}" y="${y(ms) + 4}" text-anchor="end">${ms} ms</text>`);
  }
  const step = 10 ** Math.floor(Math.log10(maxRps / 2));
  for (let tick = 0; tick <= maxRps; tick += step * (maxRps / step > 8 ? 2 : 1)) {
    parts.push(`<line x1="${x(tick)}" x2="${x(tick)}" y1="${top}" y2="${height - bottom}" stroke="#eee"/>`, `<text x="${x(tick)}" y="${height - bottom + 16}" text-anchor="middle">${Math.round(tick).toLocaleString('en-US')}</text>`);
  }
  parts.push(`<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">achieved requests/s</text>`);
  series.forEach((line, index) => {
    const color = colors[index % colors.length]!;
    const points = [...line.points].sort((a, b) => a.rps - b.rps);
    for (const [key, dash] of [['p99Ms', ''], ['p50Ms', ' stroke-dasharray="4 3"']] as const) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${points.map((point) => `${x(point.rps).toFixed(1)},${y(point[key]).toFixed(1)}`).join(' ')}"/>`);
      for (const point of points) parts.push(`<circle cx="${x(point.rps).toFixed(1)}" cy="${y(point[key]).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const legendY = top + 10 + index * 36;
    parts.push(
      `<line x1="${width - right + 12}" x2="${width - right + 36}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${width - right + 42}" y="${legendY + 4}">${line.name} p99</text>`,
      `<line x1="${width - right + 12}" x2="${width - right + 36}" y1="${legendY + 16}" y2="${legendY + 16}" stroke="${color}" stroke-width="2" stroke-dasharray="4 3"/>`,
      `<text x="${width - right + 42}" y="${legendY + 20}">${line.name} p50</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export function writeReports(directory: string, info: RunInfo, scenarios: readonly Scenario[], results: readonly ScenarioResult[], verdicts: readonly Verdict[]): { json: string; markdown: string; chart: string | undefined } {
  mkdirSync(directory, { recursive: true });
  const charted = scenarios.filter((scenario) => scenario.chart);
  let chart: string | undefined;
  if (charted.length > 0) {
    const series = charted.flatMap((scenario) => {
      const own = results.filter((result) => result.scenario === scenario.name);
      const line = (name: string, pick: (result: ScenarioResult) => LoadResult | undefined) => ({
        name,
        points: own.flatMap((result) => {
          const load = pick(result);
          return load === undefined ? [] : [{ rps: load.achievedRps, p50Ms: load.latency.p50Ms, p99Ms: load.latency.p99Ms }];
        }),
      });
      return scenario.baseline ? [line(scenario.name, (result) => result.load), line('no-op baseline', (result) => result.baseline)] : [line(scenario.name, (result) => result.load)];
    });
    chart = 'latency-vs-load.svg';
    writeFileSync(join(directory, chart), latencyChart(series));
  }
  const json = join(directory, 'report.json');
  writeFileSync(json, `${JSON.stringify({ info, results, verdicts: verdicts.map((verdict) => ({ ...verdict.target, value: verdict.value, met: verdict.met })) }, null, 2)}\n`);
  const md = join(directory, 'report.md');
  writeFileSync(md, markdown(info, scenarios, results, verdicts, chart));
  return { json, markdown: md, chart: chart === undefined ? undefined : join(directory, chart) };
}
