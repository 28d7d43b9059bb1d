import { writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../support/redis-server.js';
import { FIXTURE_REGISTRY, startTestServer, type TestServer } from '../support/strata.js';

const MINUTE = 60_000;

let redis: RedisServer;
const running: TestServer[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
  await redis.command('FLUSHALL');
});
afterAll(async () => {
  await redis?.stop();
});

async function start(flags: Record<string, string> = {}, options: { dataDir?: string; keepData?: boolean } = {}): Promise<TestServer> {
  const server = await startTestServer(flags, options);
  running.push(server);
  return server;
}

async function stopAndForget(server: TestServer): Promise<void> {
  running.splice(running.indexOf(server), 1);
  await server.stop();
}

async function pushCards(server: TestServer, cards: string[], limit: number, eventMs: number): Promise<void> {
  const response = await server.http('/push', {
    push_source_name: 'card_profile',
    df: { card_id: cards, event_timestamp: cards.map(() => eventMs), credit_limit: cards.map(() => limit), home_country: cards.map(() => 'NO'), account_age_days: cards.map(() => 5), is_business: cards.map(() => false) },
  });
  expect(response.status, response.text).toBe(200);
}

async function readLimits(server: TestServer, cards: string[], asOf?: number): Promise<{ values: unknown[]; statuses: string[] }> {
  const response = await server.http('/get-online-features', { features: ['card_profile:credit_limit'], entities: { card_id: cards }, ...(asOf === undefined ? {} : { as_of: asOf }) });
  expect(response.status, response.text).toBe(200);
  return (response.json.results as { values: unknown[]; statuses: string[] }[])[1]!;
}

const tierCount = (server: TestServer, tier: string, result?: string) => server.metric('strata_tier_lookups_total', result === undefined ? { tier } : { tier, result });

async function redisCalls(command: string): Promise<number> {
  const stats = await redis.command('INFO', 'commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

const mgetCalls = (): Promise<number> => redisCalls('mget');

/** Polls `check` until it returns true, at most `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('bloom gate', () => {
  it('answers never-written keys without touching Redis or LevelDB', async () => {
    const server = await start({ 'redis-url': redis.url, 'max-rows': '5000' });
    const mgetBefore = await mgetCalls();
    const never = Array.from({ length: 500 }, (_, index) => `never-${index}`);
    expect((await readLimits(server, never)).statuses.every((status) => status === 'NOT_FOUND')).toBe(true);
    expect(await server.metric('strata_bloom_negatives_total')).toBe(500);
    expect(await tierCount(server, 'l2')).toBe(0);
    expect(await tierCount(server, 'l3')).toBe(0);
    expect(await mgetCalls()).toBe(mgetBefore);

    // With 2 000 keys written, the 1 % filter still spares ≥ 97 % of lookups of other keys.
    await pushCards(server, Array.from({ length: 2_000 }, (_, index) => `written-${index}`), 100, Date.now());
    await readLimits(server, Array.from({ length: 1_000 }, (_, index) => `other-${index}`));
    const negatives = (await server.metric('strata_bloom_negatives_total')) - 500;
    expect(negatives).toBeGreaterThanOrEqual(970);
    expect(await tierCount(server, 'l2')).toBe(1_000 - negatives);
  });

  it('has no false negatives after a restart: it is rebuilt from L3', async () => {
    const first = await start({}, { keepData: true });
    const cards = Array.from({ length: 300 }, (_, index) => `kept-${index}`);
    await pushCards(first, cards, 7, Date.now() - MINUTE);
    const dataDir = first.dataDir;
    await stopAndForget(first);
    const second = await start({}, { dataDir });
    const { values, statuses } = await readLimits(second, cards);
    expect(statuses.every((status) => status === 'PRESENT')).toBe(true);
    expect(values.every((value) => value === 7)).toBe(true);
    expect(await second.metric('strata_bloom_negatives_total')).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe('ttl holds on every tier', () => {
  const written = Date.now() - 30 * MINUTE;
  const fresh = Date.now();
  const expired = Date.now() + 31 * MINUTE; // 61 minutes after the event, ttl is 1h

  it('on the L3 path', async () => {
    const server = await start({ 'l1-budget': '0' });
    await pushCards(server, ['ttl-l3'], 1, written);
    expect((await readLimits(server, ['ttl-l3'], fresh)).statuses).toEqual(['PRESENT']);
    expect((await readLimits(server, ['ttl-l3'], expired)).statuses).toEqual(['OUTSIDE_MAX_AGE']);
    expect(await tierCount(server, 'l3', 'hit')).toBe(2);
  });

  it('on the L1 path', async () => {
    const server = await start({ 'l1-max-staleness': '1h' });
    await pushCards(server, ['ttl-l1'], 1, written);
    expect((await readLimits(server, ['ttl-l1'], fresh)).statuses).toEqual(['PRESENT']);
    expect((await readLimits(server, ['ttl-l1'], expired)).statuses).toEqual(['OUTSIDE_MAX_AGE']);
    expect(await tierCount(server, 'l1', 'hit')).toBe(2);
    expect(await tierCount(server, 'l3')).toBe(0);
  });

  it('on the L2 path, for a key written through another replica', async () => {
    const writer = await start({ 'redis-url': redis.url });
    // A generous L2 timeout: on a loaded box a 25 ms one times out, and L3 (empty here) answers NOT_FOUND.
    const reader = await start({ 'redis-url': redis.url, 'l1-budget': '0', 'bloom-sync': '20ms', 'redis-timeout': '1s' });
    await pushCards(writer, ['ttl-l2'], 1, written);
    // The reader learns of the key through the shared bloom bits within --bloom-sync.
    await eventually(async () => (await readLimits(reader, ['ttl-l2'], fresh)).statuses[0] === 'PRESENT');
    expect((await readLimits(reader, ['ttl-l2'], expired)).statuses).toEqual(['OUTSIDE_MAX_AGE']);
    expect(await tierCount(reader, 'l2', 'hit')).toBeGreaterThanOrEqual(2);
    expect(await tierCount(reader, 'l3', 'hit')).toBe(0);
  });
});

describe('L2 Redis', () => {
  it('keeps answering from L3 when Redis is killed mid-test, and uses it again once back', async () => {
    const server = await start({ 'redis-url': redis.url, 'l1-budget': '0', 'redis-timeout': '50ms' });
    const cards = Array.from({ length: 50 }, (_, index) => `survive-${index}`);
    await pushCards(server, cards, 11, Date.now() - MINUTE);
    // The write-through to L2 does not hold the push; on a loaded box a first read can come before it.
    await eventually(async () => {
      const before = await tierCount(server, 'l2', 'hit');
      await readLimits(server, cards);
      return (await tierCount(server, 'l2', 'hit')) - before === 50;
    });

    await redis.kill();
    for (let round = 0; round < 5; round++) {
      const started = Date.now();
      const { values, statuses } = await readLimits(server, cards);
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(statuses.every((status) => status === 'PRESENT')).toBe(true);
      expect(values.every((value) => value === 11)).toBe(true);
    }
    expect(await tierCount(server, 'l2', 'error')).toBeGreaterThan(0);
    // Writes still land in L3 while Redis is down.
    await pushCards(server, cards.slice(0, 5), 12, Date.now());
    expect((await readLimits(server, cards.slice(0, 5))).values).toEqual([12, 12, 12, 12, 12]);

    await redis.resume();
    await eventually(async () => (await server.metric('strata_l2_up')) === 1, 10_000);
    // Redis came back empty. What was written while it was down, and everything written before,
    // is published again from L3, so a replica that never saw the writes serves them.
    const replica = await start({ 'redis-url': redis.url, 'l1-budget': '0', 'bloom-sync': '20ms' });
    const expected = JSON.stringify(cards.map((_, index) => (index < 5 ? 12 : 11)));
    await eventually(async () => JSON.stringify((await readLimits(replica, cards)).values) === expected);
    const hitsBefore = await tierCount(server, 'l2', 'hit');
    await readLimits(server, cards); // L3 answers and fills L2
    await eventually(async () => {
      await readLimits(server, cards);
      return (await tierCount(server, 'l2', 'hit')) >= hitsBefore + 50;
    });
  });

  it('does not hold a read past --redis-timeout when Redis is slow', async () => {
    const server = await start({ 'redis-url': redis.url, 'l1-budget': '0', 'redis-timeout': '50ms' });
    await pushCards(server, ['slow'], 4, Date.now());
    expect((await readLimits(server, ['slow'])).values).toEqual([4]);
    const sleeping = redis.command('DEBUG', 'SLEEP', '0.7');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    expect((await readLimits(server, ['slow'])).values).toEqual([4]);
    expect(Date.now() - started).toBeLessThan(500);
    expect(await tierCount(server, 'l3', 'hit')).toBeGreaterThanOrEqual(1);
    await sleeping;
  });

  it('is a warning, not a crash, when Redis is down at start', async () => {
    const nowhere = `redis://127.0.0.1:${redis.port + 1}`;
    const server = await start({ 'redis-url': nowhere, 'redis-timeout': '20ms' });
    await pushCards(server, ['lonely'], 3, Date.now());
    expect((await readLimits(server, ['lonely'])).values).toEqual([3]);
    expect(server.logs.some((line) => line.includes('"level":"warn"') && line.includes('redis'))).toBe(true);
  });

  it('writes through, so another replica serves new values within its L1 staleness bound', async () => {
    const writer = await start({ 'redis-url': redis.url });
    const reader = await start({ 'redis-url': redis.url, 'l1-max-staleness': '300ms', 'bloom-sync': '20ms' });
    await pushCards(writer, ['shared'], 1, Date.now() - 2_000);
    await eventually(async () => (await readLimits(reader, ['shared'])).values[0] === 1);
    await pushCards(writer, ['shared'], 2, Date.now() - 1_000);
    // The writer sees its own write at once; the reader within 300 ms (its L1 entry's lifetime).
    expect((await readLimits(writer, ['shared'])).values).toEqual([2]);
    const started = Date.now();
    await eventually(async () => (await readLimits(reader, ['shared'])).values[0] === 2, 2_000);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('replicas sharing Redis', () => {
  it('serve a key written through another replica after its fill ttl has passed', async () => {
    const writer = await start({ 'redis-url': redis.url, 'l2-ttl': '1s' });
    const reader = await start({ 'redis-url': redis.url, 'l2-ttl': '1s', 'l1-budget': '0', 'bloom-sync': '20ms' });
    await pushCards(writer, ['durable'], 21, Date.now());
    await eventually(async () => (await readLimits(reader, ['durable'])).values[0] === 21);
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    expect((await readLimits(reader, ['durable'])).values).toEqual([21]);
  });

  it('let a process serve its own write after caching another replica\'s record', async () => {
    const a = await start({ 'redis-url': redis.url, 'l1-max-staleness': '1h', 'bloom-sync': '20ms' });
    const b = await start({ 'redis-url': redis.url });
    for (let round = 1; round <= 3; round++) await pushCards(b, ['mixed'], round, Date.now() - 10_000 + round);
    await eventually(async () => (await readLimits(a, ['mixed'])).values[0] === 3);
    await pushCards(a, ['mixed'], 99, Date.now());
    expect((await readLimits(a, ['mixed'])).values).toEqual([99]);
  });
});

describe('L1 invalidation between replicas', () => {
  it('brings another replica\'s write into a replica\'s L1 at once, however long its entries may live', async () => {
    const writer = await start({ 'redis-url': redis.url });
    const reader = await start({ 'redis-url': redis.url, 'l1-max-staleness': '1h', 'bloom-sync': '20ms' });
    for (let round = 1; round <= 5; round++) {
      await pushCards(writer, ['hot-card'], round, Date.now() - 10_000 + round);
      // Cached in the reader's L1 (read twice: the second is an L1 hit), then replaced by the next round's write.
      await eventually(async () => (await readLimits(reader, ['hot-card'])).values[0] === round, 2_000);
      const hits = await tierCount(reader, 'l1', 'hit');
      expect((await readLimits(reader, ['hot-card'])).values).toEqual([round]);
      expect(await tierCount(reader, 'l1', 'hit')).toBe(hits + 1);
    }
  });

  it('clears L1 when the subscription was cut, since invalidations sent meanwhile are lost', async () => {
    const writer = await start({ 'redis-url': redis.url });
    const reader = await start({ 'redis-url': redis.url, 'l1-max-staleness': '1h', 'bloom-sync': '20ms' });
    await pushCards(writer, ['cut'], 1, Date.now() - 5_000);
    await eventually(async () => (await readLimits(reader, ['cut'])).values[0] === 1);
    await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
    // Written while the reader's subscription may be down: either the message arrives or L1 starts over.
    await pushCards(writer, ['cut'], 2, Date.now() - 1_000);
    await eventually(async () => (await readLimits(reader, ['cut'])).values[0] === 2, 5_000);
    await eventually(async () => reader.logs.some((line) => line.includes('l1 cleared')), 5_000);
  });
});

describe('L1 entries\' lifetime with Redis', () => {
  const l1Hit = async (server: Awaited<ReturnType<typeof start>>, card: string): Promise<boolean> => {
    const hits = await tierCount(server, 'l1', 'hit');
    await readLimits(server, [card]);
    return (await tierCount(server, 'l1', 'hit')) === hits + 1;
  };

  /** A reader with a 200 ms staleness bound holding `card` (written through another replica) in its L1. */
  const cachedByReader = async (card: string, value: number): Promise<Awaited<ReturnType<typeof start>>> => {
    const writer = await start({ 'redis-url': redis.url });
    const reader = await start({ 'redis-url': redis.url, 'l1-max-staleness': '200ms', 'bloom-sync': '20ms' });
    // Entries cached within 1 s of the subscription starting still expire (reads sent before it may predate lost messages).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await pushCards(writer, [card], value, Date.now() - 1_000);
    await eventually(async () => (await readLimits(reader, [card])).values[0] === value);
    return reader;
  };

  it('outlive --l1-max-staleness while the invalidation subscription is live', async () => {
    const reader = await cachedByReader('long-lived', 4);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(await l1Hit(reader, 'long-lived')).toBe(true);
  });

  it('are dropped --l1-max-staleness after the subscription stops answering (Redis paused)', async () => {
    const reader = await cachedByReader('paused', 6);
    expect(await l1Hit(reader, 'paused')).toBe(true);
    // Nothing Redis is sent is answered for 3.5 s: the ping every second goes unanswered within 2 s.
    await redis.command('CLIENT', 'PAUSE', '3500', 'ALL');
    await new Promise((resolve) => setTimeout(resolve, 2_700));
    expect(reader.logs.some((line) => line.includes('invalidation subscription lost'))).toBe(true);
    expect(await l1Hit(reader, 'paused')).toBe(false);
    await eventually(async () => (await readLimits(reader, ['paused'])).values[0] === 6, 5_000);
  });
});

describe('the shared bloom bits', () => {
  it('reach other replicas when the filter is tens of megabytes', async () => {
    // 20M keys at 1 %: a 24 MB bit string, far past what one read within --redis-timeout could move.
    const flags = { 'redis-url': redis.url, 'bloom-capacity': '20000000', 'bloom-sync': '100ms', 'l1-budget': '0' };
    const writer = await start(flags);
    const reader = await start(flags);
    await pushCards(writer, ['big-filter'], 5, Date.now());
    await eventually(async () => (await readLimits(reader, ['big-filter'])).values[0] === 5, 10_000);
  });

  it('are fetched again only after a replica changed them', async () => {
    const flags = { 'redis-url': redis.url, 'bloom-sync': '20ms', 'l1-budget': '0' };
    const writer = await start(flags);
    const reader = await start(flags);
    await pushCards(writer, ['first'], 1, Date.now());
    await eventually(async () => (await readLimits(reader, ['first'])).values[0] === 1);
    // Quiet: ten sync intervals and more without a fetch of the bits.
    const quietFrom = await redisCalls('getrange');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await redisCalls('getrange')).toBe(quietFrom);
    await pushCards(writer, ['second'], 2, Date.now());
    await eventually(async () => (await readLimits(reader, ['second'])).values[0] === 2);
    expect(await redisCalls('getrange')).toBeGreaterThan(quietFrom);
  });
});

describe('concurrent writes and reads', () => {
  it('converge: no tier keeps an older record once writes stop', async () => {
    const writer = await start({ 'redis-url': redis.url, 'l1-max-staleness': '1h' });
    const replica = await start({ 'redis-url': redis.url, 'l1-max-staleness': '200ms', 'bloom-sync': '20ms' });
    const cards = Array.from({ length: 20 }, (_, index) => `race-${index}`);
    const base = Date.now() - 60_000;
    const work: Promise<unknown>[] = [];
    for (let round = 1; round <= 15; round++) {
      // Writes of one round go out together with reads on both servers, so fills and write-throughs interleave.
      work.push(pushCards(writer, cards, round, base + round));
      for (let reader = 0; reader < 3; reader++) work.push(readLimits(writer, cards), readLimits(replica, cards));
      if (round % 5 === 0) await Promise.all(work.splice(0));
    }
    await Promise.all(work);
    expect((await readLimits(writer, cards)).values).toEqual(cards.map(() => 15));
    await eventually(async () => (await readLimits(replica, cards)).values.every((value) => value === 15), 3_000);
  });
});

describe('the writing process', () => {
  it('serves its own writes immediately, whatever its L1 holds', async () => {
    const server = await start({ 'l1-max-staleness': '1h' });
    await pushCards(server, ['mine'], 1, Date.now() - 2_000);
    expect((await readLimits(server, ['mine'])).values).toEqual([1]);
    await pushCards(server, ['mine'], 2, Date.now() - 1_000);
    expect((await readLimits(server, ['mine'])).values).toEqual([2]);
  });

  it('keeps data across a restart in which a feature is added to the view', async () => {
    const first = await start({}, { keepData: true });
    await pushCards(first, ['evolve'], 9, Date.now() - MINUTE);
    const dataDir = first.dataDir;
    await stopAndForget(first);

    const dir = mkdtempSync(join(tmpdir(), 'strata-registry-'));
    const registry = join(dir, 'registry.yaml');
    writeFileSync(registry, readFileSync(FIXTURE_REGISTRY, 'utf8').replace('      is_business: bool\n', '      is_business: bool\n      tier: string\n'));
    const second = await start({ registry }, { dataDir });
    const response = await second.http('/get-online-features', { features: ['card_profile:credit_limit', 'card_profile:tier'], entities: { card_id: ['evolve'] } });
    const results = response.json.results as { values: unknown[]; statuses: string[] }[];
    expect(results[1]).toMatchObject({ values: [9], statuses: ['PRESENT'] });
    expect(results[2]).toMatchObject({ values: [null], statuses: ['NOT_FOUND'] });
    rmSync(dir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
});
