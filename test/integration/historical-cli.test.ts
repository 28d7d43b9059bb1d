import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRowReader } from '../../src/batch/files/row-reader.js';
import { openRowWriter } from '../../src/batch/files/row-writer.js';
import { runHistorical } from '../../src/cli/historical-command.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { getHistoricalFeatures, rowsMessage, rowsOf } from '../support/historical.js';
import { startTestServer, timestamp, type Json, type TestServer } from '../support/strata.js';

const REGISTRY = fileURLToPath(new URL('../fixtures/historical-registry.yaml', import.meta.url));
const HOUR = 3_600_000;
const REFS = ['card_profile:credit_limit', 'card_profile:home_country', 'card_txn:txn_count_5m', 'card_txn:amount_sum_1h', 'card_txn:last_country'];

let strata: TestServer;
const scratch = mkdtempSync(join(tmpdir(), 'strata-historical-cli-'));
const rand = seededRandom(5);
const cards = Array.from({ length: 40 }, (_, index) => `cli-${index}`);
const base = Date.now() - 10 * HOUR;
/** 20 000 rows: several request messages and response chunks, and two parquet row groups. */
const rows = Array.from({ length: 20_000 }, () => ({ card: cards[Math.floor(rand() * cards.length)]!, t: base + Math.floor(rand() * 10 * HOUR) }));

function toStruct(object: Json): Json {
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, typeof value === 'number' ? { numberValue: value } : { stringValue: value }])) };
}

beforeAll(async () => {
  strata = await startTestServer({ registry: REGISTRY });
  for (let hour = 0; hour < 10; hour++) {
    const written = cards.filter(() => rand() < 0.7);
    await strata.grpc.writeFeatures({
      feature_view: 'card_profile',
      columns: {
        card_id: { values: written.map((card) => ({ string_val: card })) },
        credit_limit: { values: written.map(() => ({ double_val: Math.round(rand() * 1000) })) },
        home_country: { values: written.map(() => (rand() < 0.2 ? {} : { string_val: 'PT' })) },
      },
      event_timestamps: written.map(() => timestamp(base + hour * HOUR + Math.floor(rand() * HOUR))),
    });
  }
  const events = Array.from({ length: 600 }, (_, index) => ({ card: cards[index % cards.length]!, ts: base + Math.floor((index * 10 * HOUR) / 600) }));
  await strata.grpc.call('PushEvents', 'PushEventsRequest', 'PushEventsResponse', {
    topic: 'txn.events',
    events: events.map((event, index) =>
      toStruct({ txn_id: `cli-t${index}`, card_id: event.card, user_id: 'u', device_id: 'd', amount: index % 50, currency: 'EUR', merchant_category: 'online', geo_country: index % 3 === 0 ? 'DE' : 'FR', ip_address: '192.0.2.1', timestamp: event.ts }),
    ),
  });
});
afterAll(async () => {
  await strata?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function historical(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  await runHistorical([...args, '--target', `127.0.0.1:${strata.server.grpcPort}`], stdout, stderr);
  return { stdout: out, stderr: err };
}

/** Every row of an output file, as plain JSON-comparable objects (int64 as digit strings, times as ms). */
async function readOutput(path: string): Promise<Record<string, unknown>[]> {
  const reader = await openRowReader(path);
  const result: Record<string, unknown>[] = [];
  for await (const chunk of reader.chunks()) {
    for (let row = 0; row < chunk.length; row++) {
      const record: Record<string, unknown> = {};
      for (const [name, values] of chunk.columns) {
        const value = values[row] ?? null;
        record[name] = name === 'event_timestamp' && typeof value === 'string' ? Date.parse(value) : typeof value === 'bigint' || typeof value === 'number' ? Number(value) : value;
      }
      result.push(record);
    }
  }
  return result;
}

/** What the same rows answer over the RPC, as output rows: join key, time, then each feature's value or null. */
async function expectedRows(fullNames: boolean): Promise<Record<string, unknown>[]> {
  const messages: Json[] = [{ features: { refs: REFS }, full_feature_names: fullNames }];
  for (let from = 0; from < rows.length; from += 5_000) messages.push(rowsMessage('card_id', rows.slice(from, from + 5_000).map((row) => row.card), rows.slice(from, from + 5_000).map((row) => row.t)));
  const answered = rowsOf(await getHistoricalFeatures(strata.grpc, messages), ['card_id']);
  return answered.map((row) => ({
    card_id: row.keys.card_id,
    event_timestamp: row.timeMs,
    ...Object.fromEntries(Object.entries(row.features).map(([name, feature]) => [name, feature.value === null ? null : typeof feature.value === 'string' && /^\d+$/.test(feature.value) ? Number(feature.value) : feature.value])),
  }));
}

describe('strata historical', () => {
  it('streams NDJSON entity rows and writes parquet, rows in input order, with a summary', async () => {
    const entities = join(scratch, 'rows.ndjson');
    writeFileSync(entities, rows.map((row) => `${JSON.stringify({ card_id: row.card, event_timestamp: new Date(row.t).toISOString(), label: 1 })}\n`).join(''));
    const out = join(scratch, 'training.parquet');
    const { stdout } = await historical(['--entities', entities, '--features', REFS.join(','), '--out', out]);
    expect(stdout).toMatch(/^strata historical: 20000 rows × 5 features → .*training\.parquet in [\d.]+ s \(\d+ rows\/s\); values: PRESENT \d+, NULL_VALUE \d+, NOT_FOUND \d+, OUTSIDE_MAX_AGE \d+\n$/);
    const written = await readOutput(out);
    expect(Object.keys(written[0]!)).toEqual(['card_id', 'event_timestamp', 'credit_limit', 'home_country', 'txn_count_5m', 'amount_sum_1h', 'last_country']);
    expect(written).toEqual(await expectedRows(false));
    expect(written.some((row) => row.credit_limit !== null) && written.some((row) => row.txn_count_5m !== null)).toBe(true);
  });

  it('reads parquet entity rows and writes NDJSON, full feature names', async () => {
    const entities = join(scratch, 'rows.parquet');
    const writer = await openRowWriter(entities, [{ name: 'event_timestamp', type: 'timestamp' }, { name: 'card_id', type: 'string' }], { rowGroupRows: 12_000 });
    await writer.write({ length: rows.length, columns: new Map<string, unknown[]>([['card_id', rows.map((row) => row.card)], ['event_timestamp', rows.map((row) => row.t)]]) });
    await writer.close();
    const out = join(scratch, 'training.ndjson');
    await historical(['--entities', entities, '--features', REFS.join(','), '--full-feature-names', '--out', out]);
    const written = await readOutput(out);
    expect(Object.keys(written[0]!)).toEqual(['card_id', 'event_timestamp', 'card_profile__credit_limit', 'card_profile__home_country', 'card_txn__txn_count_5m', 'card_txn__amount_sum_1h', 'card_txn__last_country']);
    expect(written).toEqual(await expectedRows(true));
  });

  it('takes a feature service', async () => {
    const entities = join(scratch, 'few.csv');
    writeFileSync(entities, `card_id,event_timestamp\n${rows.slice(0, 10).map((row) => `${row.card},${row.t}`).join('\n')}\n`);
    const out = join(scratch, 'service.ndjson');
    const { stdout } = await historical(['--entities', entities, '--feature-service', 'card_training', '--out', out]);
    expect(stdout).toContain('10 rows × 4 features');
    expect(Object.keys((await readOutput(out))[0]!)).toEqual(['card_id', 'event_timestamp', 'credit_limit', 'txn_count_5m', 'amount_sum_1h', 'home_country']);
  });

  it('fails with the server\'s explanation and leaves no output behind', async () => {
    const entities = join(scratch, 'few.csv');
    const out = join(scratch, 'never.parquet');
    await expect(historical(['--entities', entities, '--features', 'card_profile:credit_limit,card_profile:nope', '--out', out])).rejects.toThrow(
      /^the server answered INVALID_ARGUMENT STRATA_UNKNOWN_FEATURE: features\[1\]: feature view card_profile has no feature "nope".* \(field features\[1\]\)$/,
    );
    const old = join(scratch, 'old.csv');
    writeFileSync(old, `card_id,event_timestamp\ncli-1,${Date.now()}\ncli-1,2001-01-01T00:00:00Z\n`);
    await expect(historical(['--entities', old, '--features', 'card_profile:credit_limit', '--out', out])).rejects.toThrow(/OUT_OF_RANGE STRATA_AS_OF_BEFORE_RETENTION: event_timestamps\[1\]: /);
    const noKey = join(scratch, 'no-key.csv');
    writeFileSync(noKey, `user,event_timestamp\nu,${Date.now()}\n`);
    await expect(historical(['--entities', noKey, '--features', 'card_profile:credit_limit', '--out', out])).rejects.toThrow(/has no column "card_id"/);
    expect(readdirSync(scratch).filter((name) => name.startsWith('never'))).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  it('checks its flags', async () => {
    await expect(historical(['--entities', 'x.csv', '--out', 'y.parquet'])).rejects.toThrow(/exactly one of --features/);
    await expect(historical(['--features', 'a:b', '--out', 'y.parquet'])).rejects.toThrow(/needs --entities/);
    const { stdout } = await historical(['--help']);
    expect(stdout).toMatch(/^usage: strata historical/);
  });
});
