/**
 * `strata serve --workers N`: N serving processes on node:cluster, sharing
 * the listening sockets (the primary accepts and hands connections round
 * robin). LevelDB admits one process per data dir, so the primary opens L3
 * and serves it to the workers over IPC; each worker runs the ordinary
 * server with its own L1, bloom gate and Redis connection. The primary
 * restarts workers that die and stops them all on SIGTERM/SIGINT.
 */
import cluster, { type Worker } from 'node:cluster';
import type { ListeningPorts, PrimaryMethods, WorkerMethods } from '../cluster/protocol.js';
import type { ServeOptions } from '../config/options.js';
import type { Registry } from '../config/registry.js';
import { aggregateWorkerMetrics, shareWorkerMetrics } from '../observability/cluster-metrics.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { ServingCore } from '../server/serving-core.js';
import { openLevelStore, startServer, type RunningServer } from '../server/strata-server.js';
import { Compactor } from '../storage/compaction.js';
import { FeatureStoreHost } from '../cluster/feature-store-host.js';
import { RemoteFeatureStore } from '../cluster/remote-feature-store.js';
import { IpcEndpoint, primaryChannel, workerChannel } from '../util/ipc-endpoint.js';

/**
 * The first worker forked runs `prepare` (seeding the bundled example)
 * before it listens; the others are forked only once it listens, so the
 * seed runs once and every worker starts with it in L3.
 */
const FIRST_WORKER_ID = 1;
/** How long a write waits for the other workers to take its records before it is acknowledged anyway. */
const PEER_ACK_TIMEOUT_MS = 1_000;
/** This many unexpected worker exits within the window: something is wrong beyond a restart; give up. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const RESPAWN_BASE_DELAY_MS = 100;
/** Past the shutdown grace, a worker that has not exited is killed. */
const STOP_MARGIN_MS = 5_000;

type WorkerEndpoint = IpcEndpoint<WorkerMethods, PrimaryMethods>;

/** Runs the primary: opens L3, forks the workers and calls `announce` once all of them listen. */
export async function servePrimary(options: ServeOptions, registry: Registry, logger: Logger, announce: (ports: ListeningPorts) => void): Promise<void> {
  const l3 = await openLevelStore(options, registry, logger);
  const host = new FeatureStoreHost({ store: l3, registry, logger, peerAckTimeoutMs: PEER_ACK_TIMEOUT_MS, importLimits: options });
  // The primary's own metrics (it sweeps L3), added to the workers' at every scrape.
  const metrics = new Metrics({ processMetrics: false });
  const compactor = new Compactor({ store: l3, intervalMs: options.compactionIntervalMs, bytesPerSecond: options.compactionRateBytes, metrics, logger });
  compactor.start();
  const endpoints = new Map<number, WorkerEndpoint>();
  const ready = new Set<number>();
  const crashTimes: number[] = [];
  let announced = false;
  let stopping = false;
  let exitCode = 0;
  let killTimer: NodeJS.Timeout | undefined;

  const finish = (): void => {
    clearTimeout(killTimer);
    host.close();
    compactor
      .stop()
      .then(() => l3.close())
      .then(
        () => process.exit(exitCode),
        (error: Error) => {
          logger.error('closing L3 failed', { error: error.message });
          process.exit(1);
        },
      );
  };

  const shutdown = (code: number, reason: string): void => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    logger.info('stopping workers', { reason, workers: endpoints.size });
    if (endpoints.size === 0) return finish();
    for (const endpoint of endpoints.values()) void endpoint.call('worker.stop', null).catch(() => undefined);
    killTimer = setTimeout(() => {
      logger.warn('workers still running past the shutdown grace; killing them', { workers: endpoints.size });
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, options.shutdownGraceMs + STOP_MARGIN_MS);
  };

  const onListening = (worker: Worker, ports: ListeningPorts): void => {
    if (stopping) return;
    ready.add(worker.id);
    if (announced) {
      logger.info('worker serving again', { worker: worker.id, pid: worker.process.pid });
      return;
    }
    if (worker.id === FIRST_WORKER_ID) for (let count = 1; count < options.workers; count++) fork();
    if (ready.size === options.workers) {
      announced = true;
      announce(ports);
    }
  };

  const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    if (stopping) {
      if (endpoints.size === 0) finish();
      return;
    }
    logger.error('worker exited', { worker: worker.id, pid: worker.process.pid, code, signal });
    if (!announced) return shutdown(1, 'a worker failed to start');
    const now = Date.now();
    crashTimes.push(now);
    while (crashTimes[0]! < now - CRASH_WINDOW_MS) crashTimes.shift();
    if (crashTimes.length >= MAX_CRASHES) return shutdown(1, `${crashTimes.length} worker crashes within ${CRASH_WINDOW_MS / 1000}s; giving up`);
    const delayMs = RESPAWN_BASE_DELAY_MS * 2 ** (crashTimes.length - 1);
    logger.warn('respawning worker', { delayMs });
    setTimeout(() => {
      if (!stopping) fork();
    }, delayMs);
  };

  function fork(): void {
    const worker = cluster.fork();
    const endpoint: WorkerEndpoint = new IpcEndpoint(workerChannel(worker));
    endpoints.set(worker.id, endpoint);
    host.attach(worker.id, endpoint);
    endpoint.serve('metrics.collect', () => aggregateWorkerMetrics([...ready].map((id) => endpoints.get(id)!), metrics, logger));
    endpoint.serve('worker.listening', (ports) => {
      onListening(worker, ports);
      return null;
    });
    worker.once('exit', (code, signal) => {
      endpoints.delete(worker.id);
      ready.delete(worker.id);
      host.detach(worker.id);
      onExit(worker, code, signal);
    });
  }

  const onSignal = (signal: string): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    shutdown(0, signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  cluster.setupPrimary({ serialization: 'advanced' });
  fork();
}

/** Runs one worker: the ordinary server over the primary's L3, announced to the primary once it listens. */
export async function serveWorker(options: ServeOptions, registry: Registry, logger: Logger, prepare: (core: ServingCore) => Promise<void>): Promise<void> {
  const primary = new IpcEndpoint<PrimaryMethods, WorkerMethods>(primaryChannel());
  let server: RunningServer | undefined;
  let stopping = false;
  const stop = (reason: string): null => {
    if (stopping) return null;
    stopping = true;
    logger.info('worker stopping', { worker: cluster.worker?.id, reason });
    // Not listening yet: no call to drain.
    if (server === undefined) process.exit(0);
    server.stop().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error('unclean stop', { error: error.message });
        process.exit(1);
      },
    );
    return null;
  };
  primary.serve('worker.stop', () => stop('asked by the primary'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Ctrl-C reaches the whole process group; the primary, which gets it too, stops the workers in order.
  process.on('SIGINT', () => undefined);
  server = await startServer(options, registry, {
    logger,
    processMetrics: true,
    l3: await RemoteFeatureStore.connect(primary, registry),
    scrapeMetrics: () => primary.call('metrics.collect', null),
    prepare: cluster.worker?.id === FIRST_WORKER_ID ? prepare : undefined,
  });
  shareWorkerMetrics(primary, server.core.metrics, server.core.observeGauges);
  await primary.call('worker.listening', { grpcPort: server.grpcPort, httpPort: server.httpPort });
}
