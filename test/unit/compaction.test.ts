import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateAt } from '../../src/aggregation/window-evaluator.js';
import { loadRegistry } from '../../src/config/registry.js';
import { compactRecord } from '../../src/storage/compaction.js';
import { encodeEventLog, EventLog, type LoggedEvent } from '../../src/storage/event-log.js';
import { generationPrefix, recordKey, recordKeyPrefix } from '../../src/storage/keys.js';
import { encodeRecord, FeatureRecord, type Version } from '../../src/storage/record.js';
import { encodeTypedValue } from '../../src/values/value-codec.js';

const HOUR = 3_600_000;
const scratch = mkdtempSync(join(tmpdir(), 'strata-compaction-unit-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const file = join(scratch, 'registry.yaml');
writeFileSync(
  file,
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
  card_geo:
    entities: [card]
    ttl: 0
    source: { type: stream, topic: txn, format: json, key: card_id, timestamp_field: ts }
    aggregations:
      n_30m:            { fn: count, window: 30m }
      last_atm_country: { fn: last, field: country, where: { category: [atm] } }
      first_country:    { fn: first, field: country }
  card_limit:
    entities: [card]
    ttl: 0
    source: { type: push }
    batch: {}
    features:
      limit: double
`,
);
const registry = loadRegistry(file);
const NOW = 1_800_000_000_000 - (1_800_000_000_000 % HOUR);
const limits = { retentionMs: HOUR, maxVersions: 3, maxEvents: 1_000 };

/** One version per hour over the last `hours` hours, newest first. */
function hourly(hours: number, columns: number): Version[] {
  return Array.from({ length: hours }, (_, index) => ({ eventTs: NOW - index * HOUR, createdTs: NOW, slots: Array.from({ length: columns }, () => encodeTypedValue({ type: 'double', value: index })) }));
}

const eventTimes = (bytes: Uint8Array): number[] => FeatureRecord.decode(bytes).versions().map((version) => version.eventTs);

describe('compactRecord on a snapshot', () => {
  it('keeps a stream view\'s tiles for retention plus its longest tiled window, whatever --max-versions says', () => {
    const view = registry.views.get('card_spend')!;
    const batch = view.batch!;
    const bytes = encodeRecord(batch.fingerprint, 7, batch.storedColumns.length, hourly(24 * 5, batch.storedColumns.length));
    const compaction = compactRecord(view, recordKey(generationPrefix('card_spend', 1), ['string'], ['a']), bytes, NOW, limits);
    expect(compaction.action).toBe('rewrite');
    const kept = eventTimes((compaction as { bytes: Uint8Array }).bytes);
    // Every tile end from the horizon (now − 1h − 2d) on, and the newest one before it.
    expect(kept.at(-1)).toBe(NOW - HOUR - 48 * HOUR - HOUR);
    expect(kept).toHaveLength(51);
    expect(FeatureRecord.decode((compaction as { bytes: Uint8Array }).bytes).revision).toBe(7);
  });

  it('keeps a push view\'s snapshot records as its pushed ones: retention and --max-versions', () => {
    const view = registry.views.get('card_limit')!;
    const bytes = encodeRecord(view.batch!.fingerprint, 7, 1, hourly(10, 1));
    const compaction = compactRecord(view, recordKey(generationPrefix('card_limit', 1), ['string'], ['a']), bytes, NOW, limits);
    expect(eventTimes((compaction as { bytes: Uint8Array }).bytes)).toEqual([NOW, NOW - HOUR, NOW - 2 * HOUR]);
    // The pushed record of the same view, under the view's own prefix, is compacted alike.
    const pushed = compactRecord(view, recordKey(recordKeyPrefix('card_limit'), ['string'], ['a']), encodeRecord(view.schemaFingerprint, 7, 1, hourly(10, 1)), NOW, limits);
    expect(eventTimes((pushed as { bytes: Uint8Array }).bytes)).toEqual([NOW, NOW - HOUR, NOW - 2 * HOUR]);
  });

  it('leaves a record holding nothing past retention alone', () => {
    const view = registry.views.get('card_limit')!;
    expect(compactRecord(view, recordKey(recordKeyPrefix('card_limit'), ['string'], ['a']), encodeRecord(view.schemaFingerprint, 7, 1, hourly(2, 1)), NOW, limits)).toEqual({ action: 'keep' });
  });
});

describe('compactRecord on an event log', () => {
  const view = registry.views.get('card_geo')!;
  const key = recordKey(recordKeyPrefix('card_geo'), ['string'], ['a']);
  // The horizon is now − 1 h − 30 min. Before it: event 0, the first country, the last atm one, the newest event, and one event none of them reads.
  const events = (layout: readonly string[]): LoggedEvent[] =>
    [
      { at: -5 * HOUR, category: 'online', country: null },
      { at: -4 * HOUR, category: 'grocery', country: 'DE' },
      { at: -3 * HOUR, category: 'atm', country: 'BR' },
      { at: -2.5 * HOUR, category: 'online', country: null },
      { at: -2 * HOUR, category: 'online', country: null },
      { at: -HOUR / 6, category: 'online', country: 'US' },
    ].map((event) => ({ ts: NOW + event.at, values: layout.map((column) => (column === 'country' ? event.country : column === 'category' ? event.category : null)) }));
  const unread = (list: LoggedEvent[]): LoggedEvent[] => list.filter((event) => event.ts !== NOW - 2.5 * HOUR);
  const read = (bytes: Uint8Array): unknown[] => {
    const results = evaluateAt(view, EventLog.decode(bytes), NOW)!.results;
    return ['last_atm_country', 'first_country'].map((name) => results[view.featuresByName.get(name)!.index]);
  };

  it.each([
    ['the view\'s own columns', ['country', 'category']],
    ['another layout (the registry changed since it was written)', ['category', 'gone', 'country']],
  ])('keeps a log whose events before the horizon are all read, and drops only the one nothing reads: %s', (_layout, layout) => {
    const pinned = encodeEventLog(7, layout, new Map(), unread(events(layout)));
    expect(compactRecord(view, key, pinned, NOW, limits)).toEqual({ action: 'keep' });
    const compaction = compactRecord(view, key, encodeEventLog(7, layout, new Map(), events(layout)), NOW, limits);
    expect(compaction.action).toBe('rewrite');
    const bytes = (compaction as { bytes: Uint8Array }).bytes;
    expect(Buffer.from(bytes).equals(Buffer.from(pinned))).toBe(true);
    expect(read(bytes)).toEqual(['BR', 'DE']);
  });
});
