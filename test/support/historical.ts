import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { columnsOf, timestamp, type Json, type StrataGrpcClient } from './strata.js';

const PROTO = fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url));
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const Request = root.lookupType('strata.v1.GetHistoricalFeaturesRequest');
const Response = root.lookupType('strata.v1.GetHistoricalFeaturesResponse');
const HISTORICAL_METHOD = '/strata.v1.FeatureService/GetHistoricalFeatures';

/** Request messages as protobufjs encodes them (the reference encoding, not the CLI's hand-written one). */
export const encodeHistoricalRequest = (message: Json): Buffer => Buffer.from(Request.encode(Request.fromObject(message)).finish());

/** A response chunk: GetOnlineFeaturesResponse's columns (see columnsOf), the rows' times in ms, and its first row. */
export interface HistoricalChunk {
  readonly columns: ReturnType<typeof columnsOf>;
  readonly timesMs: number[];
  readonly rowOffset: number;
  readonly degradedViews: string[];
}

export function decodeHistoricalResponse(bytes: Buffer): HistoricalChunk {
  const message = Response.toObject(Response.decode(bytes), { longs: String, enums: String, defaults: true, oneofs: true }) as Json;
  const times = message.event_timestamps as { seconds: string; nanos: number }[];
  return {
    columns: columnsOf(message),
    timesMs: times.map((ts) => Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000)),
    rowOffset: Number(message.row_offset),
    degradedViews: message.degraded_views as string[],
  };
}

/** A chunk of entity rows: one join key column of strings (or int64s), with each row's time. */
export function rowsMessage(joinKey: string, keys: readonly (string | number)[], timesMs: readonly number[]): Json {
  return {
    entities: { [joinKey]: { values: keys.map((key) => (typeof key === 'number' ? { int64_val: key } : { string_val: key })) } },
    event_timestamps: timesMs.map(timestamp),
  };
}

/**
 * Opens a GetHistoricalFeatures call with raw-bytes codecs. The caller
 * writes encoded requests and ends; responses arrive as Buffers.
 */
export function openHistoricalCall(client: StrataGrpcClient, deadlineMs = 60_000): grpc.ClientDuplexStream<Buffer, Buffer> {
  const identity = (bytes: Buffer): Buffer => bytes;
  return client.client.makeBidiStreamRequest(HISTORICAL_METHOD, identity, identity, new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
}

/** The whole call: writes `messages`, ends, and resolves with every chunk — or rejects with the call's ServiceError. */
export function getHistoricalFeatures(client: StrataGrpcClient, messages: readonly Json[]): Promise<HistoricalChunk[]> {
  const call = openHistoricalCall(client);
  const chunks: HistoricalChunk[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (bytes: Buffer) => chunks.push(decodeHistoricalResponse(bytes)));
    call.on('error', reject);
    call.on('end', () => resolve(chunks));
    for (const message of messages) call.write(encodeHistoricalRequest(message));
    call.end();
  });
}

/** One result row: its join keys and time, and per feature its value, status and event time. */
export interface HistoricalRow {
  readonly keys: Record<string, unknown>;
  readonly timeMs: number;
  readonly features: Record<string, { value: unknown; status: string; eventMs: number }>;
}

/** The rows of a call's chunks, in order; checks that chunks follow each other without gaps. */
export function rowsOf(chunks: readonly HistoricalChunk[], joinKeys: readonly string[]): HistoricalRow[] {
  const rows: HistoricalRow[] = [];
  for (const chunk of chunks) {
    if (chunk.rowOffset !== rows.length) throw new Error(`chunk at row ${chunk.rowOffset}, expected ${rows.length}`);
    chunk.timesMs.forEach((timeMs, row) => {
      const keys: Record<string, unknown> = {};
      const features: HistoricalRow['features'] = {};
      for (const [name, column] of Object.entries(chunk.columns)) {
        if (joinKeys.includes(name)) keys[name] = column.values[row];
        else features[name] = { value: column.values[row] ?? null, status: column.statuses[row]!, eventMs: column.eventMs[row]! };
      }
      rows.push({ keys, timeMs, features });
    });
  }
  return rows;
}
