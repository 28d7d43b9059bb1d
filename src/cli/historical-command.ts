/**
 * strata historical: a training set. Streams entity rows (join keys and
 * event_timestamp) from a file to a server's GetHistoricalFeatures and
 * writes each row's features as of its time to parquet or NDJSON, in input
 * order, with progress on stderr and a summary at the end. Rows are sent as
 * the server takes them and answers written as they come, so memory holds a
 * few chunks whatever the file's size.
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { conformColumn, joinKeyReader, timestampConverter } from '../batch/files/column-conform.js';
import { openRowReader, type RowReader } from '../batch/files/row-reader.js';
import { openRowWriter, type OutputColumn, type RowWriter } from '../batch/files/row-writer.js';
import type { JoinKeyType } from '../config/registry.js';
import { StrataError } from '../errors.js';
import { ERROR_CODE_KEY, ERROR_FIELD_KEY } from '../server/status-edge.js';
import { ProtoTypes, SERVICE_NAME } from '../server/proto.js';
import { FIELD_STATUS_NAMES } from '../serving/online-reader.js';
import type { ValueType } from '../values/value-codec.js';
import { decodeResultChunk, type ResultChunk } from './historical-response-decoder.js';
import { encodeQuery, encodeRows, type KeyColumn } from './historical-request-encoder.js';
import { ProgressMeter } from './progress-meter.js';

export const HISTORICAL_USAGE = `usage: strata historical --entities FILE (--features V:F[,…] | --feature-service NAME) --out FILE
                         [--target HOST:PORT] [--full-feature-names]

  --entities            entity rows: parquet, Avro, NDJSON or CSV with a column per join key of the
                        features and event_timestamp (epoch ms, ISO-8601 or a timestamp type)
  --features            view:feature references, comma-separated
  --feature-service     a feature service of the server's registry
  --out                 training.parquet or training.ndjson: join keys, event_timestamp, then the
                        features (null unless PRESENT); written as FILE.partial, renamed when complete
  --target              the server's gRPC address (default 127.0.0.1:6565; unix:PATH for a socket)
  --full-feature-names  name feature columns view__feature
`;

const EVENT_TIMESTAMP = 'event_timestamp';
/** Rows per request message: large enough that per-message work is noise, well under the server's 16 384. */
const ROWS_PER_MESSAGE = 8_192;
const METHOD_PATH = `/${SERVICE_NAME}/GetHistoricalFeatures`;

interface HistoricalOptions {
  readonly entities: string;
  readonly features: readonly string[] | undefined;
  readonly featureService: string | undefined;
  readonly out: string;
  readonly target: string;
  readonly fullFeatureNames: boolean;
}

/** What the command needs of the server's registry (ListFeatureViews). */
interface ServerRegistry {
  readonly joinKeyTypes: ReadonlyMap<string, JoinKeyType>;
  readonly viewJoinKeys: ReadonlyMap<string, readonly string[]>;
  readonly featureTypes: ReadonlyMap<string, ValueType>;
  readonly services: ReadonlyMap<string, readonly string[]>;
}

const identity = (bytes: Buffer): Buffer => bytes;

export async function runHistorical(argv: string[], out: NodeJS.WritableStream, progressOut: NodeJS.WritableStream): Promise<void> {
  const options = parseHistoricalOptions(argv);
  if (options === undefined) return void out.write(HISTORICAL_USAGE);
  // Answers may exceed grpc-js's 4 MB default: a chunk is as large as its rows × features.
  const client = new grpc.Client(options.target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  try {
    const registry = await listFeatureViews(client);
    const refs = options.features ?? registry.services.get(options.featureService!) ?? [];
    const keys = joinKeysOf(registry, refs);
    const reader = await openRowReader(options.entities, { columns: [...keys.map((key) => key.name), EVENT_TIMESTAMP] });
    const started = performance.now();
    const { rows, statusCounts, features, degradedViews } = await retrieve(client, options, reader, keys, registry, refs, progressOut);
    const seconds = (performance.now() - started) / 1000;
    const counts = FIELD_STATUS_NAMES.slice(1).map((name, index) => `${name} ${statusCounts[index + 1]}`).join(', ');
    out.write(`strata historical: ${rows} rows × ${features} features → ${options.out} in ${seconds.toFixed(2)} s (${Math.round(rows / seconds)} rows/s); values: ${counts}\n`);
    if (degradedViews.size > 0) {
      progressOut.write(`strata historical: warning: the server could not read every record of ${[...degradedViews].join(', ')} (L2 unreachable): some rows hold NOT_FOUND or snapshot-only values\n`);
    }
  } finally {
    client.close();
  }
}

/** The call itself: a sender of the file's rows and a receiver writing answers, side by side. */
async function retrieve(
  client: grpc.Client,
  options: HistoricalOptions,
  reader: RowReader,
  keys: readonly { name: string; type: JoinKeyType }[],
  registry: ServerRegistry,
  refs: readonly string[],
  progressOut: NodeJS.WritableStream,
): Promise<{ rows: number; statusCounts: number[]; features: number; degradedViews: Set<string> }> {
  const call = client.makeBidiStreamRequest(METHOD_PATH, identity, identity);
  const progress = new ProgressMeter(progressOut, 'strata historical', reader.totalRows);
  let writer: RowWriter | undefined;
  let stopped = false;
  const statusCounts = new Array<number>(FIELD_STATUS_NAMES.length).fill(0);
  const degradedViews = new Set<string>();
  let rows = 0;
  let features = 0;

  const send = async (): Promise<void> => {
    call.write(Buffer.from(encodeQuery({ features: options.features, featureService: options.featureService, fullFeatureNames: options.fullFeatureNames })));
    const toMs = timestampConverter(reader, EVENT_TIMESTAMP);
    const converters = keys.map((key) => joinKeyReader(key.type, reader, key.name));
    for await (const chunk of reader.chunks()) {
      if (stopped) return;
      const times = conformColumn(chunk.columns.get(EVENT_TIMESTAMP)!, chunk.rowOffset, toMs) as number[];
      const columns: KeyColumn[] = keys.map((key, index) => ({ ...key, values: conformColumn(chunk.columns.get(key.name)!, chunk.rowOffset, converters[index]!) }));
      for (let from = 0; from < chunk.length && !stopped; from += ROWS_PER_MESSAGE) {
        if (!call.write(Buffer.from(encodeRows(columns, times, from, Math.min(chunk.length, from + ROWS_PER_MESSAGE))))) await writable(call);
      }
    }
    call.end();
  };

  const receive = async (): Promise<void> => {
    for await (const bytes of call as AsyncIterable<Buffer>) {
      const chunk = decodeResultChunk(bytes);
      if (writer === undefined) {
        features = chunk.names.length - keys.length;
        writer = await openRowWriter(options.out, outputColumns(chunk, keys, registry, refs));
      }
      await writer.write(rowBatch(chunk));
      for (const statuses of chunk.statuses.slice(keys.length)) for (const status of statuses) statusCounts[status]!++;
      rows += chunk.times.length;
      for (const view of chunk.degradedViews) degradedViews.add(view);
      progress.update(rows);
    }
  };

  try {
    // Whichever side fails first stops the other: the call is cancelled and the output file removed.
    await Promise.all([
      send().catch((error: unknown) => {
        call.cancel();
        throw error;
      }),
      receive(),
    ]);
    // The server answers every call with at least one chunk, which names the columns.
    if (writer === undefined) throw new Error('the server ended the call without answering');
    await writer.close();
  } catch (error) {
    stopped = true;
    call.cancel();
    await writer?.abort();
    await reader.close();
    throw explainCallError(error);
  } finally {
    progress.finish();
  }
  return { rows, statusCounts, features, degradedViews };
}

/** Resolves once the call takes writes again, or has ended. */
function writable(call: grpc.ClientDuplexStream<Buffer, Buffer>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('close', done);
      call.off('error', done);
      resolve();
    };
    call.on('drain', done);
    call.on('close', done);
    call.on('error', done);
  });
}

/** Join keys, event_timestamp, then the features as the server names them, typed by the registry. */
function outputColumns(chunk: ResultChunk, keys: readonly { name: string; type: JoinKeyType }[], registry: ServerRegistry, refs: readonly string[]): OutputColumn[] {
  const names = chunk.names.slice(keys.length);
  if (names.length !== refs.length) throw new Error(`the server answered ${names.length} features for ${refs.length} requested`);
  return [...keys, { name: EVENT_TIMESTAMP, type: 'timestamp' }, ...names.map((name, index) => ({ name, type: registry.featureTypes.get(refs[index]!)! }))];
}

function rowBatch(chunk: ResultChunk): { length: number; columns: Map<string, ArrayLike<unknown>> } {
  const columns = new Map<string, ArrayLike<unknown>>(chunk.names.map((name, index) => [name, chunk.values[index]!]));
  columns.set(EVENT_TIMESTAMP, chunk.times);
  return { length: chunk.times.length, columns };
}

/** The join keys the features' views need, in first-use order (as the server plans them); unknown references are the server's to report. */
function joinKeysOf(registry: ServerRegistry, refs: readonly string[]): { name: string; type: JoinKeyType }[] {
  const names: string[] = [];
  for (const ref of refs) {
    for (const joinKey of registry.viewJoinKeys.get(ref.slice(0, ref.indexOf(':'))) ?? []) if (!names.includes(joinKey)) names.push(joinKey);
  }
  return names.map((name) => ({ name, type: registry.joinKeyTypes.get(name)! }));
}

interface ListFeatureViewsMessage {
  entities: { name: string; join_key: string; type: string }[];
  feature_views: { name: string; entities: string[]; features: { name: string; type: string }[] }[];
  feature_services: { name: string; features: string[] }[];
}

function listFeatureViews(client: grpc.Client): Promise<ServerRegistry> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${SERVICE_NAME}/ListFeatureViews`, identity, identity, Buffer.alloc(0), { deadline: Date.now() + 30_000 }, (error, response) => {
      if (error) return reject(explainCallError(error));
      const type = ProtoTypes.ListFeatureViewsResponse;
      const message = type.toObject(type.decode(response!), { arrays: true }) as ListFeatureViewsMessage;
      const entities = new Map(message.entities.map((entity) => [entity.name, entity]));
      resolve({
        joinKeyTypes: new Map(message.entities.map((entity) => [entity.join_key, entity.type as JoinKeyType])),
        viewJoinKeys: new Map(message.feature_views.map((view) => [view.name, view.entities.map((name) => entities.get(name)!.join_key)])),
        featureTypes: new Map(message.feature_views.flatMap((view) => view.features.map((feature) => [`${view.name}:${feature.name}`, feature.type as ValueType] as const))),
        services: new Map(message.feature_services.map((service) => [service.name, service.features])),
      });
    });
  });
}

/** A failed call as the server explained it: its status, Strata's error code and the field it names. */
function explainCallError(error: unknown): unknown {
  const status = error as Partial<grpc.ServiceError>;
  if (typeof status.code !== 'number' || status.metadata === undefined) return error;
  const code = status.metadata.get(ERROR_CODE_KEY)[0];
  const field = status.metadata.get(ERROR_FIELD_KEY)[0];
  return new Error(`the server answered ${grpc.status[status.code]}${code === undefined ? '' : ` ${String(code)}`}: ${status.details}${field === undefined ? '' : ` (field ${String(field)})`}`);
}

/** The options, or undefined for --help. Every problem is a STRATA_CONFIG_INVALID naming the flag. */
function parseHistoricalOptions(argv: string[]): HistoricalOptions | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean' },
        entities: { type: 'string' },
        features: { type: 'string' },
        'feature-service': { type: 'string' },
        out: { type: 'string' },
        target: { type: 'string' },
        'full-feature-names': { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw bad(`historical: ${(error as Error).message}`);
  }
  if (values.help === true) return undefined;
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const entities = text('entities');
  const outPath = text('out');
  if (entities === undefined) throw bad('historical needs --entities FILE (join keys and event_timestamp per row)');
  if (outPath === undefined) throw bad('historical needs --out FILE (.parquet or .ndjson)');
  const featureList = text('features');
  const featureService = text('feature-service');
  if ((featureList === undefined) === (featureService === undefined)) throw bad('historical needs exactly one of --features V:F[,…] and --feature-service NAME');
  const features = featureList?.split(',').map((ref) => ref.trim());
  if (features !== undefined && features.some((ref) => ref === '')) throw bad(`--features: an empty reference in ${JSON.stringify(featureList)}`);
  return { entities, features, featureService, out: outPath, target: text('target') ?? '127.0.0.1:6565', fullFeatureNames: values['full-feature-names'] === true };
}

function bad(message: string): StrataError {
  return new StrataError('STRATA_CONFIG_INVALID', message);
}
