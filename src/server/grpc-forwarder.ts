/**
 * Carries the gRPC streams the unary listener does not answer itself to the
 * grpc-js server behind it (listening on a private unix socket), over one
 * HTTP/2 connection: request headers, messages and half-close go up;
 * response headers, messages and trailers come back; a cancel on either side
 * cancels the other. grpc-js keeps what it does well — streaming calls with
 * back-pressure, health, reflection, UNIMPLEMENTED for unknown methods.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect } from 'node:net';
import { StrataError } from '../errors.js';
import { failureResponse } from './grpc-wire.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = http2.constants;

function ignore(): void {}

function upstreamFailed(): StrataError {
  return new StrataError('STRATA_INTERNAL', 'internal error: the streaming-call server behind the gRPC port ended the call without a status');
}

export class GrpcForwarder {
  private readonly socketPath: string;
  private session: ClientHttp2Session | undefined;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  readonly forward = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    stream.on('error', ignore);
    const upstream = this.connection().request(headers, { endStream: false });
    upstream.on('error', ignore);
    let trailers: http2.OutgoingHttpHeaders | undefined;
    upstream.once('response', (responseHeaders, flags) => {
      if (stream.destroyed) return;
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
        stream.respond(responseHeaders, { endStream: true });
        return;
      }
      stream.respond(responseHeaders, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers ?? failureResponse(upstreamFailed()).headers));
      upstream.pipe(stream);
    });
    upstream.once('trailers', (received: IncomingHttpHeaders) => {
      trailers = received;
    });
    upstream.once('close', () => {
      if (stream.destroyed) return;
      if (!stream.headersSent) stream.respond(failureResponse(upstreamFailed()).headers, { endStream: true });
      else if (upstream.rstCode !== NGHTTP2_NO_ERROR) stream.close(upstream.rstCode);
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
    const session = http2.connect('http://localhost', { createConnection: () => connect(this.socketPath) });
    session.on('error', ignore);
    session.once('close', () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}
