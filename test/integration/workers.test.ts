import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { columnsOf, FIXTURE_REGISTRY, StrataGrpcClient, timestamp } from '../support/strata.js';
import { cleanEnv, sumMetric } from '../support/process-helpers.js';

/** The built CLI (npm test builds first): cluster workers re-run this file, as a deployment would. */
const MAIN_JS = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const WORKERS = 2;

interface Cluster {
  readonly child: ChildProcess;
  readonly grpc: string;
  readonly http: string;
  readonly exit: Promise<number | null>;
  readonly stderr: () => string;
}


/** Starts `strata serve --workers 2` on ephemeral ports; without `--registry` in `registryArgs`, on the bundled example. */
async function startCluster(dataDir: string, registryArgs = ['--registry', FIXTURE_REGISTRY]): Promise<Cluster> {
  const args = ['serve', '--workers', String(WORKERS), ...registryArgs, '--data-dir', dataDir, '--host', '127.0.0.1', '--grpc-port', '0', '--http-port', '0', '--shutdown-grace', '1s'];
  const child = spawn(process.execPath, [MAIN_JS, ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 20s; stderr: ${stderr}`)), 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) {
        clearTimeout(timer);
        resolve(stdout);
      }
    });
    void exit.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  expect(banner.trimEnd()).toMatch(new RegExp(`^strata serving grpc=\\S+ http=\\S+ .* workers=${WORKERS}$`));
  expect(banner.split('\n').filter(Boolean)).toHaveLength(1);
  const match = /grpc=(\S+) http=(\S+)/.exec(banner)!;
  return { child, grpc: match[1]!, http: match[2]!, exit, stderr: () => stderr };
}

/** An HTTP request on a connection of its own: the cluster hands each new connection to the next worker. */
function freshHttp(address: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const call = request({ host, port: Number(port), method, path, agent: false, headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => void (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, text }));
    });
    call.on('error', reject);
    call.on('timeout', () => call.destroy(new Error(`${method} ${path} timed out`)));
    call.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A gRPC client on a channel of its own (no shared subchannel pool), so on a connection of its own. */
async function withFreshGrpc<T>(address: string, use: (client: StrataGrpcClient) => Promise<T>): Promise<T> {
  const client = new StrataGrpcClient(address, { 'grpc.use_local_subchannel_pool': 1 });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

async function writeLimit(cluster: Cluster, protocol: 'grpc' | 'http', card: string, limit: number, eventMs: number): Promise<void> {
  if (protocol === 'grpc') {
    await withFreshGrpc(cluster.grpc, (client) =>
      client.writeFeatures({
        feature_view: 'card_profile',
        columns: {
          card_id: { values: [{ string_val: card }] },
          credit_limit: { values: [{ double_val: limit }] },
          home_country: { values: [{ string_val: 'PT' }] },
          account_age_days: { values: [{ int64_val: 3 }] },
          is_business: { values: [{ bool_val: false }] },
        },
        event_timestamps: [timestamp(eventMs)],
      }),
    );
    return;
  }
  const df = { card_id: [card], event_timestamp: [new Date(eventMs).toISOString()], credit_limit: [limit], home_country: ['PT'], account_age_days: [3], is_business: [false] };
  const response = await freshHttp(cluster.http, 'POST', '/push', { push_source_name: 'card_profile', df });
  expect(response.status, response.text).toBe(200);
}

async function readLimit(cluster: Cluster, protocol: 'grpc' | 'http', card: string): Promise<unknown> {
  if (protocol === 'grpc') {
    const response = await withFreshGrpc(cluster.grpc, (client) => client.getOnlineFeatures({ features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: [{ string_val: card }] } } }));
    return columnsOf(response).credit_limit!.values[0];
  }
  const response = await freshHttp(cluster.http, 'POST', '/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: [card] } });
  expect(response.status, response.text).toBe(200);
  return (JSON.parse(response.text) as { results: { values: unknown[] }[] }).results[1]!.values[0];
}

/** Sum of a metric's samples over the given labels, from one aggregated scrape. */
async function metric(cluster: Cluster, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { text } = await freshHttp(cluster.http, 'GET', '/metrics');
  return sumMetric(text, name, labels) ?? 0;
}

function workerPids(primary: ChildProcess): number[] {
  const listed = spawnSync('ps', ['-o', 'pid=', '--ppid', String(primary.pid)], { encoding: 'utf8' });
  return listed.stdout.split('\n').map((line) => Number(line.trim())).filter((pid) => pid > 0);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('strata serve --workers 2', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-workers-'));
  let cluster: Cluster;
  const eventBase = Date.now() - 600_000;

  beforeAll(async () => {
    cluster = await startCluster(dataDir);
  });

  afterAll(() => {
    if (cluster?.child.exitCode === null) cluster.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts one primary with two workers', () => {
    expect(workerPids(cluster.child)).toHaveLength(WORKERS);
  });

  it('makes an acknowledged write readable at once through every worker, over either protocol', async () => {
    for (let round = 0; round < 12; round++) {
      const protocol = round % 2 === 0 ? 'grpc' : 'http';
      await writeLimit(cluster, protocol, 'c-shared', round, eventBase + round);
      const reads = await Promise.all(Array.from({ length: 6 }, (_, index) => readLimit(cluster, index % 2 === 0 ? 'http' : 'grpc', 'c-shared')));
      expect(reads, `round ${round} written over ${protocol}`).toEqual(reads.map(() => round));
    }
    // A key first written now must pass every worker's bloom gate, not only the writer's.
    await writeLimit(cluster, 'http', 'c-new', 7, eventBase);
    const reads = await Promise.all(Array.from({ length: 6 }, (_, index) => readLimit(cluster, index % 2 === 0 ? 'grpc' : 'http', 'c-new')));
    expect(reads).toEqual(reads.map(() => 7));
  });

  it('answers /metrics with the sum over both workers', async () => {
    const lookups = () => metric(cluster, 'strata_tier_lookups_total', { tier: 'l1' });
    const httpReads = () => metric(cluster, 'strata_request_duration_seconds_count', { protocol: 'http', method: 'POST /get-online-features' });
    const [lookupsBefore, readsBefore] = [await lookups(), await httpReads()];
    const count = 20;
    for (let index = 0; index < count; index++) expect(await readLimit(cluster, 'http', 'c-shared')).toBe(11);
    expect((await lookups()) - lookupsBefore).toBe(count);
    expect((await httpReads()) - readsBefore).toBe(count);
    // Both workers hold the written records in L1, and the cluster figure sums them.
    expect(await metric(cluster, 'strata_l1_entries')).toBe(2 * WORKERS);
    expect(await metric(cluster, 'strata_rows_written_total', { view: 'card_profile' })).toBe(13);
  });

  it('respawns a worker killed with SIGKILL and keeps serving', async () => {
    const [victim, survivor] = workerPids(cluster.child) as [number, number];
    process.kill(victim, 'SIGKILL');
    await waitFor('a replacement worker', () => workerPids(cluster.child).length === WORKERS && !workerPids(cluster.child).includes(victim));
    await waitFor('the replacement to serve', () => cluster.stderr().includes('worker serving again'));
    expect(workerPids(cluster.child)).toContain(survivor);
    await writeLimit(cluster, 'grpc', 'c-shared', 99, eventBase + 99);
    const reads = await Promise.all(Array.from({ length: 8 }, (_, index) => readLimit(cluster, index % 2 === 0 ? 'http' : 'grpc', 'c-shared')));
    expect(reads).toEqual(reads.map(() => 99));
    expect(await readLimit(cluster, 'http', 'c-new')).toBe(7);
  });

  it('stops every process on SIGTERM and exits 0', async () => {
    const pids = workerPids(cluster.child);
    cluster.child.kill('SIGTERM');
    expect(await cluster.exit).toBe(0);
    await waitFor('the workers to exit', () => !pids.some(isAlive), 5_000);
  });
});

describe('strata serve --workers 2 with the bundled example', () => {
  it('seeds the example once, before any worker serves', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strata-workers-example-'));
    const cluster = await startCluster(dataDir, []);
    try {
      const seeded = /"msg":"bundled example seeded","rows":(\d+)/g;
      const counts = [...cluster.stderr().matchAll(seeded)].map((match) => Number(match[1]));
      expect(counts).toHaveLength(1);
      expect(await metric(cluster, 'strata_rows_written_total')).toBe(counts[0]);
      const reads = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const response = await freshHttp(cluster.http, 'POST', '/get-online-features', { feature_service: 'fraud_v1', entities: { card_id: ['c0001'] } });
          return (JSON.parse(response.text) as { results: { statuses: string[] }[] }).results[1]!.statuses[0];
        }),
      );
      expect(reads).toEqual(reads.map(() => 'PRESENT'));
      cluster.child.kill('SIGTERM');
      expect(await cluster.exit).toBe(0);
    } finally {
      if (cluster.child.exitCode === null) cluster.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('strata serve --workers 2: snapshot import over the admin API', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'strata-workers-import-'));
  const registry = join(scratch, 'registry.yaml');
  writeFileSync(registry, 'entities:\n  card: { join_key: card_id }\nfeature_views:\n  card_daily:\n    entities: [card]\n    ttl: 0\n    source: { type: batch }\n    features:\n      segment: string\n');
  const snapshot = (name: string, version: number): string => {
    writeFileSync(join(scratch, name), Array.from({ length: 50 }, (_, index) => `${JSON.stringify({ card_id: `card-${index}`, event_timestamp: Date.now() - 60_000 + version, segment: `seg-${version}` })}\n`).join(''));
    return name;
  };
  /** card-3's segment through six fresh connections, so through both workers, over both protocols. */
  const segments = (cluster: Cluster): Promise<unknown[]> =>
    Promise.all(
      Array.from({ length: 6 }, async (_, index) => {
        if (index % 2 === 0) {
          const response = await withFreshGrpc(cluster.grpc, (client) => client.getOnlineFeatures({ features: { refs: ['card_daily:segment'] }, entities: { card_id: { values: [{ string_val: 'card-3' }] } } }));
          return columnsOf(response).segment!.values[0];
        }
        const response = await freshHttp(cluster.http, 'POST', '/get-online-features', { features: ['card_daily:segment'], entities: { card_id: ['card-3'] } });
        return (JSON.parse(response.text) as { results: { values: unknown[] }[] }).results[1]!.values[0];
      }),
    );

  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('runs the import in the primary; every worker serves the new generation as soon as the call answers', async () => {
    const dataDir = mkdtempSync(join(scratch, 'data-'));
    const cluster = await startCluster(dataDir, ['--registry', registry, '--server-files-dir', scratch]);
    try {
      const first = await freshHttp(cluster.http, 'POST', '/admin/snapshot-import', { view: 'card_daily', files: [snapshot('v1.ndjson', 1)] });
      expect(first.status, first.text).toBe(200);
      expect(await segments(cluster)).toEqual(Array.from({ length: 6 }, () => 'seg-1'));
      // Again, from each worker's L1 now: those entries must not answer once v2 is published.
      expect(await segments(cluster)).toEqual(Array.from({ length: 6 }, () => 'seg-1'));

      const { messages, error } = await withFreshGrpc(cluster.grpc, (client) => client.importSnapshot({ view: 'card_daily', files: [snapshot('v2.ndjson', 2)] }));
      expect(error).toBeUndefined();
      expect(messages.filter((message) => message.kind === 'progress').length).toBeGreaterThan(0);
      expect(messages.at(-1)).toMatchObject({ kind: 'report', report: { published: true, generation: 2, rows: 50 } });
      expect(await segments(cluster)).toEqual(Array.from({ length: 6 }, () => 'seg-2'));

      const refused = await freshHttp(cluster.http, 'POST', '/admin/snapshot-import', { view: 'card_daily', files: ['/etc/hostname'] });
      expect(refused.status).toBe(400);
      expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'STRATA_PATH_OUTSIDE_FILES_DIR', field: 'files[0]' } });
      // The primary sweeps L3 at start; its metrics are part of every scrape.
      expect(await metric(cluster, 'strata_compaction_sweeps_total')).toBe(1);
      cluster.child.kill('SIGTERM');
      expect(await cluster.exit).toBe(0);
    } finally {
      if (cluster.child.exitCode === null) cluster.child.kill('SIGKILL');
    }
  });
});
