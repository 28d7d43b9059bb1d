/**
 * Prometheus metrics (prom-client), one registry per server instance so tests
 * can run several servers in one process. Modules at every layer take the
 * `Metrics` object they are handed; none creates metrics of its own. With
 * --workers, a scrape sums the workers' metrics (cluster-metrics.ts) unless a
 * metric names another aggregator.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Tier = 'l1' | 'l2' | 'l3';
type TierResult = 'hit' | 'miss' | 'error';
const TIERS: readonly Tier[] = ['l1', 'l2', 'l3'];
const TIER_RESULTS: readonly TierResult[] = ['hit', 'miss', 'error'];

export class Metrics {
  readonly registry = new Registry();

  readonly requestSeconds = new Histogram({
    name: 'strata_request_duration_seconds',
    help: 'Latency of each RPC and HTTP route, by protocol, method and outcome code.',
    labelNames: ['protocol', 'method', 'code'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /**
   * Tier lookups not yet added to tierLookups, by tier × result. Reads count
   * here and the counter takes them on scrape: a labelled prom-client inc
   * hashes its labels, ~1 µs per call on the bench machine, two or three calls
   * per read.
   */
  private readonly uncollectedTierLookups = new Float64Array(TIERS.length * TIER_RESULTS.length);

  readonly tierLookups = new Counter({
    name: 'strata_tier_lookups_total',
    help: 'Record lookups per cache/store tier and result (hit, miss, error).',
    labelNames: ['tier', 'result'] as const,
    registers: [this.registry],
    collect: () => this.collectTierLookups(),
  });

  readonly bloomNegatives = new Counter({
    name: 'strata_bloom_negatives_total',
    help: 'Lookups answered NOT_FOUND by the bloom gate without touching L2 or L3.',
    registers: [this.registry],
  });

  readonly bloomKeys = new Gauge({
    name: 'strata_bloom_keys',
    help: 'Keys added to the bloom gate.',
    // With --workers every gate holds every key: the cluster figure is the largest, not the sum.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly l1Bytes = new Gauge({
    name: 'strata_l1_bytes',
    help: 'Bytes held by the L1 cache (its accounting of records, keys and entry overhead).',
    registers: [this.registry],
  });

  readonly l1Entries = new Gauge({
    name: 'strata_l1_entries',
    help: 'Entries in the L1 cache.',
    registers: [this.registry],
  });

  readonly l1Refused = new Counter({
    name: 'strata_l1_admissions_refused_total',
    help: 'Records read from L2 or L3 that L1 did not take in: asked for less often lately than the entry they would have evicted.',
    registers: [this.registry],
  });

  readonly l2Up = new Gauge({
    name: 'strata_l2_up',
    help: '1 when the L2 Redis connection is ready, else 0.',
    // With --workers: 1 only when every worker is connected.
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly l2RepublishDropped = new Counter({
    name: 'strata_l2_republish_dropped_total',
    help: 'Keys whose failed L2 write-through could not be queued for re-publishing (backlog full).',
    registers: [this.registry],
  });

  readonly rowsWritten = new Counter({
    name: 'strata_rows_written_total',
    help: 'Feature rows written, per view.',
    labelNames: ['view'] as const,
    registers: [this.registry],
  });

  readonly ingestEvents = new Counter({
    name: 'strata_ingest_events_total',
    help: 'Stream events by topic and outcome: applied (replays an entity already has are skipped in the merge), dead_lettered, late_rejected (pushed events past the watermark).',
    labelNames: ['topic', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly deadLetters = new Counter({
    name: 'strata_dead_letters_total',
    help: 'Events written to <topic>.dlq, by topic and reason.',
    labelNames: ['topic', 'reason'] as const,
    registers: [this.registry],
  });

  /** Newest event time applied per stream view (ms), for the freshness gauge. */
  private readonly newestApplied = new Map<string, number>();

  readonly streamFreshness = new Gauge({
    name: 'strata_stream_freshness_seconds',
    help: 'Per stream view: now minus the newest event time applied by this process (grows while nothing arrives).',
    labelNames: ['view'] as const,
    aggregator: 'min',
    registers: [this.registry],
    collect: () => {
      const now = Date.now();
      for (const [view, newest] of this.newestApplied) this.streamFreshness.set({ view }, (now - newest) / 1000);
    },
  });

  readonly consumerLag = new Gauge({
    name: 'strata_consumer_lag',
    help: 'Per topic partition this ingester consumes: messages between its position and the high watermark.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });

  readonly brokerUp = new Gauge({
    name: 'strata_kafka_up',
    help: '1 while the Kafka consumer is connected and in its group, else 0 (it retries with backoff).',
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly compactedRecords = new Counter({
    name: 'strata_compaction_records_total',
    help: 'L3 records the retention compaction sweep rewrote (history past retention dropped) or deleted (nothing left).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly compactionSweeps = new Counter({
    name: 'strata_compaction_sweeps_total',
    help: 'Retention compaction sweeps over L3 that ended.',
    registers: [this.registry],
  });

  readonly compactionSweepSeconds = new Gauge({
    name: 'strata_compaction_last_sweep_seconds',
    help: 'How long the last retention compaction sweep over L3 took.',
    // With --workers only the primary, which owns L3, sweeps.
    aggregator: 'max',
    registers: [this.registry],
  });

  constructor(options: { processMetrics: boolean }) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  observeApplied(view: string, newestEventTs: number): void {
    if (newestEventTs > (this.newestApplied.get(view) ?? -Infinity)) this.newestApplied.set(view, newestEventTs);
  }

  countTier(tier: Tier, result: TierResult, count: number): void {
    this.uncollectedTierLookups[TIERS.indexOf(tier) * TIER_RESULTS.length + TIER_RESULTS.indexOf(result)]! += count;
  }

  private collectTierLookups(): void {
    const counts = this.uncollectedTierLookups;
    for (let index = 0; index < counts.length; index++) {
      if (counts[index] === 0) continue;
      this.tierLookups.inc({ tier: TIERS[Math.floor(index / TIER_RESULTS.length)]!, result: TIER_RESULTS[index % TIER_RESULTS.length]! }, counts[index]);
      counts[index] = 0;
    }
  }
}
