/**
 * Carries the gRPC streams the unary listener does not answer itself to the
 * grpc-js server behind it (listening on a private unix socket), over one
 * HTTP/2 connection: request headers, messages and half-close go up;
 * response headers, messages and trailers come back; a cancel from the
 * client cancels the call upstream. grpc-js keeps what it does well —
 * streaming calls with back-pressure, health, reflection, UNIMPLEMENTED for
 * unknown methods. When grpc-js cannot take or finish a call, the client
 * gets UNAVAILABLE (retryable), never a bare reset.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect } from 'node:net';
import { invalid, StrataError } from '../errors.js';
import { failureResponse, statusTrailers, stopReading } from './grpc-wire.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Connection-specific headers: meaningful on the client's connection only, and refused by Node on a request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

function ignore(): void {}

/** How a call ends when grpc-js cannot take or finish it: built once, sent only then. */
const UNAVAILABLE = failureResponse(new StrataError('STRATA_STREAMING_UNAVAILABLE', 'the streaming-call server behind the gRPC port could not take or finish the call; retry'));
const UNAVAILABLE_TRAILERS = statusTrailers(UNAVAILABLE.failure);

/** The client's request headers as the upstream request may carry them: hop-by-hop ones dropped, `te` as gRPC spells it. */
export function upstreamHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const upstream: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    if (HOP_BY_HOP.has(name)) continue;
    upstream[name] = name === 'te' ? 'trailers' : headers[name];
  }
  return upstream;
}

export class GrpcForwarder {
  private readonly socketPath: string;
  private session: ClientHttp2Session | undefined;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  readonly forward = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    stream.on('error', ignore);
    let upstream: http2.ClientHttp2Stream;
    try {
      upstream = this.connection().request(upstreamHeaders(headers), { endStream: false });
    } catch (error) {
      throw invalid('STRATA_MALFORMED_REQUEST', 'headers', `the request's headers cannot be passed on: ${(error as Error).message}`);
    }
    upstream.on('error', ignore);
    // The call's end as grpc-js sent it: its trailers, or a trailers-only response.
    let ended = false;
    let trailers: OutgoingHttpHeaders | undefined;
    upstream.once('response', (responseHeaders, flags) => {
      if (stream.destroyed) return;
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
        ended = true;
        stream.respond(responseHeaders, { endStream: true });
        stopReading(stream);
        return;
      }
      stream.respond(responseHeaders, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers ?? UNAVAILABLE_TRAILERS));
      upstream.pipe(stream);
    });
    upstream.once('trailers', (received: IncomingHttpHeaders) => {
      ended = true;
      trailers = received;
    });
    upstream.once('close', () => {
      if (stream.destroyed || ended) return;
      // grpc-js never answered, refused the stream, or its connection broke mid-call.
      if (!stream.headersSent) {
        stream.respond(UNAVAILABLE.headers, { endStream: true });
        stopReading(stream);
      } else if (!stream.writableEnded) {
        upstream.unpipe(stream);
        stream.end();
      }
    });
    stream.once('close', () => {
      if (!upstream.closed) upstream.close(NGHTTP2_CANCEL);
    });
    stream.pipe(upstream);
  };

  close(): void {
    this.session?.close();
  }

  /** The connection to grpc-js, opened on first use and again after it closes. */
  private connection(): ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) return this.session;
    // HTTP/2's default 64 KiB windows: a client that stops reading stops grpc-js after that much, not a larger buffer later.
    // Every client's streaming calls share this one session, so Node's 10 MB session memory cap is lifted as on the listener.
    const session = http2.connect('http://localhost', { createConnection: () => connect(this.socketPath), maxSessionMemory: Number.MAX_SAFE_INTEGER });
    session.on('error', ignore);
    session.once('close', () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}
