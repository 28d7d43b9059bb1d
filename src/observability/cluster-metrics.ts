/**
 * /metrics under `strata serve --workers N`: whichever worker is scraped asks
 * the primary, which gathers every ready worker's registry as JSON and
 * combines them with prom-client's cluster aggregation (counters, histograms
 * and most gauges summed; see the aggregators declared in metrics.ts).
 * prom-client's own AggregatorRegistry.clusterMetrics works on the global
 * registry over its own messages; Strata keeps a registry per server and one
 * IPC protocol (src/cluster/protocol.ts), so it only borrows `aggregate`.
 */
import { AggregatorRegistry } from 'prom-client';
import type { PrimaryMethods, WorkerMethods } from '../cluster/protocol.js';
import type { IpcEndpoint } from '../util/ipc-endpoint.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** A worker that does not answer within this is left out of the scrape rather than failing it. */
const SNAPSHOT_TIMEOUT_MS = 2_000;

/** Primary side: the aggregated Prometheus text of `workers` and the primary's own metrics (L3 compaction). */
export async function aggregateWorkerMetrics(workers: readonly IpcEndpoint<WorkerMethods, PrimaryMethods>[], primary: Metrics, logger: Logger): Promise<string> {
  const snapshots = await Promise.allSettled(workers.map((worker) => worker.call('metrics.snapshot', null, SNAPSHOT_TIMEOUT_MS)));
  const answered = snapshots.flatMap((snapshot) => (snapshot.status === 'fulfilled' ? [snapshot.value] : []));
  if (answered.length < workers.length) logger.warn('some workers did not answer a metrics scrape; it covers the others only', { workers: workers.length, answered: answered.length });
  return AggregatorRegistry.aggregate([...answered, await primary.registry.getMetricsAsJSON()]).metrics();
}

/** Worker side: answers the primary's snapshot requests with this process's metrics. */
export function shareWorkerMetrics(primary: IpcEndpoint<PrimaryMethods, WorkerMethods>, metrics: Metrics, observeGauges: () => void): void {
  primary.serve('metrics.snapshot', () => {
    observeGauges();
    return metrics.registry.getMetricsAsJSON();
  });
}
