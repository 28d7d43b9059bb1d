import type { Registry } from '../config/registry.js';
import type { OnlineReader, OnlineResult } from '../serving/online-reader.js';
import type { ReadPlan } from '../serving/plan.js';
import { encodeOnlineResponse, ResponseLayout } from './online-response.js';
import { OnlineRequestDecoder, type OnlineRpcRequest } from './online-request.js';
import { protoValues } from './proto-values.js';

/**
 * GetOnlineFeatures from request bytes to response bytes, with no network
 * in between: the gRPC edge runs exactly this per call, and
 * bench/read-path-bench.ts times it (and each of its steps) in-process.
 */
export class OnlineFeaturesRpc {
  private readonly registry: Registry;
  private readonly reader: OnlineReader;
  private readonly decoder = new OnlineRequestDecoder();
  /** Per plan: the response layout with short and with full feature names, built on first use. */
  private readonly layouts = new WeakMap<ReadPlan, [ResponseLayout | undefined, ResponseLayout | undefined]>();

  constructor(registry: Registry, reader: OnlineReader) {
    this.registry = registry;
    this.reader = reader;
  }

  async handle(body: Uint8Array, nowMs: number): Promise<Buffer> {
    const request = this.decode(body);
    return this.encode(await this.reader.read(request, protoValues, nowMs), request.fullFeatureNames);
  }

  decode(body: Uint8Array): OnlineRpcRequest {
    return this.decoder.decode(body);
  }

  encode(result: OnlineResult, fullFeatureNames: boolean): Buffer {
    return encodeOnlineResponse(result, this.layout(result.plan, fullFeatureNames));
  }

  /** Plans live as long as the reader caches them (feature services: always), and their layouts with them. */
  private layout(plan: ReadPlan, fullFeatureNames: boolean): ResponseLayout {
    let layouts = this.layouts.get(plan);
    if (layouts === undefined) {
      layouts = [undefined, undefined];
      this.layouts.set(plan, layouts);
    }
    const slot = fullFeatureNames ? 1 : 0;
    let layout = layouts[slot];
    if (layout === undefined) {
      const joinKeyTypes = plan.joinKeys.map((joinKey) => this.registry.entitiesByJoinKey.get(joinKey)!.type);
      const names = [...plan.joinKeys, ...plan.features.map((feature) => (fullFeatureNames ? feature.fullName : feature.name))];
      layout = new ResponseLayout(plan, joinKeyTypes, names);
      layouts[slot] = layout;
    }
    return layout;
  }
}
