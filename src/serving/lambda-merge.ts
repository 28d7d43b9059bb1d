/**
 * Lambda views: a push or stream view with a batch half is read from both
 * halves side by side — each entity's pushed or streamed record and its
 * record in the published snapshot — and merged per row at the row's time T.
 *
 * - Push + batch: the freshest version by event time visible at T wins,
 *   whichever half holds it; equal event times go to the newer created
 *   time, and to the pushed version when those are equal too. A version
 *   holds every feature of the view (writes give them all), so this is the
 *   freshest value of each feature.
 * - Stream + batch: window features combine the snapshot's tiles up to its
 *   cutoff with the stream's events after it (src/aggregation/window-evaluator.ts).
 */
import type { ViewDef } from '../config/registry.js';
import { materializeAt } from '../aggregation/window-evaluator.js';
import { EventLog } from '../storage/event-log.js';
import type { GenerationSource, StoredRecord } from '../storage/feature-store.js';
import type { FeatureRecord } from '../storage/record.js';

/** Whether reads of the view pair each entity's record with its snapshot record (then looked up right after it). */
export function readsSnapshotBeside(view: ViewDef): boolean {
  return view.batch !== undefined && view.source.type !== 'batch';
}

/** Of two records, the one whose version visible at `at` is fresher (undefined when neither has one). */
function fresherAt(pushed: FeatureRecord | undefined, snapshot: FeatureRecord | undefined, at: number): FeatureRecord | undefined {
  const pushedVersion = pushed === undefined ? -1 : pushed.versionAt(at);
  const snapshotVersion = snapshot === undefined ? -1 : snapshot.versionAt(at);
  if (snapshotVersion < 0) return pushed;
  if (pushedVersion < 0) return snapshot;
  const pushedTs = pushed!.eventTs(pushedVersion);
  const snapshotTs = snapshot!.eventTs(snapshotVersion);
  if (pushedTs !== snapshotTs) return pushedTs > snapshotTs ? pushed : snapshot;
  return snapshot!.createdTs(snapshotVersion) > pushed!.createdTs(pushedVersion) ? snapshot : pushed;
}

/**
 * The record if it is of the kind the view writes now: an event log for a
 * stream view, a versioned record otherwise. One of the other kind is left
 * from before the view's source type changed (the registry did): it reads
 * as never written, until the view's next write replaces it.
 */
function ofViewKind(view: ViewDef, record: StoredRecord | undefined): StoredRecord | undefined {
  return record instanceof EventLog === (view.source.type === 'stream') ? record : undefined;
}

/**
 * The versioned record a row of `view` reads at `at`, from the stored
 * records of a read: `stored[position]`, and for a lambda view its snapshot
 * record at `position + 1`. A stream view's features are computed at `at`
 * (one version); otherwise the record's own versions are picked from.
 */
export function recordAt(view: ViewDef, stored: readonly (StoredRecord | undefined)[], position: number, at: number, generations: GenerationSource): FeatureRecord | undefined {
  const record = ofViewKind(view, stored[position]);
  if (!readsSnapshotBeside(view)) return record instanceof EventLog ? materializeAt(view, record, at) : record;
  const snapshot = stored[position + 1] as FeatureRecord | undefined;
  if (view.source.type === 'stream') {
    return materializeAt(view, record as EventLog | undefined, at, snapshot === undefined ? undefined : { record: snapshot, cutoffMs: generations.snapshotCutoff(view.name) });
  }
  return fresherAt(record as FeatureRecord | undefined, snapshot, at);
}
