import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/util/seeded-random.js';
import { columnsOf, startTestServer, StrataGrpcClient, timestamp, type TestServer } from '../support/strata.js';

const require = createRequire(import.meta.url);
const HOUR = 3_600_000;

let strata: TestServer;
beforeAll(async () => {
  strata = await startTestServer();
});
afterAll(async () => {
  await strata?.stop();
});

describe('GetOnlineFeatures and WriteFeatures over gRPC', () => {
  it('round-trips every value type, with NULL_VALUE for nulls', async () => {
    const now = Date.now();
    await strata.grpc.writeFeatures({
      feature_view: 'everything',
      columns: {
        user_id: { values: [{ string_val: 'u-all' }, { string_val: 'u-null' }] },
        i: { values: [{ int64_val: '9007199254740993' }, {}] },
        d: { values: [{ double_val: -2.5 }, {}] },
        s: { values: [{ string_val: 'héllo' }, {}] },
        b: { values: [{ bool_val: false }, {}] },
        raw: { values: [{ bytes_val: Buffer.from([0, 1, 255]) }, {}] },
        il: { values: [{ int64_list_val: { values: ['-1', '2', '9223372036854775807'] } }, {}] },
        dl: { values: [{ double_list_val: { values: [0.5, 1e300] } }, {}] },
        sl: { values: [{ string_list_val: { values: ['a', ''] } }, {}] },
      },
      event_timestamps: [timestamp(now - 1000), timestamp(now - 1000)],
    });
    const response = await strata.grpc.getOnlineFeatures({
      features: { refs: ['everything:i', 'everything:d', 'everything:s', 'everything:b', 'everything:raw', 'everything:il', 'everything:dl', 'everything:sl'] },
      entities: { user_id: { values: [{ string_val: 'u-all' }, { string_val: 'u-null' }] } },
    });
    const columns = columnsOf(response);
    expect(Object.keys(columns)).toEqual(['user_id', 'i', 'd', 's', 'b', 'raw', 'il', 'dl', 'sl']);
    expect(columns.user_id!.values).toEqual(['u-all', 'u-null']);
    expect(columns.i!.values[0]).toBe('9007199254740993');
    expect(columns.d!.values[0]).toBe(-2.5);
    expect(columns.s!.values[0]).toBe('héllo');
    expect(columns.b!.values[0]).toBe(false);
    expect(Buffer.from(columns.raw!.values[0] as Uint8Array)).toEqual(Buffer.from([0, 1, 255]));
    expect(columns.il!.values[0]).toEqual({ values: ['-1', '2', '9223372036854775807'] });
    expect(columns.dl!.values[0]).toEqual({ values: [0.5, 1e300] });
    expect(columns.sl!.values[0]).toEqual({ values: ['a', ''] });
    for (const name of ['i', 'd', 's', 'b', 'raw', 'il', 'dl', 'sl']) {
      expect(columns[name]!.statuses).toEqual(['PRESENT', 'NULL_VALUE']);
      expect(columns[name]!.eventMs).toEqual([now - 1000, now - 1000]);
      expect(columns[name]!.values[1]).toBeNull();
    }
  });

  it('answers point-in-time reads at many T exactly as a brute-force oracle, ttl included', async () => {
    const rand = seededRandom(7);
    const cards = Array.from({ length: 12 }, (_, index) => `pit-${index}`);
    const base = Date.now() - 30 * HOUR;
    type Write = { card: string; eventMs: number; createdMs: number; limit: number; order: number };
    const history: Write[] = [];
    let order = 0;
    // Several calls, each with several rows, some sharing event times (ties go to created time, then write order).
    for (let call = 0; call < 15; call++) {
      const rows: Write[] = [];
      for (let row = 0; row < 8; row++) {
        const card = cards[Math.floor(rand() * cards.length)]!;
        const eventMs = base + Math.floor(rand() * 24) * HOUR + (rand() < 0.3 ? 0 : Math.floor(rand() * HOUR));
        rows.push({ card, eventMs, createdMs: base + Math.floor(rand() * 3) * 1000, limit: Math.round(rand() * 10_000), order: order++ });
      }
      await strata.grpc.writeFeatures({
        feature_view: 'card_profile',
        columns: {
          card_id: { values: rows.map((row) => ({ string_val: row.card })) },
          credit_limit: { values: rows.map((row) => ({ double_val: row.limit })) },
          home_country: { values: rows.map(() => ({ string_val: 'US' })) },
          account_age_days: { values: rows.map(() => ({ int64_val: 1 })) },
          is_business: { values: rows.map(() => ({ bool_val: true })) },
        },
        event_timestamps: rows.map((row) => timestamp(row.eventMs)),
        created_timestamps: rows.map((row) => timestamp(row.createdMs)),
      });
      history.push(...rows);
    }
    const oracle = (card: string, at: number): { status: string; value: number | null; eventMs: number } => {
      let best: Write | undefined;
      for (const write of history) {
        if (write.card !== card || write.eventMs > at) continue;
        if (best === undefined || write.eventMs > best.eventMs || (write.eventMs === best.eventMs && (write.createdMs > best.createdMs || (write.createdMs === best.createdMs && write.order > best.order)))) best = write;
      }
      if (best === undefined) return { status: 'NOT_FOUND', value: null, eventMs: 0 };
      if (at - best.eventMs > HOUR) return { status: 'OUTSIDE_MAX_AGE', value: null, eventMs: best.eventMs };
      return { status: 'PRESENT', value: best.limit, eventMs: best.eventMs };
    };
    // Probe times: random ones plus every event time, one ms before it, and the ttl edge on both sides.
    const probes = new Set<number>();
    for (let index = 0; index < 60; index++) probes.add(base - HOUR + Math.floor(rand() * 28 * HOUR));
    for (const write of history.slice(0, 40)) [write.eventMs, write.eventMs - 1, write.eventMs + HOUR, write.eventMs + HOUR + 1].forEach((at) => probes.add(at));
    let mismatches = 0;
    let checked = 0;
    for (const at of probes) {
      const columns = columnsOf(await strata.grpc.getOnlineFeatures({ features: { refs: ['card_profile:credit_limit'] }, entities: { card_id: { values: cards.map((card) => ({ string_val: card })) } }, as_of: timestamp(at) }));
      cards.forEach((card, row) => {
        const expected = oracle(card, at);
        const actual = { status: columns.credit_limit!.statuses[row], value: columns.credit_limit!.values[row] ?? null, eventMs: columns.credit_limit!.eventMs[row] };
        checked++;
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          mismatches++;
          if (mismatches <= 3) expect.soft(actual, `card ${card} at ${new Date(at).toISOString()}`).toEqual(expected);
        }
      });
    }
    expect(checked).toBeGreaterThan(2_000);
    expect(mismatches).toBe(0);
  });

  it('never returns a version whose event time is after T, even one written earlier', async () => {
    const now = Date.now();
    await strata.grpc.writeFeatures({
      feature_view: 'store_stats',
      columns: { store_id: { values: [{ int64_val: 5 }, { int64_val: 5 }] }, revenue: { values: [{ double_val: 1 }, { double_val: 2 }] } },
      event_timestamps: [timestamp(now - 10_000), timestamp(now + 60_000)],
    });
    const read = async (asOf?: number) =>
      columnsOf(await strata.grpc.getOnlineFeatures({ features: { refs: ['store_stats:revenue'] }, entities: { store_id: { values: [{ int64_val: 5 }] } }, ...(asOf ? { as_of: timestamp(asOf) } : {}) })).revenue!;
    expect((await read()).values).toEqual([1]);
    expect((await read(now + 60_000)).values).toEqual([2]);
    expect((await read(now - 10_001)).statuses).toEqual(['NOT_FOUND']);
  });

  it('reads composite and int64 keys, feature services and full feature names', async () => {
    const now = Date.now();
    await strata.grpc.writeFeatures({
      feature_view: 'user_device',
      columns: {
        user_id: { values: [{ string_val: 'u1' }, { string_val: 'u1' }, { string_val: 'u2' }] },
        device_id: { values: [{ string_val: 'd1' }, { string_val: 'd2' }, { string_val: 'd1' }] },
        logins: { values: [{ int64_val: 10 }, { int64_val: 20 }, { int64_val: 30 }] },
        trusted: { values: [{ bool_val: true }, { bool_val: false }, { bool_val: true }] },
      },
      event_timestamps: [timestamp(now), timestamp(now), timestamp(now - 11 * 60_000)],
    });
    await strata.grpc.writeFeatures({
      feature_view: 'everything',
      columns: Object.fromEntries(
        [['user_id', { string_val: 'u1' }], ['i', {}], ['d', {}], ['s', { string_val: 'hello u1' }], ['b', {}], ['raw', {}], ['il', {}], ['dl', {}], ['sl', {}]].map(([name, value]) => [name, { values: [value] }]),
      ),
      event_timestamps: [timestamp(now)],
    });
    const response = await strata.grpc.getOnlineFeatures({
      feature_service: 'device_trust',
      full_feature_names: true,
      entities: { user_id: { values: [{ string_val: 'u1' }, { string_val: 'u1' }, { string_val: 'u2' }] }, device_id: { values: [{ string_val: 'd1' }, { string_val: 'd2' }, { string_val: 'd1' }] } },
    });
    const columns = columnsOf(response);
    expect(Object.keys(columns)).toEqual(['user_id', 'device_id', 'user_device__trusted', 'everything__s']);
    expect(columns.user_device__trusted!.values).toEqual([true, false, null]);
    expect(columns.user_device__trusted!.statuses).toEqual(['PRESENT', 'PRESENT', 'OUTSIDE_MAX_AGE']);
    expect(columns.everything__s!.values).toEqual(['hello u1', 'hello u1', null]);
    expect(columns.everything__s!.statuses).toEqual(['PRESENT', 'PRESENT', 'NOT_FOUND']);

    const big = '-9223372036854775808';
    await strata.grpc.writeFeatures({ feature_view: 'store_stats', columns: { store_id: { values: [{ int64_val: big }] }, revenue: { values: [{ double_val: 42 }] } }, event_timestamps: [timestamp(now)] });
    const stores = columnsOf(await strata.grpc.getOnlineFeatures({ features: { refs: ['store_stats:revenue'] }, entities: { store_id: { values: [{ int64_val: big }, { int64_val: '9223372036854775807' }] } } }));
    expect(stores.store_id!.values).toEqual([big, '9223372036854775807']);
    expect(stores.revenue!.statuses).toEqual(['PRESENT', 'NOT_FOUND']);
  });

  it('lists the compiled registry', async () => {
    const listing = await strata.grpc.listFeatureViews();
    const views = listing.feature_views as { name: string; entities: string[]; ttl_ms: string; features: { name: string; type: string }[] }[];
    const userDevice = views.find((view) => view.name === 'user_device')!;
    expect(userDevice.entities).toEqual(['user', 'device']);
    expect(userDevice.ttl_ms).toBe(String(10 * 60_000));
    expect(views.find((view) => view.name === 'everything')!.features.map((feature) => feature.type)).toEqual(['int64', 'double', 'string', 'bool', 'bytes', 'list<int64>', 'list<double>', 'list<string>']);
    expect((listing.feature_services as { name: string; features: string[] }[]).find((service) => service.name === 'card_basics')!.features).toEqual(['card_profile:credit_limit', 'card_profile:home_country']);
    expect((listing.entities as { join_key: string; type: string }[]).find((entity) => entity.join_key === 'store_id')!.type).toBe('int64');
  });

  it('serves grpc.health.v1 and server reflection, so grpcurl needs no proto file', async () => {
    const address = `127.0.0.1:${strata.server.grpcPort}`;
    const health = grpc.loadPackageDefinition(protoLoader.loadSync(require.resolve('grpc-health-check/proto/health/v1/health.proto'), { enums: String })) as any;
    const healthClient = new health.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
    const status = await new Promise<{ status: string }>((resolve, reject) => healthClient.Check({ service: 'strata.v1.FeatureService' }, (error: Error | null, reply: { status: string }) => (error ? reject(error) : resolve(reply))));
    expect(status.status).toBe('SERVING');
    healthClient.close();

    const reflection = grpc.loadPackageDefinition(protoLoader.loadSync(require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'), { keepCase: true })) as any;
    const reflectionClient = new reflection.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
    const stream = reflectionClient.ServerReflectionInfo();
    const replies: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (reply: any) => {
        replies.push(reply);
        if (replies.length === 2) stream.end();
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.write({ list_services: '' });
    stream.write({ file_containing_symbol: 'strata.v1.FeatureService' });
    await done;
    reflectionClient.close();
    expect(replies[0].list_services_response.service.map((service: { name: string }) => service.name)).toContain('strata.v1.FeatureService');
    expect(replies[1].file_descriptor_response.file_descriptor_proto.length).toBeGreaterThan(0);
  });

  it('answers UNIMPLEMENTED, not UNKNOWN, for a method it does not have', async () => {
    const error = await strata.grpc.call('NoSuchMethod', 'ListFeatureViewsRequest', 'ListFeatureViewsResponse', {}).catch((failed: grpc.ServiceError) => failed);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
    // The port keeps serving both halves after it.
    expect(await strata.grpc.listFeatureViews()).toHaveProperty('feature_views');
  });
});

describe('a Unix domain socket for sidecar use', () => {
  it('serves the same API on the socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-sock-'));
    const socket = join(dir, 'strata.sock');
    const sidecar = await startTestServer({ 'unix-socket': socket });
    try {
      const client = new StrataGrpcClient(`unix:${socket}`);
      const listing = await client.listFeatureViews();
      expect((listing.feature_views as unknown[]).length).toBe(4);
      client.close();
    } finally {
      await sidecar.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
