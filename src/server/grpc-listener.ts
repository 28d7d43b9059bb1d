/**
 * The gRPC port: a node:http2 server that answers Strata's unary methods
 * itself and hands every other stream (the streaming RPCs, health,
 * reflection, unknown paths) to `forward`.
 *
 * Why not grpc-js for the unary methods: per call it builds a call object,
 * an interceptor chain, Metadata, a decoder stream and their closures, and
 * under load those are what survives young-generation GCs. Measured on this
 * machine with h2load (4 connections × 16 streams, same 300-byte response):
 * a grpc-js no-op server 22-26k calls/s, a node:http2 no-op answering the
 * same frames 37-39k. BENCHMARKS.md has Strata's figures before and after.
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { deadlineExceeded, failureResponse, frameMessage, OK_RESPONSE_HEADERS, OK_TRAILERS, parseGrpcTimeout, stopReading, UnaryRequestBody } from './grpc-wire.js';
import type { GrpcFailure } from './status-edge.js';

export interface UnaryEndpoint {
  /** The method's name in metrics and logs. */
  readonly name: string;
  /** Request message bytes to response message bytes; throws (or rejects with) what becomes the status. */
  readonly handle: (message: Buffer) => Promise<Buffer>;
}

export interface ListenerHooks {
  readonly maxMessageBytes: number;
  /** Every unary call once: its status name and duration. */
  onUnaryDone(method: string, code: string, seconds: number): void;
  /** A unary call that failed, before its status goes out (to log the internal ones). */
  onUnaryFailure(method: string, failure: GrpcFailure): void;
  /** A listening server's own failure (an accept that failed, e.g. out of file descriptors); it keeps listening. */
  onServerError(error: Error): void;
  /** Any stream whose path is not a unary endpoint. */
  forward(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void;
}

export type ListenAddress = { readonly host: string; readonly port: number } | { readonly path: string };

const SERVER_OPTIONS: http2.ServerOptions = {
  // Node's default (10 MB per session, then ENHANCE_YOUR_CALM on new streams) cuts off a busy client's
  // connection under bursts; grpc-js lifts it the same way.
  maxSessionMemory: Number.MAX_SAFE_INTEGER,
};

/** TCP keep-alive probes after this much silence, so connections of clients that vanished without a FIN get closed. */
const KEEPALIVE_IDLE_MS = 60_000;

const GRPC_CONTENT_TYPE = /^application\/grpc(?:[+;]|$)/;

function ignore(): void {}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** One unary call from its first DATA frame to its status. */
class UnaryCall {
  private readonly stream: ServerHttp2Stream;
  private readonly endpoint: UnaryEndpoint;
  private readonly hooks: ListenerHooks;
  private readonly encoding: string | string[] | undefined;
  private readonly body: UnaryRequestBody;
  private readonly started = performance.now();
  private deadline: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, endpoint: UnaryEndpoint, hooks: ListenerHooks) {
    this.stream = stream;
    this.endpoint = endpoint;
    this.hooks = hooks;
    this.encoding = headers['grpc-encoding'];
    this.body = new UnaryRequestBody(hooks.maxMessageBytes);
    // Every stream error also closes the stream, and 'close' settles the call.
    stream.on('error', ignore);
    stream.on('close', () => this.settle('CANCELLED'));
    stream.on('data', (chunk: Buffer) => {
      if (this.settled) return;
      try {
        this.body.add(chunk);
      } catch (error) {
        this.fail(error);
      }
    });
    stream.on('end', () => {
      if (this.settled) return;
      this.body.message(this.encoding).then(endpoint.handle).then((response) => this.succeed(response), (error: unknown) => this.fail(error));
    });
    try {
      const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
      if (timeoutMs !== undefined) this.deadline = setTimeout(() => this.fail(deadlineExceeded(timeoutMs)), timeoutMs);
    } catch (error) {
      this.fail(error);
    }
  }

  private succeed(response: Buffer): void {
    if (!this.settle('OK')) return;
    this.stream.respond(OK_RESPONSE_HEADERS, { waitForTrailers: true });
    this.stream.once('wantTrailers', sendOkTrailers);
    this.stream.end(frameMessage(response));
  }

  private fail(thrown: unknown): void {
    // A late failure (deadline after the answer, an error after the client left) has nothing to map.
    if (this.settled) return;
    const { failure, headers } = failureResponse(thrown);
    if (!this.settle(GrpcStatus[failure.code])) return;
    this.hooks.onUnaryFailure(this.endpoint.name, failure);
    // Trailers-only: the status goes out in the response's one HEADERS frame.
    this.stream.respond(headers, { endStream: true });
    stopReading(this.stream);
  }

  /** Records the outcome once; false when the call already had one or the client is gone (then nothing is sent). */
  private settle(code: string): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.deadline);
    const gone = this.stream.destroyed || this.stream.closed;
    this.hooks.onUnaryDone(this.endpoint.name, gone ? 'CANCELLED' : code, (performance.now() - this.started) / 1000);
    return !gone;
  }
}

export class GrpcListener {
  private readonly endpoints: ReadonlyMap<string, UnaryEndpoint>;
  private readonly hooks: ListenerHooks;
  private readonly servers: http2.Http2Server[] = [];
  private readonly sessions = new Set<ServerHttp2Session>();

  /** `endpoints` by request path (`/strata.v1.FeatureService/GetOnlineFeatures`). */
  constructor(endpoints: ReadonlyMap<string, UnaryEndpoint>, hooks: ListenerHooks) {
    this.endpoints = endpoints;
    this.hooks = hooks;
  }

  /** Listens on a TCP address (port 0 = ephemeral) or a unix socket path; resolves with the bound port (0 for a socket). */
  listen(address: ListenAddress): Promise<number> {
    const server = http2.createServer(SERVER_OPTIONS);
    server.on('stream', this.onStream);
    server.on('session', this.onSession);
    server.on('connection', (socket: Socket) => socket.setKeepAlive(true, KEEPALIVE_IDLE_MS));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const listening = (): void => {
        server.off('error', reject);
        server.on('error', (error: Error) => this.hooks.onServerError(error));
        this.servers.push(server);
        const bound = server.address();
        resolve(typeof bound === 'object' && bound !== null ? bound.port : 0);
      };
      if ('path' in address) server.listen(address.path, listening);
      else server.listen(address.port, address.host, listening);
    });
  }

  /** Stops accepting, sends GOAWAY so clients finish their calls here and open new ones elsewhere, and cuts what is left after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    const closed = Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const session of this.sessions) session.close();
    const cut = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, graceMs);
    await closed;
    clearTimeout(cut);
  }

  private readonly onSession = (session: ServerHttp2Session): void => {
    this.sessions.add(session);
    session.on('error', ignore);
    session.once('close', () => this.sessions.delete(session));
  };

  private readonly onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    try {
      this.route(stream, headers);
    } catch (error) {
      // Whatever a client sends must not take the process down; the stream gets a status instead.
      stream.on('error', ignore);
      if (stream.destroyed) return;
      if (stream.headersSent) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else stream.respond(failureResponse(error).headers, { endStream: true });
    }
  };

  private route(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const endpoint = this.endpoints.get(headers[':path'] ?? '');
    if (endpoint === undefined) return this.hooks.forward(stream, headers);
    if (headers[':method'] !== 'POST' || !GRPC_CONTENT_TYPE.test(headers['content-type'] ?? '')) {
      // What gRPC asks of a server that gets a non-gRPC request on a gRPC path.
      stream.on('error', ignore);
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    new UnaryCall(stream, headers, endpoint, this.hooks);
  }
}
