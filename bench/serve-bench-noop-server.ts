/**
 * Baseline of `npm run bench:serve`: a grpc-js server, forked by
 * bench/serve-bench.ts, that answers `/strata.v1.FeatureService/GetOnlineFeatures`
 * with a fixed pre-encoded response (bytes captured from the real server)
 * without looking at the request. Same grpc-js, same identity serializers and
 * server options as Strata's gRPC edge, so the difference to Strata is the
 * work Strata does per call. Receives the response (base64) on argv[2];
 * reports its port over IPC.
 */
import * as grpc from '@grpc/grpc-js';
import { bytesMethod } from '../src/server/grpc-edge.js';
import { GET_ONLINE_FEATURES, type FromNoopServer } from './serve-bench-shared.js';

const send = (message: FromNoopServer): void => {
  process.send?.(message);
};

const response = Buffer.from(process.argv[2] ?? '', 'base64');
if (process.send === undefined || response.length === 0) {
  process.stderr.write('serve-bench-noop-server: run by bench/serve-bench.ts (needs an IPC channel and a base64 response argument)\n');
  process.exit(2);
}

const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_send_message_length': -1, 'grpc.enable_channelz': 0 });
const method = bytesMethod(GET_ONLINE_FEATURES);
const handler: grpc.handleUnaryCall<Buffer, Buffer> = (_call, callback) => callback(null, response);
server.addService({ GetOnlineFeatures: method }, { GetOnlineFeatures: handler });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    send({ type: 'failed', message: error.message });
    process.exit(1);
  }
  send({ type: 'listening', port });
});

const stop = (): void => {
  server.forceShutdown();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
