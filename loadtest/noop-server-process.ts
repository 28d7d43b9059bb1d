/**
 * The baselines: servers that do no work — every GetOnlineFeatures call is
 * answered with the same pre-encoded response bytes (a real Strata response
 * of the scenario's size). `grpc-js`: a grpc-js server with Strata's
 * channel options, the baseline the targets name. `edge`: Strata's own
 * node:http2 gRPC listener with a handler that returns those bytes, the
 * ceiling of Strata's transport. Forked by the harness; it sends back its port.
 */
import * as grpc from '@grpc/grpc-js';
import { bytesMethod } from '../src/server/grpc-edge.js';
import { GrpcListener } from '../src/server/grpc-listener.js';
import { GET_ONLINE_FEATURES } from './dataset.js';

export type NoopKind = 'grpc-js' | 'edge';

function grpcJsNoop(response: Buffer): Promise<{ port: number; stop: () => void }> {
  const server = new grpc.Server({ 'grpc.max_send_message_length': -1, 'grpc.enable_channelz': 0 });
  server.addService({ GetOnlineFeatures: bytesMethod(GET_ONLINE_FEATURES) }, { GetOnlineFeatures: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, response) });
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve({ port, stop: () => server.tryShutdown(() => process.exit(0)) })));
  });
}

async function edgeNoop(response: Buffer): Promise<{ port: number; stop: () => void }> {
  const answer = Promise.resolve(response);
  const listener = new GrpcListener(new Map([[GET_ONLINE_FEATURES, { name: 'GetOnlineFeatures', handle: () => answer }]]), {
    maxMessageBytes: 4 * 1024 * 1024,
    onUnaryDone: () => undefined,
    onUnaryFailure: () => undefined,
    onServerError: (error) => process.stderr.write(`edge no-op: ${error.message}\n`),
    forward: (stream) => stream.close(),
  });
  const port = await listener.listen({ host: '127.0.0.1', port: 0 });
  return { port, stop: () => void listener.close(1_000).then(() => process.exit(0)) };
}

process.once('message', (message: { response: Buffer; kind: NoopKind }) => {
  const response = Buffer.from(message.response);
  (message.kind === 'edge' ? edgeNoop(response) : grpcJsNoop(response)).then(
    ({ port, stop }) => {
      process.send!({ port });
      process.on('SIGTERM', stop);
    },
    (error: Error) => {
      process.stderr.write(`noop server: ${error.message}\n`);
      process.exit(1);
    },
  );
});
