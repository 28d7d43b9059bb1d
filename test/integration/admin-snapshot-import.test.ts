import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type Json, type TestServer } from '../support/strata.js';

const scratch = mkdtempSync(join(tmpdir(), 'strata-admin-import-'));
const files = mkdtempSync(join(scratch, 'files-'));
const ADMIN_REGISTRY = join(scratch, 'registry.yaml');
writeFileSync(
  ADMIN_REGISTRY,
  `entities:
  card: { join_key: card_id }
feature_views:
  card_daily:
    entities: [card]
    ttl: 0
    source:
      type: batch
      audit: { min_rows: 2, max_null_rate: { avg_ticket: 0.5 } }
    features:
      avg_ticket: double
      segment: string
  card_profile:
    entities: [card]
    ttl: 0
    source: { type: push }
    features:
      credit_limit: double
`,
);
const NOW = Date.now();
const CARDS = ['card-0', 'card-1', 'card-7', 'card-99', 'card-never'];

/** An NDJSON snapshot of `count` cards in `dir`; version `version` is in every value. */
function snapshot(name: string, count: number, version: number, change: (row: Json, index: number) => Json = (row) => row): string {
  const lines: string[] = [];
  for (let index = 0; index < count; index++) {
    lines.push(JSON.stringify(change({ card_id: `card-${index}`, event_timestamp: NOW - 60_000 + version, avg_ticket: index + version / 10, segment: `seg-${version}` }, index)));
  }
  writeFileSync(join(files, name), `${lines.join('\n')}\n`);
  return name;
}

/** What the server answers for CARDS: per feature, values and statuses. */
async function served(server: TestServer): Promise<Record<string, { values: unknown[]; statuses: string[] }>> {
  const { status, json } = await server.http('/get-online-features', { features: ['card_daily:avg_ticket', 'card_daily:segment'], entities: { card_id: CARDS } });
  expect(status).toBe(200);
  const names = (json.metadata as { feature_names: string[] }).feature_names;
  const results = json.results as { values: unknown[]; statuses: string[] }[];
  return Object.fromEntries(names.slice(1).map((name, index) => [name, { values: results[index + 1]!.values, statuses: results[index + 1]!.statuses }]));
}

const segments = async (server: TestServer): Promise<unknown[]> => (await served(server)).segment!.values;

describe('snapshot import over the admin API (one process)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ registry: ADMIN_REGISTRY, 'server-files-dir': files });
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('imports over gRPC with progress then the report, and over HTTP; reads switch to the new generation at publish, never to a cached record of the old one', async () => {
    expect(await segments(server)).toEqual([null, null, null, null, null]);

    const { messages, error } = await server.grpc.importSnapshot({ view: 'card_daily', files: [snapshot('v1.ndjson', 100, 1)] });
    expect(error).toBeUndefined();
    const progress = messages.filter((message) => message.kind === 'progress').map((message) => message.progress as Json);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatchObject({ rows: 100, file: join(files, 'v1.ndjson') });
    expect(progress[0]!.rows_per_second).toBeGreaterThan(0);
    expect(messages.at(-1)).toMatchObject({ kind: 'report', report: { view: 'card_daily', generation: 1, published: true, rows: 100, entities: 100, files: [{ path: join(files, 'v1.ndjson'), rows: 100 }] } });
    expect(await segments(server)).toEqual(['seg-1', 'seg-1', 'seg-1', 'seg-1', null]);

    // Read again: now from L1. The next generation must not be answered from those entries.
    const l1Hits = await server.metric('strata_tier_lookups_total', { tier: 'l1', result: 'hit' });
    expect(await segments(server)).toEqual(['seg-1', 'seg-1', 'seg-1', 'seg-1', null]);
    expect(await server.metric('strata_tier_lookups_total', { tier: 'l1', result: 'hit' })).toBeGreaterThan(l1Hits);

    const { status, json } = await server.http('/admin/snapshot-import', { view: 'card_daily', files: [snapshot('v2.ndjson', 50, 2)] });
    expect(status).toBe(200);
    expect(json).toMatchObject({ view: 'card_daily', generation: 2, published: true, rows: 50, entities: 50, null_rates: { avg_ticket: 0, segment: 0 } });
    expect(json.duration_ms).toEqual(expect.any(Number));
    const after = await served(server);
    expect(after.segment!.values).toEqual(['seg-2', 'seg-2', 'seg-2', null, null]);
    expect(after.avg_ticket!.values).toEqual([0.2, 1.2, 7.2, null, null]);
  });

  it('keeps answering from the old generation while an import runs, and refuses a second import of the view meanwhile', async () => {
    await server.http('/admin/snapshot-import', { view: 'card_daily', files: [snapshot('base.ndjson', 100, 3)] });
    const before = await served(server);
    const big = snapshot('big.ndjson', 120_000, 4);
    let duringRead: Promise<unknown> | undefined;
    let duringImport: Promise<{ status: number; json: Json }> | undefined;
    const running = server.grpc.importSnapshot({ view: 'card_daily', files: [big] }, (message) => {
      if (message.kind !== 'progress' || duringRead !== undefined) return;
      duringRead = served(server);
      duringImport = server.http('/admin/snapshot-import', { view: 'card_daily', files: ['base.ndjson'] });
    });
    const { messages, error } = await running;
    expect(error).toBeUndefined();
    expect(messages.at(-1)).toMatchObject({ report: { published: true, rows: 120_000 } });
    expect(duringRead).toBeDefined();
    expect(await duringRead).toEqual(before);
    expect(await duringImport).toMatchObject({ status: 412, json: { error: { code: 'STRATA_IMPORT_IN_PROGRESS', field: 'view' } } });
    expect(await segments(server)).toEqual(['seg-4', 'seg-4', 'seg-4', 'seg-4', null]);
  });

  it('leaves every answer as it was when the audit fails or a file is bad, and says why (HTTP 400 / INVALID_ARGUMENT with the report)', async () => {
    await server.http('/admin/snapshot-import', { view: 'card_daily', files: [snapshot('good.ndjson', 100, 5)] });
    const before = await served(server);

    const nulls = snapshot('nulls.ndjson', 100, 6, (row, index) => (index % 3 === 0 ? row : { ...row, avg_ticket: null }));
    const http = await server.http('/admin/snapshot-import', { view: 'card_daily', files: [nulls] });
    expect(http.status).toBe(400);
    expect(http.json).toMatchObject({ error: { code: 'STRATA_SNAPSHOT_REJECTED', field: 'files' }, report: { view: 'card_daily', published: false, rows: 100 } });
    expect(String((http.json.report as Json).reason)).toMatch(/feature avg_ticket: 66\.00 % of values are null/);
    expect(await served(server)).toEqual(before);

    const wrongType = snapshot('wrong-type.ndjson', 100, 7, (row, index) => (index === 17 ? { ...row, avg_ticket: 'lots' } : row));
    const { messages, error } = await server.grpc.importSnapshot({ view: 'card_daily', files: [wrongType] });
    expect(error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error?.metadata.get('strata-error-code')).toEqual(['STRATA_SNAPSHOT_REJECTED']);
    expect(messages.at(-1)).toMatchObject({ kind: 'report', report: { published: false } });
    expect(String((messages.at(-1)!.report as Json).reason)).toMatch(/wrong-type\.ndjson:row 17 column avg_ticket/);

    const missing = await server.http('/admin/snapshot-import', { view: 'card_daily', files: ['missing.ndjson'] });
    expect(missing).toMatchObject({ status: 400, json: { error: { code: 'STRATA_SNAPSHOT_REJECTED' }, report: { published: false } } });
    expect(await served(server)).toEqual(before);
  });

  it('refuses files outside --server-files-dir, unknown and non-batch views, naming the field', async () => {
    const outside = join(scratch, 'outside.ndjson');
    writeFileSync(outside, '');
    const refusals: [Json, number, string, string][] = [
      [{ view: 'card_daily', files: ['good.ndjson', outside] }, 400, 'STRATA_PATH_OUTSIDE_FILES_DIR', 'files[1]'],
      [{ view: 'card_daily', files: ['../outside.ndjson'] }, 400, 'STRATA_PATH_OUTSIDE_FILES_DIR', 'files[0]'],
      [{ view: 'card_daily', files: [] }, 400, 'STRATA_MALFORMED_REQUEST', 'files'],
      [{ view: 'nope', files: ['good.ndjson'] }, 400, 'STRATA_UNKNOWN_FEATURE_VIEW', 'view'],
      [{ view: 'card_profile', files: ['good.ndjson'] }, 400, 'STRATA_NOT_A_BATCH_VIEW', 'view'],
      [{ view: 'card_daily', files: 'good.ndjson' }, 400, 'STRATA_MALFORMED_REQUEST', 'files'],
    ];
    for (const [body, status, code, field] of refusals) {
      expect(await server.http('/admin/snapshot-import', body), JSON.stringify(body)).toMatchObject({ status, json: { error: { code, field } } });
    }
    const { messages, error } = await server.grpc.importSnapshot({ view: 'card_daily', files: [outside] });
    expect(messages).toEqual([]);
    expect(error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(error?.metadata.get('strata-error-field')).toEqual(['files[0]']);
  });

  it('refuses a cutoff that is not a timestamp with INVALID_ARGUMENT / 400 naming cutoff, and records the gRPC call', async () => {
    const file = snapshot('cutoff.ndjson', 10, 8);
    const refusedCalls = () => server.metric('strata_request_duration_seconds_count', { protocol: 'grpc', method: 'ImportSnapshot', code: 'INVALID_ARGUMENT' });
    const before = await refusedCalls();
    const badCutoffs = [
      { seconds: 1_700_000_000, nanos: -1 },
      { seconds: '9999999999999', nanos: 0 },
    ];
    for (const cutoff of badCutoffs) {
      const { messages, error } = await server.grpc.importSnapshot({ view: 'card_daily', files: [file], cutoff });
      expect(messages).toEqual([]);
      expect(error?.code, JSON.stringify(cutoff)).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error?.metadata.get('strata-error-code')).toEqual(['STRATA_BAD_TIMESTAMP']);
      expect(error?.metadata.get('strata-error-field')).toEqual(['cutoff']);
    }
    expect(await refusedCalls()).toBe(before + badCutoffs.length);

    const http = await server.http('/admin/snapshot-import', { view: 'card_daily', files: [file], cutoff: 'yesterday' });
    expect(http).toMatchObject({ status: 400, json: { error: { code: 'STRATA_BAD_TIMESTAMP', field: 'cutoff' } } });
  });

  it('refuses every server-side path when started without --server-files-dir', async () => {
    const closed = await startTestServer({ registry: ADMIN_REGISTRY });
    try {
      const { status, json } = await closed.http('/admin/snapshot-import', { view: 'card_daily', files: [join(files, 'good.ndjson')] });
      expect(status).toBe(412);
      expect(json).toMatchObject({ error: { code: 'STRATA_SERVER_FILES_DISABLED', field: 'files[0]' } });
    } finally {
      await closed.stop();
    }
  });
});
