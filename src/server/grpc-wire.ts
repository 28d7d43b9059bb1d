/**
 * The gRPC-over-HTTP/2 rules the unary listener applies itself
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): message
 * framing, compressed requests, grpc-timeout, and the status trailers.
 */
import { constants as http2Constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { gunzip, inflate } from 'node:zlib';
import { invalid, StrataError } from '../errors.js';
import { grpcMessageSafe, toGrpcFailure, type GrpcFailure } from './status-edge.js';

/** 1 byte compressed flag + 4 bytes big-endian length before every message. */
export const FRAME_HEADER_BYTES = 5;

const GRPC_CONTENT_TYPE = 'application/grpc+proto';
/** What a client may compress requests with. */
const ACCEPTED_ENCODINGS = 'identity,deflate,gzip';

export const OK_RESPONSE_HEADERS: Readonly<OutgoingHttpHeaders> = Object.freeze({
  ':status': 200,
  'content-type': GRPC_CONTENT_TYPE,
  'grpc-accept-encoding': ACCEPTED_ENCODINGS,
});
export const OK_TRAILERS: Readonly<OutgoingHttpHeaders> = Object.freeze({ 'grpc-status': '0' });

/**
 * After an answer that came before the request's end (too large, bad
 * timeout, deadline): RST_STREAM(NO_ERROR) once the answer is out, as
 * HTTP/2 asks, so the client stops uploading and the stream is not held open.
 */
export function stopReading(stream: ServerHttp2Stream): void {
  if (!stream.readableEnded) stream.close(http2Constants.NGHTTP2_NO_ERROR);
}

/** The trailers that end a call with `failure`'s status. */
export function statusTrailers(failure: GrpcFailure): OutgoingHttpHeaders {
  return { 'grpc-status': String(failure.code), 'grpc-message': grpcMessageSafe(failure.details), ...failure.fields };
}

/** A failure before any message went out: one HEADERS frame that is both the response headers and the trailers. */
export function failureResponse(thrown: unknown): { failure: GrpcFailure; headers: OutgoingHttpHeaders } {
  const failure = toGrpcFailure(thrown);
  return { failure, headers: { ...OK_RESPONSE_HEADERS, ...statusTrailers(failure) } };
}

/** The response body as one gRPC message: the frame header and the bytes in one buffer, so HTTP/2 sends one DATA frame. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, FRAME_HEADER_BYTES);
  return framed;
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
const TIMEOUT_PATTERN = /^(\d{1,8})([HMSmun])$/;
/** Node's timers hold at most 2^31 - 1 ms (24.8 days) and fire at once past it. */
const LONGEST_TIMER_MS = 0x7fffffff;

/**
 * grpc-timeout (at most 8 digits and a unit) in milliseconds; undefined when
 * the client set no deadline, or one further off than a timer can hold (as
 * good as none).
 */
export function parseGrpcTimeout(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = TIMEOUT_PATTERN.exec(String(header));
  if (match === null) throw invalid('STRATA_MALFORMED_REQUEST', 'grpc-timeout', `"${String(header)}" is not a gRPC timeout (1-8 digits and one of H M S m u n)`);
  const timeoutMs = Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
  return timeoutMs > LONGEST_TIMER_MS ? undefined : timeoutMs;
}

const MORE_THAN_ONE_MESSAGE = 'a unary call takes one request message; the stream carried more';

/**
 * The one message of a unary request from its DATA chunks. Stops taking
 * bytes once the frame header declares more than `maxMessageBytes`, so an
 * oversized body is refused without being buffered.
 */
export class UnaryRequestBody {
  private readonly maxMessageBytes: number;
  private readonly chunks: Buffer[] = [];
  private received = 0;
  /** The frame header's length, once its 5 bytes are in. */
  private declared: number | undefined;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /**
   * Adds a DATA chunk. Throws as soon as the body cannot be one acceptable
   * message: a declared length over the limit (STRATA_MESSAGE_TOO_LARGE), a
   * flag byte other than 0 or 1, or bytes past the declared message — so no
   * more than one message's bytes are ever held.
   */
  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.declared === undefined) {
      if (this.received < FRAME_HEADER_BYTES) return;
      const head = this.body();
      if (head[0]! > 1) throw invalid('STRATA_MALFORMED_REQUEST', 'request', `the message's compressed flag is ${head[0]}, not 0 or 1`);
      this.declared = head.readUInt32BE(1);
      if (this.declared > this.maxMessageBytes) throw invalid('STRATA_MESSAGE_TOO_LARGE', 'request', `${this.declared} bytes exceed the limit of ${this.maxMessageBytes}`);
    }
    if (this.received > FRAME_HEADER_BYTES + this.declared) throw invalid('STRATA_MALFORMED_REQUEST', 'request', MORE_THAN_ONE_MESSAGE);
  }

  /** At end of stream: the message bytes (decompressed per `encoding`), or why the body is not exactly one message. */
  async message(encoding: string | string[] | undefined): Promise<Buffer> {
    const body = this.body();
    if (body.length < FRAME_HEADER_BYTES) throw invalid('STRATA_MALFORMED_REQUEST', 'request', body.length === 0 ? 'a unary call needs one request message; the stream ended with none' : 'the stream ended inside a message header');
    const length = body.readUInt32BE(1);
    // add() refused anything longer.
    if (body.length < FRAME_HEADER_BYTES + length) throw invalid('STRATA_MALFORMED_REQUEST', 'request', `the stream ended ${FRAME_HEADER_BYTES + length - body.length} bytes into a ${length}-byte message`);
    const message = body.subarray(FRAME_HEADER_BYTES);
    return body[0] === 0 ? message : decompress(message, encoding === undefined ? 'identity' : String(encoding), this.maxMessageBytes);
  }

  /** The chunks as one buffer (almost always there is just one), joined once and kept. */
  private body(): Buffer {
    if (this.chunks.length > 1) this.chunks.splice(0, this.chunks.length, Buffer.concat(this.chunks, this.received));
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

function decompress(message: Buffer, encoding: string, maxMessageBytes: number): Promise<Buffer> {
  const method = encoding === 'gzip' ? gunzip : encoding === 'deflate' ? inflate : undefined;
  if (method === undefined) {
    // As the gRPC compression spec asks: a flag without an encoding is a broken request, an unknown encoding UNIMPLEMENTED.
    return Promise.reject(
      encoding === 'identity'
        ? invalid('STRATA_MALFORMED_REQUEST', 'grpc-encoding', 'the message is flagged compressed but grpc-encoding is identity')
        : new StrataError('STRATA_UNSUPPORTED_ENCODING', `grpc-encoding "${encoding}" is not one of ${ACCEPTED_ENCODINGS}`, { field: 'grpc-encoding' }),
    );
  }
  return new Promise((resolve, reject) => {
    // maxOutputLength stops a small compressed body from inflating past the limit in memory.
    method(message, { maxOutputLength: maxMessageBytes }, (error, inflated) => {
      if (error === null) return resolve(inflated);
      reject(
        (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
          ? invalid('STRATA_MESSAGE_TOO_LARGE', 'request', `the message decompresses to more than the limit of ${maxMessageBytes} bytes`)
          : invalid('STRATA_MALFORMED_REQUEST', 'request', `the ${encoding} message does not decompress: ${error.message}`),
      );
    });
  });
}

/** Deadline expiry as a Strata error, so it maps to DEADLINE_EXCEEDED like every other failure. */
export function deadlineExceeded(timeoutMs: number): StrataError {
  return new StrataError('STRATA_DEADLINE_EXCEEDED', `the call's deadline (${timeoutMs} ms) passed before the answer was ready`);
}
