import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Long from 'long';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { compileRegistry } from '../../src/config/registry.js';
import { encodeOnlineResponse, ResponseLayout } from '../../src/server/online-response.js';
import { FieldStatus, type FeatureColumn, type OnlineResult, type ViewRows } from '../../src/serving/online-reader.js';
import { planFeatures } from '../../src/serving/plan.js';
import { encodeRecord, FeatureRecord } from '../../src/storage/record.js';
import { encodeTypedValue, NULL_VALUE } from '../../src/values/value-codec.js';

const root = new protobuf.Root().loadSync(fileURLToPath(new URL('../../proto/strata/v1/feature_service.proto', import.meta.url)), { keepCase: true });
const Response = root.lookupType('strata.v1.GetOnlineFeaturesResponse');
const registry = compileRegistry(readFileSync(fileURLToPath(new URL('../fixtures/registry.yaml', import.meta.url)), 'utf8'), 'registry.yaml');

function decode(bytes: Buffer) {
  return Response.toObject(Response.decode(bytes), { longs: String, enums: String, defaults: true, oneofs: true }) as {
    metadata: { feature_names: string[] };
    results: { values: Record<string, unknown>[]; statuses: string[]; event_timestamps: { seconds: string; nanos: number }[] }[];
  };
}

describe('encodeOnlineResponse', () => {
  it('writes protobuf that decodes to the values, statuses and times of each row', () => {
    const view = registry.views.get('store_stats')!;
    const record = FeatureRecord.decode(
      encodeRecord(view.schemaFingerprint, 1, 1, [
        { eventTs: 1_700_000_000_123, createdTs: 1, slots: [encodeTypedValue({ type: 'double', value: 2.5 })] },
        { eventTs: -1_500, createdTs: 1, slots: [NULL_VALUE] },
      ]),
    );
    const rows: ViewRows = { records: [record, record, undefined], versions: Int32Array.from([0, 1, -1]) };
    const plan = planFeatures([view.featuresByName.get('revenue')!]);
    const column: FeatureColumn = { feature: plan.features[0]!, rows, statuses: Uint8Array.from([FieldStatus.PRESENT, FieldStatus.NULL_VALUE, FieldStatus.NOT_FOUND]), statusAt: 0 };
    const result: OnlineResult = { plan, rowCount: 3, joinKeys: new Map([['store_id', [Long.fromString('-9223372036854775808'), 7, Long.fromString('9223372036854775807')]]]), columns: [column], degradedViews: [] };
    const decoded = decode(encodeOnlineResponse(result, new ResponseLayout(plan, ['int64'], ['store_id', 'revenue'])));
    expect(decoded.metadata.feature_names).toEqual(['store_id', 'revenue']);
    expect(decoded.results[0]!.values.map((value) => value.int64_val)).toEqual(['-9223372036854775808', '7', '9223372036854775807']);
    expect(decoded.results[0]!.statuses).toEqual(['PRESENT', 'PRESENT', 'PRESENT']);
    expect(decoded.results[1]!.values.map((value) => value.kind ?? null)).toEqual(['double_val', null, null]);
    expect(decoded.results[1]!.values[0]!.double_val).toBe(2.5);
    expect(decoded.results[1]!.statuses).toEqual(['PRESENT', 'NULL_VALUE', 'NOT_FOUND']);
    // Pre-1970 times have negative seconds and non-negative nanos, as google.protobuf.Timestamp requires.
    expect(decoded.results[1]!.event_timestamps).toEqual([
      { seconds: '1700000000', nanos: 123_000_000 },
      { seconds: '-2', nanos: 500_000_000 },
      { seconds: '0', nanos: 0 },
    ]);
  });

  it('copies long values and strings with multi-byte characters exactly', () => {
    const view = registry.views.get('everything')!;
    const long = 'ü'.repeat(150);
    const record = FeatureRecord.decode(
      encodeRecord(view.schemaFingerprint, 1, view.features.length, [
        { eventTs: 5_000, createdTs: 1, slots: view.features.map((feature) => (feature.name === 's' ? encodeTypedValue({ type: 'string', value: long }) : NULL_VALUE)) },
      ]),
    );
    const plan = planFeatures([view.featuresByName.get('s')!]);
    const column: FeatureColumn = { feature: plan.features[0]!, rows: { records: [record], versions: Int32Array.of(0) }, statuses: Uint8Array.of(FieldStatus.PRESENT), statusAt: 0 };
    const decoded = decode(encodeOnlineResponse({ plan, rowCount: 1, joinKeys: new Map([['user_id', ['ünïcode']]]), columns: [column], degradedViews: [] }, new ResponseLayout(plan, ['string'], ['user_id', 'everything__s'])));
    expect(decoded.results[0]!.values[0]!.string_val).toBe('ünïcode');
    expect(decoded.results[1]!.values[0]!.string_val).toBe(long);
    expect(decoded.results[1]!.event_timestamps[0]).toEqual({ seconds: '5', nanos: 0 });
  });

  it('gives a value whose feature is absent from its version no event time, and its neighbours theirs', () => {
    const view = registry.views.get('card_profile')!;
    const [first, second] = view.features;
    // Version 0 of `older` predates the second feature: its slot is absent.
    const older = FeatureRecord.decode(encodeRecord(view.schemaFingerprint, 1, 2, [{ eventTs: 3_000, createdTs: 1, slots: [encodeTypedValue({ type: 'double', value: 1 }), undefined] }]));
    const newer = FeatureRecord.decode(encodeRecord(view.schemaFingerprint, 1, 2, [{ eventTs: 7_250, createdTs: 1, slots: [NULL_VALUE, encodeTypedValue({ type: 'string', value: 'PT' })] }]));
    const plan = planFeatures([first!, second!]);
    const rows: ViewRows = { records: [older, newer, undefined], versions: Int32Array.from([0, 0, -1]) };
    // One status array for the result, each column's rows after the previous column's, as OnlineReader lays them out.
    const statuses = Uint8Array.from([FieldStatus.PRESENT, FieldStatus.NULL_VALUE, FieldStatus.NOT_FOUND, FieldStatus.NOT_FOUND, FieldStatus.PRESENT, FieldStatus.NOT_FOUND]);
    const columns: FeatureColumn[] = [
      { feature: first!, rows, statuses, statusAt: 0 },
      { feature: second!, rows, statuses, statusAt: 3 },
    ];
    const result: OnlineResult = { plan, rowCount: 3, joinKeys: new Map([['card_id', ['a', 'b', 'c']]]), columns, degradedViews: [] };
    const decoded = decode(encodeOnlineResponse(result, new ResponseLayout(plan, ['string'], ['card_id', first!.name, second!.name])));
    const times = [{ seconds: '3', nanos: 0 }, { seconds: '7', nanos: 250_000_000 }, { seconds: '0', nanos: 0 }];
    expect(decoded.results[1]!.event_timestamps).toEqual(times);
    expect(decoded.results[2]!.event_timestamps).toEqual([{ seconds: '0', nanos: 0 }, times[1], { seconds: '0', nanos: 0 }]);
    expect(decoded.results[2]!.values.map((value) => value.string_val ?? null)).toEqual([null, 'PT', null]);
    expect(decoded.results[1]!.statuses).toEqual(['PRESENT', 'NULL_VALUE', 'NOT_FOUND']);
    expect(decoded.results[2]!.statuses).toEqual(['NOT_FOUND', 'PRESENT', 'NOT_FOUND']);
  });

  it('encodes a request with no rows', () => {
    const plan = planFeatures([registry.featuresByRef.get('card_profile:credit_limit')!]);
    const rows: ViewRows = { records: [], versions: new Int32Array(0) };
    const decoded = decode(encodeOnlineResponse({ plan, rowCount: 0, joinKeys: new Map([['card_id', []]]), columns: [{ feature: plan.features[0]!, rows, statuses: new Uint8Array(0), statusAt: 0 }], degradedViews: [] }, new ResponseLayout(plan, ['string'], ['card_id', 'credit_limit'])));
    expect(decoded.results.map((result) => result.values.length)).toEqual([0, 0]);
  });
});
