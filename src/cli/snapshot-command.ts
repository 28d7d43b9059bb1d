/**
 * strata snapshot import: a batch view's snapshot files into the L3 of a
 * data dir no server has open (LevelDB admits one process), write → audit →
 * publish (src/batch/snapshot-import.ts). Progress on stderr, the report on
 * stdout; exit 1 when the snapshot was not published (the previous
 * generation keeps serving). A server started afterwards serves the new one.
 */
import { parseArgs } from 'node:util';
import { parseIso8601 } from '../batch/files/column-conform.js';
import { importSnapshot, type ImportReport } from '../batch/snapshot-import.js';
import { parseDuration } from '../config/duration.js';
import { OPTION_SPECS, resolveServeOptions } from '../config/options.js';
import { loadRegistry } from '../config/registry.js';
import { StrataError } from '../errors.js';
import { LevelStore } from '../storage/level-store.js';
import { ProgressMeter } from './progress-meter.js';

export const SNAPSHOT_USAGE = `usage: strata snapshot import --view V [--registry F] [--data-dir D] [--cutoff T] [--json] [--progress-interval D] FILE…

  FILE…        parquet, Avro container, NDJSON or CSV files (by extension) of the view's rows:
               join keys, event_timestamp, optional created_timestamp, features
               (column names as the view's source.columns maps them); for a stream
               view's tiles, one row per entity and tile with its partial aggregates,
               event_timestamp the tile's end
  --cutoff T   a stream view's tiles: events up to T (ISO 8601, UTC unless it names a zone;
               on the tile grid) are in them; default: the newest tile end in the files
  --json       print the report as JSON
  --progress-interval D
               when stderr is not a terminal, a progress line this often (default 10s)
  Other serve options (--registry, --data-dir, --retention, --max-versions …) apply as for serve.
  A running server imports the same way over its admin API (POST /admin/snapshot-import).
`;

export async function runSnapshot(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  const [action, ...rest] = argv;
  if (action !== 'import') throw new StrataError('STRATA_MALFORMED_REQUEST', `snapshot: unknown action ${JSON.stringify(action ?? '')}\n\n${SNAPSHOT_USAGE}`);
  const options: Record<string, { type: 'string' | 'boolean' }> = { view: { type: 'string' }, cutoff: { type: 'string' }, json: { type: 'boolean' }, 'progress-interval': { type: 'string' } };
  for (const spec of OPTION_SPECS) options[spec.flag] = { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new StrataError('STRATA_MALFORMED_REQUEST', `snapshot import: ${(error as Error).message}\n\n${SNAPSHOT_USAGE}`);
  }
  const { values, positionals } = parsed;
  const viewName = values.view as string | undefined;
  if (viewName === undefined || positionals.length === 0) throw new StrataError('STRATA_MALFORMED_REQUEST', `snapshot import needs --view and at least one file\n\n${SNAPSHOT_USAGE}`);
  const { view: _view, json: _json, cutoff, 'progress-interval': progressInterval, ...serveFlags } = values;
  // As the files' timestamps read: a zone-less time is UTC, whatever the machine's zone.
  const cutoffMs = cutoff === undefined ? undefined : parseIso8601(cutoff as string);
  if (cutoff !== undefined && cutoffMs === undefined) {
    throw new StrataError('STRATA_MALFORMED_REQUEST', `--cutoff: ${JSON.stringify(cutoff)} is not an ISO 8601 time (such as 2026-01-31T12:00:00Z; without a zone, UTC)`, { field: 'cutoff' });
  }
  const logEveryMs = progressInterval === undefined ? undefined : parseDuration(progressInterval as string);
  if (logEveryMs === 0 || (progressInterval !== undefined && logEveryMs === undefined)) {
    throw new StrataError('STRATA_MALFORMED_REQUEST', `snapshot import: --progress-interval ${JSON.stringify(progressInterval)} must be a duration like 500ms, 5s, 1m\n\n${SNAPSHOT_USAGE}`);
  }
  const serveOptions = resolveServeOptions(serveFlags as Record<string, string | undefined>, process.env);
  const registry = loadRegistry(serveOptions.registry);
  const view = registry.views.get(viewName);
  if (view === undefined) throw new StrataError('STRATA_UNKNOWN_FEATURE_VIEW', `no view ${viewName} in ${serveOptions.registry}`, { field: 'view' });

  const store = await LevelStore.open({ dataDir: serveOptions.dataDir, registry, retentionMs: serveOptions.retentionMs, maxVersions: serveOptions.maxVersions, maxEvents: serveOptions.maxEvents });
  const started = performance.now();
  // The total is known once the files are open, at the first progress.
  let meter: ProgressMeter | undefined;
  let report: ImportReport;
  try {
    report = await importSnapshot({
      view,
      paths: positionals,
      store,
      retentionMs: serveOptions.retentionMs,
      maxVersions: serveOptions.maxVersions,
      cutoffMs,
      onProgress: ({ rows, totalRows }) => {
        meter ??= new ProgressMeter(err, `strata snapshot import ${view.name}`, totalRows, { logEveryMs, startedAt: started });
        meter.update(rows);
      },
    });
  } finally {
    meter?.finish();
    await store.close();
  }
  out.write(values.json === true ? `${JSON.stringify(report)}\n` : summary(report));
  return report.published ? 0 : 1;
}

function summary(report: ImportReport): string {
  const lines = [
    report.published ? `published ${report.view} generation ${report.generation}` : `NOT published: ${report.reason} (${report.view} keeps its previous generation)`,
    `  ${report.rows.toLocaleString('en-US')} rows, ${report.entities.toLocaleString('en-US')} entities, ${(report.durationMs / 1000).toFixed(1)} s (${Math.round((report.rows * 1000) / Math.max(1, report.durationMs)).toLocaleString('en-US')} rows/s)`,
    ...report.files.map((file) => `  ${file.path}: ${file.rows.toLocaleString('en-US')} rows`),
    ...(report.cutoff === undefined ? [] : [`  tiles cover events up to ${report.cutoff}`]),
    `  null rates: ${Object.entries(report.nullRates).map(([name, rate]) => `${name} ${(rate * 100).toFixed(1)} %`).join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}
