/**
 * Consumes the stream views' topics in a Kafka consumer group and applies
 * them through the StreamApplier, effectively once:
 *
 * - A batch is decoded, checked and split into events to apply and events to
 *   dead-letter (`<topic>.dlq`, with reason and origin headers). Both are made
 *   durable — the state write through L3 (and L2), the dead letters acked by
 *   the broker — before the batch's offset is committed. If either fails the
 *   batch is retried and nothing is committed; a dead-letter topic that cannot
 *   be written stops the partition rather than drop the event.
 * - Every entity's record carries the offset it last applied from its
 *   partition, so whatever is replayed after a crash, restart or partition
 *   move is skipped where it was already applied.
 * - The partition's watermark (newest event time) is committed with the
 *   offset as commit metadata and restored on assignment, so the same events
 *   are late whichever process reads them.
 * - While the broker is unreachable the consumer retries with backoff;
 *   serving is unaffected, and /metrics shows it (strata_kafka_up, lag,
 *   freshness).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Kafka, logLevel as KafkaLogLevel, type Admin, type Batch, type Consumer, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs';
import type { Registry, TopicDef } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { AvroEventDecoder } from './avro-event-decoder.js';
import { ConfluentSchemaRegistry } from './confluent-schema-registry.js';
import type { EventDecoder } from './event-decoder.js';
import { JsonEventDecoder } from './json-event-decoder.js';
import { GroupRunner } from './group-runner.js';
import { LocalSchemaFiles } from './local-schema-files.js';
import { describeRejection, type ExtractedEvent, type Rejection, type StreamApplier } from './stream-applier.js';
import { Watermark } from './watermark.js';

const DEAD_LETTER_SUFFIX = '.dlq';
/** Messages handled per step of a batch: each step is made durable and committed before the next is submitted. */
const STEP_MESSAGES = 2_000;
/** Partitions handled at once (each one step at a time). */
const PARTITIONS_IN_FLIGHT = 8;
const RESTART_BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000];
/** Group errors the kafkajs consumer handles by rejoining (its runner's isRebalancing, and UNKNOWN_MEMBER_ID). */
const REJOIN_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'NOT_COORDINATOR_FOR_GROUP', 'UNKNOWN_MEMBER_ID']);

export interface KafkaIngesterOptions {
  readonly brokers: readonly string[];
  readonly groupId: string;
  readonly clientId: string;
  readonly sessionTimeoutMs: number;
  readonly maxWaitMs: number;
  readonly schemaRegistryUrl: string | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** The decoder of a topic's messages; Avro topics share `schemaRegistry` (one cache, one request per id) when there is one. */
export function createDecoder(topic: TopicDef, schemaRegistry: ConfluentSchemaRegistry | undefined): EventDecoder {
  if (topic.format === 'json') return new JsonEventDecoder(topic.readerType);
  return new AvroEventDecoder(topic.readerType!, schemaRegistry ?? new LocalSchemaFiles(topic.writerTypes));
}

interface DeadLetter {
  readonly message: KafkaMessage;
  readonly rejection: Rejection;
}

/** A step decoded and checked, not yet submitted. */
interface PreparedStep {
  readonly topic: string;
  readonly partition: number;
  readonly nowMs: number;
  readonly toApply: { extracted: ExtractedEvent & { ok: true }; origin: { partition: number; offset: number } }[];
  readonly deadLetters: DeadLetter[];
  /** The partition's watermark as it will be once the step is committed. */
  readonly trial: Watermark;
  readonly lastOffset: string;
}

export class KafkaIngester {
  private readonly registry: Registry;
  private readonly applier: StreamApplier;
  private readonly options: KafkaIngesterOptions;
  private readonly kafka: Kafka;
  private readonly decoders = new Map<string, EventDecoder>();
  /** Watermarks of the partitions assigned in the current generation, by `topic:partition`. */
  private readonly watermarks = new Map<string, Watermark>();
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private running: Promise<void> | undefined;
  /** The partitions whose steps became durable together commit together: one OffsetCommit request. */
  private readonly committer = new GroupRunner<{ readonly topic: string; readonly partition: number; readonly offset: string; readonly metadata: string }>((offsets) => this.commitOffsets(offsets));

  constructor(registry: Registry, applier: StreamApplier, options: KafkaIngesterOptions) {
    this.registry = registry;
    this.applier = applier;
    this.options = options;
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      logLevel: KafkaLogLevel.NOTHING,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
      connectionTimeout: 3_000,
    });
    const schemaRegistry = options.schemaRegistryUrl === undefined ? undefined : new ConfluentSchemaRegistry(options.schemaRegistryUrl, { timeoutMs: 5_000 });
    for (const name of applier.topics) this.decoders.set(name, createDecoder(registry.topics.get(name)!, schemaRegistry));
  }

  /** Starts consuming in the background; connection failures are retried with backoff until stop(). */
  start(): void {
    this.running = this.connectAndRun();
  }

  private async connectAndRun(): Promise<void> {
    if (this.stopped) return;
    const { logger, metrics } = this.options;
    const consumer = this.kafka.consumer({
      groupId: this.options.groupId,
      sessionTimeout: this.options.sessionTimeoutMs,
      rebalanceTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: Math.max(100, Math.floor(this.options.sessionTimeoutMs / 6)),
      // kafkajs heartbeats between fetches: a fetch must return well within the session timeout.
      maxWaitTimeInMs: Math.min(this.options.maxWaitMs, Math.floor(this.options.sessionTimeoutMs / 10)),
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    const producer = this.kafka.producer({ allowAutoTopicCreation: true, idempotent: false });
    const admin = this.kafka.admin();
    this.consumer = consumer;
    this.producer = producer;
    this.admin = admin;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      // Partitions may have moved: their watermarks are read again from the committed metadata.
      this.watermarks.clear();
      metrics.consumerLag.reset();
      metrics.brokerUp.set(1);
      this.attempt = 0;
      logger.info('kafka consumer joined its group', { group: this.options.groupId, assignment: payload.memberAssignment });
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      metrics.brokerUp.set(0);
      logger.warn('kafka consumer crashed', { error: payload.error.message, restart: payload.restart });
      if (!payload.restart) this.scheduleRestart();
    });
    consumer.on(consumer.events.DISCONNECT, () => metrics.brokerUp.set(0));
    try {
      await Promise.all([consumer.connect(), producer.connect(), admin.connect()]);
      await consumer.subscribe({ topics: this.applier.topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        // The partitions of one fetch are handled side by side: one decodes while another's step is written or
        // committed. Within a partition, steps stay in order; L3 applies the writes one at a time.
        partitionsConsumedConcurrently: PARTITIONS_IN_FLIGHT,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          await this.handleBatch(batch, resolveOffset, heartbeat, () => isRunning() && !isStale());
        },
      });
    } catch (error) {
      metrics.brokerUp.set(0);
      logger.warn('kafka unavailable; retrying', { error: (error as Error).message, brokers: this.options.brokers.join(',') });
      this.scheduleRestart();
    }
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer !== undefined) return;
    const delay = RESTART_BACKOFF_MS[Math.min(this.attempt++, RESTART_BACKOFF_MS.length - 1)]!;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.disconnect().then(() => {
        this.running = this.connectAndRun();
      });
    }, delay);
    this.restartTimer.unref();
  }

  private async watermarkFor(topic: string, partition: number): Promise<Watermark> {
    const id = `${topic}:${partition}`;
    let watermark = this.watermarks.get(id);
    if (watermark === undefined) {
      const offsets = await this.admin!.fetchOffsets({ groupId: this.options.groupId, topics: [topic] });
      const committed = offsets.find((entry) => entry.topic === topic)?.partitions.find((entry) => entry.partition === partition);
      watermark = Watermark.fromMetadata(this.registry.topics.get(topic)!.allowedLatenessMs, committed?.metadata, Date.now());
      this.watermarks.set(id, watermark);
    }
    return watermark;
  }

  /**
   * Steps of a batch are pipelined: the next one is decoded and checked while
   * the one before it is being made durable and committed, and is submitted
   * only once that one has committed. A step that fails fails the batch with
   * nothing after it written, so kafkajs refetches from the last committed step.
   */
  private async handleBatch(batch: Batch, resolveOffset: (offset: string) => void, heartbeat: () => Promise<void>, active: () => boolean): Promise<void> {
    const { topic, partition, messages } = batch;
    const watermark = await this.watermarkFor(topic, partition);
    const allowedLatenessMs = this.registry.topics.get(topic)!.allowedLatenessMs;
    let submitted: Promise<void> | undefined;
    let trialFrom = watermark.newestEventTs;
    for (let start = 0; start < messages.length && active(); start += STEP_MESSAGES) {
      // The step just submitted starts its write first; this one is decoded while that write is in flight.
      if (submitted !== undefined) await nextTurn();
      // Each step's watermark starts where the step before it ends: it is submitted only after that one committed.
      const step = await this.prepareStep(topic, partition, messages.slice(start, start + STEP_MESSAGES), new Watermark(allowedLatenessMs, trialFrom));
      trialFrom = step.trial.newestEventTs;
      await submitted;
      if (!active()) return;
      submitted = this.submitStep(step, watermark, Number(batch.highWatermark), resolveOffset, heartbeat);
      // Awaited before the next submit or at the end; until then its failure must not count as unhandled.
      submitted.catch(() => undefined);
    }
    await submitted;
  }

  /** Decodes and checks a step's messages: what to apply and what to dead-letter. */
  private async prepareStep(topic: string, partition: number, messages: KafkaMessage[], trial: Watermark): Promise<PreparedStep> {
    const nowMs = Date.now();
    const toApply: PreparedStep['toApply'] = [];
    const deadLetters: DeadLetter[] = [];
    const decoder = this.decoders.get(topic)!;
    for (const message of messages) {
      let decoded = decoder.decode(message.value);
      if (decoded instanceof Promise) decoded = await decoded;
      if (!decoded.ok) {
        deadLetters.push({ message, rejection: { reason: decoded.reason, detail: decoded.detail } });
        continue;
      }
      const extracted = this.applier.extract(topic, decoded.event, nowMs);
      if (!extracted.ok) deadLetters.push({ message, rejection: extracted.rejection });
      else if (trial.admit(extracted.ts, nowMs)) toApply.push({ extracted, origin: { partition, offset: Number(message.offset) } });
      else deadLetters.push({ message, rejection: { reason: 'late', detail: `event time ${extracted.ts} is before the partition's watermark ${trial.newestEventTs} - allowed lateness` } });
    }
    return { topic, partition, nowMs, toApply, deadLetters, trial, lastOffset: messages[messages.length - 1]!.offset };
  }

  /**
   * Makes a step durable (state and dead letters), then commits its offset
   * with its watermark. The partition's watermark advances only after the
   * commit: a retried step (kafkajs refetches from the last resolved offset)
   * starts from the same one, so it finds the same events late (but for
   * events ahead of the clock: see Watermark).
   */
  private async submitStep(step: PreparedStep, watermark: Watermark, highWatermark: number, resolveOffset: (offset: string) => void, heartbeat: () => Promise<void>): Promise<void> {
    const { topic, partition, lastOffset } = step;
    await Promise.all([this.applier.apply(topic, step.toApply, step.nowMs), this.deadLetter(topic, partition, step.deadLetters)]);
    await this.committer.submit({ topic, partition, offset: String(Number(lastOffset) + 1), metadata: step.trial.toMetadata() });
    watermark.observe(step.trial.newestEventTs);
    resolveOffset(lastOffset);
    this.options.metrics.consumerLag.set({ topic, partition: String(partition) }, Math.max(0, highWatermark - Number(lastOffset) - 1));
    await heartbeat();
  }

  /**
   * Consumer.commitOffsets wraps a commit the group refuses mid-rebalance in a
   * non-retriable error, which crashes the consumer: a full reconnect, and one
   * more rebalance for every ingester of the group. Its cause is what kafkajs
   * answers by rejoining, so that is what goes up to it.
   */
  private async commitOffsets(offsets: { readonly topic: string; readonly partition: number; readonly offset: string; readonly metadata: string }[]): Promise<void> {
    try {
      await this.consumer!.commitOffsets(offsets);
    } catch (error) {
      const cause = (error as { cause?: { type?: unknown } }).cause;
      if (typeof cause?.type === 'string' && REJOIN_ERRORS.has(cause.type)) throw cause;
      throw error;
    }
  }

  private async deadLetter(topic: string, partition: number, deadLetters: readonly DeadLetter[]): Promise<void> {
    if (deadLetters.length === 0) return;
    const { metrics, logger } = this.options;
    await this.producer!.send({
      topic: topic + DEAD_LETTER_SUFFIX,
      acks: -1,
      messages: deadLetters.map(({ message, rejection }) => {
        const headers: IHeaders = {
          ...message.headers,
          'strata.dlq.reason': rejection.reason,
          'strata.dlq.detail': describeRejection(rejection),
          'strata.dlq.topic': topic,
          'strata.dlq.partition': String(partition),
          'strata.dlq.offset': message.offset,
        };
        return { key: message.key, value: message.value, headers, timestamp: message.timestamp };
      }),
    });
    for (const { rejection } of deadLetters) metrics.deadLetters.inc({ topic, reason: rejection.reason });
    metrics.ingestEvents.inc({ topic, outcome: 'dead_lettered' }, deadLetters.length);
    logger.debug('dead-lettered events', { topic, partition, count: deadLetters.length });
  }

  private async disconnect(): Promise<void> {
    const clients = [this.consumer, this.producer, this.admin];
    this.consumer = this.producer = this.admin = undefined;
    await Promise.allSettled(clients.map((client) => client?.disconnect()));
  }

  /** Leaves the group (its partitions move to the other ingesters) and disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.running?.catch(() => undefined);
    await this.disconnect();
    this.options.metrics.brokerUp.set(0);
  }
}
