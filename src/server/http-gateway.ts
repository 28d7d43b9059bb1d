/**
 * The Feast-shaped HTTP gateway: POST /get-online-features and POST /push
 * with Feast's JSON bodies (plus `as_of`), POST /push-events (events for the
 * topics of stream views), POST /admin/snapshot-import, GET /feature-views,
 * GET /health, GET /metrics.
 * Responses are JSON text assembled directly from the stored value bytes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PUSH_TIME_COLUMNS } from '../config/registry.js';
import { invalid, shuttingDown, StrataError } from '../errors.js';
import { eventTimeOf, FIELD_STATUS_NAMES, FieldStatus, valueOf, type OnlineResult, type ViewRows } from '../serving/online-reader.js';
import { describeRegistry } from '../serving/registry-description.js';
import { valueBytesToJson } from '../values/value-codec.js';
import { formatTimestamp, jsonValues, parseJsonTimestamp } from './json-values.js';
import type { ServingCore } from './serving-core.js';
import { importReportMessage, snapshotRejected } from './snapshot-imports.js';
import { toHttpError } from './status-edge.js';

type Json = Record<string, unknown>;
type Route = (body: Json) => Promise<string>;

const EPOCH = JSON.stringify(formatTimestamp(0));
const STATUS_JSON = FIELD_STATUS_NAMES.map((name) => JSON.stringify(name));

function requireObject(value: unknown, field: string): Json {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Json;
  throw invalid('STRATA_MALFORMED_REQUEST', field, 'must be a JSON object');
}

function rejectUnknownKeys(body: Json, allowed: readonly string[], prefix = ''): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw invalid('STRATA_MALFORMED_REQUEST', `${prefix}${key}`, `unknown field; allowed: ${allowed.join(', ')}`);
  }
}

function columns(value: unknown, field: string): Map<string, unknown[]> {
  const object = requireObject(value, field);
  const result = new Map<string, unknown[]>();
  for (const [name, column] of Object.entries(object)) {
    if (!Array.isArray(column)) throw invalid('STRATA_MALFORMED_REQUEST', `${field}.${name}`, 'must be an array with one value per row');
    result.set(name, column);
  }
  return result;
}

export class HttpGateway {
  readonly server: Server;
  private readonly core: ServingCore;
  private readonly routes: ReadonlyMap<string, Route>;
  private readonly registryJson: string;

  constructor(core: ServingCore) {
    this.core = core;
    this.registryJson = JSON.stringify(describeRegistry(core.registry));
    this.routes = new Map<string, Route>([
      ['POST /get-online-features', (body) => this.getOnlineFeatures(body)],
      ['POST /push', (body) => this.push(body)],
      ['POST /push-events', (body) => this.pushEvents(body)],
      ['POST /admin/snapshot-import', (body) => this.importSnapshot(body)],
    ]);
    this.server = createServer((request, response) => this.handle(request, response));
    this.server.keepAliveTimeout = 65_000;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const started = performance.now();
    const path = (request.url ?? '/').split('?', 1)[0]!;
    const routeKey = `${request.method} ${path}`;
    const send = (status: number, body: string, contentType = 'application/json'): void => {
      response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      response.end(body);
      const method = this.routes.has(routeKey) || path === '/health' || path === '/metrics' || path === '/feature-views' ? routeKey : 'other';
      this.core.metrics.requestSeconds.observe({ protocol: 'http', method, code: String(status) }, (performance.now() - started) / 1000);
    };
    const fail = (thrown: unknown): void => {
      const { error, status, body } = toHttpError(thrown);
      if (error.kind === 'internal') this.core.logger.error('http request failed', { route: routeKey, error: error.message });
      send(status, body);
    };

    if (routeKey === 'GET /health') {
      const serving = !this.core.isShuttingDown();
      return send(serving ? 200 : 503, JSON.stringify({ status: serving ? 'SERVING' : 'NOT_SERVING' }));
    }
    if (routeKey === 'GET /metrics') {
      this.core.scrapeMetrics().then((text) => send(200, text, this.core.metrics.registry.contentType), fail);
      return;
    }
    if (routeKey === 'GET /feature-views') return send(200, this.registryJson);
    const route = this.routes.get(routeKey);
    if (route === undefined) {
      request.resume();
      return fail(new StrataError('STRATA_ROUTE_NOT_FOUND', `no route ${routeKey}; routes: POST /get-online-features, POST /push, POST /push-events, POST /admin/snapshot-import, GET /feature-views, GET /health, GET /metrics`));
    }
    if (this.core.isShuttingDown()) {
      request.resume();
      return fail(shuttingDown());
    }
    const refused = routeKey === 'POST /get-online-features' ? this.core.overload.refusal() : undefined;
    if (refused !== undefined) {
      request.resume();
      return fail(refused);
    }
    this.readJson(request, response)
      .then((body) => route(body))
      .then((text) => send(200, text), fail);
  }

  private readJson(request: IncomingMessage, response: ServerResponse): Promise<Json> {
    const limit = this.core.limits.maxMessageBytes;
    return new Promise((resolve, reject) => {
      const declared = Number(request.headers['content-length'] ?? 0);
      const tooLarge = (size: number): void => {
        // Answer now and close the connection rather than read the rest of an oversized body.
        response.setHeader('connection', 'close');
        reject(invalid('STRATA_MESSAGE_TOO_LARGE', 'body', `${size} bytes exceed the limit of ${limit}`));
        request.pause();
      };
      if (declared > limit) return tooLarge(declared);
      const chunks: Buffer[] = [];
      let size = 0;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          request.removeAllListeners('data');
          return tooLarge(size);
        }
        chunks.push(chunk);
      });
      request.on('error', reject);
      request.on('end', () => {
        if (size > limit) return;
        try {
          resolve(requireObject(JSON.parse(Buffer.concat(chunks).toString('utf8')), 'body'));
        } catch (error) {
          reject(error instanceof StrataError ? error : invalid('STRATA_MALFORMED_REQUEST', 'body', `not valid JSON: ${(error as Error).message}`));
        }
      });
    });
  }

  private async getOnlineFeatures(body: Json): Promise<string> {
    rejectUnknownKeys(body, ['features', 'feature_service', 'entities', 'full_feature_names', 'as_of']);
    const { features, feature_service: featureService } = body;
    if (features !== undefined && (!Array.isArray(features) || features.some((ref) => typeof ref !== 'string'))) {
      throw invalid('STRATA_MALFORMED_REQUEST', 'features', 'must be an array of "view:feature" strings');
    }
    if (featureService !== undefined && typeof featureService !== 'string') throw invalid('STRATA_MALFORMED_REQUEST', 'feature_service', 'must be a string');
    const entities = columns(body.entities ?? {}, 'entities');
    const result = await this.core.reader.read(
      {
        features: features as string[] | undefined,
        featureService: featureService as string | undefined,
        entities,
        asOfMs: body.as_of === undefined || body.as_of === null ? undefined : parseJsonTimestamp(body.as_of, 'as_of'),
      },
      jsonValues,
      Date.now(),
    );
    return onlineResultJson(result, entities, body.full_feature_names === true);
  }

  private async push(body: Json): Promise<string> {
    rejectUnknownKeys(body, ['push_source_name', 'feature_view', 'df', 'to', 'allow_registry_cache']);
    const view = body.push_source_name ?? body.feature_view;
    if (typeof view !== 'string') throw invalid('STRATA_MALFORMED_REQUEST', 'push_source_name', 'must name the push feature view');
    if (body.to !== undefined && body.to !== 'online') throw invalid('STRATA_MALFORMED_REQUEST', 'to', 'Strata stores pushes online only; use "online" or leave it out');
    const df = columns(body.df, 'df');
    const eventTimestamps = df.get(PUSH_TIME_COLUMNS.event);
    if (eventTimestamps === undefined) throw invalid('STRATA_BAD_TIMESTAMP', `df.${PUSH_TIME_COLUMNS.event}`, 'is required: one event time per row');
    const createdTimestamps = df.get(PUSH_TIME_COLUMNS.created);
    df.delete(PUSH_TIME_COLUMNS.event);
    df.delete(PUSH_TIME_COLUMNS.created);
    const rows = await this.core.writer.write({ view, columns: df, eventTimestamps, createdTimestamps }, jsonValues, Date.now());
    return JSON.stringify({ rows_written: rows });
  }

  /** `{"topic": "txn.events", "events": [{…}, …]}` → `{"applied": n, "late_indexes": [i, …]}`; see PushEvents in the proto. */
  private async pushEvents(body: Json): Promise<string> {
    const pusher = this.core.pusher;
    if (pusher === undefined) throw new StrataError('STRATA_NO_STREAM_VIEWS', 'POST /push-events: the registry has no stream views, so no topic takes events; push rows to push views with POST /push');
    rejectUnknownKeys(body, ['topic', 'events']);
    const outcome = await pusher.push(body.topic, body.events, Date.now());
    return JSON.stringify({ applied: outcome.applied, late_indexes: outcome.late });
  }

  /**
   * `{"view": "card_daily", "files": ["cards.parquet"], "cutoff": "…"}` (cutoff: a
   * stream view's tiles only) → the import's report
   * (AdminService.ImportSnapshot's, without progress) once it is published;
   * not published: 400 STRATA_SNAPSHOT_REJECTED with the report beside the error.
   */
  private async importSnapshot(body: Json): Promise<string> {
    rejectUnknownKeys(body, ['view', 'files', 'cutoff']);
    if (typeof body.view !== 'string') throw invalid('STRATA_MALFORMED_REQUEST', 'view', 'must name a feature view with a batch half');
    if (!Array.isArray(body.files) || body.files.some((file) => typeof file !== 'string')) throw invalid('STRATA_MALFORMED_REQUEST', 'files', 'must be an array of file paths');
    const cutoffMs = body.cutoff === undefined || body.cutoff === null ? undefined : parseJsonTimestamp(body.cutoff, 'cutoff');
    const report = await this.core.snapshots.run({ view: body.view, files: body.files as string[], cutoffMs }, () => undefined);
    if (!report.published) throw snapshotRejected(report);
    return JSON.stringify(importReportMessage(report));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        // From here on an 'error' is a failed accept (out of file descriptors, say): the server keeps listening, and
        // an 'error' nobody listens for would end the process.
        this.server.on('error', (error: Error) => this.core.logger.error('http listener error', { error: error.message }));
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), graceMs);
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}

/** Feast's response shape: one result per name (join keys first), each with one entry per entity row. */
function onlineResultJson(result: OnlineResult, entities: ReadonlyMap<string, unknown[]>, fullNames: boolean): string {
  const names = [...result.plan.joinKeys, ...result.plan.features.map((feature) => (fullNames ? feature.fullName : feature.name))];
  const parts: string[] = [];
  for (const joinKey of result.plan.joinKeys) {
    const values = entities.get(joinKey)!;
    const present = STATUS_JSON[FieldStatus.PRESENT]!;
    parts.push(`{"values":${JSON.stringify(values)},"statuses":[${values.map(() => present).join(',')}],"event_timestamps":[${values.map(() => EPOCH).join(',')}]}`);
  }
  // A view's features share one event time per row: format it once per view, not once per value.
  const formatted = new Map<ViewRows, (string | undefined)[]>();
  for (const column of result.columns) {
    const values: string[] = [];
    const statuses: string[] = [];
    const times: string[] = [];
    let rowTimes = formatted.get(column.rows);
    if (rowTimes === undefined) {
      rowTimes = new Array<string | undefined>(result.rowCount);
      formatted.set(column.rows, rowTimes);
    }
    for (let row = 0; row < result.rowCount; row++) {
      values.push(valueBytesToJson(valueOf(column, row)));
      statuses.push(STATUS_JSON[column.statuses[column.statusAt + row]!]!);
      const ms = eventTimeOf(column, row);
      times.push(ms === 0 ? EPOCH : (rowTimes[row] ??= JSON.stringify(formatTimestamp(ms))));
    }
    parts.push(`{"values":[${values.join(',')}],"statuses":[${statuses.join(',')}],"event_timestamps":[${times.join(',')}]}`);
  }
  const degraded = result.degradedViews.length === 0 ? '' : `,"degraded_views":${JSON.stringify(result.degradedViews)}`;
  return `{"metadata":{"feature_names":${JSON.stringify(names)}},"results":[${parts.join(',')}]${degraded}}`;
}
