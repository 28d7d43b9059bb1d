import type avsc from 'avsc';
import kafkajs, { type Producer } from 'kafkajs';
import { encodeConfluent } from '../../ingest/confluent-wire.js';
import type { EventSink, OutgoingEvent } from './event-sink.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/** The writer schema of a topic (and TxnEvent version): its registry id and type. */
export interface WriterSchema {
  readonly id: number;
  readonly type: avsc.Type;
}

/**
 * Avro in the Confluent wire format, keyed by the topic's entity key, with
 * the event time as the record timestamp. Kafka's default (murmur2)
 * partitioner, so keys land where Java producers would put them.
 */
export class KafkaEventSink implements EventSink {
  readonly paced = true;
  readonly target: string;
  readonly #producer: Producer;
  readonly #writer: (topic: string, version: 1 | 2 | undefined) => WriterSchema;

  private constructor(producer: Producer, brokers: readonly string[], writer: (topic: string, version: 1 | 2 | undefined) => WriterSchema) {
    this.#producer = producer;
    this.#writer = writer;
    this.target = `kafka ${brokers.join(',')}`;
  }

  static async connect(brokers: readonly string[], writer: (topic: string, version: 1 | 2 | undefined) => WriterSchema): Promise<KafkaEventSink> {
    const kafka = new Kafka({
      clientId: 'strata-generate',
      brokers: [...brokers],
      logLevel: logLevel.WARN,
      // kafkajs logs to stdout by default; stdout carries the summary line.
      logCreator: () => (entry) => void process.stderr.write(`strata generate: kafka ${entry.label.toLowerCase()}: ${entry.log.message}\n`),
    });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    return new KafkaEventSink(producer, brokers, writer);
  }

  async send(batch: readonly OutgoingEvent[]): Promise<void> {
    const byTopic = new Map<string, { key: string; value: Buffer; timestamp: string }[]>();
    for (const { topic, generated } of batch) {
      const { id, type } = this.#writer(topic, generated.schemaVersion);
      let messages = byTopic.get(topic);
      if (messages === undefined) byTopic.set(topic, (messages = []));
      messages.push({ key: generated.key, value: encodeConfluent(id, type, generated.event), timestamp: String(generated.event.timestamp) });
    }
    await this.#producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
  }

  close(): Promise<void> {
    return this.#producer.disconnect();
  }
}
