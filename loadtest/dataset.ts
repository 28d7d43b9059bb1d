/**
 * The load-test data set: `entityCount` users of loadtest/registry.yaml, each
 * with one version of all 50 features, deterministic per entity so any
 * response can be checked; and the request bytes that read them.
 */
import { fileURLToPath } from 'node:url';
import type protobuf from 'protobufjs';
import { loadRegistry, type ViewDef } from '../src/config/registry.js';
import { ProtoTypes } from '../src/server/proto.js';

export const REGISTRY_PATH = fileURLToPath(new URL('./registry.yaml', import.meta.url));
export const GET_ONLINE_FEATURES = '/strata.v1.FeatureService/GetOnlineFeatures';
export const WRITE_FEATURES = '/strata.v1.FeatureService/WriteFeatures';

const registry = loadRegistry(REGISTRY_PATH);
const view: ViewDef = registry.views.get('user_features')!;
const JOIN_KEY = view.joinKeys[0]!;

/** Feature sets a scenario can ask for: by feature service, or by the same features as refs. */
export const FEATURE_SETS = {
  10: { service: 'ranking_10', refs: registry.services.get('ranking_10')!.features.map((feature) => feature.ref) },
  50: { service: 'ranking_50', refs: registry.services.get('ranking_50')!.features.map((feature) => feature.ref) },
} as const;
export type FeatureCount = keyof typeof FEATURE_SETS;

export function entityId(index: number): string {
  return `user-${String(index).padStart(8, '0')}`;
}

/** Ids that no write ever used (another prefix), for the never-written scenario. */
export function ghostId(index: number): string {
  return `ghost-${String(index).padStart(8, '0')}`;
}

const WORDS = ['grocery', 'fashion', 'electronics', 'travel', 'books', 'home', 'sports', 'beauty', 'toys', 'garden', 'DE', 'FR', 'US', 'GB', 'web', 'ios', 'android', 'card', 'paypal', 'gold'];

/** Feature values of entity `index`, as protobuf Value objects: a function of (index, feature position). */
function featureValue(index: number, position: number, type: string): Record<string, unknown> {
  const mixed = Math.imul(index + 1, 2_654_435_761 + position * 40_503) >>> 0;
  switch (type) {
    case 'double':
      return { double_val: (mixed % 1_000_000) / 1000 };
    case 'int64':
      return { int64_val: mixed % 10_000 };
    case 'string':
      return { string_val: WORDS[mixed % WORDS.length]! };
    case 'bool':
      return { bool_val: (mixed & 1) === 1 };
    default:
      throw new Error(`loadtest registry: unexpected feature type ${type}`);
  }
}

function encode(type: protobuf.Type, message: object): Buffer {
  const bytes = type.encode(message as protobuf.Message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A WriteFeaturesRequest for entities [from, to), all with event time `eventMs`. */
export function encodeWrite(from: number, to: number, eventMs: number): Buffer {
  const columns: Record<string, { values: unknown[] }> = { [JOIN_KEY]: { values: [] } };
  for (const feature of view.features) columns[feature.name] = { values: [] };
  const timestamps: { seconds: number; nanos: number }[] = [];
  const timestamp = { seconds: Math.floor(eventMs / 1000), nanos: (eventMs % 1000) * 1e6 };
  for (let index = from; index < to; index++) {
    columns[JOIN_KEY]!.values.push({ string_val: entityId(index) });
    view.features.forEach((feature, position) => columns[feature.name]!.values.push(featureValue(index, position, feature.type)));
    timestamps.push(timestamp);
  }
  return encode(ProtoTypes.WriteFeaturesRequest, { feature_view: view.name, columns, event_timestamps: timestamps });
}

export interface ReadShape {
  readonly features: FeatureCount;
  /** Ask by feature service name, or by the same features as `view:feature` refs. */
  readonly by: 'service' | 'refs';
}

/** A GetOnlineFeaturesRequest for these entity ids. */
export function encodeRead(ids: readonly string[], shape: ReadShape): Buffer {
  const set = FEATURE_SETS[shape.features];
  return encode(ProtoTypes.GetOnlineFeaturesRequest, {
    ...(shape.by === 'service' ? { feature_service: set.service } : { features: { refs: set.refs } }),
    entities: { [JOIN_KEY]: { values: ids.map((id) => ({ string_val: id })) } },
  });
}

/** The same read as the HTTP gateway's JSON body (Feast's /get-online-features shape). */
export function readJson(ids: readonly string[], shape: ReadShape): string {
  const set = FEATURE_SETS[shape.features];
  return JSON.stringify({ ...(shape.by === 'service' ? { feature_service: set.service } : { features: set.refs }), entities: { [JOIN_KEY]: ids } });
}

/** gRPC's length-prefixed message framing: 0x00 (not compressed), 4-byte big-endian length, message. */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}
