/**
 * The one catalogue of what crosses the IPC channels of `strata serve
 * --workers N` (see src/util/ipc-endpoint.ts for the call/reply framing).
 * The primary owns L3 and serves it to the workers; it also tells every
 * worker of the others' writes and gathers metrics for whichever worker is
 * scraped. Channels use Node's 'advanced' serialization, so key and record
 * bytes cross as Buffers/Uint8Arrays without base64.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ImportProgress, ImportReport } from '../batch/snapshot-import.js';
import type { Registry, ViewDef } from '../config/registry.js';
import { StrataError } from '../errors.js';
import type { PublishedSnapshot, RecordRef } from '../storage/feature-store.js';
import type { IncomingEvent } from '../storage/event-log.js';
import type { Version } from '../storage/record.js';

/** A record ref on the wire: the view by name, resolved by each process in its own copy of the registry (all load the same file). */
export interface WireRef {
  readonly view: string;
  readonly key: Buffer;
}

/** A VersionWrite or EventWrite (feature-store.ts) with its view by name. */
export type WireWrite = WireRef & ({ readonly versions: readonly Version[] } | { readonly events: readonly IncomingEvent[]; readonly shared?: Uint8Array });

export interface WireRecord extends WireRef {
  readonly record: Uint8Array;
}

export interface ListeningPorts {
  readonly grpcPort: number;
  readonly httpPort: number;
}

/** What a worker asks of the primary. */
export type PrimaryMethods = {
  'l3.get': { args: { refs: WireRef[] }; result: (Uint8Array | undefined)[] };
  /** Answered once the write is committed and every other worker has the records (or did not ack in time). */
  'l3.write': { args: { writes: WireWrite[]; nowMs: number }; result: Uint8Array[] };
  /** The next batch of L3's record refs of the worker's stream `stream` (opened by the first call). */
  'l3.refs': { args: { stream: number }; result: { refs: WireRef[]; done: boolean } };
  /** Published snapshot of each view with a batch half, read at start; later publishes arrive as l3.published. */
  'l3.generations': { args: null; result: Record<string, PublishedSnapshot> };
  /**
   * A snapshot import (AdminService), run by the primary, which owns L3.
   * Answered once every worker has taken the new generation (l3.published);
   * progress arrives meanwhile as snapshot.progress with the same importId.
   */
  'snapshot.import': { args: { view: string; paths: string[]; cutoffMs: number | undefined; importId: number }; result: ImportReport };
  /** Ends a refs stream the worker stopped reading before its end. */
  'l3.refs-close': { args: { stream: number }; result: null };
  /** Every ready worker's metrics, aggregated, as Prometheus text. */
  'metrics.collect': { args: null; result: string };
  /** The worker is serving on these ports (shared by all workers). */
  'worker.listening': { args: ListeningPorts; result: null };
};

/** What the primary asks of a worker. */
export type WorkerMethods = {
  /** Records another worker committed; acknowledged once this worker's cache tiers know them. */
  'l3.peer-writes': { args: { records: WireRecord[] }; result: null };
  /** Keys of a snapshot being staged: this worker's bloom gate must know them before the snapshot is published. */
  'l3.expect-keys': { args: { keys: Buffer[] }; result: null };
  /** A view's snapshot was published: from now on this worker reads its generation (and never the old one's cached records). */
  'l3.published': { args: { view: string; snapshot: PublishedSnapshot }; result: null };
  /** Progress of this worker's snapshot.import call `importId`. */
  'snapshot.progress': { args: { importId: number; progress: ImportProgress }; result: null };
  /** This worker's own metrics, for aggregation. */
  'metrics.snapshot': { args: null; result: MetricObjectWithValues<MetricValue<string>>[] };
  /** Stop gracefully (drain, close) and exit. */
  'worker.stop': { args: null; result: null };
};

export function toWireRef(ref: RecordRef): WireRef {
  return { view: ref.view.name, key: ref.key };
}

export function fromWireRef(registry: Registry, ref: WireRef): RecordRef {
  return { view: wireView(registry, ref.view), key: ref.key };
}

/** A view named by another process of the cluster. */
export function wireView(registry: Registry, name: string): ViewDef {
  const view = registry.views.get(name);
  if (view === undefined) {
    // Only when the registry file changed between the start of two processes of one cluster.
    throw new StrataError('STRATA_INTERNAL', `worker processes disagree on the registry: view ${JSON.stringify(name)} is unknown here; restart the whole server`);
  }
  return view;
}
