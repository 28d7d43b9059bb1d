import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLED_REGISTRY, OPTION_SPECS, resolveServeOptions } from '../../src/config/options.js';
import { StrataError } from '../../src/errors.js';

/** Resolves, expecting STRATA_CONFIG_INVALID; returns the message. */
function rejection(flags: Record<string, string>, env: NodeJS.ProcessEnv): string {
  let caught: unknown;
  try {
    resolveServeOptions(flags, env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(StrataError);
  expect((caught as StrataError).code).toBe('STRATA_CONFIG_INVALID');
  return (caught as StrataError).message;
}

describe('resolveServeOptions', () => {
  it('uses the documented defaults when nothing is given', () => {
    const options = resolveServeOptions({}, {});
    for (const spec of OPTION_SPECS) expect(options[spec.key], spec.key).toBe(spec.fallback);
    expect(options).toMatchObject({
      registry: BUNDLED_REGISTRY,
      dataDir: '.strata/data',
      host: '127.0.0.1',
      grpcPort: 6565,
      httpPort: 6566,
      unixSocket: undefined,
      redisUrl: undefined,
      redisTimeoutMs: 25,
      redisKeyPrefix: 'strata:',
      l2TtlMs: 3_600_000,
      l1BudgetBytes: 256 * 1024 * 1024,
      l1MaxStalenessMs: 60_000,
      retentionMs: 7 * 86_400_000,
      maxRows: 1_000,
      maxFeatures: 500,
      maxMessageBytes: 4 * 1024 * 1024,
      bloomCapacity: 1_000_000,
      bloomSyncMs: 1_000,
      shutdownGraceMs: 5_000,
      logLevel: 'info',
      workers: 1,
    });
  });

  it('points the default registry at the bundled example file', () => {
    expect(BUNDLED_REGISTRY).toMatch(/examples\/fraud\/registry\.yaml$/);
  });

  it('ignores environment variables that are not STRATA_* (except aliases)', () => {
    expect(resolveServeOptions({}, { PATH: '/usr/bin', HOME: '/root', GRPC_PORT: 'x' }).grpcPort).toBe(6565);
  });

  it('takes a value from the environment when no flag is given', () => {
    const options = resolveServeOptions({}, { STRATA_GRPC_PORT: '7000', STRATA_LOG_LEVEL: 'debug', STRATA_HOST: '0.0.0.0' });
    expect(options.grpcPort).toBe(7000);
    expect(options.logLevel).toBe('debug');
    expect(options.host).toBe('0.0.0.0');
  });

  it('lets a flag beat the environment variable of the same option', () => {
    const options = resolveServeOptions({ 'grpc-port': '7001', 'data-dir': '/flag' }, { STRATA_GRPC_PORT: '7000', STRATA_DATA_DIR: '/env' });
    expect(options.grpcPort).toBe(7001);
    expect(options.dataDir).toBe('/flag');
  });

  it('does not validate an environment value that a flag overrides', () => {
    expect(resolveServeOptions({ 'grpc-port': '7001' }, { STRATA_GRPC_PORT: 'not a port' }).grpcPort).toBe(7001);
  });

  it('reads REDIS_URL as an alias of STRATA_REDIS_URL', () => {
    expect(resolveServeOptions({}, { REDIS_URL: 'redis://cache:6379/2' }).redisUrl).toBe('redis://cache:6379/2');
  });

  it('prefers STRATA_REDIS_URL over REDIS_URL, and the flag over both', () => {
    const env = { REDIS_URL: 'redis://alias:1', STRATA_REDIS_URL: 'redis://strata:2' };
    expect(resolveServeOptions({}, env).redisUrl).toBe('redis://strata:2');
    expect(resolveServeOptions({ 'redis-url': 'rediss://flag:3' }, env).redisUrl).toBe('rediss://flag:3');
  });

  it('rejects a REDIS_URL that is not a redis URL, naming the alias', () => {
    const message = rejection({}, { REDIS_URL: 'http://cache' });
    expect(message).toContain('env REDIS_URL = "http://cache": must be a redis://host:port[/db] URL');
  });

  it.each([
    ['65536', 65_536],
    ['512kb', 512 * 1024],
    ['64mb', 64 * 1024 * 1024],
    ['64MB', 64 * 1024 * 1024],
    ['2gb', 2 * 1024 ** 3],
    ['100b', 100],
    ['0', 0],
  ])('parses the size %s as %d bytes', (text, bytes) => {
    expect(resolveServeOptions({ 'l1-budget': text }, {}).l1BudgetBytes).toBe(bytes);
    expect(resolveServeOptions({}, { STRATA_COMPACTION_RATE: text }).compactionRateBytes).toBe(bytes);
  });

  it('refuses request and response limits too small for ordinary calls, naming the source, the minimum and why', () => {
    expect(rejection({ 'max-message-size': '0' }, {})).toContain(
      'flag --max-message-size = "0": must be a size like 65536, 512kb, 256mb, 2gb of at least 1024 bytes (a one-row read or push takes up to a few hundred bytes',
    );
    expect(rejection({}, { STRATA_MAX_MESSAGE_SIZE: '1023' })).toContain('env STRATA_MAX_MESSAGE_SIZE = "1023": must be a size like 65536, 512kb, 256mb, 2gb of at least 1024 bytes');
    expect(rejection({ 'max-response-size': '0' }, {})).toContain(
      'flag --max-response-size = "0": must be a size like 65536, 512kb, 256mb, 2gb of at least 65536 bytes (the limit counts 32 bytes per value',
    );
    expect(rejection({}, { STRATA_MAX_RESPONSE_SIZE: '63kb' })).toContain('env STRATA_MAX_RESPONSE_SIZE = "63kb": must be a size like 65536, 512kb, 256mb, 2gb of at least 65536 bytes');
    expect(resolveServeOptions({ 'max-message-size': '1kb' }, { STRATA_MAX_RESPONSE_SIZE: '64kb' })).toMatchObject({ maxMessageBytes: 1024, maxResponseBytes: 65_536 });
  });

  it.each(['64 mb', '1.5mb', '-1', 'mb', '64tb', ''])('rejects the size %j', (text) => {
    expect(rejection({ 'l1-budget': text }, {})).toContain(`flag --l1-budget = ${JSON.stringify(text)}: must be a size like`);
  });

  it('parses durations into milliseconds', () => {
    const options = resolveServeOptions(
      { 'redis-timeout': '50ms', 'l1-max-staleness': '2s', retention: '30d', 'shutdown-grace': '0' },
      { STRATA_L2_TTL: '5m' },
    );
    expect(options.redisTimeoutMs).toBe(50);
    expect(options.l1MaxStalenessMs).toBe(2_000);
    expect(options.retentionMs).toBe(30 * 86_400_000);
    expect(options.shutdownGraceMs).toBe(0);
    expect(options.l2TtlMs).toBe(300_000);
  });

  it('enforces each duration minimum, naming it', () => {
    expect(rejection({ retention: '59s' }, {})).toContain('flag --retention = "59s": must be a duration like 50ms, 30s, 5m, 1h, 7d of at least 60000ms');
    expect(rejection({}, { STRATA_L1_MAX_STALENESS: '0' })).toContain('env STRATA_L1_MAX_STALENESS = "0": must be a duration');
    expect(rejection({ 'redis-timeout': '25' }, {})).toContain('flag --redis-timeout = "25": must be a duration');
  });

  it('rejects an unknown STRATA_ variable, naming it', () => {
    const message = rejection({}, { STRATA_FOO: '1' });
    expect(message).toContain('env STRATA_FOO: unknown variable');
  });

  it('accepts STRATA_TARGET, which another command reads', () => {
    expect(() => resolveServeOptions({}, { STRATA_TARGET: 'http://localhost:6566' })).not.toThrow();
  });

  it('rejects an out-of-range port from a flag, naming the flag and the rule', () => {
    expect(rejection({ 'grpc-port': '70000' }, {})).toContain('flag --grpc-port = "70000": must be an integer from 0 to 65535');
  });

  it('rejects an out-of-range port from the environment, naming the variable', () => {
    expect(rejection({}, { STRATA_GRPC_PORT: '70000' })).toContain('env STRATA_GRPC_PORT = "70000": must be an integer from 0 to 65535');
  });

  it.each(['-1', '1.5', '0x10', ' 80', ''])('rejects the port %j', (text) => {
    expect(rejection({ 'http-port': text }, {})).toContain('flag --http-port');
  });

  it('accepts port 0 (ephemeral) and 65535', () => {
    expect(resolveServeOptions({ 'grpc-port': '0', 'http-port': '65535' }, {})).toMatchObject({ grpcPort: 0, httpPort: 65535 });
  });

  it('takes the worker count from --workers or STRATA_WORKERS, from 1 to 64', () => {
    expect(resolveServeOptions({ workers: '4' }, {}).workers).toBe(4);
    expect(resolveServeOptions({}, { STRATA_WORKERS: '64' }).workers).toBe(64);
    expect(rejection({ workers: '0' }, {})).toContain('flag --workers = "0": must be an integer from 1 to 64');
    expect(rejection({}, { STRATA_WORKERS: '65' })).toContain('env STRATA_WORKERS = "65": must be an integer from 1 to 64');
  });

  it('takes --server-files-dir as the real path of an existing directory, and nothing else', () => {
    const root = mkdtempSync(join(tmpdir(), 'strata-options-'));
    try {
      mkdirSync(join(root, 'files'));
      symlinkSync(join(root, 'files'), join(root, 'link'));
      writeFileSync(join(root, 'plain'), '');
      expect(resolveServeOptions({ 'server-files-dir': join(root, 'link') }, {}).serverFilesDir).toBe(realpathSync(join(root, 'files')));
      expect(resolveServeOptions({}, { STRATA_SERVER_FILES_DIR: join(root, 'files', '..', 'files') }).serverFilesDir).toBe(realpathSync(join(root, 'files')));
      expect(rejection({ 'server-files-dir': join(root, 'plain') }, {})).toContain('must be a directory');
      expect(rejection({ 'server-files-dir': join(root, 'missing') }, {})).toContain('must be an existing directory (ENOENT)');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('takes the compaction interval as a duration, 0 turning compaction off', () => {
    expect(resolveServeOptions({ 'compaction-interval': '0' }, {}).compactionIntervalMs).toBe(0);
    expect(resolveServeOptions({}, { STRATA_COMPACTION_INTERVAL: '15m' }).compactionIntervalMs).toBe(900_000);
    expect(rejection({ 'compaction-interval': '1' }, {})).toContain('flag --compaction-interval = "1": must be a duration');
  });

  it('rejects a log level outside the list', () => {
    expect(rejection({ 'log-level': 'trace' }, {})).toContain('flag --log-level = "trace": must be one of debug, info, warn, error');
  });

  it('rejects an empty string where a value is required', () => {
    expect(rejection({}, { STRATA_DATA_DIR: '' })).toContain('env STRATA_DATA_DIR = "": must not be empty');
  });

  it('reports every bad option at once', () => {
    const message = rejection({ 'grpc-port': '70000', 'max-rows': '0' }, { STRATA_FOO: '1', STRATA_BLOOM_CAPACITY: '10' });
    const lines = message.split('\n').slice(1);
    expect(lines).toHaveLength(4);
    expect(message).toContain('STRATA_FOO');
    expect(message).toContain('--grpc-port');
    expect(message).toContain('--max-rows = "0": must be an integer from 1 to 1000000');
    expect(message).toContain('STRATA_BLOOM_CAPACITY = "10": must be an integer from 1000 to 400000000');
  });

  it('returns a frozen object', () => {
    const options = resolveServeOptions({}, {});
    expect(Object.isFrozen(options)).toBe(true);
    expect(() => {
      (options as { grpcPort: number }).grpcPort = 1;
    }).toThrow(TypeError);
  });

  it('declares each option with a distinct flag and a distinct STRATA_ variable', () => {
    const flags = OPTION_SPECS.map((spec) => spec.flag);
    const envs = OPTION_SPECS.map((spec) => spec.env);
    expect(new Set(flags).size).toBe(flags.length);
    expect(new Set(envs).size).toBe(envs.length);
    for (const env of envs) expect(env).toMatch(/^STRATA_[A-Z0-9_]+$/);
    expect(Object.keys(resolveServeOptions({}, {})).sort()).toEqual(OPTION_SPECS.map((spec) => spec.key).sort());
  });
});
