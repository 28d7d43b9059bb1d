import * as grpc from '@grpc/grpc-js';
import { invalid, shuttingDown } from '../errors.js';
import type { EntityRows, HistoricalReader, HistoricalScan } from '../serving/historical-reader.js';
import { NO_VIEWS } from '../serving/online-reader.js';
import type { WireValues } from '../serving/wire-values.js';
import { entityRowsOfFile } from './entities-file.js';
import { HistoricalRequestDecoder, type HistoricalRequestMessage } from './historical-request.js';
import { encodeHistoricalChunk } from './historical-response.js';
import type { OnlineFeaturesRpc } from './online-features-rpc.js';
import { protoValues } from './proto-values.js';
import type { ServingCore } from './serving-core.js';
import { grpcCodeName, toGrpcError } from './status-edge.js';

/** Rows per chunk read from an entities_path file, each answered as one response message. */
const FILE_CHUNK_ROWS = 4_096;
const METHOD = 'GetHistoricalFeatures';

/** protoValues naming join key values by their row in the call (`entities.card_id[1234]`), not in the message. */
function rowsFrom(firstRow: number): WireValues {
  return { ...protoValues, joinKey: (type, raw, column, row) => protoValues.joinKey(type, raw, column, firstRow + row) };
}

/** Resolves once the call takes writes again, or is gone (cancelled, closed). */
function drained(call: grpc.ServerDuplexStream<Buffer, Buffer>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('close', done);
  });
}

/** GetHistoricalFeatures on grpc-js; one HistoricalCall per call. */
export class HistoricalFeaturesRpc {
  readonly core: ServingCore;
  readonly reader: HistoricalReader;
  /** Encodes a chunk's columns exactly as GetOnlineFeatures responses (layouts cached per plan). */
  readonly columns: OnlineFeaturesRpc;
  readonly decoder = new HistoricalRequestDecoder();

  constructor(core: ServingCore, reader: HistoricalReader, columns: OnlineFeaturesRpc) {
    this.core = core;
    this.reader = reader;
    this.columns = columns;
  }

  readonly handle: grpc.handleBidiStreamingCall<Buffer, Buffer> = (call) => new HistoricalCall(this, call).start();
}

/**
 * One GetHistoricalFeatures call. Request messages are handled one at a
 * time: the call is paused when one arrives and resumed once its rows are
 * answered — and, when grpc-js's write buffer is full (write returns false),
 * only after 'drain'. So a client that reads slowly holds the server to the
 * chunks grpc-js buffers (its 16-message high-water mark) plus the one in
 * hand, however many rows it sends. (Reading the next message while one is
 * answered gained nothing measurable in bench:historical, so it is not.)
 * With entities_path the input is not read further: the file's chunks are
 * answered with the same wait for 'drain'. Every failure ends the call
 * through the status edge, so no client sees UNKNOWN.
 */
class HistoricalCall {
  private readonly rpc: HistoricalFeaturesRpc;
  private readonly call: grpc.ServerDuplexStream<Buffer, Buffer>;
  private readonly started = performance.now();
  private scan: HistoricalScan | undefined;
  private fullFeatureNames = false;
  private rowsAnswered = 0;
  private chunksAnswered = 0;
  /** Once the call has ended, failed or been cancelled: nothing more is done for it. */
  private settled = false;
  /** Handling of messages and of the end of input, in arrival order. */
  private steps: Promise<void> = Promise.resolve();

  constructor(rpc: HistoricalFeaturesRpc, call: grpc.ServerDuplexStream<Buffer, Buffer>) {
    this.rpc = rpc;
    this.call = call;
  }

  start(): void {
    if (this.rpc.core.isShuttingDown()) return this.fail(shuttingDown());
    this.call.on('data', (body: Buffer) => {
      this.call.pause();
      this.then(() => this.onMessage(body));
    });
    this.call.on('end', () => this.then(() => this.finish()));
    this.call.on('cancelled', () => this.settle('CANCELLED'));
  }

  private then(step: () => Promise<void>): void {
    this.steps = this.steps
      .then(async () => {
        if (!this.settled) await step();
      })
      .catch((error: unknown) => this.fail(error));
  }

  private async onMessage(body: Buffer): Promise<void> {
    const { maxMessageBytes } = this.rpc.core.limits;
    if (body.length > maxMessageBytes) throw invalid('STRATA_MESSAGE_TOO_LARGE', 'request', `${body.length} bytes exceed the limit of ${maxMessageBytes}`);
    const message = this.rpc.decoder.decode(body, this.rowsAnswered);
    if (message.asOfMs !== undefined) throw invalid('STRATA_MALFORMED_REQUEST', 'as_of', 'each row is read at its own time (event_timestamps); GetHistoricalFeatures has no as_of');
    const hasRows = message.entities.size > 0 || message.times.length > 0;
    if (this.scan === undefined) {
      this.scan = this.rpc.reader.start({ features: message.features, featureService: message.featureService }, protoValues, Date.now());
      this.fullFeatureNames = message.fullFeatureNames;
      if (message.entitiesPath !== undefined) {
        if (hasRows) throw invalid('STRATA_MALFORMED_REQUEST', 'entities_path', 'give entity rows or entities_path, not both');
        return this.answerFile(this.scan, message.entitiesPath);
      }
    } else {
      refuseQueryFields(message);
    }
    if (hasRows) {
      const firstRow = this.rowsAnswered;
      const rows: EntityRows = { entities: message.entities, times: message.times, timesField: 'event_timestamps', timeField: (row) => `event_timestamps[${firstRow + row}]` };
      await this.answer(this.scan, rows, rowsFrom(firstRow));
    }
    if (!this.settled) this.call.resume();
  }

  /** entities_path: the file's rows, then the end of the call; the call's input is not read further. */
  private async answerFile(scan: HistoricalScan, path: string): Promise<void> {
    const joinKeys = scan.plan.joinKeys.map((name) => ({ name, type: this.rpc.core.registry.entitiesByJoinKey.get(name)!.type }));
    const file = await this.rpc.core.serverFiles.resolve(path, 'entities_path');
    for await (const rows of entityRowsOfFile(file, joinKeys, FILE_CHUNK_ROWS)) {
      if (this.settled) return;
      await this.answer(scan, rows, protoValues);
    }
    await this.finish();
  }

  /** Reads and writes one chunk; resolves when more may be written. A chunk of no rows is written only as the call's only one. */
  private async answer(scan: HistoricalScan, rows: EntityRows, wire: WireValues): Promise<void> {
    const result = await this.rpc.reader.read(scan, rows, wire);
    if (this.settled || (result.rowCount === 0 && this.chunksAnswered > 0)) return;
    // The chunk carries degraded views in its own field; the online encoding's field 3 is the chunk's row times.
    const columns = this.rpc.columns.encode({ ...result, degradedViews: NO_VIEWS }, this.fullFeatureNames);
    const chunk = encodeHistoricalChunk(columns, rows.times, this.rowsAnswered, result.degradedViews);
    this.rowsAnswered += result.rowCount;
    this.chunksAnswered++;
    if (!this.call.write(chunk)) await drained(this.call);
  }

  /** The input is done: a call with no rows still answers one chunk (the names), then OK. */
  private async finish(): Promise<void> {
    const scan = this.scan;
    if (scan === undefined) throw invalid('STRATA_NO_FEATURES', 'features', 'the call ended before a first message named the features (or a feature_service)');
    if (this.chunksAnswered === 0) {
      const noRows: EntityRows = { entities: new Map(scan.plan.joinKeys.map((joinKey) => [joinKey, []])), times: [], timesField: 'event_timestamps', timeField: String };
      await this.answer(scan, noRows, protoValues);
    }
    if (this.settle('OK')) this.call.end();
  }

  /** Marks the call done once, recording its outcome; false when it already was. */
  private settle(code: string): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.rpc.core.metrics.requestSeconds.observe({ protocol: 'grpc', method: METHOD, code }, (performance.now() - this.started) / 1000);
    return true;
  }

  private fail(thrown: unknown): void {
    if (this.settled) return;
    this.call.pause();
    const { logger } = this.rpc.core;
    try {
      const { error, response } = toGrpcError(thrown);
      if (error.kind === 'internal') logger.error('grpc call failed', { method: METHOD, error: error.message, cause: String((error.cause as Error | undefined)?.stack ?? '') });
      this.settle(grpcCodeName(error));
      // grpc-js ends a server stream with the status of the error it is handed this way.
      this.call.emit('error', response);
    } catch (mappingError) {
      logger.error('grpc error mapping failed', { method: METHOD, error: String(mappingError) });
      this.settle('INTERNAL');
      this.call.emit('error', { code: grpc.status.INTERNAL, details: 'internal error' });
    }
  }
}

/** Only the first message names the features or the file. */
function refuseQueryFields(message: HistoricalRequestMessage): void {
  const field = message.features !== undefined ? 'features' : message.featureService !== undefined ? 'feature_service' : message.entitiesPath !== undefined ? 'entities_path' : undefined;
  if (field !== undefined) throw invalid('STRATA_MALFORMED_REQUEST', field, 'only the first message of a call names the features and the entities file');
}
