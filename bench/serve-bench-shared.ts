/**
 * What the processes of `npm run bench:serve` share: the bench registry's
 * shape, the protobuf types, deterministic entity/key choice, request
 * encoding, the IPC messages between the orchestrator and its children,
 * and latency statistics.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { seededRandom } from '../src/util/seeded-random.js';

export const PROTO_PATH = fileURLToPath(new URL('../proto/strata/v1/feature_service.proto', import.meta.url));
export const REGISTRY_PATH = fileURLToPath(new URL('./registry.yaml', import.meta.url));

export const GET_ONLINE_FEATURES = '/strata.v1.FeatureService/GetOnlineFeatures';
export const WRITE_FEATURES = '/strata.v1.FeatureService/WriteFeatures';

export const VIEW = 'card_features';
export const JOIN_KEY = 'card_id';
export const FEATURES: readonly { name: string; type: 'double' | 'int64' | 'string' }[] = [
  { name: 'credit_limit', type: 'double' },
  { name: 'risk_score', type: 'double' },
  { name: 'avg_ticket_7d', type: 'double' },
  { name: 'amount_stddev_30d', type: 'double' },
  { name: 'txn_count_1h', type: 'int64' },
  { name: 'txn_count_24h', type: 'int64' },
  { name: 'account_age_days', type: 'int64' },
  { name: 'chargebacks_90d', type: 'int64' },
  { name: 'home_country', type: 'string' },
  { name: 'last_merchant_category', type: 'string' },
];
export const FEATURE_REFS: readonly string[] = FEATURES.map((feature) => `${VIEW}:${feature.name}`);

const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
export const Proto = {
  GetOnlineFeaturesRequest: root.lookupType('strata.v1.GetOnlineFeaturesRequest'),
  GetOnlineFeaturesResponse: root.lookupType('strata.v1.GetOnlineFeaturesResponse'),
  WriteFeaturesRequest: root.lookupType('strata.v1.WriteFeaturesRequest'),
  WriteFeaturesResponse: root.lookupType('strata.v1.WriteFeaturesResponse'),
} as const;

export const identity = (bytes: Buffer): Buffer => bytes;

/** Channel options of every bench client: own TCP connection per client (no shared subchannel pool), no channelz. */
export const CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_channelz': 0,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export function cardId(index: number): string {
  return `card-${String(index).padStart(7, '0')}`;
}

/** The hot set: `hotCount` distinct entity indexes out of `entityCount`, a seeded partial Fisher–Yates shuffle. */
export function hotSet(entityCount: number, hotCount: number, seed: number): Int32Array {
  const all = new Int32Array(entityCount);
  for (let index = 0; index < entityCount; index++) all[index] = index;
  const random = seededRandom(seed);
  for (let index = 0; index < hotCount; index++) {
    const pick = index + Math.floor(random() * (entityCount - index));
    const swap = all[index]!;
    all[index] = all[pick]!;
    all[pick] = swap;
  }
  return all.slice(0, hotCount);
}

export function encodeRead(ids: readonly string[]): Buffer {
  const message = {
    features: { refs: FEATURE_REFS },
    entities: { [JOIN_KEY]: { values: ids.map((id) => ({ string_val: id })) } },
  };
  const bytes = Proto.GetOnlineFeaturesRequest.encode(message as unknown as protobuf.Message).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
}

/** Deterministic feature values of entity `index` (so any row can be checked). */
export function rowValues(index: number): Record<string, { double_val?: number; int64_val?: number; string_val?: string }> {
  const countries = ['DE', 'FR', 'US', 'GB', 'JP', 'BR', 'IN', 'NL'];
  const categories = ['grocery', 'travel', 'fuel', 'electronics', 'restaurants', 'pharmacy'];
  return {
    credit_limit: { double_val: 1000 + (index % 50) * 250 },
    risk_score: { double_val: (index % 1000) / 1000 },
    avg_ticket_7d: { double_val: 12.5 + (index % 377) * 0.75 },
    amount_stddev_30d: { double_val: 3.25 + (index % 91) * 0.5 },
    txn_count_1h: { int64_val: index % 7 },
    txn_count_24h: { int64_val: index % 53 },
    account_age_days: { int64_val: 30 + (index % 3650) },
    chargebacks_90d: { int64_val: index % 3 },
    home_country: { string_val: countries[index % countries.length]! },
    last_merchant_category: { string_val: categories[index % categories.length]! },
  };
}

/** A WriteFeaturesRequest for entities [from, to), all with the same event time. */
export function encodeWrite(from: number, to: number, eventMs: number): Buffer {
  const columns: Record<string, { values: unknown[] }> = { [JOIN_KEY]: { values: [] } };
  for (const feature of FEATURES) columns[feature.name] = { values: [] };
  const timestamps: { seconds: number; nanos: number }[] = [];
  const seconds = Math.floor(eventMs / 1000);
  for (let index = from; index < to; index++) {
    columns[JOIN_KEY]!.values.push({ string_val: cardId(index) });
    const values = rowValues(index);
    for (const feature of FEATURES) columns[feature.name]!.values.push(values[feature.name]);
    timestamps.push({ seconds, nanos: 0 });
  }
  const bytes = Proto.WriteFeaturesRequest.encode({ feature_view: VIEW, columns, event_timestamps: timestamps } as unknown as protobuf.Message).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
}

/** Promise form of one unary call with raw bytes both ways. */
export function unary(client: grpc.Client, method: string, request: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method, identity, identity, request, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) reject(error);
      else if (response === undefined) reject(new Error(`${method}: empty response`));
      else resolve(response);
    });
  });
}

// ---- IPC between the orchestrator and the load generator ------------------------------------------

export interface PoolSpec {
  /** Entity rows per request. */
  readonly rows: number;
  /** Entity indexes requests draw from (rows of one request are distinct). */
  readonly keySpace: { readonly kind: 'hot'; readonly entityCount: number; readonly hotCount: number; readonly hotSeed: number } | { readonly kind: 'all'; readonly entityCount: number };
  readonly poolSize: number;
  readonly seed: number;
}

export interface GeneratorInit {
  readonly type: 'init';
  readonly target: string;
  readonly method: string;
  readonly pool: PoolSpec;
  readonly channels: number;
  readonly inflight: number;
  readonly callTimeoutMs: number;
}

export interface GeneratorRun {
  readonly type: 'run';
  readonly id: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Hard cap on requests recorded in the window (the latency array is this long). */
  readonly maxRequests: number;
}

export type ToGenerator = GeneratorInit | GeneratorRun | { readonly type: 'exit' };

export interface RunStats {
  readonly requests: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly windowMs: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  /** True when the run stopped at maxRequests instead of the end of its window. */
  readonly capped: boolean;
}

export type FromGenerator =
  | { readonly type: 'ready'; readonly poolSize: number; readonly requestBytes: number; readonly buildMs: number }
  | { readonly type: 'window'; readonly id: number; readonly edge: 'start' | 'end' }
  | { readonly type: 'result'; readonly id: number; readonly stats: RunStats }
  | { readonly type: 'failed'; readonly message: string };

export type FromNoopServer = { readonly type: 'listening'; readonly port: number } | { readonly type: 'failed'; readonly message: string };

// ---- statistics ---------------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(fraction * sorted.length)));
  return sorted[rank - 1]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
