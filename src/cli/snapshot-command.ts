/**
 * strata snapshot import: a batch view's snapshot files into the L3 of a
 * data dir no server has open (LevelDB admits one process), write → audit →
 * publish (src/batch/snapshot-import.ts). Progress on stderr, the report on
 * stdout; exit 1 when the snapshot was not published (the previous
 * generation keeps serving). A server started afterwards serves the new one.
 */
import { parseArgs } from 'node:util';
import { importSnapshot, type ImportProgress, type ImportReport } from '../batch/snapshot-import.js';
import { OPTION_SPECS, resolveServeOptions } from '../config/options.js';
import { loadRegistry } from '../config/registry.js';
import { StrataError } from '../errors.js';
import { LevelStore } from '../storage/level-store.js';

export const SNAPSHOT_USAGE = `usage: strata snapshot import --view V [--registry F] [--data-dir D] [--cutoff T] [--json] FILE…

  FILE…        parquet, Avro container, NDJSON or CSV files (by extension) of the view's rows:
               join keys, event_timestamp, optional created_timestamp, features
               (column names as the view's source.columns maps them); for a stream
               view's tiles, one row per entity and tile with its partial aggregates,
               event_timestamp the tile's end
  --cutoff T   a stream view's tiles: events up to T (ISO 8601, on the tile grid) are in
               them; default: the newest tile end in the files
  --json       print the report as JSON
  Other serve options (--registry, --data-dir, --retention, --max-versions …) apply as for serve.
`;

const PROGRESS_EVERY_MS = 250;

export async function runSnapshot(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  const [action, ...rest] = argv;
  if (action !== 'import') throw new StrataError('STRATA_MALFORMED_REQUEST', `snapshot: unknown action ${JSON.stringify(action ?? '')}\n\n${SNAPSHOT_USAGE}`);
  const options: Record<string, { type: 'string' | 'boolean' }> = { view: { type: 'string' }, cutoff: { type: 'string' }, json: { type: 'boolean' } };
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
  const { view: _view, json: _json, cutoff, ...serveFlags } = values;
  const cutoffMs = cutoff === undefined ? undefined : Date.parse(cutoff as string);
  if (cutoffMs !== undefined && Number.isNaN(cutoffMs)) throw new StrataError('STRATA_MALFORMED_REQUEST', `--cutoff: ${JSON.stringify(cutoff)} is not an ISO 8601 time`, { field: 'cutoff' });
  const serveOptions = resolveServeOptions(serveFlags as Record<string, string | undefined>, process.env);
  const registry = loadRegistry(serveOptions.registry);
  const view = registry.views.get(viewName);
  if (view === undefined) throw new StrataError('STRATA_UNKNOWN_FEATURE_VIEW', `no view ${viewName} in ${serveOptions.registry}`, { field: 'view' });

  const store = await LevelStore.open({ dataDir: serveOptions.dataDir, registry, retentionMs: serveOptions.retentionMs, maxVersions: serveOptions.maxVersions, maxEvents: serveOptions.maxEvents });
  let lastShown = 0;
  const showProgress = (progress: ImportProgress, final = false): void => {
    const now = Date.now();
    if (!final && now - lastShown < PROGRESS_EVERY_MS) return;
    lastShown = now;
    const line = progressLine(progress);
    err.write(err.isTTY === true ? `\r${line.padEnd(78)}${final ? '\n' : ''}` : `${line}\n`);
  };
  let report: ImportReport;
  let last: ImportProgress | undefined;
  try {
    report = await importSnapshot({
      view,
      paths: positionals,
      store,
      retentionMs: serveOptions.retentionMs,
      maxVersions: serveOptions.maxVersions,
      cutoffMs,
      onProgress: (progress) => {
        last = progress;
        showProgress(progress);
      },
    });
  } finally {
    if (last !== undefined) showProgress(last, true);
    await store.close();
  }
  out.write(values.json === true ? `${JSON.stringify(report)}\n` : summary(report));
  return report.published ? 0 : 1;
}

function progressLine({ rows, totalRows, elapsedMs, file }: ImportProgress): string {
  const rate = elapsedMs > 0 ? (rows * 1000) / elapsedMs : 0;
  const eta = totalRows !== undefined && rate > 0 ? `  ETA ${Math.max(0, (totalRows - rows) / rate).toFixed(0)}s` : '';
  const of = totalRows === undefined ? '' : ` of ${totalRows.toLocaleString('en-US')}`;
  return `${rows.toLocaleString('en-US')}${of} rows  ${Math.round(rate).toLocaleString('en-US')} rows/s${eta}  ${file}`;
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
