/**
 * Load shedding (--shed-loop-delay) through both edges of an in-process
 * server. Overload is made the way it happens: this process's event loop is
 * held busy (a synchronous spin) while calls are on their way, so the server
 * finds them queued behind a loop that ran far past its timers.
 */
import type { ServiceError } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/strata.js';

const READ = { features: ['card_profile:credit_limit'], entities: { card_id: ['o1'] } };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

type Outcome = 'ok' | 'overloaded' | string;

async function grpcRead(strata: TestServer): Promise<Outcome> {
  try {
    await strata.grpc.getOnlineFeatures({ features: { refs: READ.features }, entities: { card_id: { values: [{ string_val: 'o1' }] } } });
    return 'ok';
  } catch (thrown) {
    const error = thrown as ServiceError;
    if (error.code === GrpcStatus.UNAVAILABLE && error.metadata.get('strata-error-code')[0] === 'STRATA_OVERLOADED') return 'overloaded';
    return `grpc ${error.code}: ${error.details}`;
  }
}

async function httpRead(strata: TestServer): Promise<Outcome> {
  const response = await strata.http('/get-online-features', READ);
  if (response.status === 200) return 'ok';
  if (response.status === 503 && (response.json.error as { code: string }).code === 'STRATA_OVERLOADED') return 'overloaded';
  return `http ${response.status}: ${response.text}`;
}

/**
 * Rounds of: calls sent, then the loop held for `holdMs` three times with a
 * turn of the loop between (a backlog, not one long task), until both edges
 * have refused one (or `rounds` ran out).
 */
async function readsDuringStalls(strata: TestServer, holdMs: number, rounds: number): Promise<{ grpc: Outcome[]; http: Outcome[] }> {
  const outcomes = { grpc: [] as Outcome[], http: [] as Outcome[] };
  for (let round = 0; round < rounds; round++) {
    const calls = Array.from({ length: 10 }, () => [grpcRead(strata), httpRead(strata)] as const);
    // Long enough for the clients to have written their requests, short enough that the server has not read them all.
    await sleep(2);
    for (let stall = 0; stall < 3; stall++) {
      spin(holdMs);
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const [grpc, http] of calls) {
      outcomes.grpc.push(await grpc);
      outcomes.http.push(await http);
    }
    if (outcomes.grpc.includes('overloaded') && outcomes.http.includes('overloaded')) break;
  }
  return outcomes;
}

let strata: TestServer | undefined;
afterEach(async () => {
  await strata?.stop();
  strata = undefined;
});

describe('load shedding of online reads', () => {
  it('answers UNAVAILABLE / 503 STRATA_OVERLOADED while the loop is far behind, keeps the connection, and serves again once it caught up', async () => {
    strata = await startTestServer({ 'shed-loop-delay': '50ms' });
    expect(await grpcRead(strata)).toBe('ok');

    const stalled = await readsDuringStalls(strata, 150, 20);
    for (const outcomes of [stalled.grpc, stalled.http]) {
      expect(outcomes).toContain('overloaded');
      expect(outcomes.filter((outcome) => outcome !== 'ok' && outcome !== 'overloaded')).toEqual([]);
    }
    expect(strata.logs.some((line) => line.includes('shedding online reads'))).toBe(true);

    // The same gRPC channel and HTTP agent: nothing was torn down.
    await sleep(100);
    const after = await Promise.all(Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? grpcRead(strata!) : httpRead(strata!))));
    expect(after).toEqual(Array(20).fill('ok'));
    expect(await strata.metric('strata_request_duration_seconds_count', { code: 'UNAVAILABLE' })).toBeGreaterThan(0);
    expect(await strata.metric('strata_request_duration_seconds_count', { code: '503' })).toBeGreaterThan(0);
  });

  it('serves through one long stall: a single late sample is a task that ended, not a backlog', async () => {
    strata = await startTestServer({ 'shed-loop-delay': '100ms' });
    // The first calls set up both clients' connections, itself a long task here.
    expect(await Promise.all([grpcRead(strata), httpRead(strata)])).toEqual(['ok', 'ok']);
    await sleep(100);
    for (let round = 0; round < 5; round++) {
      const calls = Array.from({ length: 10 }, () => [grpcRead(strata!), httpRead(strata!)]).flat();
      await sleep(2);
      spin(300);
      expect(await Promise.all(calls)).toEqual(Array(20).fill('ok'));
      await sleep(100);
    }
  });

  it('never refuses with --shed-loop-delay 0, however far behind', async () => {
    strata = await startTestServer({ 'shed-loop-delay': '0' });
    const stalled = await readsDuringStalls(strata, 150, 5);
    expect([...stalled.grpc, ...stalled.http]).toEqual(Array(100).fill('ok'));
  });
});
