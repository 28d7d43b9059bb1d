import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { shuttingDown, StrataError } from '../errors.js';
import type { HistoricalReader } from '../serving/historical-reader.js';
import { describeRegistry } from '../serving/registry-description.js';
import { importSnapshotHandler } from './admin-rpc.js';
import type { ServingCore } from './serving-core.js';
import { GrpcForwarder } from './grpc-forwarder.js';
import { GrpcListener, type ListenAddress, type UnaryEndpoint } from './grpc-listener.js';
import { HistoricalFeaturesRpc } from './historical-features-rpc.js';
import { OnlineFeaturesRpc } from './online-features-rpc.js';
import { ADMIN_SERVICE_NAME, decodeRequest, PROTO_FILE, ProtoTypes, SERVICE_NAME, type PushEventsMessage, type WriteFeaturesMessage } from './proto.js';
import { structToJs } from './proto-struct.js';
import { protoValues } from './proto-values.js';

const identity = (bytes: Buffer): Buffer => bytes;

/** A method (unary unless told) whose messages cross grpc-js as raw bytes, for handlers that (de)serialize themselves. */
export function bytesMethod(
  path: string,
  { requestStream = false, responseStream = false }: { readonly requestStream?: boolean; readonly responseStream?: boolean } = {},
): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
}

/**
 * The gRPC port. `strata.v1.FeatureService`'s unary methods are answered by
 * GrpcListener on node:http2; GetHistoricalFeatures,
 * `strata.v1.AdminService`, grpc.health.v1 and server reflection run on a
 * grpc-js server behind it, on a unix socket in a private directory, reached
 * through GrpcForwarder. Messages stay raw bytes on both: requests are
 * decoded inside the handler, where a parse error can become
 * INVALID_ARGUMENT, and responses arrive already encoded.
 */
export class GrpcEdge {
  private readonly streamingServer: grpc.Server;
  private readonly listener: GrpcListener;
  private readonly forwarder: GrpcForwarder;
  private readonly socketDirectory: string;
  private readonly streamingSocket: string;
  private streamingServerBound: Promise<void> | undefined;
  private readonly health: HealthImplementation;
  private readonly core: ServingCore;
  private readonly registryResponse: Buffer;
  private readonly onlineFeatures: OnlineFeaturesRpc;
  private readonly historicalFeatures: HistoricalFeaturesRpc;

  constructor(core: ServingCore, historical: HistoricalReader) {
    this.core = core;
    this.onlineFeatures = new OnlineFeaturesRpc(core.registry, core.reader);
    this.historicalFeatures = new HistoricalFeaturesRpc(core, historical, this.onlineFeatures);
    this.streamingServer = new grpc.Server({
      // Strata checks the configured limit itself to answer INVALID_ARGUMENT; grpc-js only stops absurd sizes.
      'grpc.max_receive_message_length': core.limits.maxMessageBytes * 4,
      'grpc.max_send_message_length': -1,
      'grpc.enable_channelz': 0,
    });
    const response = describeRegistry(core.registry);
    this.registryResponse = Buffer.from(ProtoTypes.ListFeatureViewsResponse.encode(ProtoTypes.ListFeatureViewsResponse.fromObject(response)).finish());

    this.streamingServer.addService({ GetHistoricalFeatures: bytesMethod(`/${SERVICE_NAME}/GetHistoricalFeatures`, { requestStream: true, responseStream: true }) }, { GetHistoricalFeatures: this.historicalFeatures.handle });
    this.streamingServer.addService({ ImportSnapshot: bytesMethod(`/${ADMIN_SERVICE_NAME}/ImportSnapshot`, { responseStream: true }) }, { ImportSnapshot: importSnapshotHandler(core) });
    this.health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
    this.health.addToServer(this.streamingServer);
    const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true });
    new ReflectionService(definition).addToServer(this.streamingServer);

    this.socketDirectory = mkdtempSync(join(tmpdir(), 'strata-grpc-'));
    this.streamingSocket = join(this.socketDirectory, 'streaming.sock');
    this.forwarder = new GrpcForwarder(this.streamingSocket);
    const endpoints = new Map<string, UnaryEndpoint>();
    const unary = (name: string, handle: (message: Buffer) => Promise<Buffer>, { shedWhenOverloaded = false } = {}): void => {
      endpoints.set(`/${SERVICE_NAME}/${name}`, { name, handle: (message) => this.admit(shedWhenOverloaded) ?? handle(message) });
    };
    unary('GetOnlineFeatures', (body) => this.onlineFeatures.handle(body, Date.now()), { shedWhenOverloaded: true });
    unary('WriteFeatures', (body) => this.writeFeatures(body));
    unary('ListFeatureViews', async () => this.registryResponse);
    unary('PushEvents', (body) => this.pushEvents(body));
    const { metrics, logger } = core;
    this.listener = new GrpcListener(endpoints, {
      maxMessageBytes: core.limits.maxMessageBytes,
      onUnaryDone: (method, code, seconds) => metrics.requestSeconds.observe({ protocol: 'grpc', method, code }, seconds),
      onUnaryFailure: (method, { error }) => {
        if (error.kind === 'internal') logger.error('grpc call failed', { method, error: error.message, cause: String((error.cause as Error | undefined)?.stack ?? '') });
      },
      onServerError: (error) => logger.error('grpc listener error', { error: error.message }),
      forward: this.forwarder.forward,
    });
  }

  /** A rejection when the server takes no new calls of this kind (draining, or shedding online reads); undefined to go ahead. */
  private admit(shedWhenOverloaded: boolean): Promise<never> | undefined {
    if (this.core.isShuttingDown()) return Promise.reject(shuttingDown());
    const refused = shedWhenOverloaded ? this.core.overload.refusal() : undefined;
    return refused === undefined ? undefined : Promise.reject(refused);
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

  /** Listens on a TCP address (port 0 = ephemeral) or a unix socket path; resolves with the bound port. */
  async listen(address: ListenAddress): Promise<number> {
    this.streamingServerBound ??= new Promise((resolve, reject) => {
      this.streamingServer.bindAsync(`unix:${this.streamingSocket}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
    });
    await this.streamingServerBound;
    return this.listener.listen(address);
  }

  /** Health → NOT_SERVING, then lets in-flight calls finish for up to `graceMs` before cutting them. */
  async shutdown(graceMs: number): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(SERVICE_NAME, 'NOT_SERVING');
    const deadline = Date.now() + graceMs;
    await this.listener.close(graceMs);
    this.forwarder.close();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.streamingServer.forceShutdown();
        resolve();
      }, Math.max(0, deadline - Date.now()));
      this.streamingServer.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    rmSync(this.socketDirectory, { recursive: true, force: true });
  }

  /** Start failed: stop everything now. */
  destroy(): void {
    void this.listener.close(0);
    this.forwarder.close();
    this.streamingServer.forceShutdown();
    rmSync(this.socketDirectory, { recursive: true, force: true });
  }
}
