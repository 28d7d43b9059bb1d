import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRegistry } from '../../src/config/registry.js';
import { compactRecord } from '../../src/storage/compaction.js';
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
