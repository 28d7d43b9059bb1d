/**
 * The protobuf side of the gRPC edge. Requests are decoded with protobufjs
 * reflection types; GetOnlineFeatures responses are written by hand from the
 * stored `Value` bytes, so a value is never decoded and re-encoded on the way
 * out (proto-loader's default path would run toObject/fromObject per message).
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type Long from 'long';
import { invalid } from '../errors.js';
import type { OnlineResult } from '../serving/online-reader.js';
import { FieldStatus } from '../serving/online-reader.js';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url));
export const SERVICE_NAME = 'strata.v1.FeatureService';

const root = new protobuf.Root().loadSync(PROTO_FILE, { keepCase: true });

export const ProtoTypes = {
  Value: root.lookupType('strata.v1.Value'),
  GetOnlineFeaturesRequest: root.lookupType('strata.v1.GetOnlineFeaturesRequest'),
  GetOnlineFeaturesResponse: root.lookupType('strata.v1.GetOnlineFeaturesResponse'),
  WriteFeaturesRequest: root.lookupType('strata.v1.WriteFeaturesRequest'),
  WriteFeaturesResponse: root.lookupType('strata.v1.WriteFeaturesResponse'),
  ListFeatureViewsRequest: root.lookupType('strata.v1.ListFeatureViewsRequest'),
  ListFeatureViewsResponse: root.lookupType('strata.v1.ListFeatureViewsResponse'),
} as const;

export interface TimestampMessage {
  seconds?: Long | number;
  nanos?: number;
}

export interface RepeatedValueMessage {
  values?: protobuf.Message[];
}

export interface GetOnlineFeaturesMessage {
  kind?: 'features' | 'feature_service';
  features?: { refs?: string[] };
  feature_service?: string;
  entities?: Record<string, RepeatedValueMessage>;
  as_of?: TimestampMessage | null;
  full_feature_names?: boolean;
}

export interface WriteFeaturesMessage {
  feature_view?: string;
  columns?: Record<string, RepeatedValueMessage>;
  event_timestamps?: TimestampMessage[];
  created_timestamps?: TimestampMessage[];
}

/** Decodes a request body, turning a protobuf parse failure into INVALID_ARGUMENT. */
export function decodeRequest<T>(type: protobuf.Type, bytes: Uint8Array): T {
  try {
    return type.decode(bytes) as unknown as T;
  } catch (error) {
    throw invalid('STRATA_MALFORMED_REQUEST', 'request', `not a valid ${type.name} message: ${(error as Error).message}`);
  }
}

function writeTimestamp(writer: protobuf.Writer, ms: number): void {
  // Field 3 of FeatureVector; an empty Timestamp (the epoch) when no version was found.
  if (ms === 0) return void writer.uint32(26).uint32(0);
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  writer.uint32(26).fork().uint32(8).int64(seconds);
  if (nanos !== 0) writer.uint32(16).int32(nanos);
  writer.ldelim();
}

/** Encodes a GetOnlineFeaturesResponse: join key columns (echoed from the request) first, then features. */
export function encodeOnlineResponse(result: OnlineResult, joinKeyValues: readonly (readonly Uint8Array[])[], names: readonly string[]): Buffer {
  const writer = protobuf.Writer.create();
  writer.uint32(10).fork();
  for (const name of names) writer.uint32(10).string(name);
  writer.ldelim();
  for (const values of joinKeyValues) {
    writer.uint32(18).fork();
    for (const value of values) writer.uint32(10).bytes(value);
    writer.uint32(18).fork();
    for (let row = 0; row < values.length; row++) writer.uint32(FieldStatus.PRESENT);
    writer.ldelim();
    for (let row = 0; row < values.length; row++) writeTimestamp(writer, 0);
    writer.ldelim();
  }
  for (const column of result.columns) {
    writer.uint32(18).fork();
    for (const value of column.values) writer.uint32(10).bytes(value);
    writer.uint32(18).fork();
    for (const status of column.statuses) writer.uint32(status);
    writer.ldelim();
    for (const ms of column.eventTs) writeTimestamp(writer, ms);
    writer.ldelim();
  }
  return writer.finish() as Buffer;
}
