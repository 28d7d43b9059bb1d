/**
 * L1 hit rate under Zipf, with and without admission: the loadtest's
 * zipf-1x50-redis shape (1M entities, Zipf s = 0.99, L1 room for 10 % of
 * them) replayed against LruMemoryTier (TinyLFU admission) and, as the
 * baseline in the same run, a plain lru-cache of the same byte budget and
 * entry accounting. BENCH_ENTITIES (1,000,000), BENCH_READS (3,000,000;
 * the first third warms up), BENCH_L1_SHARE (0.1). Deterministic: seeded.
 *
 *   npm run bench:l1
 */
import { LRUCache } from 'lru-cache';
import { keySampler } from '../loadtest/key-distribution.js';
import { LruMemoryTier } from '../src/cache/lru-memory-tier.js';
import type { Cached } from '../src/cache/tiers.js';
import { Metrics } from '../src/observability/metrics.js';
import { recordKey, recordKeyPrefix } from '../src/storage/keys.js';
import { encodeRecord, FeatureRecord } from '../src/storage/record.js';

const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 1_000_000);
const READS = Number(process.env.BENCH_READS ?? 3_000_000);
const SHARE = Number(process.env.BENCH_L1_SHARE ?? 0.1);
const S = 0.99;

// One record stands for every entity: the hit rate depends on sizes, not contents.
const value = new Uint8Array(9).fill(7);
const record = FeatureRecord.decode(encodeRecord(1, 1, 50, [{ eventTs: 1, createdTs: 1, slots: Array.from({ length: 50 }, () => value) }]));
const prefix = recordKeyPrefix('wide_50');
const ids = Array.from({ length: ENTITIES }, (_, index) => recordKey(prefix, ['string'], [`e${index}`]).toString('latin1'));
// What L1 charges an entry (its record's bytes in a slab, objects, the entry), read off a tier holding one: the baseline's accounting too.
const alone = new LruMemoryTier({ budgetBytes: 1 << 30, maxStalenessMs: 0, metrics: new Metrics({ processMetrics: false }) });
alone.offer(ids[0]!, record);
const chargeBeyondId = alone.bytes - ids[0]!.length;
const entryBytes = (id: string): number => chargeBeyondId + id.length;
const budget = Math.round(ENTITIES * SHARE * entryBytes(ids[0]!));

/** Hit rate after the warm-up third, and CPU ns per read (the sampler's own cost included, the same on both sides). */
function replay(read: (id: string) => boolean): { hitRate: number; nsPerRead: number } {
  const sample = keySampler({ dist: 'zipf', s: S }, ENTITIES, 7);
  let hits = 0;
  const started = process.cpuUsage();
  for (let index = 0; index < READS; index++) {
    const hit = read(ids[sample()]!);
    if (index >= READS / 3 && hit) hits++;
  }
  const cpu = process.cpuUsage(started);
  return { hitRate: hits / (READS - Math.ceil(READS / 3)), nsPerRead: ((cpu.user + cpu.system) * 1000) / READS };
}

const tier = new LruMemoryTier({ budgetBytes: budget, maxStalenessMs: 0, metrics: new Metrics({ processMetrics: false }) });
const admitted = replay((id) => {
  if (tier.get(id) !== undefined) return true;
  tier.offer(id, record);
  return false;
});
const plain = new LRUCache<string, Cached>({ maxSize: budget, sizeCalculation: (_entry, id) => entryBytes(id) });
const lru = replay((id) => {
  if (plain.get(id) !== undefined) return true;
  plain.set(id, record);
  return false;
});
console.log(`bench:l1 — Zipf(${S}) over ${ENTITIES.toLocaleString('en-US')} entities, L1 room for ${(SHARE * 100).toFixed(0)} % (${(budget / 2 ** 20).toFixed(0)} MiB), ${READS.toLocaleString('en-US')} reads`);
console.log(`  plain LRU (baseline)   ${(lru.hitRate * 100).toFixed(1)} % hits, ${lru.nsPerRead.toFixed(0)} CPU ns per read`);
console.log(`  L1 with admission      ${(admitted.hitRate * 100).toFixed(1)} % hits (${((admitted.hitRate - lru.hitRate) * 100).toFixed(1)} points), ${admitted.nsPerRead.toFixed(0)} CPU ns per read`);
