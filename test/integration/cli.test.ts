import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../support/process-helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
const scratch = mkdtempSync(join(tmpdir(), 'strata-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));


function run(args: string[], env: Record<string, string> = {}, input?: string) {
  return spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 30_000, input });
}

interface Serving {
  child: ChildProcess;
  http: string;
  grpc: string;
  exit: Promise<number | null>;
}

/** Starts `strata serve` and waits for the line with the bound ports. */
async function serve(args: string[]): Promise<Serving> {
  const child = spawn(process.execPath, [...CLI, 'serve', '--grpc-port', '0', '--http-port', '0', ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ports printed; stderr: ${stderr}`)), 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) {
        clearTimeout(timer);
        resolve(stdout);
      }
    });
    void exit.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const match = /grpc=(\S+) http=(\S+)/.exec(line)!;
  return { child, grpc: match[1]!, http: `http://${match[2]}`, exit };
}

async function read(serving: Serving, body: unknown): Promise<{ values: unknown[]; statuses: string[] }[]> {
  const response = await fetch(`${serving.http}/get-online-features`, { method: 'POST', body: JSON.stringify(body) });
  return ((await response.json()) as { results: { values: unknown[]; statuses: string[] }[] }).results;
}

describe('strata serve', () => {
  it('serves the bundled example seeded on first start, stops cleanly on SIGTERM, and keeps its data', async () => {
    const dataDir = join(scratch, 'example');
    const first = await serve(['--data-dir', dataDir]);
    const results = await read(first, { feature_service: 'fraud_v1', entities: { card_id: ['c0001', 'c0002', 'nobody'] } });
    expect(results[1]!.statuses).toEqual(['PRESENT', 'PRESENT', 'NOT_FOUND']);
    const before = results[1]!.values;
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);

    const second = await serve(['--data-dir', dataDir]);
    expect((await read(second, { feature_service: 'fraud_v1', entities: { card_id: ['c0001', 'c0002', 'nobody'] } }))[1]!.values).toEqual(before);
    // The ttl demo in the example: every fifth card's risk score is 3 days old, beyond its 1d ttl.
    expect((await read(second, { features: ['card_risk:risk_score'], entities: { card_id: ['c0004', 'c0005'] } }))[1]!.statuses).toEqual(['PRESENT', 'OUTSIDE_MAX_AGE']);

    const rows = `${JSON.stringify({ card_id: 'pushed', event_timestamp: new Date().toISOString(), credit_limit: 42, home_country: 'PT', account_age_days: 3, is_business: false })}\n`;
    const pushed = run(['push', '--view', 'card_profile', '--target', second.http, '-'], {}, rows);
    expect(pushed.stdout, pushed.stderr).toContain('pushed 1 rows');
    expect((await read(second, { features: ['card_profile:credit_limit'], entities: { card_id: ['pushed'] } }))[1]!.values).toEqual([42]);
    second.child.kill('SIGINT');
    expect(await second.exit).toBe(0);
  });
});

describe('configuration errors stop the process at start', () => {
  it('names file, line, path and rule for a bad registry', () => {
    const registry = join(scratch, 'bad.yaml');
    writeFileSync(registry, 'entities:\n  card: { join_key: card_id }\nfeature_views:\n  v:\n    entities: [card]\n    ttl: 1h\n    source: { type: push }\n    features:\n      f: float32\n');
    const result = run(['serve', '--registry', registry, '--data-dir', join(scratch, 'unused')]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${registry}:9`);
    expect(result.stderr).toContain('feature_views.v.features.f');
    expect(result.stderr).toContain('type must be one of int64, double');
  });

  it.each([
    [['serve', '--grpc-port', '70000'], {}, '--grpc-port'],
    [['serve', '--gprc-port', '1'], {}, "Unknown option '--gprc-port'"],
    [['serve'], { STRATA_GRPC_PROT: '1' }, 'STRATA_GRPC_PROT: unknown variable'],
    [['serve'], { STRATA_L1_BUDGET: 'lots' }, 'STRATA_L1_BUDGET'],
    [['serve', '--workers', '0'], {}, '--workers'],
    [['push', '--veiw', 'card_profile', '-'], {}, "Unknown option '--veiw'"],
    [['push', '--view'], {}, "Option '--view <value>' argument missing"],
  ] as const)('%j %j → exit 2 naming %s', (args, env, expected) => {
    const result = run([...args], env);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(expected);
  });

  it('validates a registry without serving it', () => {
    const result = run(['validate']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('view user_device [user_id, device_id] ttl=30d push');
  });
});
