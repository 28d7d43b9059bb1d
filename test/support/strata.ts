import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { resolveServeOptions } from '../../src/config/options.js';
import { loadRegistry } from '../../src/config/registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { startServer, type RunningServer } from '../../src/server/strata-server.js';
import { sumMetric } from './process-helpers.js';

export const FIXTURE_REGISTRY = fileURLToPath(new URL('../fixtures/registry.yaml', import.meta.url));
const PROTO = fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url));
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const type = (name: string): protobuf.Type => root.lookupType(`strata.v1.${name}`);

export type Json = Record<string, unknown>;

export const timestamp = (ms: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

/** A grpc-js client speaking strata.v1.FeatureService with plain objects (protobufjs toObject/fromObject). */
export class StrataGrpcClient {
  readonly client: grpc.Client;

  constructor(address: string, channelOptions: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), channelOptions);
  }

  call(method: string, requestType: string, responseType: string, request: Json, metadata = new grpc.Metadata()): Promise<Json> {
    const encode = (message: Json): Buffer => Buffer.from(type(requestType).encode(type(requestType).fromObject(message)).finish());
    const decode = (bytes: Buffer): Json => type(responseType).toObject(type(responseType).decode(bytes), { longs: String, enums: String, defaults: true, oneofs: true }) as Json;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(`/strata.v1.FeatureService/${method}`, encode, decode, request, metadata, { deadline: Date.now() + 10_000 }, (error, response) =>
        error ? reject(error) : resolve(response!),
      );
    });
  }

  getOnlineFeatures(request: Json): Promise<Json> {
    return this.call('GetOnlineFeatures', 'GetOnlineFeaturesRequest', 'GetOnlineFeaturesResponse', request);
  }

  writeFeatures(request: Json): Promise<Json> {
    return this.call('WriteFeatures', 'WriteFeaturesRequest', 'WriteFeaturesResponse', request);
  }

  listFeatureViews(): Promise<Json> {
    return this.call('ListFeatureViews', 'ListFeatureViewsRequest', 'ListFeatureViewsResponse', {});
  }

  /**
   * AdminService.ImportSnapshot: every message the server sent (progress, then
   * the report) and the status it ended with (undefined: OK). `onMessage` sees
   * each message as it arrives.
   */
  importSnapshot(request: Json, onMessage: (message: Json) => void = () => undefined): Promise<{ messages: Json[]; error: grpc.ServiceError | undefined }> {
    const requestType = type('ImportSnapshotRequest');
    const responseType = type('ImportSnapshotResponse');
    const encode = (message: Json): Buffer => Buffer.from(requestType.encode(requestType.fromObject(message)).finish());
    const decode = (bytes: Buffer): Json => responseType.toObject(responseType.decode(bytes), { longs: Number, defaults: true, oneofs: true }) as Json;
    return new Promise((resolve) => {
      const messages: Json[] = [];
      const call = this.client.makeServerStreamRequest('/strata.v1.AdminService/ImportSnapshot', encode, decode, request, new grpc.Metadata(), { deadline: Date.now() + 60_000 });
      call.on('data', (message: Json) => {
        messages.push(message);
        onMessage(message);
      });
      let error: grpc.ServiceError | undefined;
      call.on('error', (failed: grpc.ServiceError) => (error = failed));
      // After the last message, whatever the status: grpc-js ends the stream in both cases.
      call.on('close', () => resolve({ messages, error }));
    });
  }

  close(): void {
    this.client.close();
  }
}

export interface TestServer {
  readonly server: RunningServer;
  readonly grpc: StrataGrpcClient;
  readonly dataDir: string;
  readonly logs: string[];
  http(path: string, body?: unknown): Promise<{ status: number; json: Json; text: string }>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A real Strata server on ephemeral loopback ports, in this process, with its
 * own data dir (removed by `stop` unless `keepData`). `flags` are CLI flags
 * without the dashes, as `strata serve` would take them.
 */
export async function startTestServer(flags: Record<string, string> = {}, options: { dataDir?: string; keepData?: boolean } = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'strata-test-'));
  // No load shedding unless asked: the server shares this process's event loop with the test's own work.
  const serveOptions = resolveServeOptions({ registry: FIXTURE_REGISTRY, 'data-dir': dataDir, 'grpc-port': '0', 'http-port': '0', 'shutdown-grace': '1s', 'shed-loop-delay': '0', ...flags }, {});
  const logs: string[] = [];
  const server = await startServer(serveOptions, loadRegistry(serveOptions.registry), { logger: createLogger('debug', (line) => void logs.push(line)) });
  const grpcClient = new StrataGrpcClient(`127.0.0.1:${server.grpcPort}`);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const http = async (path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await response.text();
    let json: Json = {};
    try {
      json = JSON.parse(text) as Json;
    } catch {
      // /metrics is text
    }
    return { status: response.status, json, text };
  };
  return {
    server,
    grpc: grpcClient,
    dataDir,
    logs,
    http,
    metric: async (name, labels = {}) => {
      const { text } = await http('/metrics');
      return sumMetric(text, name, labels) ?? 0;
    },
    stop: async () => {
      grpcClient.close();
      await server.stop();
      if (!options.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The feature columns of a GetOnlineFeatures response, by name: values in JSON-ish form, statuses, event ms. */
export function columnsOf(response: Json): Record<string, { values: unknown[]; statuses: string[]; eventMs: number[] }> {
  const names = (response.metadata as { feature_names: string[] }).feature_names;
  const results = response.results as { values: Json[]; statuses: string[]; event_timestamps: { seconds: string; nanos: number }[] }[];
  const columns: Record<string, { values: unknown[]; statuses: string[]; eventMs: number[] }> = {};
  names.forEach((name, index) => {
    const result = results[index]!;
    columns[name] = {
      values: result.values.map((value) => (value.kind === undefined ? null : value[value.kind as string])),
      statuses: result.statuses,
      eventMs: result.event_timestamps.map((ts) => Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000)),
    };
  });
  return columns;
}
