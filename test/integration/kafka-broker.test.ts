import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type EachMessagePayload, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBroker, MOCK_GROUP_SETTINGS } from '../support/kafka-broker.js';

// The test broker itself, through kafkajs and real TCP: what later ingester
// and crash tests rely on. Consumer groups cost ~3 s per join here (see
// MOCK_GROUP_SETTINGS), so each test joins as few times as it can and the
// group tests, each with its own topic and group, run side by side.

let broker: KafkaBroker;
let kafka: Kafka;
let admin: Admin;
const clients: (Producer | Consumer)[] = [];

beforeAll(async () => {
  broker = await KafkaBroker.start({
    topics: [
      { name: 'events', partitions: 4 },
      { name: 'split', partitions: 4 },
      { name: 'resume', partitions: 4 },
      { name: 'three', partitions: 3 },
    ],
  });
  kafka = new Kafka({ clientId: 'kafka-broker-test', brokers: broker.brokers, logLevel: logLevel.NOTHING, requestTimeout: 5_000, retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 } });
  admin = kafka.admin();
  await admin.connect();
});
afterAll(async () => {
  await disconnectAll();
  await admin?.disconnect();
  await broker?.stop();
});

async function disconnectAll(): Promise<void> {
  await Promise.all(clients.splice(0).map((client) => client.disconnect()));
}

async function disconnect(client: Producer | Consumer): Promise<void> {
  clients.splice(clients.indexOf(client), 1);
  await client.disconnect();
}

async function producer(retry?: { retries: number; initialRetryTime: number; maxRetryTime: number }): Promise<Producer> {
  const created = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...(retry === undefined ? {} : { retry }) });
  clients.push(created);
  await created.connect();
  return created;
}

/** A group member that records what it is assigned and what it reads. */
async function consumer(groupId: string, topic: string, autoCommit = true): Promise<{ consumer: Consumer; seen: EachMessagePayload[]; assigned: () => number[] | undefined; joinMs: () => number | undefined }> {
  const created = kafka.consumer({ groupId, ...MOCK_GROUP_SETTINGS });
  clients.push(created);
  const seen: EachMessagePayload[] = [];
  let assigned: number[] | undefined;
  let joinMs: number | undefined;
  created.on(created.events.GROUP_JOIN, ({ payload }) => {
    assigned = [...(payload.memberAssignment[topic] ?? [])].sort();
    joinMs = payload.duration;
  });
  await created.connect();
  await created.subscribe({ topic, fromBeginning: true });
  // run() resolves once the first join and sync are done (or crashed: assigned() is then still undefined).
  await created.run({ autoCommit, eachMessage: async (payload) => void seen.push(payload) });
  return { consumer: created, seen, assigned: () => assigned, joinMs: () => joinMs };
}

async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('KafkaBroker (librdkafka mock cluster)', () => {
  it('listens on 127.0.0.1 only', () => {
    expect(broker.brokers).toHaveLength(1);
    for (const address of broker.brokers) expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(broker.bootstrap).toBe(broker.brokers.join(','));
  });

  it('creates launcher topics with their partition counts; unknown topics auto-create with 4', async () => {
    const { topics } = await admin.fetchTopicMetadata({ topics: ['three', 'events'] });
    expect(Object.fromEntries(topics.map((topic) => [topic.name, topic.partitions.length]))).toEqual({ three: 3, events: 4 });
    const { topics: auto } = await admin.fetchTopicMetadata({ topics: ['never-declared'] });
    expect(auto[0]!.partitions).toHaveLength(4);
  });

  it('fails to start with a clear error on a bad topic', async () => {
    await expect(KafkaBroker.start({ topics: [{ name: 'empty', partitions: 0 }] })).rejects.toThrow(/bad topic argument empty:0/);
  });

  describe.concurrent('consumer groups', () => {
    afterAll(disconnectAll);

    it('round-trips produced messages through a consumer group, with topic offsets', async ({ expect }) => {
      const sent = Array.from({ length: 100 }, (_, i) => ({ key: `entity-${i}`, value: `value-${i}` }));
      await (await producer()).send({ topic: 'events', messages: sent });

      const offsets = await admin.fetchTopicOffsets('events');
      expect(offsets.map((offset) => offset.partition).sort()).toEqual([0, 1, 2, 3]);
      expect(offsets.reduce((sum, offset) => sum + Number(offset.high), 0)).toBe(100);
      expect(offsets.every((offset) => offset.low === '0' && Number(offset.high) > 0)).toBe(true);

      const member = await consumer('round-trip', 'events');
      expect(member.assigned()).toEqual([0, 1, 2, 3]);
      await eventually(() => member.seen.length >= 100);
      expect(member.seen.map(({ message }) => `${message.key}=${message.value}`).sort()).toEqual(sent.map(({ key, value }) => `${key}=${value}`).sort());
    });

    it('splits four partitions between two members and hands them all to the survivor when one leaves', async ({ expect }) => {
      // Both join in the coordinator's initial 3 s window, so there is one assignment round.
      const [a, b] = await Promise.all([consumer('split', 'split'), consumer('split', 'split')]);
      expect(a.assigned()).toHaveLength(2);
      expect(b.assigned()).toHaveLength(2);
      expect([...a.assigned()!, ...b.assigned()!].sort()).toEqual([0, 1, 2, 3]);
      expect(a.joinMs()).toBeLessThan(5_000);

      // b leaves (LeaveGroup): a rejoins after sessionTimeout - 1000 ms and owns everything.
      const left = Date.now();
      await disconnect(b.consumer);
      await eventually(() => a.assigned()!.length === 4);
      expect(Date.now() - left).toBeLessThan(MOCK_GROUP_SETTINGS.sessionTimeout + 2_000);
    });

    it('keeps committed offsets across a consumer restart in the same group', async ({ expect }) => {
      const send = await producer();
      await send.send({ topic: 'resume', messages: Array.from({ length: 8 }, (_, i) => ({ partition: 0, value: `m${i}` })) });

      const first = await consumer('resume', 'resume', false);
      await eventually(() => first.seen.length >= 8);
      await first.consumer.commitOffsets([{ topic: 'resume', partition: 0, offset: '5' }]);
      await disconnect(first.consumer);
      expect(await admin.fetchOffsets({ groupId: 'resume', topics: ['resume'] })).toContainEqual({ topic: 'resume', partitions: expect.arrayContaining([expect.objectContaining({ partition: 0, offset: '5' })]) });

      // A new member of the group starts at the committed offset, not at the beginning.
      const second = await consumer('resume', 'resume');
      await eventually(() => second.seen.length >= 3);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(second.seen.map(({ partition, message }) => `${partition}@${message.offset}=${message.value}`)).toEqual(['0@5=m5', '0@6=m6', '0@7=m7']);

      // autoCommit commits after each batch, and the commit is there after the member leaves.
      await disconnect(second.consumer);
      const [committed] = await admin.fetchOffsets({ groupId: 'resume', topics: ['resume'] });
      expect(committed!.partitions.find((partition) => partition.partition === 0)?.offset).toBe('8');
    });
  });

  it('fails produce while the broker is down, succeeds once it is up again, and keeps committed offsets', async () => {
    const send = await producer({ retries: 1, initialRetryTime: 100, maxRetryTime: 300 });
    await send.send({ topic: 'three', messages: [{ partition: 1, value: 'before' }] });
    const member = await consumer('outage', 'three', false);
    await eventually(() => member.seen.length >= 1);
    await member.consumer.commitOffsets([{ topic: 'three', partition: 1, offset: '1' }]);
    await disconnect(member.consumer);

    await broker.setDown(1);
    await expect(send.send({ topic: 'three', messages: [{ value: 'while-down' }] })).rejects.toThrow();

    await broker.setUp(1);
    await send.send({ topic: 'three', messages: [{ value: 'after' }] });
    const [committed] = await admin.fetchOffsets({ groupId: 'outage', topics: ['three'] });
    expect(committed!.partitions.find((partition) => partition.partition === 1)?.offset).toBe('1');
    await expect(broker.setDown(7)).rejects.toThrow(/down 7/);
  });
});
