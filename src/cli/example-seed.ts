/**
 * Sample rows for the bundled example (examples/fraud/registry.yaml), written
 * through the ordinary write path on first start. Deterministic apart from
 * being anchored at the start time, so ttl statuses show as described in the
 * README: card_risk rows of every fifth card are 3 days old (ttl 1d →
 * OUTSIDE_MAX_AGE), and card_profile has two versions per card so as_of
 * reads differ from current ones.
 */
import { EventGenerator, GENERATOR_TOPICS } from '../ingest/event-generator.js';
import { jsonValues } from '../server/json-values.js';
import type { ServingCore } from '../server/serving-core.js';
import { seededRandom } from '../util/seeded-random.js';

const DAY = 86_400_000;
const COUNTRIES = ['US', 'US', 'US', 'GB', 'DE', 'FR', 'BR', 'IN', 'JP', 'NG'];
const CATEGORIES = ['grocery', 'electronics', 'fashion', 'travel', 'gaming', 'home', 'beauty', 'sports'];
const SEGMENTS = ['new', 'casual', 'loyal', 'vip'];
const OSES = ['ios', 'android', 'windows', 'macos', 'linux'];

const id = (prefix: string, index: number): string => `${prefix}${String(index).padStart(4, '0')}`;

const EXAMPLE_IDS = { cards: 120, users: 80, devices: 90 } as const;

/** Writes the sample rows and pushes the sample events; returns how many of each. */
export async function seedExample(core: ServingCore, nowMs: number): Promise<{ rows: number; events: number }> {
  const rand = seededRandom(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const int = (low: number, high: number): number => low + Math.floor(rand() * (high - low + 1));
  let rows = 0;
  const push = async (view: string, columns: Record<string, unknown[]>, eventTimestamps: number[]): Promise<void> => {
    rows += await core.writer.write({ view, columns: new Map(Object.entries(columns)), eventTimestamps, createdTimestamps: undefined }, jsonValues, nowMs);
  };

  const cards = Array.from({ length: EXAMPLE_IDS.cards }, (_, index) => id('c', index + 1));
  const profile: Record<string, unknown[]> = { card_id: [], credit_limit: [], home_country: [], account_age_days: [], is_business: [] };
  const profileTimes: number[] = [];
  for (const card of cards) {
    const age = int(30, 3000);
    const country = pick(COUNTRIES);
    const business = rand() < 0.15;
    // The limit was raised a day ago: as_of two days back shows the old one.
    for (const [daysAgo, limit] of [[10, int(5, 50) * 100], [1, int(50, 200) * 100]] as const) {
      profile.card_id!.push(card);
      profile.credit_limit!.push(limit);
      profile.home_country!.push(country);
      profile.account_age_days!.push(age - daysAgo);
      profile.is_business!.push(business);
      profileTimes.push(nowMs - daysAgo * DAY);
    }
  }
  await push('card_profile', profile, profileTimes);

  await push(
    'card_risk',
    {
      card_id: cards,
      risk_score: cards.map(() => Math.round(rand() * 1000) / 1000),
      chargebacks_90d: cards.map(() => (rand() < 0.1 ? int(1, 4) : 0)),
      recent_merchant_categories: cards.map(() => Array.from({ length: int(1, 4) }, () => pick(CATEGORIES))),
    },
    cards.map((_, index) => nowMs - (index % 5 === 4 ? 3 * DAY : int(1, 20) * 3_600_000)),
  );

  const users = Array.from({ length: EXAMPLE_IDS.users }, (_, index) => id('u', index + 1));
  await push(
    'user_profile',
    {
      user_id: users,
      segment: users.map(() => pick(SEGMENTS)),
      lifetime_orders: users.map(() => int(0, 400)),
      avg_order_value: users.map(() => Math.round(rand() * 20_000) / 100),
      preferred_categories: users.map(() => [pick(CATEGORIES), pick(CATEGORIES)]),
      taste_embedding: users.map(() => Array.from({ length: 8 }, () => Math.round((rand() * 2 - 1) * 1000) / 1000)),
      // Every tenth user never confirmed an email: NULL rather than false.
      email_verified: users.map((_, index) => (index % 10 === 9 ? null : rand() < 0.8)),
    },
    users.map(() => nowMs - int(1, 90) * DAY),
  );

  const devices = Array.from({ length: EXAMPLE_IDS.devices }, (_, index) => id('d', index + 1));
  await push(
    'device_reputation',
    {
      device_id: devices,
      os: devices.map(() => pick(OSES)),
      is_emulator: devices.map(() => rand() < 0.05),
      accounts_seen: devices.map(() => (rand() < 0.9 ? 1 : int(2, 12))),
      fingerprint: devices.map(() => Buffer.from(Array.from({ length: 8 }, () => int(0, 255))).toString('base64')),
    },
    devices.map(() => nowMs - int(0, 5) * DAY - int(0, 23) * 3_600_000),
  );

  // Each user has one to three devices; the first is their usual one.
  const pairs: [string, string, number][] = [];
  users.forEach((user, index) => {
    for (let slot = 0; slot < 1 + (index % 3); slot++) pairs.push([user, devices[(index * 7 + slot * 13) % devices.length]!, slot]);
  });
  await push(
    'user_device',
    {
      user_id: pairs.map(([user]) => user),
      device_id: pairs.map(([, device]) => device),
      logins_30d: pairs.map(([, , slot]) => (slot === 0 ? int(10, 60) : int(0, 5))),
      first_seen_days_ago: pairs.map(([, , slot]) => (slot === 0 ? int(60, 700) : int(0, 30))),
      trusted: pairs.map(([, , slot]) => slot === 0),
    },
    pairs.map(() => nowMs - int(0, 3) * DAY),
  );
  return { rows, events: await seedStreams(core, nowMs) };
}

/**
 * An hour of generated transactions, clicks and device sightings for the
 * example's population, pushed through PushEvents — the path consumed events
 * take — so the stream views have values with no broker running.
 */
async function seedStreams(core: ServingCore, nowMs: number): Promise<number> {
  if (core.pusher === undefined) return 0;
  const startTs = nowMs - 3_600_000;
  const generator = new EventGenerator({ seed: 42, startTs, users: EXAMPLE_IDS.users, lateFraction: 0, outOfOrderFraction: 0 });
  const batches = new Map(GENERATOR_TOPICS.map((topic) => [topic, [] as Record<string, unknown>[]]));
  for (let index = 0; index < 600; index++) {
    generator.advanceTo(startTs + Math.floor((index / 600) * 3_600_000));
    for (const [topic, batch] of batches) batch.push(generator.next(topic).event);
  }
  let events = 0;
  for (const [topic, batch] of batches) events += (await core.pusher.push(topic, batch, nowMs)).applied;
  return events;
}
