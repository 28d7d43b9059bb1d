/**
 * The bloom gate across restarts of a real `strata serve` process (the built
 * CLI): a clean stop saves it and the next start restores it without reading
 * L3; after kill -9 the saved copy is gone (every open removes it), so the
 * next start rebuilds it from L3 and still knows every key written.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, sumMetric } from '../support/process-helpers.js';
import { FIXTURE_REGISTRY } from '../support/strata.js';

const MAIN_JS = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'strata-bloom-restart-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Served {
  readonly child: ChildProcess;
  readonly base: string;
  readonly log: () => string;
  readonly exited: Promise<number | null>;
}

async function serve(): Promise<Served> {
  const child = spawn(process.execPath, [MAIN_JS, 'serve', '--registry', FIXTURE_REGISTRY, '--data-dir', dataDir, '--grpc-port', '0', '--http-port', '0', '--shutdown-grace', '1s'], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => void (log += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const base = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`no banner within 20 s: ${log}`)), 20_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = / http=(\S+) /.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      resolve(`http://${match[1]}`);
    });
    void exited.then((code) => reject(new Error(`exited ${code} before its banner: ${log}`)));
  });
  return { child, base, log: () => log, exited };
}

async function post(served: Served, path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${served.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await response.json()) as Record<string, unknown>;
  expect(response.status, JSON.stringify(json)).toBe(200);
  return json;
}

const push = (served: Served, cards: string[]) =>
  post(served, '/push', { push_source_name: 'card_profile', df: { card_id: cards, event_timestamp: cards.map(() => Date.now() - 1_000), credit_limit: cards.map(() => 100), home_country: cards.map(() => 'PT'), account_age_days: cards.map(() => 1), is_business: cards.map(() => false) } });

async function statuses(served: Served, cards: string[]): Promise<string[]> {
  const json = await post(served, '/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: cards } });
  return (json.results as { statuses: string[] }[])[1]!.statuses;
}

async function bloomNegatives(served: Served): Promise<number> {
  return sumMetric(await (await fetch(`${served.base}/metrics`)).text(), 'strata_bloom_negatives_total') ?? 0;
}

describe('the bloom gate across restarts', () => {
  it('is restored after a clean stop, rebuilt after kill -9, and never forgets a written key', { timeout: 60_000 }, async () => {
    const first = await serve();
    expect(first.log()).toContain('bloom gate rebuilt from L3');
    await push(first, ['a1', 'a2']);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await serve();
    expect(second.log()).toContain('bloom gate restored from the last clean stop');
    expect(second.log()).not.toContain('bloom gate rebuilt');
    expect(await statuses(second, ['a1', 'a2', 'never'])).toEqual(['PRESENT', 'PRESENT', 'NOT_FOUND']);
    // The never-written key was answered by the restored gate, without an L3 lookup.
    expect(await bloomNegatives(second)).toBe(1);
    await push(second, ['b1']);
    second.child.kill('SIGKILL');
    await second.exited;

    const third = await serve();
    expect(third.log()).toContain('bloom gate rebuilt from L3');
    expect(await statuses(third, ['a1', 'a2', 'b1', 'never'])).toEqual(['PRESENT', 'PRESENT', 'PRESENT', 'NOT_FOUND']);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });
});
