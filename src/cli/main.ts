#!/usr/bin/env node
/**
 * strata serve | ingest | generate | historical | snapshot | validate | push —
 * the command line. Options come from
 * flags and STRATA_* variables (src/config/options.ts); bad ones stop the
 * process before anything starts, with exit code 2.
 */
import cluster from 'node:cluster';
import { createReadStream, existsSync, lstatSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BUNDLED_REGISTRY, OPTION_SPECS, resolveServeOptions } from '../config/options.js';
import { formatDuration } from '../config/duration.js';
import { loadRegistry } from '../config/registry.js';
import type { ListeningPorts } from '../cluster/protocol.js';
import { StrataError } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import type { ServingCore } from '../server/serving-core.js';
import { startServer, type RunningServer } from '../server/strata-server.js';
import { servePrimary, serveWorker } from './cluster.js';
import { seedExample } from './example-seed.js';
import { runGenerate } from './generate-command.js';
import { runHistorical } from './historical-command.js';
import { runSnapshot } from './snapshot-command.js';

const USAGE = `strata — online feature server

usage:
  strata serve [options]            serve gRPC and HTTP (bundled example by default); with
                                    --kafka-brokers it also consumes the stream views' topics
  strata ingest --kafka-brokers B [options]
                                    consume the stream views' topics only (scale out: run more,
                                    share state with serving replicas through --redis-url)
  strata generate --topic T[,T…] --rate N --duration D [--seed S] (--brokers B | --push URL | --out F)
                                    realistic txn/click/device events to Kafka, PushEvents or a file
  strata snapshot import --view V [--data-dir D] FILE…
                                    a batch view's parquet/Avro/NDJSON/CSV snapshot into L3:
                                    staged, audited, then published (server stopped; a running
                                    server imports over POST /admin/snapshot-import)
  strata historical --entities F (--features V:F,… | --feature-service S) --out F [--target H:P]
                                    a training set: each entity row's features as of its
                                    event_timestamp, from a running server, to parquet or NDJSON
  strata validate [--registry F]    check a registry file and print what it defines
  strata push --view V [--target URL] [--batch N] FILE|-
                                    write NDJSON rows ({join keys…, event_timestamp, features…})
                                    to a running server's HTTP gateway

serve options (flag, environment variable, default):
${OPTION_SPECS.map((spec) => `  --${spec.flag.padEnd(18)} ${spec.env.padEnd(26)} ${spec.help}`).join('\n')}
`;

class UsageError extends Error {}

/** parseArgs, with what it refuses (an unknown flag, a flag without its value) a usage error: exit 2. */
function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function parse(argv: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}) {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' }, ...extra };
  for (const spec of OPTION_SPECS) options[spec.flag] = { type: 'string' };
  return parseFlags({ args: argv, options, allowPositionals: true, strict: true });
}

async function serve(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  if (values.help) return void process.stdout.write(USAGE);
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got: ${positionals.join(' ')}`);
  const options = resolveServeOptions(values as Record<string, string | undefined>, process.env);
  const registry = loadRegistry(options.registry);
  const logger = createLogger(options.logLevel);
  const seedMarker = join(options.dataDir, '.example-seeded');
  const seed = options.registry === BUNDLED_REGISTRY && !existsSync(seedMarker);
  const prepare = async (core: ServingCore): Promise<void> => {
    if (!seed) return;
    const { rows, events } = await seedExample(core, Date.now());
    writeFileSync(seedMarker, `${new Date().toISOString()}\n`);
    logger.info('bundled example seeded', { rows, events });
  };
  if (cluster.isWorker) return serveWorker(options, registry, logger, prepare);
  if (options.unixSocket !== undefined && existsSync(options.unixSocket) && lstatSync(options.unixSocket).isSocket()) {
    // A socket file left by a process that died; binding would fail with EADDRINUSE.
    unlinkSync(options.unixSocket);
  }
  // The one line tests and benchmarks wait for, printed once everything listens.
  const announce = ({ grpcPort, httpPort }: ListeningPorts): void =>
    void process.stdout.write(
      `strata serving grpc=${options.host}:${grpcPort} http=${options.host}:${httpPort}${options.unixSocket ? ` unix=${options.unixSocket}` : ''}` +
        ` l1=${options.l1BudgetBytes > 0 ? `${Math.round(options.l1BudgetBytes / 1024 ** 2)}MiB${options.redisUrl ? `/${formatDuration(options.l1MaxStalenessMs)}` : ''}` : 'off'} l2=${options.redisUrl ? 'redis' : 'off'} data=${options.dataDir}` +
        ` workers=${options.workers}\n`,
    );
  if (options.workers > 1 && options.kafkaBrokers !== undefined) {
    throw new UsageError('--workers and --kafka-brokers do not combine: run `strata ingest` beside the workers (they share state through --redis-url)');
  }
  if (options.workers > 1) return servePrimary(options, registry, logger, announce);
  const server = await startServer(options, registry, { logger, processMetrics: true, prepare });
  announce(server);
  stopOnSignals(server, logger);
}

/** `strata ingest`: the stream views' consumer alone, with /metrics and PushEvents over HTTP; no gRPC, no L1. */
async function ingest(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  if (values.help) return void process.stdout.write(USAGE);
  if (positionals.length > 0) throw new UsageError(`ingest takes no arguments, got: ${positionals.join(' ')}`);
  const options = resolveServeOptions(values as Record<string, string | undefined>, process.env);
  if (options.kafkaBrokers === undefined) throw new UsageError('ingest needs --kafka-brokers (or STRATA_KAFKA_BROKERS)');
  const registry = loadRegistry(options.registry);
  const topics = [...new Set([...registry.views.values()].flatMap((view) => (view.source.type === 'stream' ? [view.source.topic] : [])))];
  if (topics.length === 0) throw new StrataError('STRATA_CONFIG_INVALID', `${options.registry}: no stream views, nothing to ingest`);
  const logger = createLogger(options.logLevel);
  const server = await startServer({ ...options, l1BudgetBytes: 0 }, registry, { logger, processMetrics: true, ingestOnly: true });
  process.stdout.write(
    `strata ingesting topics=${topics.join(',')} brokers=${options.kafkaBrokers.join(',')} group=${options.kafkaGroup} http=${options.host}:${server.httpPort}` +
      ` l2=${options.redisUrl ? 'redis' : 'off'} data=${options.dataDir}\n`,
  );
  stopOnSignals(server, logger);
}

function stopOnSignals(server: RunningServer, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('stopping', { signal });
    server.stop().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error('unclean stop', { error: error.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function validate(argv: string[]): void {
  const { values } = parse(argv);
  const file = (values.registry as string | undefined) ?? process.env.STRATA_REGISTRY ?? BUNDLED_REGISTRY;
  const registry = loadRegistry(file);
  process.stdout.write(`${file}: valid\n`);
  process.stdout.write(`  entities: ${[...registry.entities.values()].map((entity) => `${entity.name}(${entity.joinKey})`).join(', ')}\n`);
  for (const view of registry.views.values()) {
    process.stdout.write(`  view ${view.name} [${view.joinKeys.join(', ')}] ttl=${formatDuration(view.ttlMs)} ${view.source.type}: ${view.features.map((feature) => `${feature.name}:${feature.type}`).join(', ')}\n`);
  }
  for (const service of registry.services.values()) process.stdout.write(`  service ${service.name}: ${service.features.length} features\n`);
}

async function push(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags({
    args: argv,
    options: { view: { type: 'string' }, target: { type: 'string' }, batch: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.view === undefined || positionals.length !== 1) throw new UsageError('push needs --view V and one FILE (or - for stdin)');
  const target = (values.target ?? process.env.STRATA_TARGET ?? 'http://127.0.0.1:6566').replace(/\/$/, '');
  const batchSize = Number(values.batch ?? 500);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError('--batch must be a positive integer');
  const input = positionals[0] === '-' ? process.stdin : createReadStream(positionals[0]!);
  let batch: Record<string, unknown>[] = [];
  let line = 0;
  let written = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const df: Record<string, unknown[]> = {};
    const names = new Set(batch.flatMap((row) => Object.keys(row)));
    for (const name of names) df[name] = batch.map((row) => row[name] ?? null);
    const response = await fetch(`${target}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ push_source_name: values.view, df }) });
    const body = await response.text();
    if (!response.ok) throw new Error(`push of lines ${line - batch.length + 1}–${line} failed (${response.status}): ${body}`);
    written += (JSON.parse(body) as { rows_written: number }).rows_written;
    batch = [];
  };
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    line++;
    if (text.trim() === '') continue;
    try {
      batch.push(JSON.parse(text) as Record<string, unknown>);
    } catch (error) {
      throw new Error(`line ${line}: not JSON: ${(error as Error).message}`);
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  process.stdout.write(`pushed ${written} rows to ${values.view}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'ingest':
      return ingest(rest);
    case 'generate':
      return runGenerate(rest, process.stdout);
    case 'historical':
      return runHistorical(rest, process.stdout, process.stderr);
    case 'snapshot':
      process.exitCode = await runSnapshot(rest, process.stdout, process.stderr);
      return;
    case 'validate':
      return validate(rest);
    case 'push':
      return push(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`strata: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (error instanceof StrataError && error.code === 'STRATA_CONFIG_INVALID') {
    process.stderr.write(`strata: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`strata: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
