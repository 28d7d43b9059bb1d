import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { invalid, StrataError } from '../errors.js';
import type { HistoricalReader } from '../serving/historical-reader.js';
import { describeRegistry } from '../serving/registry-description.js';
import { importSnapshotHandler } from './admin-rpc.js';
import type { ServingCore } from './serving-core.js';
import { bytesBidiMethod, HistoricalFeaturesRpc } from './historical-features-rpc.js';
import { OnlineFeaturesRpc } from './online-features-rpc.js';
import { ADMIN_SERVICE_NAME, decodeRequest, PROTO_FILE, ProtoTypes, SERVICE_NAME, type PushEventsMessage, type WriteFeaturesMessage } from './proto.js';
import { structToJs } from './proto-struct.js';
import { protoValues } from './proto-values.js';
import { grpcCodeName, toGrpcError } from './status-edge.js';

type UnaryHandler = (body: Buffer) => Promise<Buffer>;

const identity = (bytes: Buffer): Buffer => bytes;

/** A method (unary unless told) whose messages cross grpc-js as raw bytes, for handlers that (de)serialize themselves. */
export function bytesMethod(path: string, { responseStream = false }: { readonly responseStream?: boolean } = {}): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream: false, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
}

/**
 * `strata.v1.FeatureService` and `strata.v1.AdminService` on grpc-js, plus grpc.health.v1 and server
 * reflection. Messages pass through grpc-js as raw bytes (identity
 * serializers): requests are decoded inside the handler, where a parse error
 * can become INVALID_ARGUMENT, and responses arrive already encoded.
 */
export class GrpcEdge {
  readonly server: grpc.Server;
  private readonly health: HealthImplementation;
  private readonly core: ServingCore;
  private readonly registryResponse: Buffer;
  private readonly onlineFeatures: OnlineFeaturesRpc;
  private readonly historicalFeatures: HistoricalFeaturesRpc;

  constructor(core: ServingCore, historical: HistoricalReader) {
    this.core = core;
    this.onlineFeatures = new OnlineFeaturesRpc(core.registry, core.reader);
    this.historicalFeatures = new HistoricalFeaturesRpc(core, historical, this.onlineFeatures);
    this.server = new grpc.Server({
      // Strata checks the configured limit itself to answer INVALID_ARGUMENT; grpc-js only stops absurd sizes.
      'grpc.max_receive_message_length': core.limits.maxMessageBytes * 4,
      'grpc.max_send_message_length': -1,
      'grpc.enable_channelz': 0,
    });
    const response = describeRegistry(core.registry);
    this.registryResponse = Buffer.from(ProtoTypes.ListFeatureViewsResponse.encode(ProtoTypes.ListFeatureViewsResponse.fromObject(response)).finish());

    const method = (name: string) => bytesMethod(`/${SERVICE_NAME}/${name}`);
    this.server.addService(
      {
        GetOnlineFeatures: method('GetOnlineFeatures'),
        WriteFeatures: method('WriteFeatures'),
        ListFeatureViews: method('ListFeatureViews'),
        PushEvents: method('PushEvents'),
        GetHistoricalFeatures: bytesBidiMethod(`/${SERVICE_NAME}/GetHistoricalFeatures`),
      },
      {
        GetOnlineFeatures: this.unary('GetOnlineFeatures', (body) => this.onlineFeatures.handle(body, Date.now()), { shedWhenOverloaded: true }),
        WriteFeatures: this.unary('WriteFeatures', (body) => this.writeFeatures(body)),
        ListFeatureViews: this.unary('ListFeatureViews', async () => this.registryResponse),
        PushEvents: this.unary('PushEvents', (body) => this.pushEvents(body)),
        GetHistoricalFeatures: this.historicalFeatures.handle,
      },
    );
    this.server.addService({ ImportSnapshot: bytesMethod(`/${ADMIN_SERVICE_NAME}/ImportSnapshot`, { responseStream: true }) }, { ImportSnapshot: importSnapshotHandler(core) });
    this.health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
    this.health.addToServer(this.server);
    const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true });
    new ReflectionService(definition).addToServer(this.server);
  }

  private unary(name: string, handle: UnaryHandler, { shedWhenOverloaded = false } = {}): grpc.handleUnaryCall<Buffer, Buffer> {
    const { metrics, logger, limits, overload } = this.core;
    return (call, callback) => {
      const started = performance.now();
      const done = (code: string): void => metrics.requestSeconds.observe({ protocol: 'grpc', method: name, code }, (performance.now() - started) / 1000);
      const fail = (thrown: unknown): void => {
        try {
          const { error, response } = toGrpcError(thrown);
          if (error.kind === 'internal') logger.error('grpc call failed', { method: name, error: error.message, cause: String((error.cause as Error | undefined)?.stack ?? '') });
          callback(response);
          done(grpcCodeName(error));
        } catch (mappingError) {
          // The last line of defence: mapping itself failed; still answer, and with INTERNAL rather than UNKNOWN.
          logger.error('grpc error mapping failed', { method: name, error: String(mappingError) });
          callback({ code: grpc.status.INTERNAL, details: 'internal error' });
          done('INTERNAL');
        }
      };
      if (this.core.isShuttingDown()) return fail(new StrataError('STRATA_SHUTTING_DOWN', 'the server is shutting down; retry on another replica'));
      const refused = shedWhenOverloaded ? overload.refusal() : undefined;
      if (refused !== undefined) return fail(refused);
      if (call.request.length > limits.maxMessageBytes) {
        return fail(invalid('STRATA_MESSAGE_TOO_LARGE', 'request', `${call.request.length} bytes exceed the limit of ${limits.maxMessageBytes}`));
      }
      handle(call.request).then((response) => {
        callback(null, response);
        done('OK');
      }, fail);
    };
  }

  private async writeFeatures(body: Buffer): Promise<Buffer> {
    const message = decodeRequest<WriteFeaturesMessage>(ProtoTypes.WriteFeaturesRequest, body);
    const created = message.created_timestamps ?? [];
    const rows = await this.core.writer.write(
      {
        view: message.feature_view ?? '',
        columns: new Map(Object.entries(message.columns ?? {}).map(([name, column]) => [name, column?.values ?? []])),
        eventTimestamps: message.event_timestamps ?? [],
        createdTimestamps: created.length > 0 ? created : undefined,
      },
      protoValues,
      Date.now(),
    );
    return Buffer.from(ProtoTypes.WriteFeaturesResponse.encode({ rows_written: rows }).finish());
  }

  private async pushEvents(body: Buffer): Promise<Buffer> {
    const pusher = this.core.pusher;
    if (pusher === undefined) throw new StrataError('STRATA_NO_STREAM_VIEWS', 'PushEvents: the registry has no stream views, so no topic takes events; push rows to push views with WriteFeatures');
    const message = decodeRequest<PushEventsMessage>(ProtoTypes.PushEventsRequest, body);
    const events = (message.events ?? []).map((event, index) => structToJs(event, `events[${index}]`));
    const outcome = await pusher.push(message.topic ?? '', events, Date.now());
    return Buffer.from(ProtoTypes.PushEventsResponse.encode({ applied: outcome.applied, late_indexes: outcome.late }).finish());
  }

  /** Binds a TCP address (port 0 = ephemeral) or a `unix:` path; returns the bound port. */
  bind(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
    });
  }

  /** Health → NOT_SERVING, then lets in-flight calls finish for up to `graceMs` before cutting them. */
  async shutdown(graceMs: number): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(SERVICE_NAME, 'NOT_SERVING');
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
