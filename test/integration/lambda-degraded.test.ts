/**
 * A replica of the scaled-out topology reads stream state through Redis.
 * When Redis is down, a stream view with a batch half can still answer from
 * its snapshot tiles — and the response says it did (degraded_views), over
 * HTTP, gRPC and in historical retrieval, instead of passing batch-only
 * values off as whole ones.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { getHistoricalFeatures, rowsMessage } from '../support/historical.js';
import { RedisServer } from '../support/redis-server.js';
import { importSnapshotFiles } from '../support/snapshot-cli.js';
import { columnsOf, startTestServer, type Json, type TestServer } from '../support/strata.js';

const HOUR = 3_600_000;
const scratch = mkdtempSync(join(tmpdir(), 'strata-degraded-'));
const REGISTRY = join(scratch, 'registry.yaml');
writeFileSync(
  REGISTRY,
  `entities:
  card: { join_key: card_id }
feature_views:
  card_spend:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    batch: { tile: 1h }
    aggregations:
      n_2d:  { fn: count, window: 2d }
      n_30m: { fn: count, window: 30m }
`,
);

let redis: RedisServer;
let writer: TestServer;
let replica: TestServer;
const now = Date.now();
const tileEnd = now - (now % HOUR) - 5 * HOUR;

beforeAll(async () => {
  redis = await RedisServer.start();
  const replicaData = join(scratch, 'replica');
  const tiles = join(scratch, 'tiles.ndjson');
  writeFileSync(tiles, `${JSON.stringify({ card_id: 'a', event_timestamp: tileEnd, n_2d: 3 })}\n`);
  const imported = importSnapshotFiles({ registry: REGISTRY, dataDir: replicaData, view: 'card_spend', files: [tiles] });
  expect(imported.status, imported.stderr).toBe(0);
  // The writer consumes (here: takes pushed events) and writes stream state through to Redis.
  writer = await startTestServer({ registry: REGISTRY, 'redis-url': redis.url });
  const pushed = await writer.http('/push-events', { topic: 'txn', events: [{ card_id: 'a', ts: now - 10 * 60_000 }, { card_id: 'a', ts: now - 5 * 60_000 }] });
  expect(pushed.status).toBe(200);
  replica = await startTestServer({ registry: REGISTRY, 'redis-url': redis.url, 'l1-budget': '0', 'bloom-sync': '100ms' }, { dataDir: replicaData, keepData: true });
}, 120_000);

afterAll(async () => {
  await replica?.stop();
  await writer?.stop();
  await redis?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function readCard(): Promise<{ n2d: unknown; n30m: unknown; degraded: unknown }> {
  const { status, json } = await replica.http('/get-online-features', { features: ['card_spend:n_2d', 'card_spend:n_30m'], entities: { card_id: ['a'] } });
  expect(status).toBe(200);
  const results = json.results as { values: unknown[] }[];
  return { n2d: results[1]!.values[0], n30m: results[2]!.values[0], degraded: json.degraded_views };
}

describe('a lambda view on a replica whose Redis is down', () => {
  it('answers tiles plus stream while Redis is up, tiles alone flagged degraded while it is down, whole again after', async () => {
    await vi.waitFor(async () => expect(await readCard()).toEqual({ n2d: 5, n30m: 2, degraded: undefined }), { timeout: 15_000, interval: 100 });
    const [whole] = await getHistoricalFeatures(replica.grpc, [{ features: { refs: ['card_spend:n_2d'] }, ...rowsMessage('card_id', ['a'], [Date.now()]) }]);
    expect(whole!.degradedViews).toEqual([]);
    expect(Number(whole!.columns['n_2d']!.values[0])).toBe(5);

    await redis.kill();
    expect(await readCard()).toEqual({ n2d: 3, n30m: 0, degraded: ['card_spend'] });
    const response = (await replica.grpc.getOnlineFeatures({ features: { refs: ['card_spend:n_2d'] }, entities: { card_id: { values: [{ string_val: 'a' }] } } })) as Json;
    expect(response.degraded_views).toEqual(['card_spend']);
    expect(Number(columnsOf(response)['n_2d']!.values[0])).toBe(3);
    const [chunk] = await getHistoricalFeatures(replica.grpc, [{ features: { refs: ['card_spend:n_2d'] }, ...rowsMessage('card_id', ['a'], [Date.now()]) }]);
    expect(chunk!.degradedViews).toEqual(['card_spend']);
    expect(Number(chunk!.columns['n_2d']!.values[0])).toBe(3);

    await redis.resume();
    await vi.waitFor(async () => expect(await readCard()).toEqual({ n2d: 5, n30m: 2, degraded: undefined }), { timeout: 15_000, interval: 100 });
  }, 60_000);
});
