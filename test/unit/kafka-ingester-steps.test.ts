/**
 * How a batch's steps are made durable and committed when commits are slow
 * or fail. The Kafka clients are stand-ins here, since a commit that fails
 * (or waits) right after a durable step cannot be arranged with a real
 * broker; test/integration/stream-ingest and ingest-crash cover the ingester
 * against one.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAvroSchemaFile } from '../../src/config/avro.js';
import { loadRegistry } from '../../src/config/registry.js';
import { encodeConfluent } from '../../src/ingest/confluent-wire.js';
import { KafkaIngester } from '../../src/ingest/kafka-ingester.js';
import type { StreamApplier } from '../../src/ingest/stream-applier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

const registry = loadRegistry(fileURLToPath(new URL('../fixtures/stream-oracle-registry.yaml', import.meta.url)));
const txnV2 = loadAvroSchemaFile(fileURLToPath(new URL('../../examples/fraud/schemas/txn_event.v2.avsc', import.meta.url)));

type HandleBatch = (batch: unknown, resolveOffset: (offset: string) => void, heartbeat: () => Promise<void>, active: () => boolean) => Promise<void>;

/**
 * An ingester whose applier records the offsets it applies and whose Kafka
 * clients are stand-ins: `commit` decides each offset commit's fate.
 */
function ingesterWithStandIns(commit: (offsets: { offset: string; metadata: string }[]) => Promise<void>) {
  const applied: number[] = [];
  const checked: string[] = [];
  const applier = {
    topics: ['txn.events'],
    extract: (_topic: string, event: Record<string, unknown>) => {
      checked.push(event.txn_id as string);
      return { ok: true, ts: event.timestamp as number, parts: [] };
    },
    apply: async (_topic: string, events: readonly { origin: { offset: number } }[]) => void applied.push(...events.map((event) => event.origin.offset)),
  } as unknown as StreamApplier;
  const ingester = new KafkaIngester(registry, applier, {
    brokers: ['127.0.0.1:9'],
    groupId: 'g',
    clientId: 'c',
    sessionTimeoutMs: 4_000,
    maxWaitMs: 400,
    schemaRegistryUrl: undefined,
    logger: createLogger('error'),
    metrics: new Metrics({ processMetrics: false }),
  });
  const deadLetters: string[] = [];
  Object.assign(ingester, {
    admin: { fetchOffsets: async () => [] },
    producer: { send: async ({ messages }: { messages: { headers: Record<string, string> }[] }) => void deadLetters.push(...messages.map((message) => message.headers['strata.dlq.offset']!)) },
    consumer: { commitOffsets: commit },
  });
  const handleBatch = (ingester as unknown as { handleBatch: HandleBatch }).handleBatch.bind(ingester);
  const resolved: string[] = [];
  const run = (batch: { messages: readonly unknown[] }) => handleBatch({ topic: 'txn.events', partition: 0, highWatermark: String(batch.messages.length), ...batch }, (offset) => void resolved.push(offset), async () => undefined, () => true);
  return { run, applied, checked, deadLetters, resolved };
}

const now = Date.now();
const txn = (offset: number, ts: number) => ({
  offset: String(offset),
  key: null,
  headers: {},
  timestamp: String(now),
  value: encodeConfluent(2, txnV2, { txn_id: `t${offset}`, card_id: 'c1', user_id: 'u1', device_id: 'd1', amount: 1, currency: 'USD', merchant_category: 'fuel', geo_country: 'US', ip_address: '73.1.1.1', timestamp: ts, merchant_id: null, risk_score: 0 }),
});
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('KafkaIngester', () => {
  /*
   * A step whose offset commit fails is fetched again by kafkajs (from the last
   * resolved offset, without rejoining the group), so the retry must decide
   * lateness from the same watermark as the first attempt: otherwise an event
   * applied the first time is dead-lettered as late the second.
   */
  it('retries a step whose commit failed from the watermark it started with', async () => {
    const commits: string[] = [];
    let failNextCommit = true;
    const { run, applied, deadLetters, resolved } = ingesterWithStandIns(async ([commit]) => {
      if (failNextCommit) {
        failNextCommit = false;
        throw new Error('The coordinator is not available');
      }
      commits.push(`${commit!.offset} ${commit!.metadata}`);
    });
    // Offset 0 is a minute older than offset 1: on time as the first event, late once offset 1 has been seen.
    const batch = { messages: [txn(0, now - 60_000), txn(1, now)] };

    await expect(run(batch)).rejects.toThrow('The coordinator is not available');
    expect(resolved).toEqual([]);
    await run(batch);
    // Applied twice (the event log skips the replay by its offset), never dead-lettered.
    expect(applied).toEqual([0, 1, 0, 1]);
    expect(deadLetters).toEqual([]);
    expect(commits).toEqual([`2 ${JSON.stringify({ newestEventTs: now })}`]);
    expect(resolved).toEqual(['1']);
  });

  it('decodes the next step while one is committed, submits it only once that one has, and judges lateness from where it ends', async () => {
    const commits: { offset: string; settle: (error?: Error) => void }[] = [];
    const { run, applied, checked, deadLetters, resolved } = ingesterWithStandIns(
      ([commit]) => new Promise<void>((resolve, reject) => void commits.push({ offset: commit!.offset, settle: (error) => (error === undefined ? resolve() : reject(error)) })),
    );
    // A first step of 2,000 events at `now`, then a second whose first event is a minute older: late after the first step.
    const messages = [...Array.from({ length: 2_000 }, (_, offset) => txn(offset, now)), txn(2_000, now - 60_000), txn(2_001, now)];
    const firstStep = Array.from({ length: 2_000 }, (_, offset) => offset);

    const done = run({ messages });
    for (let turn = 0; turn < 5; turn++) await tick();
    expect(commits.map((commit) => commit.offset)).toEqual(['2000']);
    expect(checked).toHaveLength(2_002);
    expect(applied).toEqual(firstStep);
    expect(deadLetters).toEqual([]);
    commits[0]!.settle();
    for (let turn = 0; turn < 5 && commits.length < 2; turn++) await tick();
    expect(applied).toEqual([...firstStep, 2_001]);
    expect(deadLetters).toEqual(['2000']);
    commits[1]!.settle();
    await done;
    expect(commits.map((commit) => commit.offset)).toEqual(['2000', '2002']);
    expect(resolved).toEqual(['1999', '2001']);
  });

  it('writes nothing after a step whose commit failed', async () => {
    const commits: { settle: (error?: Error) => void }[] = [];
    const { run, applied, deadLetters, resolved } = ingesterWithStandIns(
      () => new Promise<void>((resolve, reject) => void commits.push({ settle: (error) => (error === undefined ? resolve() : reject(error)) })),
    );
    const messages = [...Array.from({ length: 2_000 }, (_, offset) => txn(offset, now)), txn(2_000, now - 60_000), txn(2_001, now)];

    const done = run({ messages });
    for (let turn = 0; turn < 5 && commits.length === 0; turn++) await tick();
    commits[0]!.settle(new Error('The coordinator is not available'));
    await expect(done).rejects.toThrow('The coordinator is not available');
    expect(commits).toHaveLength(1);
    expect(applied).toHaveLength(2_000);
    expect(deadLetters).toEqual([]);
    expect(resolved).toEqual([]);
  });
});
