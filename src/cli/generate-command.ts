/**
 * strata generate: the fraud example's events (src/ingest/event-generator.ts)
 * at a steady rate, to Kafka, to a server's push-events endpoint, or to an
 * NDJSON file. Open loop: every tick sends the events whose time has come,
 * however long earlier sends take (up to MAX_IN_FLIGHT batches at once).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseTimestampText } from '../batch/files/column-conform.js';
import { parseDuration } from '../config/duration.js';
import { StrataError } from '../errors.js';
import { loadAvroSchemaFile } from '../config/avro.js';
import { EventGenerator, GENERATOR_TOPICS, type GeneratorTopic } from '../ingest/event-generator.js';
import type { EventSink, OutgoingEvent } from './event-sinks/event-sink.js';
import type { WriterSchema } from './event-sinks/kafka-event-sink.js';
import { NdjsonFileEventSink } from './event-sinks/ndjson-file-event-sink.js';
import { PushEventSink } from './event-sinks/push-event-sink.js';

/** Writer schema ids used in the Confluent header unless --schema-ids says otherwise. */
export const DEFAULT_SCHEMA_IDS: Readonly<Record<string, number>> = {
  'txn.events:v1': 1,
  'txn.events:v2': 2,
  'click.events': 3,
  'device.events': 4,
};

const SCHEMA_FILES: Readonly<Record<string, string>> = {
  'txn.events:v1': 'txn_event.v1.avsc',
  'txn.events:v2': 'txn_event.v2.avsc',
  'click.events': 'click_event.avsc',
  'device.events': 'device_event.avsc',
};

export const GENERATE_USAGE = `usage: strata generate [--topic T[,T…]] [--rate N] [--duration D] [--seed N] [--start TIME] [--users N] [--batch N]
                       (--brokers HOST:PORT[,…] [--schema-ids IDS] | --push URL | --out FILE)

  --topic        ${GENERATOR_TOPICS.join(', ')} (default: all three, in turn)
  --rate         events per second over all topics (default 1000)
  --duration     how long, e.g. 60s or 5m (default 10s); rate × duration events in all
  --seed         the same seed gives the same events (default 42)
  --start        event time of the first event, ISO 8601 (UTC unless it names a zone) or epoch ms (default now)
  --users        population size (default 1000)
  --batch        most events per send or POST (default 500)
  --brokers      Avro in the Confluent wire format to Kafka, keyed by card_id / user_id / device_id
  --schema-ids   writer schema ids in the Confluent header, e.g. txn.events:v1=1,v2=2,click.events=3,device.events=4
                 (those are the defaults; examples/fraud/schemas has the schemas)
  --push         POST {URL}/push-events with {"topic", "events": [JSON events]}
  --out          NDJSON lines {"topic", "key", "event"[, "fraud"]}, written unpaced
`;

const TICK_MS = 10;
const MAX_IN_FLIGHT = 16;

interface GenerateOptions {
  readonly topics: readonly GeneratorTopic[];
  readonly rate: number;
  readonly durationMs: number;
  readonly seed: number;
  readonly startTs: number;
  readonly users: number;
  readonly batch: number;
  readonly sink: { readonly kind: 'kafka'; readonly brokers: string[]; readonly schemaIds: Readonly<Record<string, number>> } | { readonly kind: 'push'; readonly url: string } | { readonly kind: 'out'; readonly path: string };
}

export async function runGenerate(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  const options = parseGenerateOptions(argv);
  if (options === undefined) return void out.write(GENERATE_USAGE);
  const sink = await openSink(options);
  const generator = new EventGenerator({ seed: options.seed, startTs: options.startTs, users: options.users, topics: options.topics });
  const total = Math.round((options.rate * options.durationMs) / 1000);
  const perTopic = new Map(options.topics.map((topic) => [topic, 0]));
  let fraud = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const startedAt = performance.now();
  try {
    let made = 0;
    while (made < total && failure === undefined) {
      const due = sink.paced ? Math.min(total, Math.floor(((performance.now() - startedAt) * options.rate) / 1000)) : Math.min(total, made + options.batch);
      if (due === made) {
        await sleep(TICK_MS);
        continue;
      }
      let batch: OutgoingEvent[] = [];
      for (; made < due; made++) {
        const topic = options.topics[made % options.topics.length]!;
        generator.advanceTo(options.startTs + Math.floor((made * 1000) / options.rate));
        const generated = generator.next(topic);
        perTopic.set(topic, perTopic.get(topic)! + 1);
        if (generated.fraud !== undefined && topic === 'txn.events') fraud++;
        batch.push({ topic, generated });
        if (batch.length === options.batch) {
          await dispatch(batch);
          batch = [];
        }
      }
      if (batch.length > 0) await dispatch(batch);
    }
    await Promise.all(inFlight);
  } finally {
    await sink.close();
  }
  if (failure !== undefined) throw failure;
  const seconds = (performance.now() - startedAt) / 1000;
  const counts = [...perTopic].map(([topic, count]) => `${topic}=${count}${topic === 'txn.events' ? ` (fraud ${fraud})` : ''}`).join(' ');
  out.write(`strata generate: ${total} events in ${seconds.toFixed(2)} s (${Math.round(total / seconds)} events/s) → ${sink.target}: ${counts}\n`);

  async function dispatch(batch: readonly OutgoingEvent[]): Promise<void> {
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const sending: Promise<void> = sink.send(batch).then(
      () => void inFlight.delete(sending),
      (error: unknown) => {
        failure ??= error;
        inFlight.delete(sending);
      },
    );
    inFlight.add(sending);
  }
}

async function openSink(options: GenerateOptions): Promise<EventSink> {
  const { sink } = options;
  switch (sink.kind) {
    case 'out':
      try {
        return new NdjsonFileEventSink(sink.path);
      } catch (error) {
        throw bad(`--out: cannot write ${sink.path}: ${(error as Error).message}`);
      }
    case 'push':
      return new PushEventSink(sink.url);
    case 'kafka': {
      const writers = new Map<string, WriterSchema>();
      for (const [key, file] of Object.entries(SCHEMA_FILES)) {
        if (!options.topics.includes(key.split(':')[0] as GeneratorTopic)) continue;
        writers.set(key, { id: sink.schemaIds[key]!, type: loadAvroSchemaFile(fileURLToPath(new URL(`../../examples/fraud/schemas/${file}`, import.meta.url))) });
      }
      const { KafkaEventSink } = await import('./event-sinks/kafka-event-sink.js');
      return KafkaEventSink.connect(sink.brokers, (topic, version) => writers.get(version === undefined ? topic : `${topic}:v${version}`)!);
    }
  }
}

/** The options, or undefined for --help. Every problem is a STRATA_CONFIG_INVALID naming the flag. */
function parseGenerateOptions(argv: string[]): GenerateOptions | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean' },
        topic: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        seed: { type: 'string' },
        start: { type: 'string' },
        users: { type: 'string' },
        batch: { type: 'string' },
        brokers: { type: 'string' },
        'schema-ids': { type: 'string' },
        push: { type: 'string' },
        out: { type: 'string' },
      },
    }));
  } catch (error) {
    throw bad(`generate: ${(error as Error).message}`);
  }
  if (values.help === true) return undefined;
  const text = (name: string): string | undefined => values[name] as string | undefined;

  const topics = [...new Set((text('topic') ?? GENERATOR_TOPICS.join(',')).split(',').map((topic) => topic.trim()))];
  for (const topic of topics) {
    if (!(GENERATOR_TOPICS as readonly string[]).includes(topic)) throw bad(`--topic: unknown topic ${JSON.stringify(topic)} (known: ${GENERATOR_TOPICS.join(', ')})`);
  }
  const rate = Number(text('rate') ?? 1000);
  if (!(rate > 0 && Number.isFinite(rate))) throw bad(`--rate must be a positive number, got ${JSON.stringify(text('rate'))}`);
  const durationMs = parseDuration(text('duration') ?? '10s');
  if (durationMs === undefined || durationMs === 0) throw bad(`--duration must be a duration like 60s or 5m, got ${JSON.stringify(text('duration'))}`);
  if (Math.round((rate * durationMs) / 1000) < 1) throw bad('--rate × --duration makes no events');
  const seed = Number(text('seed') ?? 42);
  if (!Number.isSafeInteger(seed)) throw bad(`--seed must be an integer, got ${JSON.stringify(text('seed'))}`);
  const startText = text('start');
  // As snapshot files' timestamps read: a zone-less time is UTC, whatever the machine's zone.
  const startTs = startText === undefined ? Date.now() : parseTimestampText(startText);
  if (startTs === undefined) throw bad(`--start must be an ISO 8601 time or epoch ms, got ${JSON.stringify(startText)}`);
  const users = positiveInteger('--users', text('users'), 1000);
  const batch = positiveInteger('--batch', text('batch'), 500);

  const sinks = (['brokers', 'push', 'out'] as const).filter((name) => text(name) !== undefined);
  if (sinks.length !== 1) throw bad(`choose one output: --brokers, --push or --out${sinks.length > 1 ? ` (got ${sinks.map((name) => `--${name}`).join(' and ')})` : ''}`);
  if (text('schema-ids') !== undefined && sinks[0] !== 'brokers') throw bad('--schema-ids applies only with --brokers');
  let sink: GenerateOptions['sink'];
  switch (sinks[0]!) {
    case 'brokers': {
      const brokers = text('brokers')!.split(',').map((broker) => broker.trim());
      for (const broker of brokers) if (!/^[^\s:]+:\d+$/.test(broker)) throw bad(`--brokers: ${JSON.stringify(broker)} is not HOST:PORT`);
      sink = { kind: 'kafka', brokers, schemaIds: parseSchemaIds(text('schema-ids')) };
      break;
    }
    case 'push': {
      const url = text('push')!;
      if (!/^https?:\/\//.test(url) || !URL.canParse(url)) throw bad(`--push must be an http(s) URL, got ${JSON.stringify(url)}`);
      sink = { kind: 'push', url };
      break;
    }
    case 'out':
      sink = { kind: 'out', path: text('out')! };
      break;
  }
  return { topics: topics as GeneratorTopic[], rate, durationMs, seed, startTs, users, batch, sink };
}

/**
 * `txn.events:v1=1,v2=2,click.events=3`: a bare `vN=` entry continues the
 * topic before it. Ids not given keep their defaults.
 */
function parseSchemaIds(text: string | undefined): Readonly<Record<string, number>> {
  const ids = { ...DEFAULT_SCHEMA_IDS };
  if (text === undefined) return ids;
  let topic: string | undefined;
  for (const entry of text.split(',')) {
    const match = /^\s*(?:([a-z.]+)(?::(v\d+))?|(v\d+))\s*=\s*(\d+)\s*$/.exec(entry);
    if (match === null) throw bad(`--schema-ids: cannot read ${JSON.stringify(entry)} (expected TOPIC[:vN]=ID or vN=ID)`);
    topic = match[1] ?? topic;
    const version = match[2] ?? match[3];
    if (topic === undefined) throw bad(`--schema-ids: ${JSON.stringify(entry)} names a version but no topic before it`);
    const key = version === undefined ? topic : `${topic}:${version}`;
    if (!(key in DEFAULT_SCHEMA_IDS)) throw bad(`--schema-ids: unknown ${JSON.stringify(key)} (known: ${Object.keys(DEFAULT_SCHEMA_IDS).join(', ')})`);
    const id = Number(match[4]);
    if (id > 0x7fff_ffff) throw bad(`--schema-ids: ${key} id ${id} is beyond the registry's id range`);
    ids[key] = id;
  }
  return ids;
}

function positiveInteger(flag: string, text: string | undefined, fallback: number): number {
  const value = Number(text ?? fallback);
  if (!Number.isSafeInteger(value) || value < 1) throw bad(`${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

function bad(message: string): StrataError {
  return new StrataError('STRATA_CONFIG_INVALID', message);
}
