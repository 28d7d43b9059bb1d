/**
 * Snapshot imports asked of a running server (the admin endpoints), run in
 * the process that owns L3: the server itself, or with --workers the primary
 * (a worker asks it over IPC; see src/cluster/feature-store-host.ts).
 */
import type { ViewDef } from '../config/registry.js';
import type { SnapshotStore } from '../storage/snapshot-store.js';
import { importSnapshot, type ImportProgress, type ImportReport } from './snapshot-import.js';

/** A caller hears of progress at most this often (the report follows at the end). */
const PROGRESS_EVERY_MS = 250;

export interface ImportRequest {
  readonly view: ViewDef;
  /** Already checked against --server-files-dir. */
  readonly paths: readonly string[];
  /** A stream view's tiles: events up to this time are in them; default: the newest tile end in the files. */
  readonly cutoffMs: number | undefined;
  readonly onProgress: (progress: ImportProgress) => void;
}

export type ImportRunner = (request: ImportRequest) => Promise<ImportReport>;

/**
 * Imports into `store`. `expectKeys` tells every bloom gate that will read
 * the new generation of its keys before it is published.
 */
export function ownedL3Imports(store: SnapshotStore, limits: { readonly retentionMs: number; readonly maxVersions: number }, expectKeys: (keys: readonly Buffer[]) => void): ImportRunner {
  return ({ view, paths, cutoffMs, onProgress }) => {
    let lastShown = 0;
    return importSnapshot({
      view,
      paths,
      cutoffMs,
      store,
      retentionMs: limits.retentionMs,
      maxVersions: limits.maxVersions,
      expectKeys,
      onProgress: (progress) => {
        const now = Date.now();
        if (now - lastShown < PROGRESS_EVERY_MS) return;
        lastShown = now;
        onProgress(progress);
      },
    });
  };
}
