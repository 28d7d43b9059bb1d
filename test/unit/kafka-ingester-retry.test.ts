/**
 * A step whose offset commit fails is fetched again by kafkajs (from the last
 * resolved offset, without rejoining the group), so the retry must decide
 * lateness from the same watermark as the first attempt: otherwise an event
 * applied the first time is dead-lettered as late the second. The Kafka
 * clients are stand-ins here, since a commit that fails right after a durable
 * step cannot be arranged with a real broker; test/integration/stream-ingest
 * covers the ingester against one.
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

describe('KafkaIngester', () => {
  it('retries a step whose commit failed from the watermark it started with', async () => {
    const applied: number[] = [];
    const applier = {
      topics: ['txn.events'],
      extract: (_topic: string, event: Record<string, unknown>) => ({ ok: true, ts: event.timestamp as number, parts: [] }),
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
    const commits: string[] = [];
    let failNextCommit = true;
    Object.assign(ingester, {
      admin: { fetchOffsets: async () => [] },
      producer: { send: async ({ messages }: { messages: { headers: Record<string, string> }[] }) => void deadLetters.push(...messages.map((message) => message.headers['strata.dlq.offset']!)) },
      consumer: {
        commitOffsets: async ([commit]: { offset: string; metadata: string }[]) => {
          if (failNextCommit) {
            failNextCommit = false;
            throw new Error('The coordinator is not available');
          }
          commits.push(`${commit!.offset} ${commit!.metadata}`);
        },
      },
    });
    const now = Date.now();
    const txn = (offset: number, ts: number) => ({
      offset: String(offset),
      key: null,
      headers: {},
      timestamp: String(now),
      value: encodeConfluent(2, txnV2, { txn_id: `t${offset}`, card_id: 'c1', user_id: 'u1', device_id: 'd1', amount: 1, currency: 'USD', merchant_category: 'fuel', geo_country: 'US', ip_address: '73.1.1.1', timestamp: ts, merchant_id: null, risk_score: 0 }),
    });
    // Offset 0 is a minute older than offset 1: on time as the first event, late once offset 1 has been seen.
    const batch = { topic: 'txn.events', partition: 0, highWatermark: '2', messages: [txn(0, now - 60_000), txn(1, now)] };
    const handleBatch = (ingester as unknown as { handleBatch: HandleBatch }).handleBatch.bind(ingester);
    const resolved: string[] = [];
    const run = () => handleBatch(batch, (offset) => void resolved.push(offset), async () => undefined, () => true);

    await expect(run()).rejects.toThrow('The coordinator is not available');
    expect(resolved).toEqual([]);
    await run();
    // Applied twice (the event log skips the replay by its offset), never dead-lettered.
    expect(applied).toEqual([0, 1, 0, 1]);
    expect(deadLetters).toEqual([]);
    expect(commits).toEqual([`2 ${JSON.stringify({ newestEventTs: now })}`]);
    expect(resolved).toEqual(['1']);
  });
});
