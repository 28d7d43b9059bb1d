/**
 * Scenario and target files (loadtest/scenarios/*.json, loadtest/targets.json):
 * their shape, checked once when the run starts. A bad file stops the run
 * naming the file, the field and the rule, before any process is started.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FeatureCount } from './dataset.js';
import type { KeySpec } from './key-distribution.js';

/** L1 size of the server under test: off, a size in MiB, or a share of the data set's stored bytes. */
export type L1Setting = { readonly kind: 'off' } | { readonly kind: 'mib'; readonly mib: number } | { readonly kind: 'share-of-data'; readonly share: number };

export interface ServerSpec {
  readonly l1: L1Setting;
  readonly redis: boolean;
  readonly workers: number;
}

export type LoadSpec =
  /** Closed loop at the highest rate h2load reaches with `inflight` streams over `connections` (one fixed request body). */
  | { readonly generator: 'h2load'; readonly mode: 'closed'; readonly connections: number; readonly inflight: number }
  /** Open loop at each of `rates` (requests/s), latency from each request's scheduled send time. */
  | { readonly generator: 'node'; readonly mode: 'open'; readonly rates: readonly number[]; readonly processes: number }
  /** Closed loop with `inflight` requests always outstanding. */
  | { readonly generator: 'node'; readonly mode: 'closed'; readonly inflight: number; readonly processes: number }
  /** The HTTP gateway, closed loop with `connections` keep-alive connections. */
  | { readonly generator: 'autocannon'; readonly mode: 'closed'; readonly connections: number };

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly description: string;
  readonly server: ServerSpec;
  readonly request: { readonly rows: number; readonly features: FeatureCount; readonly by: 'service' | 'refs'; readonly keys: KeySpec };
  readonly load: LoadSpec;
  /**
   * Before the warm-up, read this many keys per entity (drawn like the
   * scenario's, 100 to a request, as fast as the server answers): L1 then
   * starts the window in its steady state, which a short open-loop warm-up
   * never reaches for a large key space.
   */
  readonly prefillReadsPerEntity: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** Also measure a no-op grpc-js server answering this scenario's response bytes, with the same load. */
  readonly baseline: boolean;
  /** Plot achieved rate against latency (scenarios with several rates). */
  readonly chart: boolean;
}

export const METRICS = ['achievedRps', 'ratioToBaseline', 'ratioToEdgeNoop', 'p50Ms', 'p99Ms', 'p999Ms', 'errorRate', 'l1HitRate', 'l1l2HitRate', 'noStoreLookupRate', 'rssOverL1BudgetMb'] as const;
export type MetricName = (typeof METRICS)[number];

export interface Target {
  readonly scenario: string;
  /** For open-loop scenarios with several rates: the rate it applies to. */
  readonly rate: number | undefined;
  readonly metric: MetricName;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly label: string;
}

export class ScenarioFileError extends Error {}

type Json = Record<string, unknown>;

/** Field readers that name the file and the dotted path in every error. */
class Fields {
  constructor(
    private readonly file: string,
    private readonly path: string,
    private readonly object: Json,
  ) {}

  static of(file: string, path: string, value: unknown): Fields {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ScenarioFileError(`${file}: ${path || '(top level)'}: must be an object`);
    return new Fields(file, path, value as Json);
  }

  private where(key: string): string {
    return `${this.file}: ${this.path === '' ? key : `${this.path}.${key}`}`;
  }

  fail(key: string, rule: string): never {
    throw new ScenarioFileError(`${this.where(key)}: ${rule}`);
  }

  only(...keys: string[]): this {
    for (const key of Object.keys(this.object)) if (!keys.includes(key)) this.fail(key, `unknown key (allowed: ${keys.join(', ')})`);
    return this;
  }

  has(key: string): boolean {
    return this.object[key] !== undefined;
  }

  child(key: string): Fields {
    return Fields.of(this.file, this.path === '' ? key : `${this.path}.${key}`, this.object[key]);
  }

  string(key: string, fallback?: string): string {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'string' || value === '') this.fail(key, 'must be a non-empty string');
    return value;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const value = this.object[key] ?? fallback;
    if (!choices.includes(value as T)) this.fail(key, `must be one of ${choices.join(', ')}`);
    return value as T;
  }

  number(key: string, min: number, max: number, fallback?: number): number {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) this.fail(key, `must be a number from ${min} to ${max}`);
    return value;
  }

  integer(key: string, min: number, max: number, fallback?: number): number {
    const value = this.number(key, min, max, fallback);
    if (!Number.isInteger(value)) this.fail(key, 'must be an integer');
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'boolean') this.fail(key, 'must be true or false');
    return value;
  }

  numbers(key: string, min: number, max: number): number[] {
    const value = this.object[key];
    if (!Array.isArray(value) || value.length === 0 || value.some((item) => typeof item !== 'number' || item < min || item > max)) this.fail(key, `must be a non-empty list of numbers from ${min} to ${max}`);
    return value as number[];
  }
}

function parseL1(fields: Fields): L1Setting {
  const text = fields.string('l1', 'default-256');
  if (text === 'off') return { kind: 'off' };
  const mib = /^(\d+)mb$/.exec(text);
  if (mib !== null) return { kind: 'mib', mib: Number(mib[1]) };
  const share = /^(\d+(?:\.\d+)?)% of data$/.exec(text);
  if (share !== null && Number(share[1]) > 0 && Number(share[1]) <= 100) return { kind: 'share-of-data', share: Number(share[1]) / 100 };
  if (text === 'default-256') return { kind: 'mib', mib: 256 };
  return fields.fail('l1', 'must be "off", a size like "64mb", or a share like "10% of data"');
}

function parseKeys(fields: Fields): KeySpec {
  const dist = fields.oneOf('dist', ['zipf', 'uniform', 'hot', 'never-written'] as const);
  switch (dist) {
    case 'zipf':
      fields.only('dist', 's');
      return { dist, s: fields.number('s', 0.1, 3, 1) };
    case 'hot':
      fields.only('dist', 'size');
      return { dist, size: fields.integer('size', 1, 10_000_000) };
    default:
      fields.only('dist');
      return { dist };
  }
}

function parseLoad(fields: Fields): LoadSpec {
  const generator = fields.oneOf('generator', ['h2load', 'node', 'autocannon'] as const);
  if (generator === 'h2load') {
    fields.only('generator', 'mode', 'connections', 'inflight');
    fields.oneOf('mode', ['closed'] as const, 'closed');
    return { generator, mode: 'closed', connections: fields.integer('connections', 1, 256, 4), inflight: fields.integer('inflight', 1, 4096, 64) };
  }
  if (generator === 'autocannon') {
    fields.only('generator', 'mode', 'connections');
    fields.oneOf('mode', ['closed'] as const, 'closed');
    return { generator, mode: 'closed', connections: fields.integer('connections', 1, 1024, 16) };
  }
  const mode = fields.oneOf('mode', ['open', 'closed'] as const);
  if (mode === 'open') {
    fields.only('generator', 'mode', 'rates', 'processes');
    return { generator, mode, rates: fields.numbers('rates', 1, 200_000), processes: fields.integer('processes', 1, 8, 1) };
  }
  fields.only('generator', 'mode', 'inflight', 'processes');
  return { generator, mode, inflight: fields.integer('inflight', 1, 4096, 32), processes: fields.integer('processes', 1, 8, 1) };
}

export function parseScenario(file: string, text: string): Scenario {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ScenarioFileError(`${file}: not JSON: ${(error as Error).message}`);
  }
  const top = Fields.of(file, '', json).only('description', 'server', 'request', 'load', 'prefill_reads_per_entity', 'warmup_s', 'duration_s', 'baseline', 'chart');
  const server = top.child('server').only('l1', 'redis', 'workers');
  const request = top.child('request').only('rows', 'features', 'by', 'keys');
  const load = parseLoad(top.child('load'));
  const keys = parseKeys(request.child('keys'));
  const name = basename(file, '.json');
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new ScenarioFileError(`${file}: the file name is the scenario name: lower-case letters, digits and dashes`);
  const features = request.integer('features', 10, 50);
  if (features !== 10 && features !== 50) return request.fail('features', 'must be 10 or 50 (the feature services of loadtest/registry.yaml)');
  const scenario: Scenario = {
    name,
    file,
    description: top.string('description'),
    server: { l1: parseL1(server), redis: server.boolean('redis', false), workers: server.integer('workers', 1, 64, 1) },
    request: { rows: request.integer('rows', 1, 1000), features, by: request.oneOf('by', ['service', 'refs'] as const, 'service'), keys },
    load,
    prefillReadsPerEntity: top.number('prefill_reads_per_entity', 0, 10, 0),
    warmupS: top.number('warmup_s', 0, 600, 3),
    durationS: top.number('duration_s', 1, 600, 10),
    baseline: top.boolean('baseline', false),
    chart: top.boolean('chart', false),
  };
  if (load.generator === 'h2load' && keys.dist !== 'hot') top.child('request').child('keys').fail('dist', 'h2load sends one request body over and over: use { "dist": "hot", "size": <rows> }');
  if (scenario.prefillReadsPerEntity > 0 && keys.dist === 'never-written') top.fail('prefill_reads_per_entity', 'never-written keys need no prefill');
  if (scenario.prefillReadsPerEntity > 0 && load.generator === 'h2load') top.fail('prefill_reads_per_entity', 'h2load sends one request body, read into L1 by the check call before the run');
  if (scenario.baseline && load.generator === 'autocannon') top.fail('baseline', 'the no-op baseline is a gRPC server; HTTP scenarios have none');
  if (scenario.chart && !(load.mode === 'open' && load.rates.length > 1)) top.fail('chart', 'only an open-loop scenario with several rates can be charted');
  return scenario;
}

export function loadScenarios(directory: string): Scenario[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => parseScenario(join(directory, file), readFileSync(join(directory, file), 'utf8')));
}

export function loadTargets(file: string, scenarios: readonly Scenario[]): Target[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ScenarioFileError(`${file}: ${(error as Error).message}`);
  }
  const top = Fields.of(file, '', json).only('targets');
  const list: unknown = (json as Json).targets;
  if (!Array.isArray(list)) return top.fail('targets', 'must be a list');
  return list.map((item: unknown, index: number): Target => {
    const fields = Fields.of(file, `targets[${index}]`, item).only('scenario', 'rate', 'metric', 'min', 'max', 'label');
    const scenarioName = fields.string('scenario');
    const scenario = scenarios.find((candidate) => candidate.name === scenarioName);
    if (scenario === undefined) return fields.fail('scenario', `no scenario file named ${scenarioName}.json`);
    const rate = fields.has('rate') ? fields.number('rate', 1, 200_000) : undefined;
    if (rate !== undefined && !(scenario.load.mode === 'open' && scenario.load.rates.includes(rate))) fields.fail('rate', `${scenarioName} has no open-loop rate ${rate}`);
    const min = fields.has('min') ? fields.number('min', -1e12, 1e12) : undefined;
    const max = fields.has('max') ? fields.number('max', -1e12, 1e12) : undefined;
    if ((min === undefined) === (max === undefined)) fields.fail('min', 'give exactly one of min and max');
    return { scenario: scenarioName, rate, metric: fields.oneOf('metric', METRICS), min, max, label: fields.string('label') };
  });
}
