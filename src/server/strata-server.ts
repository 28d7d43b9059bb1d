import { mkdirSync } from 'node:fs';
import { ownedL3Imports, type ImportRunner } from '../batch/import-runner.js';
import { BloomGate } from '../cache/bloom-gate.js';
import { LruMemoryTier } from '../cache/lru-memory-tier.js';
import { RedisSharedTier } from '../cache/redis-shared-tier.js';
import { TieredRecordStore } from '../cache/tiered-record-store.js';
import type { ServeOptions } from '../config/options.js';
import type { Registry } from '../config/registry.js';
import { EventPusher } from '../ingest/event-pusher.js';
import { StreamApplier } from '../ingest/stream-applier.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { FeatureWriter } from '../serving/feature-writer.js';
import { HistoricalReader } from '../serving/historical-reader.js';
import { OnlineReader } from '../serving/online-reader.js';
import type { FeatureStore } from '../storage/feature-store.js';
import { Compactor } from '../storage/compaction.js';
import { LevelStore } from '../storage/level-store.js';
import type { RemoteFeatureStore } from '../cluster/remote-feature-store.js';
import { GrpcEdge } from './grpc-edge.js';
import { HttpGateway } from './http-gateway.js';
import { OverloadGuard } from './overload-guard.js';
import { ServerFiles } from './server-files.js';
import type { ServingCore } from './serving-core.js';
import { SnapshotImports } from './snapshot-imports.js';

export interface RunningServer {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly core: ServingCore;
  /** Graceful stop: health NOT_SERVING, drain in-flight calls (up to the grace period), close stores. */
  stop(): Promise<void>;
}

/** L3 on LevelDB in `options.dataDir`, created if missing. */
export async function openLevelStore(options: ServeOptions, registry: Registry, logger: Logger): Promise<LevelStore> {
  mkdirSync(options.dataDir, { recursive: true });
  return LevelStore.open({ dataDir: options.dataDir, registry, retentionMs: options.retentionMs, maxVersions: options.maxVersions, maxEvents: options.maxEvents, logger });
}

/**
 * Wires the data path — L3 LevelDB, optional L2 Redis, L1 memory, serving,
 * the two protocol edges — and starts listening. `prepare` runs after the
 * store opens and before any port is bound (the CLI seeds the bundled
 * example there). A worker of `--workers N` passes `l3` (the primary's
 * LevelDB over IPC, where snapshot imports run too) and `scrapeMetrics` (the
 * whole cluster's metrics).
 */
export async function startServer(
  options: ServeOptions,
  registry: Registry,
  extras: {
    logger?: Logger;
    processMetrics?: boolean;
    prepare?: (core: ServingCore) => Promise<void>;
    l3?: RemoteFeatureStore;
    scrapeMetrics?: () => Promise<string>;
    /** `strata ingest`: consume and expose /metrics over HTTP, but serve no gRPC. */
    ingestOnly?: boolean;
  } = {},
): Promise<RunningServer> {
  const logger = extras.logger ?? createLogger(options.logLevel);
  const metrics = new Metrics({ processMetrics: extras.processMetrics ?? false });
  // This process's own L3, unless a worker's primary owns it (which then sweeps it and runs imports).
  const remote = extras.l3;
  const local = remote === undefined ? await openLevelStore(options, registry, logger) : undefined;
  const l3: FeatureStore = local ?? remote!;
  // Without L2 every write this process can see comes through it (and through L1), so L1 entries need no expiry.
  const l1MaxStalenessMs = options.redisUrl === undefined ? 0 : options.l1MaxStalenessMs;
  const l1 = options.l1BudgetBytes > 0 ? new LruMemoryTier({ budgetBytes: options.l1BudgetBytes, maxStalenessMs: l1MaxStalenessMs, resumeGraceMs: Math.max(1_000, 4 * options.redisTimeoutMs), metrics }) : undefined;
  const l2 =
    options.redisUrl === undefined
      ? undefined
      : new RedisSharedTier({
          url: options.redisUrl,
          keyPrefix: options.redisKeyPrefix,
          timeoutMs: options.redisTimeoutMs,
          ttlMs: options.l2TtlMs,
          bloomGeometry: BloomGate.sharedGeometry(options.bloomCapacity),
          registry,
          metrics,
          logger,
        });
  if (l2 !== undefined && !(await l2.waitUntilReady(Math.max(1_000, options.redisTimeoutMs)))) {
    logger.warn('l2 redis not reachable at start; serving from L1 and L3 until it is', { url: options.redisUrl });
  }
  let store: TieredRecordStore;
  try {
    store = await TieredRecordStore.open({ l1, l2, l3, views: [...registry.views.keys()], bloomCapacity: options.bloomCapacity, bloomSyncMs: options.bloomSyncMs, metrics, logger });
  } catch (error) {
    await l2?.close();
    await l3.close();
    throw error;
  }

  const hasStreams = [...registry.views.values()].some((view) => view.source.type === 'stream');
  const applier = hasStreams ? new StreamApplier(registry, store, metrics, options.retentionMs) : undefined;
  // Loaded only where topics are consumed: kafkajs is ~1.8 MiB of heap a serving process otherwise carries.
  const ingester =
    applier !== undefined && options.kafkaBrokers !== undefined
      ? new (await import('../ingest/kafka-ingester.js')).KafkaIngester(registry, applier, {
          brokers: options.kafkaBrokers,
          groupId: options.kafkaGroup,
          clientId: `strata-${process.pid}`,
          sessionTimeoutMs: options.kafkaSessionTimeoutMs,
          maxWaitMs: options.kafkaMaxWaitMs,
          schemaRegistryUrl: options.schemaRegistryUrl,
          logger,
          metrics,
        })
      : undefined;

  let shuttingDown = false;
  const overload = new OverloadGuard(options.shedLoopDelayMs, logger);
  const serverFiles = new ServerFiles(options.serverFilesDir);
  const imports: ImportRunner = local === undefined ? (request) => remote!.importSnapshot(request) : ownedL3Imports(local, options, (keys) => store.expectKeys(keys));
  const core: ServingCore = {
    registry,
    reader: new OnlineReader(registry, store, { maxRows: options.maxRows, maxFeatures: options.maxFeatures, maxResponseBytes: options.maxResponseBytes, retentionMs: options.retentionMs }),
    writer: new FeatureWriter(registry, store, { maxRows: options.maxRows, metrics }),
    pusher: applier === undefined ? undefined : new EventPusher(registry, applier, metrics, options.maxRows),
    snapshots: new SnapshotImports(registry, serverFiles, imports),
    serverFiles,
    metrics,
    logger,
    limits: { maxMessageBytes: options.maxMessageBytes },
    isShuttingDown: () => shuttingDown,
    overload,
    observeGauges: () => l1?.observe(),
    scrapeMetrics:
      extras.scrapeMetrics ??
      (() => {
        core.observeGauges();
        return metrics.registry.metrics();
      }),
  };
  const historical = new HistoricalReader(registry, store, { maxFeatures: options.maxFeatures, maxResponseBytes: options.maxResponseBytes, retentionMs: options.retentionMs });
  const compactor = local === undefined ? undefined : new Compactor({ store: local, intervalMs: options.compactionIntervalMs, bytesPerSecond: options.compactionRateBytes, metrics, logger });
  const grpcEdge = new GrpcEdge(core, historical);
  const http = new HttpGateway(core);
  try {
    await extras.prepare?.(core);
    const grpcPort = extras.ingestOnly ? 0 : await grpcEdge.listen({ host: options.host, port: options.grpcPort });
    if (options.unixSocket !== undefined && !extras.ingestOnly) await grpcEdge.listen({ path: options.unixSocket });
    const httpPort = await http.listen(options.host, options.httpPort);
    ingester?.start();
    compactor?.start();
    overload.start();
    logger.info('strata serving', { grpc: `${options.host}:${grpcPort}`, http: `${options.host}:${httpPort}`, unixSocket: options.unixSocket, l1: l1 !== undefined, l2: l2 !== undefined, views: registry.views.size });
    return {
      grpcPort,
      httpPort,
      core,
      stop: async () => {
        shuttingDown = true;
        overload.stop();
        await ingester?.stop();
        await Promise.all([grpcEdge.shutdown(options.shutdownGraceMs), http.close(options.shutdownGraceMs), compactor?.stop()]);
        await store.close();
      },
    };
  } catch (error) {
    await ingester?.stop();
    await compactor?.stop();
    grpcEdge.destroy();
    await http.close(0);
    await store.close();
    throw error;
  }
}
