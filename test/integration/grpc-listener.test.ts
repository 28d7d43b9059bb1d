import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { invalid } from '../../src/errors.js';
import { GrpcForwarder, upstreamHeaders } from '../../src/server/grpc-forwarder.js';
import { GrpcListener, type UnaryEndpoint } from '../../src/server/grpc-listener.js';
import { parseGrpcTimeout } from '../../src/server/grpc-wire.js';

/**
 * The gRPC port's own protocol handling, through real HTTP/2 connections:
 * grpc-js as a client where it can say it, raw node:http2 where the test
 * needs bytes grpc-js would never send (or must see what the server itself
 * answered, not a status the client made up).
 */

const MAX_MESSAGE_BYTES = 1_024;
const identity = (bytes: Buffer): Buffer => bytes;

interface Done {
  method: string;
  code: string;
}

let listener: GrpcListener;
let port: number;
const done: Done[] = [];
const forwarded: string[] = [];
const never = new Promise<Buffer>(() => undefined);

const endpoints = new Map<string, UnaryEndpoint>([
  ['/test.Service/Echo', { name: 'Echo', handle: async (message) => Buffer.concat([Buffer.from('echo:'), message]) }],
  ['/test.Service/Hang', { name: 'Hang', handle: () => never }],
  ['/test.Service/Refuse', { name: 'Refuse', handle: async () => Promise.reject(invalid('STRATA_UNKNOWN_FEATURE', 'features.refs[0]', 'no feature “größe” in view 100%')) }],
]);

beforeAll(async () => {
  listener = new GrpcListener(endpoints, {
    maxMessageBytes: MAX_MESSAGE_BYTES,
    onUnaryDone: (method, code) => void done.push({ method, code }),
    onUnaryFailure: () => undefined,
    onServerError: (error) => {
      throw error;
    },
    forward: (stream, headers) => {
      forwarded.push(String(headers[':path']));
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'forwarded' }, { endStream: true });
    },
  });
  port = await listener.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await listener.close(100);
});

beforeEach(() => {
  done.length = 0;
  forwarded.length = 0;
});

function grpcCall(path: string, message: Buffer, options: grpc.ChannelOptions = {}, deadlineMs = 5_000): Promise<Buffer> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, message, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => (error ? reject(error) : resolve(response!)));
  }).finally(() => client.close());
}

function frame(message: Buffer, compressed = false): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

interface RawAnswer {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
  /** The RST_STREAM code the stream closed with (0 also for a clean end). */
  rstCode: number;
}

/** One call over raw HTTP/2: what the server itself sent, headers, body and trailers. */
async function rawCall(path: string, body: Buffer | undefined, headers: Record<string, string> = {}, { endStream = true } = {}): Promise<RawAnswer> {
  const session: ClientHttp2Session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers }, { endStream: false });
      const answer: RawAnswer = { headers: {}, trailers: {}, body: Buffer.alloc(0), rstCode: -1 };
      stream.on('response', (received) => (answer.headers = received));
      stream.on('trailers', (received) => (answer.trailers = received));
      stream.on('data', (chunk: Buffer) => (answer.body = Buffer.concat([answer.body, chunk])));
      // 'close' rather than 'end': a stream the server resets while the client still sends has no end of its own.
      stream.on('close', () => resolve({ ...answer, rstCode: stream.rstCode ?? 0 }));
      stream.on('error', reject);
      if (body !== undefined) stream.write(body);
      if (endStream) stream.end();
    });
  } finally {
    session.close();
  }
}

/** The status of a trailers-only answer, or of the trailers. */
function statusOf(answer: RawAnswer): { status: string; message: string; code: string; field: string } {
  const source = answer.headers['grpc-status'] !== undefined ? answer.headers : answer.trailers;
  return { status: String(source['grpc-status']), message: String(source['grpc-message'] ?? ''), code: String(source['strata-error-code'] ?? ''), field: String(source['strata-error-field'] ?? '') };
}

describe('GrpcListener', () => {
  it('answers a unary call with one framed message and status 0 in the trailers', async () => {
    const answer = await rawCall('/test.Service/Echo', frame(Buffer.from('hi')));
    expect(answer.headers[':status']).toBe(200);
    expect(answer.headers['content-type']).toBe('application/grpc+proto');
    expect(answer.body).toEqual(frame(Buffer.from('echo:hi')));
    expect(answer.trailers['grpc-status']).toBe('0');
    expect(done).toEqual([{ method: 'Echo', code: 'OK' }]);
  });

  it.each([
    ['deflate', 1],
    ['gzip', 2],
  ])('takes requests a grpc-js client compressed with %s', async (_name, algorithm) => {
    const message = Buffer.from('x'.repeat(600));
    const response = await grpcCall('/test.Service/Echo', message, { 'grpc.default_compression_algorithm': algorithm });
    expect(response.toString()).toBe(`echo:${'x'.repeat(600)}`);
  });

  it('refuses a compressed message with an encoding it does not take (UNIMPLEMENTED), or flagged without one, naming grpc-encoding', async () => {
    const answer = await rawCall('/test.Service/Echo', frame(Buffer.from('zz'), true), { 'grpc-encoding': 'snappy' });
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.UNIMPLEMENTED), code: 'STRATA_UNSUPPORTED_ENCODING', field: 'grpc-encoding' });
    expect(answer.headers['grpc-accept-encoding']).toBe('identity,deflate,gzip');
    const flagged = await rawCall('/test.Service/Echo', frame(Buffer.from('zz'), true));
    expect(statusOf(flagged)).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), field: 'grpc-encoding' });
  });

  it('refuses a gzip body that inflates past the size limit without inflating all of it', async () => {
    const { gzipSync } = await import('node:zlib');
    const bomb = gzipSync(Buffer.alloc(50 * MAX_MESSAGE_BYTES));
    expect(bomb.length).toBeLessThan(MAX_MESSAGE_BYTES);
    const answer = await rawCall('/test.Service/Echo', frame(bomb, true), { 'grpc-encoding': 'gzip' });
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MESSAGE_TOO_LARGE' });
  });

  it('ends a call at its grpc-timeout with DEADLINE_EXCEEDED sent by the server', async () => {
    const started = performance.now();
    const answer = await rawCall('/test.Service/Hang', frame(Buffer.from('x')), { 'grpc-timeout': '50m' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.DEADLINE_EXCEEDED), code: 'STRATA_DEADLINE_EXCEEDED' });
    expect(done).toEqual([{ method: 'Hang', code: 'DEADLINE_EXCEEDED' }]);
  });

  it('refuses an unreadable grpc-timeout, naming the header', async () => {
    const answer = await rawCall('/test.Service/Echo', frame(Buffer.from('x')), { 'grpc-timeout': '10 seconds' });
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MALFORMED_REQUEST', field: 'grpc-timeout' });
  });

  it.each([
    ['no message', Buffer.alloc(0), 'with none'],
    ['half a frame header', Buffer.from([0, 0]), 'inside a message header'],
    ['a cut-off message', frame(Buffer.from('hello')).subarray(0, 7), 'bytes into a 5-byte message'],
    ['two messages', Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('b'))]), 'carried more'],
  ])('answers INVALID_ARGUMENT for a body with %s', async (_case, body, why) => {
    const answer = await rawCall('/test.Service/Echo', body);
    const status = statusOf(answer);
    expect(status).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MALFORMED_REQUEST', field: 'request' });
    expect(status.message).toContain(why);
  });

  it('refuses a message over the limit from its frame header, before the body arrives', async () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(MAX_MESSAGE_BYTES + 1, 1);
    // The stream stays open and the body is never sent: only the declared length can have triggered the answer.
    const answer = await rawCall('/test.Service/Echo', header, {}, { endStream: false });
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MESSAGE_TOO_LARGE', field: 'request' });
    // The client never half-closed: the server resets the stream (NO_ERROR) after its answer, so it is not held open.
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it('refuses bytes past the declared message at once instead of holding them until the stream ends', async () => {
    const declaredSmall = frame(Buffer.from('0123456789'));
    const answer = await rawCall('/test.Service/Echo', Buffer.concat([declaredSmall, Buffer.alloc(2 * MAX_MESSAGE_BYTES)]), {}, { endStream: false });
    expect(statusOf(answer)).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MALFORMED_REQUEST' });
    expect(statusOf(answer).message).toContain('carried more');
  });

  it('refuses a compressed-flag byte other than 0 or 1', async () => {
    const body = frame(Buffer.from('x'));
    body[0] = 7;
    expect(statusOf(await rawCall('/test.Service/Echo', body))).toMatchObject({ status: String(grpc.status.INVALID_ARGUMENT), code: 'STRATA_MALFORMED_REQUEST' });
  });

  it('percent-encodes the status message and field, and grpc-js reads them back', async () => {
    const error = await grpcCall('/test.Service/Refuse', Buffer.from('x')).then(
      () => undefined,
      (failed: grpc.ServiceError) => failed,
    );
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toBe('features.refs[0]: no feature “größe” in view 100%');
    expect(error?.metadata.get('strata-error-field')).toEqual(['features.refs[0]']);
  });

  it('answers 415 to a request that is not gRPC on a gRPC path', async () => {
    const answer = await rawCall('/test.Service/Echo', Buffer.from('{}'), { 'content-type': 'application/json' });
    expect(answer.headers[':status']).toBe(415);
  });

  it('hands any other path to forward', async () => {
    const error = await grpcCall('/test.Service/Elsewhere', Buffer.from('x')).catch((failed: grpc.ServiceError) => failed);
    expect(forwarded).toEqual(['/test.Service/Elsewhere']);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('records a call the client cancelled as CANCELLED and keeps serving', async () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeUnaryRequest('/test.Service/Hang', identity, identity, Buffer.from('x'), () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    call.cancel();
    for (let attempt = 0; attempt < 100 && done.length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 10));
    client.close();
    expect(done).toEqual([{ method: 'Hang', code: 'CANCELLED' }]);
    expect((await grpcCall('/test.Service/Echo', Buffer.from('again'))).toString()).toBe('echo:again');
  });
});

describe('grpc-timeout', () => {
  it('reads every unit, and treats a deadline further off than a timer holds as none', () => {
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    expect(parseGrpcTimeout('2H')).toBe(7_200_000);
    expect(parseGrpcTimeout('3M')).toBe(180_000);
    expect(parseGrpcTimeout('1S')).toBe(1_000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBeCloseTo(1.5);
    expect(parseGrpcTimeout('1000000n')).toBeCloseTo(1);
    // What a grpc-js client sends for a 30-day deadline; a 2^31 ms timer would fire at once.
    expect(parseGrpcTimeout('2592000S')).toBeUndefined();
    expect(() => parseGrpcTimeout('123456789S')).toThrow(/grpc-timeout|gRPC timeout/);
  });
});

describe('GrpcForwarder', () => {
  it('passes request headers on without hop-by-hop ones, and te as gRPC spells it', () => {
    const headers = { ':method': 'POST', ':path': '/a.B/C', ':scheme': 'http', ':authority': 'x', te: 'Trailers', 'http2-settings': 'AAMAAABkAAQAAP__', connection: 'close', 'content-type': 'application/grpc', 'x-trace': 'abc' } as IncomingHttpHeaders;
    expect(upstreamHeaders(headers)).toEqual({ ':method': 'POST', ':path': '/a.B/C', ':scheme': 'http', ':authority': 'x', te: 'trailers', 'content-type': 'application/grpc', 'x-trace': 'abc' });
  });

  it('answers UNAVAILABLE, which clients retry, when the server behind it cannot be reached', async () => {
    const forwarder = new GrpcForwarder('/nonexistent/strata-test/streaming.sock');
    const front = new GrpcListener(new Map(), { maxMessageBytes: MAX_MESSAGE_BYTES, onUnaryDone: () => undefined, onUnaryFailure: () => undefined, onServerError: () => undefined, forward: forwarder.forward });
    const frontPort = await front.listen({ host: '127.0.0.1', port: 0 });
    const client = new grpc.Client(`127.0.0.1:${frontPort}`, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError>((resolve) => {
        client.makeUnaryRequest('/test.Service/Streamed', identity, identity, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (failed) => resolve(failed!));
      });
      expect(error.code).toBe(grpc.status.UNAVAILABLE);
      expect(error.metadata.get('strata-error-code')).toEqual(['STRATA_STREAMING_UNAVAILABLE']);
    } finally {
      client.close();
      forwarder.close();
      await front.close(100);
    }
  });
});
