import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpGateway } from '../../src/server/http-gateway.js';
import { startTestServer, type TestServer } from '../support/strata.js';

// Fixed wall-clock times would fall out of the 7-day retention; anchor at a whole hour two days ago.
const BASE = Math.floor((Date.now() - 2 * 86_400_000) / 3_600_000) * 3_600_000;
const iso = (offsetMs: number): string => new Date(BASE + offsetMs).toISOString();
const H = 3_600_000;

let strata: TestServer;
beforeAll(async () => {
  strata = await startTestServer();
});
afterAll(async () => {
  await strata?.stop();
});

describe('the Feast-shaped HTTP gateway', () => {
  it('pushes columnar rows and reads them back in Feast’s response shape', async () => {
    const push = await strata.http('/push', {
      push_source_name: 'card_profile',
      df: {
        card_id: ['h1', 'h2'],
        event_timestamp: [iso(1.25 * H).replace('.000Z', 'Z'), BASE + 1.5 * H + 250],
        credit_limit: [1500.5, null],
        home_country: ['SE', 'DK'],
        account_age_days: [12, '9007199254740993'],
        is_business: [false, true],
      },
      to: 'online',
    });
    expect(push).toMatchObject({ status: 200, json: { rows_written: 2 } });

    const read = await strata.http('/get-online-features', {
      features: ['card_profile:credit_limit', 'card_profile:account_age_days', 'card_profile:home_country'],
      entities: { card_id: ['h1', 'h2', 'h3'] },
      as_of: iso(2 * H).replace('.000Z', '+00:00'),
    });
    expect(read.status).toBe(200);
    expect(read.json).toEqual({
      metadata: { feature_names: ['card_id', 'credit_limit', 'account_age_days', 'home_country'] },
      results: [
        { values: ['h1', 'h2', 'h3'], statuses: ['PRESENT', 'PRESENT', 'PRESENT'], event_timestamps: Array(3).fill('1970-01-01T00:00:00.000Z') },
        { values: [1500.5, null, null], statuses: ['PRESENT', 'NULL_VALUE', 'NOT_FOUND'], event_timestamps: [iso(1.25 * H), iso(1.5 * H + 250), '1970-01-01T00:00:00.000Z'] },
        { values: [12, 9007199254740992, null], statuses: ['PRESENT', 'PRESENT', 'NOT_FOUND'], event_timestamps: [iso(1.25 * H), iso(1.5 * H + 250), '1970-01-01T00:00:00.000Z'] },
        { values: ['SE', 'DK', null], statuses: ['PRESENT', 'PRESENT', 'NOT_FOUND'], event_timestamps: [iso(1.25 * H), iso(1.5 * H + 250), '1970-01-01T00:00:00.000Z'] },
      ],
    });
    // JSON.parse rounds beyond 2^53; the text on the wire carries the exact digits.
    expect(read.text).toContain('9007199254740993');
  });

  it('applies as_of given as epoch milliseconds or RFC 3339 with an offset', async () => {
    await strata.http('/push', {
      feature_view: 'store_stats',
      df: { store_id: [1, 1], event_timestamp: [iso(0), iso(H)], revenue: [10, 20] },
    });
    const at = async (asOf: unknown) => {
      const response = await strata.http('/get-online-features', { features: ['store_stats:revenue'], entities: { store_id: [1] }, as_of: asOf });
      return (response.json.results as { values: unknown[] }[])[1]!.values[0];
    };
    expect(await at(BASE + H - 1)).toBe(10);
    // The same instants written with a +01:00 offset.
    const plusOne = (offsetMs: number): string => new Date(BASE + offsetMs + H).toISOString().replace('Z', '+01:00');
    expect(await at(plusOne(H))).toBe(20);
    expect(await at(plusOne(H - 1))).toBe(10);
  });

  it('serves feature services with full feature names', async () => {
    await strata.http('/push', {
      push_source_name: 'card_profile',
      df: { card_id: ['svc'], event_timestamp: [Date.now()], credit_limit: [7], home_country: ['FI'], account_age_days: [1], is_business: [true] },
    });
    const response = await strata.http('/get-online-features', { feature_service: 'card_basics', entities: { card_id: ['svc'] }, full_feature_names: true });
    expect((response.json.metadata as { feature_names: string[] }).feature_names).toEqual(['card_id', 'card_profile__credit_limit', 'card_profile__home_country']);
    expect((response.json.results as { values: unknown[] }[]).map((result) => result.values[0])).toEqual(['svc', 7, 'FI']);
  });

  it('renders every value type as JSON', async () => {
    await strata.http('/push', {
      push_source_name: 'everything',
      df: { user_id: ['json'], event_timestamp: [Date.now()], i: [-5], d: ['NaN'], s: ['"quoted"'], b: [true], raw: ['AAH/'], il: [[1, '-9223372036854775808']], dl: [[0.25]], sl: [['x', 'y']] },
    });
    const response = await strata.http('/get-online-features', { features: ['everything:i', 'everything:d', 'everything:s', 'everything:b', 'everything:raw', 'everything:il', 'everything:dl', 'everything:sl'], entities: { user_id: ['json'] } });
    expect((response.json.results as { values: unknown[] }[]).slice(1).map((result) => result.values[0])).toEqual([-5, 'NaN', '"quoted"', true, 'AAH/', [1, -9223372036854776000], [0.25], ['x', 'y']]);
    expect(response.text).toContain('[1,-9223372036854775808]');
  });

  it('lists the registry, reports health and exposes Prometheus metrics', async () => {
    const views = await strata.http('/feature-views');
    expect((views.json.feature_views as { name: string }[]).map((view) => view.name)).toEqual(['card_profile', 'everything', 'user_device', 'store_stats']);
    expect(await strata.http('/health')).toMatchObject({ status: 200, json: { status: 'SERVING' } });
    const metrics = (await strata.http('/metrics')).text;
    for (const name of ['strata_request_duration_seconds_bucket', 'strata_tier_lookups_total', 'strata_bloom_negatives_total', 'strata_l1_bytes', 'strata_l1_entries', 'strata_rows_written_total']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/strata_request_duration_seconds_count\{protocol="http",method="POST \/get-online-features",code="200"\} \d+/);
    expect(await strata.metric('strata_l1_bytes')).toBeGreaterThan(0);
  });

  it('keeps listening through failed accepts, logging each (an unheard second one would end the process)', async () => {
    const gateway = new HttpGateway(strata.server.core);
    const port = await gateway.listen('127.0.0.1', 0);
    try {
      // What Node emits on the listening server when accept() fails for want of file descriptors.
      const acceptFailure = () => Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' });
      gateway.server.emit('error', acceptFailure());
      gateway.server.emit('error', acceptFailure());
      const logged = strata.logs.map((line) => JSON.parse(line) as { msg: string; level: string; error?: string }).filter((entry) => entry.msg === 'http listener error');
      expect(logged).toEqual([expect.objectContaining({ level: 'error', error: 'accept EMFILE' }), expect.objectContaining({ level: 'error', error: 'accept EMFILE' })]);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      await health.text();
    } finally {
      await gateway.close(0);
    }
  });
});
