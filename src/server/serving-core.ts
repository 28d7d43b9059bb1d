import type { Registry } from '../config/registry.js';
import type { EventPusher } from '../ingest/event-pusher.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { FeatureWriter } from '../serving/feature-writer.js';
import type { OnlineReader } from '../serving/online-reader.js';
import type { OverloadGuard } from './overload-guard.js';
import type { ServerFiles } from './server-files.js';
import type { SnapshotImports } from './snapshot-imports.js';

/** What both protocol edges serve from. */
export interface ServingCore {
  readonly registry: Registry;
  readonly reader: OnlineReader;
  readonly writer: FeatureWriter;
  /** PushEvents; undefined when the registry has no stream views. */
  readonly pusher: EventPusher | undefined;
  /** Snapshot imports asked over the admin endpoints. */
  readonly snapshots: SnapshotImports;
  /** Which files on the server's disk a request may name. */
  readonly serverFiles: ServerFiles;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: { readonly maxMessageBytes: number };
  isShuttingDown(): boolean;
  /** Refuses online reads while the server is far behind. */
  readonly overload: OverloadGuard;
  /** Refreshes gauges that are sampled rather than updated per request. */
  observeGauges(): void;
  /** The Prometheus text /metrics answers with: this process's metrics, or with --workers the whole cluster's. */
  scrapeMetrics(): Promise<string>;
}
