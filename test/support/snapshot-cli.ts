import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv } from './process-helpers.js';
import type { Json } from './strata.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI as a user runs it, from the sources. */
export const STRATA_CLI = ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];

/**
 * `strata snapshot import --json` into a data dir no server holds: its exit
 * status, its report (when it printed one) and its stderr. `cli`: node
 * arguments running the CLI (default: from the sources).
 */
export function importSnapshotFiles(options: { registry: string; dataDir: string; view: string; files: readonly string[]; cli?: readonly string[] }): {
  status: number | null;
  report: Json | undefined;
  stderr: string;
} {
  const { registry, dataDir, view, files, cli = STRATA_CLI } = options;
  const result = spawnSync(process.execPath, [...cli, 'snapshot', 'import', '--registry', registry, '--data-dir', dataDir, '--view', view, '--json', ...files], {
    cwd: ROOT,
    env: cleanEnv(),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const report = result.stdout.trim() === '' ? undefined : (JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Json);
  return { status: result.status, report, stderr: result.stderr };
}
