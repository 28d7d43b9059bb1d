import type { ImportRunner } from '../batch/import-runner.js';
import type { ImportProgress, ImportReport } from '../batch/snapshot-import.js';
import type { Registry } from '../config/registry.js';
import { invalid, StrataError } from '../errors.js';
import type { ServerFiles } from './server-files.js';

export interface SnapshotImportCall {
  readonly view: string;
  readonly files: readonly string[];
  readonly cutoffMs: number | undefined;
}

/** What both admin edges (ImportSnapshot, POST /admin/snapshot-import) run: the request checked, then the import where L3 is. */
export class SnapshotImports {
  private readonly registry: Registry;
  private readonly files: ServerFiles;
  private readonly runner: ImportRunner;

  constructor(registry: Registry, files: ServerFiles, runner: ImportRunner) {
    this.registry = registry;
    this.files = files;
    this.runner = runner;
  }

  async run(call: SnapshotImportCall, onProgress: (progress: ImportProgress) => void): Promise<ImportReport> {
    const view = this.registry.views.get(call.view);
    if (view === undefined) throw invalid('STRATA_UNKNOWN_FEATURE_VIEW', 'view', `no feature view ${JSON.stringify(call.view)} in the registry`);
    if (call.files.length === 0) throw invalid('STRATA_MALFORMED_REQUEST', 'files', 'name at least one snapshot file');
    const paths = await Promise.all(call.files.map((file, index) => this.files.resolve(file, `files[${index}]`)));
    return this.runner({ view, paths, cutoffMs: call.cutoffMs, onProgress });
  }
}

/** A report under ImportReport's proto field names: the HTTP answer, and what the gRPC one is encoded from. */
export function importReportMessage(report: ImportReport): Record<string, unknown> {
  return {
    view: report.view,
    generation: report.generation,
    published: report.published,
    ...(report.reason === undefined ? {} : { reason: report.reason }),
    files: report.files,
    rows: report.rows,
    entities: report.entities,
    null_rates: report.nullRates,
    ...(report.cutoff === undefined ? {} : { cutoff: report.cutoff }),
    duration_ms: report.durationMs,
  };
}

export function importProgressMessage(progress: ImportProgress): Record<string, unknown> {
  return {
    rows: progress.rows,
    ...(progress.totalRows === undefined ? {} : { total_rows: progress.totalRows }),
    rows_per_second: progress.elapsedMs > 0 ? (progress.rows * 1000) / progress.elapsedMs : 0,
    file: progress.file,
  };
}

/** A report that was not published, as the error both edges end with (HTTP: with the report beside the error). */
export function snapshotRejected(report: ImportReport): StrataError {
  return new StrataError('STRATA_SNAPSHOT_REJECTED', `${report.view}: snapshot not published, the previous generation keeps serving: ${report.reason}`, {
    field: 'files',
    details: { report: importReportMessage(report) },
  });
}
