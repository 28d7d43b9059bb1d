/**
 * The baseline: a grpc-js server with Strata's service path and channel
 * options that does no work — every GetOnlineFeatures call is answered with
 * the same pre-encoded response bytes (a real Strata response of the
 * scenario's size). Forked by the harness; it sends back its port.
 */
import * as grpc from '@grpc/grpc-js';
import { bytesMethod } from '../src/server/grpc-edge.js';
import { GET_ONLINE_FEATURES } from './dataset.js';

process.once('message', (message: { response: Buffer }) => {
  const response = Buffer.from(message.response);
  const server = new grpc.Server({ 'grpc.max_send_message_length': -1, 'grpc.enable_channelz': 0 });
  server.addService({ GetOnlineFeatures: bytesMethod(GET_ONLINE_FEATURES) }, { GetOnlineFeatures: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, response) });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) {
      process.stderr.write(`noop server: ${error.message}\n`);
      process.exit(1);
    }
    process.send!({ port });
  });
  process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
});
