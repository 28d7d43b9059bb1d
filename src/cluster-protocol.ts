/**
 * The one catalogue of what crosses the IPC channels of `strata serve
 * --workers N` (see src/util/ipc-endpoint.ts for the call/reply framing).
 * The primary owns L3 and serves it to the workers; it also tells every
 * worker of the others' writes and gathers metrics for whichever worker is
 * scraped. Channels use Node's 'advanced' serialization, so key and record
 * bytes cross as Buffers/Uint8Arrays without base64.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Registry } from './config/registry.js';
import { StrataError } from './errors.js';
import type { PublishedSnapshot, RecordRef } from './storage/feature-store.js';
import type { IncomingEvent } from './storage/event-log.js';
import type { Version } from './storage/record.js';

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
  /** Published snapshot of each view with a batch half, read once at start (imports are refused while workers run). */
  'l3.generations': { args: null; result: Record<string, PublishedSnapshot> };
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
  /** This worker's own metrics, for aggregation. */
  'metrics.snapshot': { args: null; result: MetricObjectWithValues<MetricValue<string>>[] };
  /** Stop gracefully (drain, close) and exit. */
  'worker.stop': { args: null; result: null };
};

export function toWireRef(ref: RecordRef): WireRef {
  return { view: ref.view.name, key: ref.key };
}

export function fromWireRef(registry: Registry, ref: WireRef): RecordRef {
  const view = registry.views.get(ref.view);
  if (view === undefined) {
    // Only when the registry file changed between the start of two processes of one cluster.
    throw new StrataError('STRATA_INTERNAL', `worker processes disagree on the registry: view ${JSON.stringify(ref.view)} is unknown here; restart the whole server`);
  }
  return { view, key: ref.key };
}
