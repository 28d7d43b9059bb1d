/**
 * The stream ingester against real processes: `node dist/cli/main.js ingest`
 * and `serve` (npm test builds first), a real Kafka-protocol broker
 * (librdkafka's mock cluster, test/support/kafka-broker.ts) and a real
 * redis-server. Events are produced with a fixed seed and every card's
 * week-long count and sum are compared with an oracle kept by the test:
 * an event lost or applied twice anywhere shows as a card off by one.
 *
 * - kill -9 of the one ingester at random points while it consumes, again
 *   and again, restarting it on the same data dir;
 * - a second ingester (own data dir, same group, same Redis) joining and
 *   leaving mid-stream: partitions move between processes whose L3 copies
 *   go stale, so they must continue from the state in L2;
 * - one ingester, two serving replicas: both serve the fresh values of cards
 *   they never saw, and a one-minute count falls on both as time passes.
 *
 * Every event time is within the last hour and event times only grow in
 * production order, so no event is late and the oracle needs no watermark.
 *
 * Ingesters run with --kafka-session-timeout 4s: against the mock broker a
 * shorter one expires members during the fixed 3 s initial group join (see
 * test/support/kafka-broker.ts). Each join or rebalance still costs 3-8 s, so
 * the three tests run concurrently; they share nothing (own broker, Redis,
 * data dirs, ports).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import { describe, it, type ExpectStatic } from 'vitest';
import { loadAvroSchemaFile } from '../../src/config/avro.js';
import { encodeConfluent } from '../../src/ingest/confluent-wire.js';
import { KafkaBroker } from '../support/kafka-broker.js';
import { RedisServer } from '../support/redis-server.js';
import { cleanEnv, sumMetric } from '../support/process-helpers.js';
import { seededRandom as seeded } from '../../src/util/seeded-random.js';

const MAIN_JS = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const REGISTRY = fileURLToPath(new URL('../fixtures/stream-crash-registry.yaml', import.meta.url));
const SCHEMAS = fileURLToPath(new URL('../../examples/fraud/schemas/', import.meta.url));
const TOPIC = 'txn.events';
const PARTITIONS = 4;
const FEATURES = ['card_txn:txn_count_7d', 'card_txn:amount_sum_7d', 'card_txn:txn_count_1m', 'card_txn:last_txn'];
const WRITERS = [
  { id: 1, type: loadAvroSchemaFile(join(SCHEMAS, 'txn_event.v1.avsc')) },
  { id: 2, type: loadAvroSchemaFile(join(SCHEMAS, 'txn_event.v2.avsc')) },
];
const MINUTE = 60_000;
const WEEK = 7 * 86_400_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));


async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface TxnEvent {
  readonly txnId: string;
  readonly card: string;
  readonly amount: number;
  readonly ts: number;
}

interface Observed {
  readonly count: number | null;
  readonly sum: number | null;
  readonly count1m: number | null;
  readonly last: string | null;
}

/** What every card must read at T, from the events produced (all of them applied exactly once). */
class Oracle {
  private readonly byCard = new Map<string, TxnEvent[]>();

  add(event: TxnEvent): void {
    let events = this.byCard.get(event.card);
    if (events === undefined) this.byCard.set(event.card, (events = []));
    events.push(event);
  }

  get cards(): string[] {
    return [...this.byCard.keys()];
  }

  get total(): number {
    let total = 0;
    for (const events of this.byCard.values()) total += events.length;
    return total;
  }

  at(card: string, at: number): Observed {
    const visible = (this.byCard.get(card) ?? []).filter((event) => event.ts <= at);
    if (visible.length === 0) return { count: null, sum: null, count1m: null, last: null };
    const week = visible.filter((event) => event.ts > at - WEEK);
    const newest = visible.reduce((a, b) => (b.ts >= a.ts ? b : a));
    return {
      count: week.length,
      sum: week.reduce((sum, event) => sum + event.amount, 0),
      count1m: visible.filter((event) => event.ts > at - MINUTE).length,
      last: newest.txnId,
    };
  }

  /** Times at or after `from` when some card's one-minute count drops (an event leaves the window). */
  nextDrop(from: number): number {
    let next = Infinity;
    for (const events of this.byCard.values()) for (const event of events) if (event.ts + MINUTE >= from) next = Math.min(next, event.ts + MINUTE);
    return next;
  }
}

/**
 * Transactions for `cards` cards with seeded amounts and writer schema
 * versions, keyed by card (Kafka's default partitioner), event times strictly
 * growing from `firstTs` by `stepMs`.
 */
class TxnProducer {
  private readonly random: () => number;
  private sequence = 0;
  nextTs: number;

  constructor(
    private readonly producer: Producer,
    private readonly oracle: Oracle,
    private readonly cardPrefix: string,
    private readonly cards: number,
    seed: number,
    firstTs: number,
    private readonly stepMs: number,
  ) {
    this.random = seeded(seed);
    this.nextTs = firstTs;
  }

  async produce(count: number): Promise<void> {
    const messages: { key: string; value: Buffer; timestamp: string }[] = [];
    for (let index = 0; index < count; index++) {
      const card = `${this.cardPrefix}${String(Math.floor(this.random() * this.cards)).padStart(4, '0')}`;
      const event: TxnEvent = { txnId: `t${this.sequence++}`, card, amount: 1 + Math.floor(this.random() * 500), ts: this.nextTs };
      this.nextTs += this.stepMs;
      messages.push(this.encode(event));
      this.oracle.add(event);
    }
    await this.send(messages);
  }

  /** Given events, in the order given (their times must grow). */
  async produceEvents(events: readonly TxnEvent[]): Promise<void> {
    for (const event of events) this.oracle.add(event);
    await this.send(events.map((event) => this.encode(event)));
  }

  private encode(event: TxnEvent): { key: string; value: Buffer; timestamp: string } {
    const writer = WRITERS[this.random() < 0.3 ? 0 : 1]!;
    const fields = {
      txn_id: event.txnId,
      card_id: event.card,
      user_id: `u-${event.card}`,
      device_id: `d-${event.card}`,
      amount: event.amount,
      currency: this.random() < 0.5 ? 'USD' : 'EUR',
      merchant_category: 'grocery',
      geo_country: 'PT',
      ip_address: '10.0.0.1',
      timestamp: event.ts,
      ...(writer.id === 2 ? { merchant_id: null, risk_score: 0.25 } : {}),
    };
    return { key: event.card, value: encodeConfluent(writer.id, writer.type, fields), timestamp: String(event.ts) };
  }

  private async send(messages: { key: string; value: Buffer; timestamp: string }[]): Promise<void> {
    for (let start = 0; start < messages.length; start += 2_000) {
      await this.producer.send({ topic: TOPIC, acks: -1, messages: messages.slice(start, start + 2_000) });
    }
  }
}


interface StrataProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** host:port of its HTTP gateway. */
  readonly http: string;
  readonly exited: Promise<number | null>;
  readonly log: () => string;
}

/** Everything a test starts, stopped (SIGKILL) and removed at its end whatever happened. */
class Harness {
  broker!: KafkaBroker;
  redis!: RedisServer;
  admin!: Admin;
  producer!: Producer;
  readonly group: string;
  readonly oracle = new Oracle();
  private readonly processes = new Set<StrataProcess>();
  private readonly dirs: string[] = [];
  private kafka!: Kafka;

  constructor(readonly label: string) {
    this.group = `strata-${label}`;
  }

  async start(): Promise<void> {
    [this.broker, this.redis] = await Promise.all([KafkaBroker.start({ topics: [{ name: TOPIC, partitions: PARTITIONS }] }), RedisServer.start()]);
    this.kafka = new Kafka({ clientId: `test-${this.label}`, brokers: this.broker.brokers, logLevel: logLevel.NOTHING });
    this.admin = this.kafka.admin();
    this.producer = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
    await Promise.all([this.admin.connect(), this.producer.connect()]);
  }

  dataDir(name: string): string {
    const dir = mkdtempSync(join(tmpdir(), `strata-${this.label}-${name}-`));
    this.dirs.push(dir);
    return dir;
  }

  private common(dataDir: string): string[] {
    return ['--registry', REGISTRY, '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--redis-url', this.redis.url, '--shutdown-grace', '1s', '--log-level', 'info'];
  }

  ingest(name: string, dataDir: string): Promise<StrataProcess> {
    const flags = [...this.common(dataDir), '--kafka-brokers', this.broker.bootstrap, '--kafka-group', this.group, '--kafka-session-timeout', '4s'];
    return this.spawn(name, 'ingest', flags, /^strata ingesting .* http=(\S+) /);
  }

  serve(name: string, dataDir: string): Promise<StrataProcess> {
    return this.spawn(name, 'serve', [...this.common(dataDir), '--grpc-port', '0', '--bloom-sync', '100ms'], /^strata serving grpc=\S+ http=(\S+) /);
  }

  private async spawn(name: string, command: string, flags: string[], banner: RegExp): Promise<StrataProcess> {
    const child = spawn(process.execPath, [MAIN_JS, command, ...flags], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => void (log = (log + chunk).slice(-20_000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = { name, child, exited, log: () => log, http: '' };
    this.processes.add(started);
    let stdout = '';
    started.http = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no banner within 20 s; stderr: ${log}`)), 20_000);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (!stdout.includes('\n')) return;
        clearTimeout(timer);
        const line = stdout.split('\n')[0]!;
        const match = banner.exec(line);
        if (match === null) reject(new Error(`${name}: unexpected banner ${JSON.stringify(line)}`));
        else resolve(match[1]!);
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited ${code} before its banner: ${log}`));
      });
    });
    return started;
  }

  async kill9(target: StrataProcess): Promise<void> {
    target.child.kill('SIGKILL');
    await target.exited;
    this.processes.delete(target);
  }

  async terminate(target: StrataProcess): Promise<number | null> {
    target.child.kill('SIGTERM');
    const code = await target.exited;
    this.processes.delete(target);
    return code;
  }

  /** Committed offsets of the group and the topic's end offsets, summed over partitions. */
  async progress(): Promise<{ committed: number; end: number }> {
    const [ends, committed] = await Promise.all([this.admin.fetchTopicOffsets(TOPIC), this.admin.fetchOffsets({ groupId: this.group, topics: [TOPIC] })]);
    const byPartition = new Map(committed[0]!.partitions.map((entry) => [entry.partition, Math.max(0, Number(entry.offset))]));
    let end = 0;
    let done = 0;
    for (const { partition, high } of ends) {
      end += Number(high);
      // Nothing committed past the end, and nothing counted for a partition beyond what it holds.
      done += Math.min(byPartition.get(partition) ?? 0, Number(high));
    }
    return { committed: done, end };
  }

  /** Until every partition's committed offset is its end and the live ingesters report no lag. */
  async waitCaughtUp(ingesters: readonly StrataProcess[], timeoutMs: number): Promise<void> {
    await waitFor(
      'the ingesters to commit every offset',
      async () => {
        const { committed, end } = await this.progress();
        if (committed !== end) return false;
        for (const ingester of ingesters) if ((await metric(ingester, 'strata_consumer_lag')) !== 0) return false;
        return true;
      },
      timeoutMs,
      100,
    );
  }

  async close(): Promise<void> {
    for (const entry of this.processes) entry.child.kill('SIGKILL');
    await Promise.all([...this.processes].map((entry) => entry.exited));
    this.processes.clear();
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()]);
    await Promise.allSettled([this.broker?.stop(), this.redis?.stop()]);
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** A metric's sample lines, for failure messages. */
async function metricLines(target: StrataProcess, name: string): Promise<string[]> {
  const text = await (await fetch(`http://${target.http}/metrics`)).text();
  return text.split('\n').filter((line) => line.startsWith(name));
}

async function metric(target: StrataProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`http://${target.http}/metrics`);
  const text = await response.text();
  return sumMetric(text, name, labels) ?? 0;
}

/** Events the ingester applied (replays it skipped included) since it started. */
const applied = (target: StrataProcess): Promise<number> => metric(target, 'strata_ingest_events_total', { outcome: 'applied' });

/** Every card's features through a replica's HTTP gateway, at `asOf` or now. */
async function readCards(target: StrataProcess, cards: readonly string[], asOf?: number): Promise<Map<string, Observed>> {
  const observed = new Map<string, Observed>();
  for (let start = 0; start < cards.length; start += 1_000) {
    const chunk = cards.slice(start, start + 1_000);
    const response = await fetch(`http://${target.http}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ features: FEATURES, entities: { card_id: chunk }, ...(asOf === undefined ? {} : { as_of: asOf }) }),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${target.name}: get-online-features ${response.status}: ${text}`);
    const results = (JSON.parse(text) as { results: { values: unknown[]; statuses: string[] }[] }).results;
    const value = (column: number, row: number): unknown => (results[column]!.statuses[row] === 'PRESENT' ? results[column]!.values[row] : null);
    const number = (raw: unknown): number | null => (raw === null || raw === undefined ? null : Number(raw));
    chunk.forEach((card, row) => {
      observed.set(card, { count: number(value(1, row)), sum: number(value(2, row)), count1m: number(value(3, row)), last: (value(4, row) as string | null) ?? null });
    });
  }
  return observed;
}

/** Cards whose features differ from the oracle's at `at`, with a summary of lost and doubled events. */
function compare(oracle: Oracle, observed: ReadonlyMap<string, Observed>, at: number): { mismatches: string[]; expectedTotal: number; observedTotal: number } {
  const mismatches: string[] = [];
  let expectedTotal = 0;
  let observedTotal = 0;
  for (const card of oracle.cards) {
    const expected = oracle.at(card, at);
    const got = observed.get(card);
    expectedTotal += expected.count ?? 0;
    observedTotal += got?.count ?? 0;
    if (got === undefined || got.count !== expected.count || got.sum !== expected.sum || got.count1m !== expected.count1m || got.last !== expected.last) {
      mismatches.push(`${card}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    }
  }
  return { mismatches, expectedTotal, observedTotal };
}

/** Reads every card through `target` until it matches the oracle (a new replica learns the shared bloom bits within --bloom-sync), then asserts. */
async function expectExact(expect: ExpectStatic, oracle: Oracle, target: StrataProcess, at: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let result: ReturnType<typeof compare>;
  for (;;) {
    result = compare(oracle, await readCards(target, oracle.cards, at), at);
    if (result.mismatches.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  let summary = `${target.name} at ${new Date(at).toISOString()}: ${result.mismatches.length} of ${oracle.cards.length} cards differ; events counted ${result.observedTotal}, produced ${result.expectedTotal}`;
  if (result.mismatches.length > 0) summary += `\n${(await metricLines(target, 'strata_tier_lookups_total')).join('\n')}\n${target.log().slice(-3_000)}`;
  expect(result.mismatches.slice(0, 10), summary).toEqual([]);
  expect(result.observedTotal).toBe(result.expectedTotal);
}

/**
 * Until `ingester` applies events, producing a few more every half second:
 * the member already in the group may drain everything produced before the
 * rebalance hands the newcomer its partitions, which takes 3-8 s here.
 */
async function waitForNewEvents(producer: TxnProducer, what: string, ingester: StrataProcess): Promise<void> {
  await waitFor(
    what,
    async () => {
      if ((await applied(ingester)) > 0) return true;
      await producer.produce(100);
      return false;
    },
    25_000,
    500,
  );
}

/** A test with its own broker, Redis and processes, all stopped and removed when it ends. */
async function withHarness(label: string, test: (harness: Harness) => Promise<void>): Promise<void> {
  const harness = new Harness(label);
  try {
    await harness.start();
    await test(harness);
  } finally {
    await harness.close();
  }
}

// Concurrent: most of each test is waiting for consumer group joins (~3-6 s each against the mock broker), not CPU.
describe.concurrent('strata ingest: effectively once across crashes, rebalances and replicas', () => {
  it('loses and doubles nothing when the ingester is killed -9 again and again while it consumes', { timeout: 85_000 }, ({ expect }) =>
    withHarness('crash', async (harness) => {
      const started = Date.now();
      const { oracle } = harness;
      const producer = new TxnProducer(harness.producer, oracle, 'c', 400, 20_240_601, Date.now() - 65 * MINUTE, 60);
      const random = seeded(7);
      const dataDir = harness.dataDir('ingester');
      await producer.produce(12_000);

      const kills: { lagAtKill: number; appliedBeforeKill: number; delayMs: number; startMs: number }[] = [];
      for (let round = 0; round < 6; round++) {
        const spawned = Date.now();
        const ingester = await harness.ingest(`ingester#${round + 1}`, dataDir);
        // Consuming: a first step is durable. Then a random moment later, mid-batch or between steps.
        await waitFor(`${ingester.name} to apply events`, async () => (await applied(ingester)) > 0, 25_000, 20);
        const delayMs = Math.floor(random() * 250);
        await sleep(delayMs);
        const appliedBeforeKill = await applied(ingester);
        const { committed, end } = await harness.progress();
        await harness.kill9(ingester);
        kills.push({ lagAtKill: end - committed, appliedBeforeKill, delayMs, startMs: Date.now() - spawned - delayMs });
        // Enough that the next ingester is still consuming when killed: 2,500 were all applied within
        // the kill delay once restarts stopped sweeping L3 at start (lag 0 at 4 of 6 kills).
        await producer.produce(8_000);
      }

      const finalStart = Date.now();
      const last = await harness.ingest('ingester#final', dataDir);
      await harness.waitCaughtUp([last], 30_000);
      const caughtUpAt = Date.now();
      const { end } = await harness.progress();
      // The producer wrote every event once (no retried send doubled one in the topic).
      expect(end).toBe(oracle.total);
      expect(await metric(last, 'strata_dead_letters_total'), (await metricLines(last, 'strata_dead_letters_total')).join('\n')).toBe(0);

      const replica = await harness.serve('replica', harness.dataDir('replica'));
      const at = Date.now();
      await expectExact(expect, oracle, replica, at);
      // Most kills hit a process with work still to do (committed offsets behind the end of the topic).
      expect(kills.filter((kill) => kill.lagAtKill > 0).length, JSON.stringify(kills)).toBeGreaterThanOrEqual(5);
      console.info(`[ingest-crash] kill -9 x${kills.length}, ${oracle.total} events, ${oracle.cards.length} cards; kills ${JSON.stringify(kills)}; final ingester caught up in ${caughtUpAt - finalStart} ms; total ${Date.now() - started} ms`);
    }));

  it('loses and doubles nothing while a second ingester with its own data dir joins and leaves the group', { timeout: 85_000 }, ({ expect }) =>
    withHarness('rebalance', async (harness) => {
      const started = Date.now();
      const { oracle } = harness;
      const producer = new TxnProducer(harness.producer, oracle, 'r', 300, 99, Date.now() - 50 * MINUTE, 60);
      const dirA = harness.dataDir('a');
      const dirB = harness.dataDir('b');
      const steps: string[] = [];
      const step = (what: string): void => void steps.push(`${Date.now() - started}ms ${what}`);

      await producer.produce(6_000);
      const a = await harness.ingest('ingester-a', dirA);
      await waitFor('A to apply events', async () => (await applied(a)) > 0, 25_000, 20);
      step('A consuming');
      const b = await harness.ingest('ingester-b', dirB);
      await producer.produce(4_000);
      // B got partitions of its own in the rebalance and applies them (building on A's state in L2).
      await waitForNewEvents(producer, 'B to apply events', b);
      step('B consuming');
      await producer.produce(3_000);
      await harness.kill9(a);
      step('A killed -9');
      await producer.produce(3_000);
      // A again, on its old data dir: its L3 copies of the cards B took over are stale.
      const a2 = await harness.ingest('ingester-a#2', dirA);
      await producer.produce(3_000);
      const bApplied = await applied(b);
      await waitForNewEvents(producer, 'A to apply events again', a2);
      step(`A#2 consuming (B had applied ${bApplied})`);
      await producer.produce(2_000);
      expect(await harness.terminate(b), b.log()).toBe(0);
      step('B stopped');
      await producer.produce(2_000);
      await harness.waitCaughtUp([a2], 30_000);
      step('caught up');
      const { end } = await harness.progress();
      expect(end).toBe(oracle.total);
      expect(await metric(a2, 'strata_dead_letters_total'), (await metricLines(a2, 'strata_dead_letters_total')).join('\n')).toBe(0);

      const replica = await harness.serve('replica', harness.dataDir('replica'));
      await expectExact(expect, oracle, replica, Date.now());
      console.info(`[ingest-crash] rebalance: ${oracle.total} events, ${oracle.cards.length} cards; ${steps.join('; ')}; total ${Date.now() - started} ms`);
    }));

  it('serves the same fresh values on two replicas fed by one ingester, and windows fall on both as time passes', { timeout: 60_000 }, ({ expect }) =>
    withHarness('topology', async (harness) => {
      const started = Date.now();
      const { oracle } = harness;
      const [ingester, replicaA, replicaB] = await Promise.all([
        harness.ingest('ingester', harness.dataDir('ingester')),
        harness.serve('replica-a', harness.dataDir('replica-a')),
        harness.serve('replica-b', harness.dataDir('replica-b')),
      ]);
      // 40 cards, 10 events each, 2 s apart from now − 50 s: their one-minute counts fall one by one from 10 s from now.
      const now = Date.now();
      const events: TxnEvent[] = [];
      const random = seeded(3);
      for (let k = 0; k < 10; k++) {
        for (let card = 0; card < 40; card++) {
          events.push({ txnId: `f${k}-${card}`, card: `fresh${String(card).padStart(2, '0')}`, amount: 1 + Math.floor(random() * 900), ts: now - 50_000 + k * 2_000 + card });
        }
      }
      const producer = new TxnProducer(harness.producer, oracle, 'unused', 1, 5, 0, 0);
      await producer.produceEvents(events);
      await harness.waitCaughtUp([ingester], 20_000);
      const caughtUpMs = Date.now() - now;

      // Fresh values of cards neither replica saw: exact on both (each learns the new keys' bloom bits within --bloom-sync).
      const newest = events[events.length - 1]!.ts;
      await expectExact(expect, oracle, replicaA, newest, 3_000);
      await expectExact(expect, oracle, replicaB, newest, 3_000);

      // Without as_of: the one-minute count read now sits between what it was before and after the read; it falls as time passes.
      const readNow = async (replica: StrataProcess): Promise<{ total: number; before: number; after: number }> => {
        const before = Date.now();
        const observed = await readCards(replica, oracle.cards);
        const after = Date.now();
        let total = 0;
        for (const card of oracle.cards) {
          const count = observed.get(card)!.count1m;
          expect(count, `${replica.name} ${card}`).not.toBeNull();
          expect(count!, `${replica.name} ${card}`).toBeLessThanOrEqual(oracle.at(card, before).count1m!);
          expect(count!, `${replica.name} ${card}`).toBeGreaterThanOrEqual(oracle.at(card, after).count1m!);
          total += count!;
        }
        return { total, before, after };
      };
      const first = [await readNow(replicaA), await readNow(replicaB)];
      expect(first[0]!.total, 'the one-minute window still holds events at the first read').toBeGreaterThan(0);

      // Every feature at fixed times as the minute window empties, on both replicas.
      for (const at of [newest - 10_000, events[0]!.ts + MINUTE + 5_000, newest + MINUTE - 1, newest + MINUTE]) {
        await expectExact(expect, oracle, replicaA, at, 0);
        await expectExact(expect, oracle, replicaB, at, 0);
      }

      // Past the next time an event leaves the window (at most 2 s away), read again: no new event, lower counts on both.
      const drop = oracle.nextDrop(Math.max(first[0]!.after, first[1]!.after, Date.now()));
      await sleep(Math.max(0, drop - Date.now()) + 100);
      const second = [await readNow(replicaA), await readNow(replicaB)];
      expect(second[0]!.total).toBeLessThan(first[0]!.total);
      expect(second[1]!.total).toBeLessThan(first[1]!.total);
      console.info(`[ingest-crash] topology: ${events.length} events, caught up ${caughtUpMs} ms after production; count_1m ${first.map((read) => read.total)} -> ${second.map((read) => read.total)}; total ${Date.now() - started} ms`);
    }));
});
