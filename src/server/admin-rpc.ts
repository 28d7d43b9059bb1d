import * as grpc from '@grpc/grpc-js';
import type { ImportProgress, ImportReport } from '../batch/snapshot-import.js';
import { invalid, shuttingDown } from '../errors.js';
import { decodeRequest, ProtoTypes, type TimestampMessage } from './proto.js';
import { timestampToMs } from './proto-values.js';
import type { ServingCore } from './serving-core.js';
import { importProgressMessage, importReportMessage, snapshotRejected } from './snapshot-imports.js';
import { grpcCodeName, toGrpcError } from './status-edge.js';

const METHOD = 'ImportSnapshot';

interface ImportSnapshotMessage {
  view?: string;
  files?: string[];
  cutoff?: TimestampMessage | null;
}

function encodeResponse(message: Record<string, unknown>): Buffer {
  const type = ProtoTypes.ImportSnapshotResponse;
  return Buffer.from(type.encode(type.fromObject(message)).finish());
}

/**
 * The import a call asks for, checked and started. Async so that a bad
 * request (a cutoff that is no timestamp, say) rejects: thrown out of the
 * handler instead, grpc-js would answer UNKNOWN "Unknown error", and the call
 * would go unrecorded.
 */
async function startImport(core: ServingCore, request: Buffer, onProgress: (progress: ImportProgress) => void): Promise<ImportReport> {
  if (core.isShuttingDown()) throw shuttingDown();
  const { maxMessageBytes } = core.limits;
  if (request.length > maxMessageBytes) throw invalid('STRATA_MESSAGE_TOO_LARGE', 'request', `${request.length} bytes exceed the limit of ${maxMessageBytes}`);
  const message = decodeRequest<ImportSnapshotMessage>(ProtoTypes.ImportSnapshotRequest, request);
  const cutoffMs = message.cutoff === undefined || message.cutoff === null ? undefined : timestampToMs(message.cutoff, 'cutoff');
  return core.snapshots.run({ view: message.view ?? '', files: message.files ?? [], cutoffMs }, onProgress);
}

/**
 * strata.v1.AdminService.ImportSnapshot: progress messages while rows are
 * staged, then the report; an unpublished snapshot ends the call with
 * STRATA_SNAPSHOT_REJECTED after its report. A cancelled call stops the
 * messages, not the import (it has no way to stop halfway that would leave
 * less behind than finishing).
 */
export function importSnapshotHandler(core: ServingCore): grpc.handleServerStreamingCall<Buffer, Buffer> {
  return (call) => {
    const started = performance.now();
    let settled = false;
    const settle = (code: string): boolean => {
      if (settled) return false;
      settled = true;
      core.metrics.requestSeconds.observe({ protocol: 'grpc', method: METHOD, code }, (performance.now() - started) / 1000);
      return true;
    };
    const fail = (thrown: unknown): void => {
      const { error, response } = toGrpcError(thrown);
      if (!settle(grpcCodeName(error))) return;
      if (error.kind === 'internal') core.logger.error('grpc call failed', { method: METHOD, error: error.message, cause: String((error.cause as Error | undefined)?.stack ?? '') });
      // grpc-js ends a server stream with this status once the messages written before it are sent.
      call.emit('error', response);
    };
    call.on('cancelled', () => settle('CANCELLED'));
    startImport(core, call.request, (progress) => {
      if (!settled) call.write(encodeResponse({ progress: importProgressMessage(progress) }));
    })
      .then((report) => {
        if (settled) return;
        call.write(encodeResponse({ report: importReportMessage(report) }));
        if (!report.published) throw snapshotRejected(report);
        if (settle('OK')) call.end();
      })
      .catch(fail);
  };
}
