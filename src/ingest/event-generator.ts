/**
 * Deterministic, realistic events for the fraud example's three topics
 * (schemas in examples/fraud/schemas): one population of users, each with
 * 1–3 cards and 1–2 devices, so ids agree across txn.events, click.events and
 * device.events. The same seed, options and calls give the same events.
 *
 * - Transactions: merchant categories with their typical amounts (grocery
 *   20–120, fuel 30–90, atm round 20–400, electronics 100–2000 …) in the home
 *   country and currency; half v1, half v2 (merchant_id, risk_score, JPY and
 *   CHF). About `fraudFraction` of them belong to a fraud pattern: a burst of
 *   tiny card tests on one card, an unusually large amount, a foreign country
 *   and IP, or a device never seen before.
 * - Clicks: sessions of a few minutes on one device, view → add_to_cart →
 *   purchase (about 86 / 11 / 3 %).
 * - Devices: a sighting when a session starts (and for a fraudster's new
 *   device), otherwise app opens of known devices.
 *
 * Event time follows the caller's clock (`advanceTo`); `outOfOrderFraction`
 * of events are 0.2–2 s behind it and `lateFraction` 10–60 s behind.
 */
import { StrataError } from '../errors.js';
import { seededRandom } from '../util/seeded-random.js';

export const GENERATOR_TOPICS = ['txn.events', 'click.events', 'device.events'] as const;
export type GeneratorTopic = (typeof GENERATOR_TOPICS)[number];
export type FraudPattern = 'card_testing' | 'large_amount' | 'foreign_geo' | 'new_device';

export interface GeneratedEvent {
  /** The topic's entity key: card_id, user_id or device_id. */
  readonly key: string;
  readonly event: Record<string, unknown>;
  /** txn.events only: the TxnEvent schema version the event is shaped for. */
  readonly schemaVersion?: 1 | 2;
  /** The fraud pattern a transaction (or a fraudster's device sighting) belongs to; for oracles, not part of the event. */
  readonly fraud?: FraudPattern;
}

export interface EventGeneratorOptions {
  readonly seed: number;
  /** Event time before the first advanceTo, epoch ms. */
  readonly startTs: number;
  /** Population size (default 1000); ids u0001…, c0001…, d0001… like the example's seeded rows. */
  readonly users?: number;
  /** The topics that will be asked for (default all); device sightings of session starts are kept only for device.events. */
  readonly topics?: readonly GeneratorTopic[];
  /** Of transactions (default 0.10). */
  readonly fraudFraction?: number;
  /** Of events, 0.2–2 s behind the clock (default 0.05). */
  readonly outOfOrderFraction?: number;
  /** Of events, 10–60 s behind the clock (default 0.005). */
  readonly lateFraction?: number;
  /** Of transactions, shaped for TxnEvent v2 (default 0.5). */
  readonly v2Fraction?: number;
  /** Shopping sessions open at once (default a tenth of the users). */
  readonly concurrentSessions?: number;
}

type Currency = 'USD' | 'EUR' | 'JPY' | 'CHF';
type Random = () => number;

interface Device {
  readonly id: string;
  readonly os: string;
  readonly ip: string;
}

interface User {
  readonly id: string;
  readonly home: Home;
  readonly cards: readonly string[];
  readonly devices: readonly Device[];
  readonly categories: readonly string[];
}

interface Session {
  readonly id: string;
  readonly user: User;
  readonly device: Device;
  readonly endTs: number;
  eventsLeft: number;
  category: string;
  product: number;
  last: 'view' | 'add_to_cart' | 'purchase' | undefined;
}

interface Txn {
  readonly card: string;
  readonly user: User;
  readonly device: Device;
  readonly category: string;
  /** In US dollars; converted to the currency when the event is built. */
  readonly usd: number;
  /** Where the card was used: home, abroad on holiday, or a fraudster's country. */
  readonly country: Country;
  readonly fraud: FraudPattern | undefined;
}

interface Country {
  readonly code: string;
  /** First octets of its IP addresses. */
  readonly octets: readonly number[];
}

interface Home extends Country {
  readonly weight: number;
  readonly currency: Currency;
}

const HOMES: readonly Home[] = [
  { code: 'US', weight: 40, currency: 'USD', octets: [73, 98, 174] },
  { code: 'DE', weight: 14, currency: 'EUR', octets: [91, 84] },
  { code: 'FR', weight: 11, currency: 'EUR', octets: [90, 86] },
  { code: 'ES', weight: 7, currency: 'EUR', octets: [88, 83] },
  { code: 'IT', weight: 7, currency: 'EUR', octets: [79, 93] },
  { code: 'NL', weight: 5, currency: 'EUR', octets: [145, 77] },
  { code: 'PT', weight: 3, currency: 'EUR', octets: [85, 94] },
  { code: 'JP', weight: 8, currency: 'JPY', octets: [126, 153] },
  { code: 'CH', weight: 5, currency: 'CHF', octets: [178, 185] },
];
/** Where stolen cards turn up. */
const FOREIGN: readonly Country[] = [
  { code: 'NG', octets: [102, 105] },
  { code: 'RU', octets: [95, 176] },
  { code: 'BR', octets: [177, 189] },
  { code: 'ID', octets: [110, 114] },
  { code: 'VN', octets: [113, 171] },
  { code: 'RO', octets: [86, 89] },
  { code: 'UA', octets: [46, 93] },
  { code: 'PH', octets: [112, 120] },
];
/** Units of each currency per US dollar (JPY has no cents). */
const PER_USD: Readonly<Record<Currency, number>> = { USD: 1, EUR: 0.92, CHF: 0.88, JPY: 150 };
const OSES: readonly { readonly os: string; readonly weight: number }[] = [
  { os: 'android', weight: 40 },
  { os: 'ios', weight: 35 },
  { os: 'windows', weight: 12 },
  { os: 'macos', weight: 10 },
  { os: 'linux', weight: 3 },
];
const CLICK_CATEGORIES = ['grocery', 'electronics', 'fashion', 'travel', 'gaming', 'home', 'beauty', 'sports'];
const PRODUCTS_PER_CATEGORY = 500;
const MERCHANTS_PER_CATEGORY = 200;

/** Merchant categories: weight among ordinary transactions, typical amount in USD. */
const MERCHANTS: readonly { readonly category: string; readonly weight: number; readonly usd: (random: Random) => number }[] = [
  { category: 'grocery', weight: 26, usd: (random) => 20 + 100 * random() ** 1.6 },
  { category: 'online', weight: 20, usd: (random) => 5 + 250 * random() ** 2.2 },
  { category: 'restaurant', weight: 18, usd: (random) => 8 + 110 * random() ** 2 },
  { category: 'fuel', weight: 11, usd: (random) => 30 + 60 * random() },
  { category: 'atm', weight: 9, usd: (random) => 20 * (1 + Math.floor(random() * 20)) },
  { category: 'electronics', weight: 6, usd: (random) => 100 + 1900 * random() ** 2.5 },
  { category: 'travel', weight: 5, usd: (random) => 60 + 1400 * random() ** 1.8 },
  { category: 'pharmacy', weight: 5, usd: (random) => 5 + 70 * random() ** 1.5 },
];

/** Fraud patterns: weight, and how many transactions one occurrence makes (card tests come in bursts of 3–8). */
const PATTERNS: readonly { readonly pattern: FraudPattern; readonly weight: number; readonly meanEvents: number }[] = [
  { pattern: 'card_testing', weight: 0.3, meanEvents: 5.5 },
  { pattern: 'large_amount', weight: 0.3, meanEvents: 1 },
  { pattern: 'foreign_geo', weight: 0.25, meanEvents: 1 },
  { pattern: 'new_device', weight: 0.15, meanEvents: 1 },
];

const pad = (n: number): string => String(n).padStart(4, '0');
const cents = (amount: number): number => Math.round(amount * 100) / 100;

export class EventGenerator {
  readonly #random: Random;
  readonly #seed: number;
  readonly #users: readonly User[];
  readonly #cards: readonly { readonly id: string; readonly user: User }[];
  readonly #sightDevices: boolean;
  readonly #outOfOrderFraction: number;
  readonly #lateFraction: number;
  readonly #v2Fraction: number;
  readonly #concurrentSessions: number;
  /** Chance that a transaction not already in a pattern starts one, so that fraudFraction of all transactions are fraud. */
  readonly #patternStartChance: number;
  #clock: number;
  #txns = 0;
  #sessions = 0;
  #devices: number;
  readonly #openSessions: Session[] = [];
  /** Devices to sight on device.events next: those of sessions just started and of fraudsters. */
  readonly #pendingSightings: { readonly user: User; readonly device: Device; readonly fraud?: FraudPattern }[] = [];
  #cardTest: { readonly user: User; readonly card: string; left: number } | undefined;

  constructor(options: EventGeneratorOptions) {
    const users = options.users ?? 1000;
    const fraction = (name: string, value: number | undefined, fallback: number): number => {
      const chosen = value ?? fallback;
      if (!(chosen >= 0 && chosen <= 1)) throw new StrataError('STRATA_CONFIG_INVALID', `event generator: ${name} must be between 0 and 1, got ${chosen}`);
      return chosen;
    };
    if (!Number.isSafeInteger(users) || users < 1) throw new StrataError('STRATA_CONFIG_INVALID', `event generator: users must be a positive integer, got ${users}`);
    if (!Number.isFinite(options.startTs)) throw new StrataError('STRATA_CONFIG_INVALID', `event generator: startTs must be epoch ms, got ${options.startTs}`);
    const fraudFraction = fraction('fraudFraction', options.fraudFraction, 0.1);
    this.#outOfOrderFraction = fraction('outOfOrderFraction', options.outOfOrderFraction, 0.05);
    this.#lateFraction = fraction('lateFraction', options.lateFraction, 0.005);
    if (this.#outOfOrderFraction + this.#lateFraction > 1) throw new StrataError('STRATA_CONFIG_INVALID', 'event generator: outOfOrderFraction + lateFraction exceeds 1');
    this.#v2Fraction = fraction('v2Fraction', options.v2Fraction, 0.5);
    this.#concurrentSessions = options.concurrentSessions ?? Math.max(1, Math.round(users / 10));
    if (!Number.isSafeInteger(this.#concurrentSessions) || this.#concurrentSessions < 1) {
      throw new StrataError('STRATA_CONFIG_INVALID', `event generator: concurrentSessions must be a positive integer, got ${this.#concurrentSessions}`);
    }
    this.#sightDevices = (options.topics ?? GENERATOR_TOPICS).includes('device.events');
    // A pattern started makes meanEvents fraud transactions; solve for the start chance that makes fraudFraction of them fraud.
    const meanEvents = PATTERNS.reduce((sum, { weight, meanEvents }) => sum + weight * meanEvents, 0);
    this.#patternStartChance = fraudFraction / (meanEvents * (1 - fraudFraction) + fraudFraction);

    this.#seed = options.seed;
    this.#random = seededRandom(options.seed);
    this.#clock = options.startTs;
    const population: User[] = [];
    const cards: { id: string; user: User }[] = [];
    let deviceCount = 0;
    for (let index = 1; index <= users; index++) {
      const home = this.#weighted(HOMES);
      const user: User = {
        id: `u${pad(index)}`,
        home,
        cards: Array.from({ length: this.#int(1, 3) }, (_, offset) => `c${pad(cards.length + offset + 1)}`),
        devices: Array.from({ length: this.#int(1, 2) }, () => this.#device(++deviceCount, home)),
        categories: this.#sample(CLICK_CATEGORIES, this.#int(2, 3)),
      };
      for (const id of user.cards) cards.push({ id, user });
      population.push(user);
    }
    this.#users = population;
    this.#cards = cards;
    this.#devices = deviceCount;
  }

  /** The event-time clock; moves forward only. */
  get now(): number {
    return this.#clock;
  }

  advanceTo(ts: number): void {
    if (ts > this.#clock) this.#clock = ts;
  }

  next(topic: GeneratorTopic): GeneratedEvent {
    switch (topic) {
      case 'txn.events':
        return this.#txnEvent();
      case 'click.events':
        return this.#clickEvent();
      case 'device.events':
        return this.#deviceEvent();
    }
  }

  #txnEvent(): GeneratedEvent {
    const txn = this.#txn();
    const version = this.#random() < this.#v2Fraction ? 2 : 1;
    const home = txn.user.home.currency;
    // v1 has only USD and EUR: Japanese and Swiss cards were settled in those before v2.
    const currency: Currency = version === 1 ? (home === 'JPY' ? 'USD' : home === 'CHF' ? 'EUR' : home) : home;
    const amount = currency === 'JPY' ? Math.max(1, Math.round(txn.usd * PER_USD.JPY)) : Math.max(0.01, cents(txn.usd * PER_USD[currency]));
    const event: Record<string, unknown> = {
      txn_id: `t${this.#seed}-${++this.#txns}`,
      card_id: txn.card,
      user_id: txn.user.id,
      device_id: txn.device.id,
      amount,
      currency,
      merchant_category: txn.category,
      geo_country: txn.country.code,
      ip_address: txn.country === txn.user.home ? txn.device.ip : this.#ip(txn.country),
      timestamp: this.#eventTime(),
    };
    if (version === 2) {
      event.merchant_id = this.#random() < 0.1 ? null : `m-${txn.category}-${String(this.#int(1, MERCHANTS_PER_CATEGORY)).padStart(3, '0')}`;
      const score = txn.fraud === undefined ? 0.35 * this.#random() ** 2 : 0.4 + 0.6 * Math.sqrt(this.#random());
      event.risk_score = Math.round(score * 1000) / 1000;
    }
    return { key: txn.card, event, schemaVersion: version, ...(txn.fraud === undefined ? {} : { fraud: txn.fraud }) };
  }

  #txn(): Txn {
    if (this.#cardTest !== undefined) {
      const { user, card } = this.#cardTest;
      if (--this.#cardTest.left === 0) this.#cardTest = undefined;
      return { card, user, device: this.#pick(user.devices), category: 'online', usd: 0.5 + 1.5 * this.#random(), country: user.home, fraud: 'card_testing' };
    }
    const { id: card, user } = this.#pick(this.#cards);
    const device = this.#pick(user.devices);
    if (this.#random() >= this.#patternStartChance) {
      const merchant = this.#weighted(MERCHANTS);
      // Now and then a customer pays abroad, in a country that is someone else's home.
      const country = this.#random() < 0.02 ? this.#pick(HOMES) : user.home;
      return { card, user, device, category: merchant.category, usd: merchant.usd(this.#random), country, fraud: undefined };
    }
    const { pattern } = this.#weighted(PATTERNS);
    switch (pattern) {
      case 'card_testing':
        this.#cardTest = { user, card, left: this.#int(3, 8) };
        return this.#txn();
      case 'large_amount': {
        const category = this.#pick(['electronics', 'travel', 'atm']);
        const usd = category === 'atm' ? 100 * this.#int(6, 20) : 2500 + 6500 * this.#random();
        return { card, user, device, category, usd, country: user.home, fraud: pattern };
      }
      case 'foreign_geo': {
        const category = this.#pick(['atm', 'electronics', 'online']);
        const usd = category === 'atm' ? 20 * this.#int(5, 25) : 80 + 900 * this.#random();
        return { card, user, device, category, usd, country: this.#pick(FOREIGN), fraud: pattern };
      }
      case 'new_device': {
        const stranger = this.#device(++this.#devices, user.home);
        if (this.#sightDevices) this.#pendingSightings.push({ user, device: stranger, fraud: pattern });
        return { card, user, device: stranger, category: this.#pick(['online', 'electronics']), usd: 200 + 1300 * this.#random(), country: user.home, fraud: pattern };
      }
    }
  }

  #clickEvent(): GeneratedEvent {
    const session = this.#session();
    let action: 'view' | 'add_to_cart' | 'purchase' = 'view';
    const roll = this.#random();
    if (session.last === 'add_to_cart' && roll < 0.3) action = 'purchase';
    else if (session.last !== 'add_to_cart' && roll < 0.12) action = 'add_to_cart';
    if (action === 'view') {
      if (this.#random() < 0.15) session.category = this.#random() < 0.7 ? this.#pick(session.user.categories) : this.#pick(CLICK_CATEGORIES);
      if (session.last !== undefined && this.#random() < 0.7) session.product = this.#int(1, PRODUCTS_PER_CATEGORY);
    }
    session.last = action;
    session.eventsLeft = action === 'purchase' && this.#random() < 0.6 ? 0 : session.eventsLeft - 1;
    const event = {
      user_id: session.user.id,
      session_id: session.id,
      device_id: session.device.id,
      page: action === 'purchase' ? '/checkout' : `/p/${session.category}/${session.product}`,
      category: session.category,
      action,
      timestamp: this.#eventTime(),
    };
    return { key: session.user.id, event };
  }

  /** An open session to click in: ended ones close, and a new one opens while fewer than concurrentSessions are open. */
  #session(): Session {
    for (let index = this.#openSessions.length - 1; index >= 0; index--) {
      const session = this.#openSessions[index]!;
      if (session.eventsLeft <= 0 || session.endTs <= this.#clock) this.#openSessions.splice(index, 1);
    }
    if (this.#openSessions.length < this.#concurrentSessions) {
      const busy = new Set(this.#openSessions.map((session) => session.user));
      let user = this.#pick(this.#users);
      for (let attempt = 0; attempt < 3 && busy.has(user); attempt++) user = this.#pick(this.#users);
      const device = this.#pick(user.devices);
      const session: Session = {
        id: `s${this.#seed}-${++this.#sessions}`,
        user,
        device,
        endTs: this.#clock + this.#int(2, 20) * 60_000,
        eventsLeft: this.#int(5, 45),
        category: this.#pick(user.categories),
        product: this.#int(1, PRODUCTS_PER_CATEGORY),
        last: undefined,
      };
      this.#openSessions.push(session);
      if (this.#sightDevices) this.#pendingSightings.push({ user, device });
      return session;
    }
    return this.#pick(this.#openSessions);
  }

  #deviceEvent(): GeneratedEvent {
    const sighting = this.#pendingSightings.shift();
    const user = sighting?.user ?? this.#pick(this.#users);
    const device = sighting?.device ?? this.#pick(user.devices);
    // Phones change networks: a known device now and then shows up from another address at home.
    const ip = sighting === undefined && this.#random() < 0.1 ? this.#ip(user.home) : device.ip;
    const event = { device_id: device.id, user_id: user.id, os: device.os, ip_address: ip, timestamp: this.#eventTime() };
    return { key: device.id, event, ...(sighting?.fraud === undefined ? {} : { fraud: sighting.fraud }) };
  }

  #eventTime(): number {
    const roll = this.#random();
    if (roll < this.#lateFraction) return this.#clock - Math.round(10_000 + 50_000 * this.#random());
    if (roll < this.#lateFraction + this.#outOfOrderFraction) return this.#clock - Math.round(200 + 1_800 * this.#random());
    return this.#clock;
  }

  #int(low: number, high: number): number {
    return low + Math.floor(this.#random() * (high - low + 1));
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!;
  }

  #weighted<T extends { readonly weight: number }>(choices: readonly T[]): T {
    let roll = this.#random() * choices.reduce((sum, choice) => sum + choice.weight, 0);
    for (const choice of choices) {
      roll -= choice.weight;
      if (roll < 0) return choice;
    }
    return choices[choices.length - 1]!;
  }

  #sample<T>(items: readonly T[], count: number): T[] {
    const pool = [...items];
    return Array.from({ length: count }, () => pool.splice(Math.floor(this.#random() * pool.length), 1)[0]!);
  }

  #device(number: number, home: Home): Device {
    return { id: `d${pad(number)}`, os: this.#weighted(OSES).os, ip: this.#ip(home) };
  }

  #ip(country: Country): string {
    return `${this.#pick(country.octets)}.${this.#int(0, 255)}.${this.#int(0, 255)}.${this.#int(1, 254)}`;
  }
}
