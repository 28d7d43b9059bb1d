/**
 * Process options from command-line flags and STRATA_* environment variables
 * (flags win). Every option is declared once in OPTION_SPECS; unknown flags
 * and unknown STRATA_* variables stop the process at start, naming the source
 * and the rule. The result is frozen.
 */
import { realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';
import { parseDuration } from './duration.js';

export const BUNDLED_REGISTRY = fileURLToPath(new URL('../../examples/fraud/registry.yaml', import.meta.url));

export interface ServeOptions {
  readonly registry: string;
  readonly dataDir: string;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly unixSocket: string | undefined;
  readonly redisUrl: string | undefined;
  readonly redisTimeoutMs: number;
  readonly redisKeyPrefix: string;
  readonly l2TtlMs: number;
  readonly l1BudgetBytes: number;
  readonly l1MaxStalenessMs: number;
  readonly retentionMs: number;
  readonly maxVersions: number;
  readonly maxEvents: number;
  readonly kafkaBrokers: readonly string[] | undefined;
  readonly kafkaGroup: string;
  readonly kafkaSessionTimeoutMs: number;
  readonly kafkaMaxWaitMs: number;
  readonly schemaRegistryUrl: string | undefined;
  readonly maxRows: number;
  readonly maxFeatures: number;
  readonly maxMessageBytes: number;
  readonly maxResponseBytes: number;
  readonly bloomCapacity: number;
  readonly bloomSyncMs: number;
  readonly shedLoopDelayMs: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly workers: number;
  readonly compactionIntervalMs: number;
  readonly compactionRateBytes: number;
  /** Real path (symlinks resolved) of the one directory server-side file paths may name; undefined: none may. */
  readonly serverFilesDir: string | undefined;
}

type Parser = (text: string) => { value: unknown } | { rule: string };

const integer = (min: number, max: number): Parser => (text) => {
  const value = Number(text);
  return /^\d+$/.test(text) && value >= min && value <= max ? { value } : { rule: `must be an integer from ${min} to ${max}` };
};
const duration = (min: number): Parser => (text) => {
  const value = parseDuration(text);
  return value !== undefined && value >= min ? { value } : { rule: `must be a duration like 50ms, 30s, 5m, 1h, 7d${min > 0 ? ` of at least ${min}ms` : ''}` };
};
const SIZE = /^(\d+)(b|kb|mb|gb)?$/i;
const SIZE_UNIT: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
/** A size in bytes of at least `min`; a minimum comes with `why` a smaller size cannot work, which the rule gives. */
const size = (min: number, why = ''): Parser => (text) => {
  const match = SIZE.exec(text);
  const value = match === null ? undefined : Number(match[1]) * SIZE_UNIT[(match[2] ?? 'b').toLowerCase()]!;
  return value !== undefined && value >= min ? { value } : { rule: `must be a size like 65536, 512kb, 256mb, 2gb${min > 0 ? ` of at least ${min} bytes (${why})` : ''}` };
};
const nonEmpty: Parser = (text) => (text.length > 0 ? { value: text } : { rule: 'must not be empty' });
const redisUrl: Parser = (text) => (/^rediss?:\/\/|^unix:\/\//.test(text) ? { value: text } : { rule: 'must be a redis://host:port[/db] URL' });
const brokerList: Parser = (text) => {
  const brokers = text.split(',').map((broker) => broker.trim());
  return brokers.every((broker) => /^[^\s:/]+:\d{1,5}$/.test(broker)) ? { value: Object.freeze(brokers) } : { rule: 'must be a comma-separated list of host:port' };
};
const httpUrl: Parser = (text) => (/^https?:\/\/[^\s]+$/.test(text) ? { value: text.replace(/\/+$/, '') } : { rule: 'must be an http(s):// URL' });
/** An existing directory, as its real path: requests' paths are checked against it after their own symlinks are resolved. */
const directory: Parser = (text) => {
  try {
    const real = realpathSync(text);
    return statSync(real).isDirectory() ? { value: real } : { rule: 'must be a directory' };
  } catch (error) {
    return { rule: `must be an existing directory (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
};
const oneOf = (...choices: string[]): Parser => (text) => (choices.includes(text) ? { value: text } : { rule: `must be one of ${choices.join(', ')}` });

interface OptionSpec {
  readonly key: keyof ServeOptions;
  readonly flag: string;
  readonly env: string;
  /** Also read from this variable (a conventional name, like REDIS_URL). */
  readonly alias?: string;
  readonly parse: Parser;
  readonly fallback: ServeOptions[keyof ServeOptions];
  readonly help: string;
}

export const OPTION_SPECS: readonly OptionSpec[] = [
  { key: 'registry', flag: 'registry', env: 'STRATA_REGISTRY', parse: nonEmpty, fallback: BUNDLED_REGISTRY, help: 'registry YAML (default: the bundled fraud/personalization example)' },
  { key: 'dataDir', flag: 'data-dir', env: 'STRATA_DATA_DIR', parse: nonEmpty, fallback: '.strata/data', help: 'L3 LevelDB directory' },
  { key: 'host', flag: 'host', env: 'STRATA_HOST', parse: nonEmpty, fallback: '127.0.0.1', help: 'address both ports bind to' },
  { key: 'grpcPort', flag: 'grpc-port', env: 'STRATA_GRPC_PORT', parse: integer(0, 65535), fallback: 6565, help: 'gRPC port (0 = ephemeral)' },
  { key: 'httpPort', flag: 'http-port', env: 'STRATA_HTTP_PORT', parse: integer(0, 65535), fallback: 6566, help: 'HTTP gateway port (0 = ephemeral)' },
  { key: 'unixSocket', flag: 'unix-socket', env: 'STRATA_UNIX_SOCKET', parse: nonEmpty, fallback: undefined, help: 'also serve gRPC on this Unix socket path (sidecar use)' },
  { key: 'redisUrl', flag: 'redis-url', env: 'STRATA_REDIS_URL', alias: 'REDIS_URL', parse: redisUrl, fallback: undefined, help: 'enables the L2 Redis tier' },
  { key: 'redisTimeoutMs', flag: 'redis-timeout', env: 'STRATA_REDIS_TIMEOUT', parse: duration(1), fallback: 25, help: 'how long a serving read waits for L2 before it falls through to L3 (writes to L2 wait up to 5s, or this if longer; bloom filter transfers 10s)' },
  { key: 'redisKeyPrefix', flag: 'redis-key-prefix', env: 'STRATA_REDIS_KEY_PREFIX', parse: nonEmpty, fallback: 'strata:', help: 'prefix of every L2 key' },
  { key: 'l2TtlMs', flag: 'l2-ttl', env: 'STRATA_L2_TTL', parse: duration(1000), fallback: 3_600_000, help: 'how long a record promoted from L3 lives in L2 (written records do not expire)' },
  { key: 'l1BudgetBytes', flag: 'l1-budget', env: 'STRATA_L1_BUDGET', parse: size(0), fallback: 256 * 1024 ** 2, help: 'L1 memory budget, per serving process (0 disables L1)' },
  { key: 'l1MaxStalenessMs', flag: 'l1-max-staleness', env: 'STRATA_L1_MAX_STALENESS', parse: duration(1), fallback: 60_000, help: 'with L2: how long L1 entries live once invalidations may go unheard (no live subscription); while it is live they last until evicted or invalidated' },
  { key: 'retentionMs', flag: 'retention', env: 'STRATA_RETENTION', parse: duration(60_000), fallback: 7 * 86_400_000, help: 'history kept for point-in-time reads' },
  { key: 'maxVersions', flag: 'max-versions', env: 'STRATA_MAX_VERSIONS', parse: integer(1, 1_000_000), fallback: 1_000, help: 'most versions kept per entity and view, whatever the retention' },
  { key: 'maxEvents', flag: 'max-events', env: 'STRATA_MAX_EVENTS', parse: integer(100, 10_000_000), fallback: 50_000, help: 'most events kept per entity of a stream view, whatever the retention' },
  { key: 'kafkaBrokers', flag: 'kafka-brokers', env: 'STRATA_KAFKA_BROKERS', parse: brokerList, fallback: undefined, help: 'consume the stream views\' topics from these brokers (serve: embedded ingester)' },
  { key: 'kafkaGroup', flag: 'kafka-group', env: 'STRATA_KAFKA_GROUP', parse: nonEmpty, fallback: 'strata-ingest', help: 'Kafka consumer group of the ingesters' },
  { key: 'kafkaSessionTimeoutMs', flag: 'kafka-session-timeout', env: 'STRATA_KAFKA_SESSION_TIMEOUT', parse: duration(1_000), fallback: 10_000, help: 'consumer group session timeout: how soon a dead ingester\'s partitions move (rebalances take about this long)' },
  { key: 'kafkaMaxWaitMs', flag: 'kafka-max-wait', env: 'STRATA_KAFKA_MAX_WAIT', parse: duration(1), fallback: 500, help: 'longest a fetch waits for new events when caught up (Kafka answers as soon as any arrive; the test broker only after the whole wait, so set it low there); at most a tenth of the session timeout' },
  { key: 'schemaRegistryUrl', flag: 'schema-registry-url', env: 'STRATA_SCHEMA_REGISTRY_URL', parse: httpUrl, fallback: undefined, help: 'Confluent-compatible schema registry for Avro writer schemas (else the registry file\'s writer_schemas)' },
  { key: 'maxRows', flag: 'max-rows', env: 'STRATA_MAX_ROWS', parse: integer(1, 1_000_000), fallback: 1_000, help: 'entity rows per call' },
  { key: 'maxFeatures', flag: 'max-features', env: 'STRATA_MAX_FEATURES', parse: integer(1, 100_000), fallback: 500, help: 'features per call' },
  { key: 'maxMessageBytes', flag: 'max-message-size', env: 'STRATA_MAX_MESSAGE_SIZE', parse: size(1024, 'a one-row read or push takes up to a few hundred bytes; a smaller limit refuses ordinary calls'), fallback: 4 * 1024 ** 2, help: 'largest request body (at least 1kb)' },
  { key: 'maxResponseBytes', flag: 'max-response-size', env: 'STRATA_MAX_RESPONSE_SIZE', parse: size(64 * 1024, 'the limit counts 32 bytes per value besides its own bytes: one row of the default --max-features (500) counts about 16 KB before any value'), fallback: 64 * 1024 ** 2, help: 'largest response (value bytes + 32 per value; at least 64kb)' },
  { key: 'bloomCapacity', flag: 'bloom-capacity', env: 'STRATA_BLOOM_CAPACITY', parse: integer(1_000, 400_000_000), fallback: 1_000_000, help: 'keys the bloom gate is sized for (the local part grows; the shared part does not: same value on every replica)' },
  { key: 'bloomSyncMs', flag: 'bloom-sync', env: 'STRATA_BLOOM_SYNC', parse: duration(10), fallback: 1_000, help: 'with L2: how often keys written through other replicas are learnt' },
  { key: 'shedLoopDelayMs', flag: 'shed-loop-delay', env: 'STRATA_SHED_LOOP_DELAY', parse: duration(0), fallback: 1_000, help: 'refuse online reads with UNAVAILABLE while the event loop runs this far behind (0 = never)' },
  { key: 'shutdownGraceMs', flag: 'shutdown-grace', env: 'STRATA_SHUTDOWN_GRACE', parse: duration(0), fallback: 5_000, help: 'time in-flight calls get on SIGTERM' },
  { key: 'logLevel', flag: 'log-level', env: 'STRATA_LOG_LEVEL', parse: oneOf('debug', 'info', 'warn', 'error'), fallback: 'info', help: 'log verbosity' },
  { key: 'workers', flag: 'workers', env: 'STRATA_WORKERS', parse: integer(1, 64), fallback: 1, help: 'serving processes sharing the ports; each has its own L1 of --l1-budget, L3 stays in the primary' },
  { key: 'compactionIntervalMs', flag: 'compaction-interval', env: 'STRATA_COMPACTION_INTERVAL', parse: duration(0), fallback: 3_600_000, help: 'how often L3 is swept for history past --retention in records not written since (0 = never); the first sweep comes that long after the last complete one L3 remembers, at once when none or the registry or retention changed' },
  { key: 'compactionRateBytes', flag: 'compaction-rate', env: 'STRATA_COMPACTION_RATE', parse: size(0), fallback: 8 * 1024 ** 2, help: 'record bytes a sweep reads per second, at most: it shares the serving thread (0 = unpaced)' },
  { key: 'serverFilesDir', flag: 'server-files-dir', env: 'STRATA_SERVER_FILES_DIR', parse: directory, fallback: undefined, help: 'the directory whose files requests may name (snapshot imports, historical entities_path); relative paths are taken from it; without it, none' },
];

/** STRATA_* variables that are not serve options but are read elsewhere. */
const OTHER_KNOWN_ENV = new Set(['STRATA_TARGET']);

/**
 * Resolves options: flag, else env, else default. `flags` holds the raw
 * flag strings already split by util.parseArgs (which rejects unknown flags).
 */
export function resolveServeOptions(flags: Readonly<Record<string, string | undefined>>, env: NodeJS.ProcessEnv): ServeOptions {
  const problems: string[] = [];
  const known = new Set(OPTION_SPECS.map((spec) => spec.env));
  for (const name of Object.keys(env)) {
    if (name.startsWith('STRATA_') && !known.has(name) && !OTHER_KNOWN_ENV.has(name)) problems.push(`env ${name}: unknown variable`);
  }
  const options: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    const flagText = flags[spec.flag];
    const envName = env[spec.env] !== undefined ? spec.env : spec.alias !== undefined && env[spec.alias] !== undefined ? spec.alias : undefined;
    const [source, text] = flagText !== undefined ? [`flag --${spec.flag}`, flagText] : envName !== undefined ? [`env ${envName}`, env[envName]!] : [undefined, undefined];
    if (text === undefined) {
      options[spec.key] = spec.fallback;
      continue;
    }
    const parsed = spec.parse(text);
    if ('rule' in parsed) problems.push(`${source} = ${JSON.stringify(text)}: ${parsed.rule}`);
    else options[spec.key] = parsed.value;
  }
  if (problems.length > 0) throw new StrataError('STRATA_CONFIG_INVALID', `invalid options:\n  ${problems.join('\n  ')}`);
  return Object.freeze(options as unknown as ServeOptions);
}
