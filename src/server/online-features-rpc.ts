import type { Registry } from '../config/registry.js';
import type { OnlineReader, OnlineRequest, OnlineResult } from '../serving/online-reader.js';
import { encodeOnlineResponse } from './online-response.js';
import { decodeRequest, ProtoTypes, type GetOnlineFeaturesMessage } from './proto.js';
import { protoValues, timestampToMs } from './proto-values.js';

/** A decoded GetOnlineFeaturesRequest. */
export interface OnlineRpcRequest extends OnlineRequest {
  readonly fullFeatureNames: boolean;
}

/**
 * GetOnlineFeatures from request bytes to response bytes, with no network
 * in between: the gRPC edge runs exactly this per call, and
 * bench/read-path-bench.ts times it (and each of its steps) in-process.
 */
export class OnlineFeaturesRpc {
  private readonly registry: Registry;
  private readonly reader: OnlineReader;

  constructor(registry: Registry, reader: OnlineReader) {
    this.registry = registry;
    this.reader = reader;
  }

  async handle(body: Uint8Array, nowMs: number): Promise<Buffer> {
    const request = this.decode(body);
    return this.encode(await this.reader.read(request, protoValues, nowMs), request.fullFeatureNames);
  }

  decode(body: Uint8Array): OnlineRpcRequest {
    const message = decodeRequest<GetOnlineFeaturesMessage>(ProtoTypes.GetOnlineFeaturesRequest, body);
    return {
      features: message.kind === 'features' ? (message.features?.refs ?? []) : undefined,
      featureService: message.kind === 'feature_service' ? message.feature_service : undefined,
      entities: new Map(Object.entries(message.entities ?? {}).map(([joinKey, column]) => [joinKey, column?.values ?? []])),
      asOfMs: message.as_of ? timestampToMs(message.as_of, 'as_of') : undefined,
      fullFeatureNames: message.full_feature_names === true,
    };
  }

  encode(result: OnlineResult, fullFeatureNames: boolean): Buffer {
    const joinKeyTypes = result.plan.joinKeys.map((joinKey) => this.registry.entitiesByJoinKey.get(joinKey)!.type);
    const names = [...result.plan.joinKeys, ...result.plan.features.map((feature) => (fullFeatureNames ? feature.fullName : feature.name))];
    return encodeOnlineResponse(result, joinKeyTypes, names);
  }
}
