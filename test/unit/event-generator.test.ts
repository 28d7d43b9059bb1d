import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAvroSchemaFile } from '../../src/config/avro.js';
import { conformEvent } from '../../src/ingest/conform-event.js';
import { encodeConfluent } from '../../src/ingest/confluent-wire.js';
import { EventGenerator, GENERATOR_TOPICS, type EventGeneratorOptions, type GeneratedEvent, type GeneratorTopic } from '../../src/ingest/event-generator.js';

const schema = (file: string) => loadAvroSchemaFile(fileURLToPath(new URL(`../../examples/fraud/schemas/${file}`, import.meta.url)));
const SCHEMAS = {
  'txn.events:1': schema('txn_event.v1.avsc'),
  'txn.events:2': schema('txn_event.v2.avsc'),
  'click.events': schema('click_event.avsc'),
  'device.events': schema('device_event.avsc'),
};
const schemaOf = (topic: GeneratorTopic, generated: GeneratedEvent) =>
  SCHEMAS[(topic === 'txn.events' ? `${topic}:${generated.schemaVersion}` : topic) as keyof typeof SCHEMAS];

const START = Date.UTC(2024, 0, 1);

interface Emitted extends GeneratedEvent {
  readonly topic: GeneratorTopic;
  /** How far the event time is behind the generator's clock. */
  readonly behindMs: number;
}

/** Events as `strata generate` asks for them: topics in turn, the clock at `rate` events per second. */
function generate(count: number, options: Partial<EventGeneratorOptions> = {}, rate = 1_000): Emitted[] {
  const topics = options.topics ?? GENERATOR_TOPICS;
  const generator = new EventGenerator({ seed: 7, startTs: START, ...options });
  return Array.from({ length: count }, (_, index) => {
    generator.advanceTo(START + Math.floor((index * 1000) / rate));
    const topic = topics[index % topics.length]!;
    const generated = generator.next(topic);
    return { ...generated, topic, behindMs: generator.now - (generated.event.timestamp as number) };
  });
}

const events = generate(60_000);
const of = (topic: GeneratorTopic) => events.filter((emitted) => emitted.topic === topic);
const txns = of('txn.events');
const clicks = of('click.events');
const devices = of('device.events');
const fraction = (items: readonly unknown[], total: number) => items.length / total;

describe('EventGenerator', () => {
  it('gives the same events for the same seed and calls, other events for another seed', () => {
    expect(generate(3_000)).toEqual(events.slice(0, 3_000));
    expect(generate(3_000, { seed: 8 })).not.toEqual(events.slice(0, 3_000));
  });

  it('makes events every one of which conforms to its schema as it is, and encodes as Avro', () => {
    const failures = events.flatMap((emitted) => {
      const type = schemaOf(emitted.topic, emitted);
      const conformed = conformEvent(type, emitted.event);
      if (!conformed.ok) return [`${emitted.topic} ${conformed.field}: ${conformed.rule}`];
      if (JSON.stringify(conformed.event) !== JSON.stringify(emitted.event)) return [`${emitted.topic}: conforming changed ${JSON.stringify(emitted.event)}`];
      return type.fromBuffer(encodeConfluent(1, type, emitted.event).subarray(5)).timestamp === emitted.event.timestamp ? [] : [`${emitted.topic}: Avro round trip`];
    });
    expect(failures).toEqual([]);
  });

  it('keys events by the topic entity', () => {
    const keyField = { 'txn.events': 'card_id', 'click.events': 'user_id', 'device.events': 'device_id' } as const;
    expect(events.filter((emitted) => emitted.key !== emitted.event[keyField[emitted.topic]])).toEqual([]);
  });

  it('puts about fraudFraction of transactions in fraud patterns, card tests in bursts of tiny amounts on one card', () => {
    const fraud = txns.filter((emitted) => emitted.fraud !== undefined);
    expect(fraction(fraud, txns.length)).toBeGreaterThan(0.08);
    expect(fraction(fraud, txns.length)).toBeLessThan(0.12);
    expect(new Set(fraud.map((emitted) => emitted.fraud))).toEqual(new Set(['card_testing', 'large_amount', 'foreign_geo', 'new_device']));

    // Consecutive card tests on one card make a burst (the next burst may follow at once, on another card).
    const bursts: Emitted[][] = [];
    txns.forEach((emitted, index) => {
      if (emitted.fraud !== 'card_testing') return;
      const previous = txns[index - 1];
      if (previous?.fraud === 'card_testing' && previous.event.card_id === emitted.event.card_id) bursts.at(-1)!.push(emitted);
      else bursts.push([emitted]);
    });
    expect(bursts.length).toBeGreaterThan(50);
    expect(bursts.filter((burst) => burst.length < 3 || burst.length > 8)).toEqual([]);
    const tests = bursts.flat();
    expect(tests.filter(({ event }) => event.merchant_category !== 'online' || (event.currency !== 'JPY' && (event.amount as number) > 2))).toEqual([]);

    const homeCountries = new Map(txns.filter((emitted) => emitted.fraud === undefined).map((emitted) => [emitted.event.card_id, emitted.event.geo_country]));
    const foreign = fraud.filter((emitted) => emitted.fraud === 'foreign_geo');
    expect(foreign.filter(({ event }) => event.geo_country === homeCountries.get(event.card_id))).toEqual([]);
    expect(Math.min(...fraud.filter((emitted) => emitted.fraud === 'large_amount' && emitted.event.currency === 'USD').map((emitted) => emitted.event.amount as number))).toBeGreaterThanOrEqual(600);
  });

  it('can make the fraud fraction anything, none included', () => {
    const none = generate(6_000, { fraudFraction: 0, topics: ['txn.events'] });
    expect(none.filter((emitted) => emitted.fraud !== undefined)).toEqual([]);
    const many = generate(6_000, { fraudFraction: 0.3, topics: ['txn.events'] });
    expect(fraction(many.filter((emitted) => emitted.fraud !== undefined), many.length)).toBeCloseTo(0.3, 1);
  });

  it('gives ordinary transactions the typical amounts of their merchant category', () => {
    const usd = txns.filter((emitted) => emitted.fraud === undefined && emitted.event.currency === 'USD');
    const amounts = (category: string) => usd.filter((emitted) => emitted.event.merchant_category === category).map((emitted) => emitted.event.amount as number);
    const within = (category: string, low: number, high: number) => {
      const list = amounts(category);
      expect(list.length).toBeGreaterThan(20);
      expect([Math.min(...list), Math.max(...list)], category).toSatisfy(([min, max]: number[]) => min! >= low && max! <= high);
    };
    within('grocery', 20, 120);
    within('fuel', 30, 90);
    within('electronics', 100, 2_000);
    within('atm', 20, 400);
    expect(amounts('atm').filter((amount) => amount % 20 !== 0)).toEqual([]);
    const inCents = (amount: number) => Math.abs(Math.round(amount * 100) - amount * 100) < 1e-6;
    expect(txns.filter(({ event }) => !(event.currency === 'JPY' ? Number.isInteger(event.amount) : inCents(event.amount as number)))).toEqual([]);
  });

  it('mixes TxnEvent v1 and v2; only v2 carries merchant_id, risk_score, JPY and CHF', () => {
    const v2 = txns.filter((emitted) => emitted.schemaVersion === 2);
    expect(fraction(v2, txns.length)).toBeGreaterThan(0.45);
    expect(fraction(v2, txns.length)).toBeLessThan(0.55);
    const v1 = txns.filter((emitted) => emitted.schemaVersion === 1);
    expect(v1.filter(({ event }) => !['USD', 'EUR'].includes(event.currency as string) || 'merchant_id' in event || 'risk_score' in event)).toEqual([]);
    expect(new Set(v2.map((emitted) => emitted.event.currency))).toEqual(new Set(['USD', 'EUR', 'JPY', 'CHF']));
    expect(v2.some((emitted) => emitted.event.merchant_id === null)).toBe(true);
    const meanRisk = (list: Emitted[]) => list.reduce((sum, emitted) => sum + (emitted.event.risk_score as number), 0) / list.length;
    expect(meanRisk(v2.filter((emitted) => emitted.fraud !== undefined))).toBeGreaterThan(meanRisk(v2.filter((emitted) => emitted.fraud === undefined)) + 0.3);
  });

  it('puts outOfOrderFraction of events 0.2–2 s and lateFraction more than 10 s behind the clock', () => {
    const outOfOrder = events.filter((emitted) => emitted.behindMs >= 200 && emitted.behindMs <= 2_000);
    const late = events.filter((emitted) => emitted.behindMs > 10_000);
    expect(events.filter((emitted) => emitted.behindMs !== 0).length).toBe(outOfOrder.length + late.length);
    expect(fraction(outOfOrder, events.length)).toBeGreaterThan(0.04);
    expect(fraction(outOfOrder, events.length)).toBeLessThan(0.06);
    expect(fraction(late, events.length)).toBeGreaterThan(0.003);
    expect(fraction(late, events.length)).toBeLessThan(0.008);
    expect(Math.max(...late.map((emitted) => emitted.behindMs))).toBeLessThanOrEqual(60_000);
    const inOrder = generate(3_000, { outOfOrderFraction: 0, lateFraction: 0 });
    expect(inOrder.every((emitted) => emitted.behindMs === 0)).toBe(true);
  });

  it('keeps ids consistent across the three topics: each card and device belongs to one user', () => {
    const ownerOf = new Map<unknown, unknown>();
    const conflicts: string[] = [];
    const own = (thing: unknown, user: unknown) => {
      const known = ownerOf.get(thing);
      if (known === undefined) ownerOf.set(thing, user);
      else if (known !== user) conflicts.push(`${String(thing)}: ${String(known)} and ${String(user)}`);
    };
    for (const { event } of txns) own(event.card_id, event.user_id), own(event.device_id, event.user_id);
    for (const { event } of [...clicks, ...devices]) own(event.device_id, event.user_id);
    expect(conflicts).toEqual([]);
    const users = (list: Emitted[]) => new Set(list.map(({ event }) => event.user_id));
    expect([...users(clicks)].filter((user) => !/^u\d{4}$/.test(String(user)))).toEqual([]);
    const txnUsers = users(txns);
    expect([...users(clicks)].filter((user) => txnUsers.has(user)).length).toBeGreaterThan(users(clicks).size * 0.9);
  });

  it('sights the device of every session, and of every fraudster, on device.events', () => {
    const sightings = new Set(devices.map(({ event }) => `${event.user_id}/${event.device_id}`));
    const sessions = new Map(clicks.map(({ event }) => [event.session_id, `${event.user_id}/${event.device_id}`]));
    // The last session starts may still wait for their device.events turn.
    const missing = [...sessions.values()].filter((pair) => !sightings.has(pair));
    expect(missing.length).toBeLessThan(5);
    for (const { event } of txns.filter((emitted) => emitted.fraud === 'new_device')) {
      expect(sightings.has(`${event.user_id}/${event.device_id}`) || event === txns.at(-1)?.event).toBe(true);
    }
    expect(devices.filter((emitted) => emitted.fraud === 'new_device').length).toBe(txns.filter((emitted) => emitted.fraud === 'new_device').length);
  });

  it('makes sessions of a few minutes on one device that run view → add_to_cart → purchase', () => {
    const actions = (name: string) => clicks.filter(({ event }) => event.action === name).length;
    expect(actions('view') / clicks.length).toBeGreaterThan(0.8);
    expect(actions('add_to_cart') / clicks.length).toBeGreaterThan(0.07);
    expect(actions('add_to_cart') / clicks.length).toBeLessThan(0.15);
    expect(actions('purchase') / actions('add_to_cart')).toBeGreaterThan(0.2);
    expect(actions('purchase') / actions('add_to_cart')).toBeLessThan(0.4);

    const bySession = new Map<unknown, Emitted[]>();
    for (const emitted of clicks) bySession.set(emitted.event.session_id, [...(bySession.get(emitted.event.session_id) ?? []), emitted]);
    expect(bySession.size).toBeGreaterThan(100);
    for (const [session, list] of bySession) {
      expect(new Set(list.map(({ event }) => `${event.user_id}/${event.device_id}`)).size, String(session)).toBe(1);
      const times = list.map(({ event }) => event.timestamp as number);
      expect(Math.max(...times) - Math.min(...times)).toBeLessThanOrEqual(20 * 60_000 + 60_000);
      // A purchase follows an add to cart in the same session.
      const first = list.findIndex(({ event }) => event.action === 'purchase');
      if (first >= 0) expect(list.slice(0, first).some(({ event }) => event.action === 'add_to_cart')).toBe(true);
    }
  });

  it.each([
    [{ users: 0 }, /users must be a positive integer/],
    [{ fraudFraction: 1.5 }, /fraudFraction must be between 0 and 1/],
    [{ outOfOrderFraction: 0.7, lateFraction: 0.5 }, /exceeds 1/],
    [{ startTs: Number.NaN }, /startTs must be epoch ms/],
  ])('rejects %o', (options, message) => {
    expect(() => new EventGenerator({ seed: 1, startTs: START, ...options })).toThrow(message);
  });
});
