/**
 * The protobuf side of the gRPC edge. WriteFeatures and PushEvents requests
 * are decoded with protobufjs reflection types (proto-loader's default path
 * would add toObject/fromObject per message; PushEvents' Structs become plain
 * objects in proto-struct.ts); GetOnlineFeatures requests and responses are
 * decoded and encoded by hand, see online-request.ts and online-response.ts.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type Long from 'long';
import { invalid } from '../errors.js';
import type { StructMessage } from './proto-struct.js';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url));
export const SERVICE_NAME = 'strata.v1.FeatureService';
export const ADMIN_SERVICE_NAME = 'strata.v1.AdminService';

const root = new protobuf.Root().loadSync(PROTO_FILE, { keepCase: true });

export const ProtoTypes = {
  Value: root.lookupType('strata.v1.Value'),
  GetOnlineFeaturesRequest: root.lookupType('strata.v1.GetOnlineFeaturesRequest'),
  GetOnlineFeaturesResponse: root.lookupType('strata.v1.GetOnlineFeaturesResponse'),
  WriteFeaturesRequest: root.lookupType('strata.v1.WriteFeaturesRequest'),
  WriteFeaturesResponse: root.lookupType('strata.v1.WriteFeaturesResponse'),
  ListFeatureViewsRequest: root.lookupType('strata.v1.ListFeatureViewsRequest'),
  ListFeatureViewsResponse: root.lookupType('strata.v1.ListFeatureViewsResponse'),
  PushEventsRequest: root.lookupType('strata.v1.PushEventsRequest'),
  PushEventsResponse: root.lookupType('strata.v1.PushEventsResponse'),
  ImportSnapshotRequest: root.lookupType('strata.v1.ImportSnapshotRequest'),
  ImportSnapshotResponse: root.lookupType('strata.v1.ImportSnapshotResponse'),
} as const;

export interface TimestampMessage {
  seconds?: Long | number;
  nanos?: number;
}

export interface RepeatedValueMessage {
  values?: protobuf.Message[];
}

export interface WriteFeaturesMessage {
  feature_view?: string;
  columns?: Record<string, RepeatedValueMessage | null>;
  event_timestamps?: TimestampMessage[];
  created_timestamps?: TimestampMessage[];
}

export interface PushEventsMessage {
  topic?: string;
  events?: (StructMessage | null)[];
}

/** Decodes a request body, turning a protobuf parse failure into INVALID_ARGUMENT. */
export function decodeRequest<T>(type: protobuf.Type, bytes: Uint8Array): T {
  try {
    return type.decode(bytes) as unknown as T;
  } catch (error) {
    throw invalid('STRATA_MALFORMED_REQUEST', 'request', `not a valid ${type.name} message: ${(error as Error).message}`);
  }
}
