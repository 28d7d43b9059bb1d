import { Redis } from 'ioredis';
import type { Registry } from '../config/registry.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RecordRef } from '../storage/feature-store.js';
import { RECORD_FORMAT } from '../storage/record.js';
import { recordRevision } from '../storage/stored-record.js';
import { asBuffer } from '../util/bytes.js';
import { withStallTolerantDeadline } from '../util/stall-tolerant-deadline.js';
import type { InvalidationListener, SharedTier } from './tiers.js';

const BLOOM_CHUNK_BYTES = 1024 * 1024;
const BLOOM_TIMEOUT_MS = 10_000;
/** put(): bloom bits per BITFIELD and records per MSET, so no single command grows without bound. */
const BITS_PER_COMMAND = 8_192;
const RECORDS_PER_COMMAND = 1_000;
/**
 * Writes, and the reads stream ingestion builds its writes on, are not held to
 * the serving read timeout: a whole step's records move in one command, and
 * giving up is not free (the step is retried, and its Kafka consumer restarts).
 */
const WRITE_TIMEOUT_MS = 5_000;
/**
 * The invalidation subscription is pinged this often and counted lost when
 * a ping goes unanswered that long: a connection that hangs without closing
 * (a partition, a paused Redis) would otherwise drop invalidations unseen
 * while L1 entries live on.
 */
const SUBSCRIPTION_PING_MS = 1_000;
/**
 * How long ioredis keeps a serving read whose caller gave up on it at the
 * read timeout: long enough never to cut one off first, short enough that a
 * hung Redis does not queue every request's MGET while it lasts.
 */
const ABANDONED_READ_LIFETIME_MS = 1_000;

export interface RedisTierOptions {
  readonly url: string;
  readonly keyPrefix: string;
  /** Serving read timeout: past it (not counting event-loop stalls, see withStallTolerantDeadline) a read is a miss and falls through to L3. */
  readonly timeoutMs: number;
  /** Lifetime of fills (records promoted from L3); written records do not expire. */
  readonly ttlMs: number;
  /** Names the shared bloom filter's geometry (BloomGate.sharedGeometry). */
  readonly bloomGeometry: string;
  readonly registry: Registry;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * L2 on Redis (ioredis): record bytes under `prefix + 'r' + record format +
 * ':' + view schema fingerprint + ':' + record key`. Format and fingerprint in
 * the key mean replicas running another version or registry never read each
 * other's record layouts. Reads are one
 * MGET per request; no command is queued while disconnected
 * (enableOfflineQueue: false) and none is waited for past `timeoutMs`, so a
 * slow or dead Redis costs a request at most that long, then L3 answers. Writes
 * (and the reads ingestion writes on) go over a second connection with a
 * longer timeout, off the request path. ioredis reconnects by itself; a Redis
 * down at start is a logged warning.
 */
export class RedisSharedTier implements SharedTier {
  private readonly client: Redis;
  /** Writes and getManyForWrite, in order, with WRITE_TIMEOUT_MS. */
  private readonly writer: Redis;
  private readonly prefixes = new Map<string, Buffer>();
  private readonly bloomKey: string;
  /**
   * Bumped with every change to the bloom bits, in the same transaction: a
   * replica fetches the bits again only when it moved. The whole bit string
   * every --bloom-sync was 1.4 MB a second per replica at the default
   * capacity (a 2-4 ms block of the serving thread each time, the loadtest's
   * profile), and grows with --bloom-capacity.
   */
  private readonly bloomVersionKey: string;
  /** The version the last fetch read; forgotten on every (re)connection, since a restarted Redis counts from 0 again. */
  private fetchedBloomVersion: string | undefined;
  private bloomClient: Redis | undefined;
  private subscriber: Redis | undefined;
  private subscriptionPing: NodeJS.Timeout | undefined;
  private readonly invalidationChannel: string;
  private readonly ttlMs: number;
  private readonly readTimeoutMs: number;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private lastWarning = 0;

  constructor(options: RedisTierOptions) {
    this.ttlMs = options.ttlMs;
    this.readTimeoutMs = options.timeoutMs;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.bloomKey = `${options.keyPrefix}bloom:${options.bloomGeometry}`;
    this.bloomVersionKey = `${this.bloomKey}:version`;
    this.invalidationChannel = `${options.keyPrefix}written:r${RECORD_FORMAT}`;
    for (const view of options.registry.views.values()) {
      // Record format and schema in the key: processes that would lay out a record differently never share it.
      this.prefixes.set(view.name, Buffer.from(`${options.keyPrefix}r${RECORD_FORMAT}:${view.schemaFingerprint.toString(16).padStart(8, '0')}:`, 'latin1'));
    }
    this.client = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(ABANDONED_READ_LIFETIME_MS, options.timeoutMs),
      connectTimeout: Math.max(1_000, options.timeoutMs),
      // Off for serving reads: every read is already one MGET for all of a request's keys, and
      // ioredis's auto-pipelining left ~1.2 KB of each command's objects to survive young-generation
      // GCs (one MGET of a 1.3 KB value, 2000/s, --trace-gc-nvp: 1.24-1.30 KB promoted per command,
      // 175 B without; ~12 us less CPU per command without). Loadtest zipf-1x50-redis (--quick):
      // 4.7 -> 0.7-0.9 MB/s promoted, scavenges 1.7 -> 0.8 ms. The writer keeps it (below).
      enableAutoPipelining: false,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
      lazyConnect: false,
    });
    this.client.on('ready', () => {
      this.fetchedBloomVersion = undefined;
      this.metrics.l2Up.set(1);
      this.logger.info('l2 redis ready', { url: redact(options.url) });
    });
    this.client.on('close', () => this.metrics.l2Up.set(0));
    this.client.on('error', (error: Error) => this.warn('l2 redis error; reads fall through to L3', error));
    // Queued until connected (writes are only attempted while the main connection is ready), each bounded by its timeout.
    // Auto-pipelined: concurrent stream steps' MGETs and MULTIs share socket writes. bench:ingest's
    // full L1+L2+L3 path, four alternating pairs: 35.2/35.0/32.0/31.4k events per CPU-second with
    // it, 30.7/32.2/31.6/34.2k without (~5 %).
    this.writer = this.client.duplicate({ commandTimeout: Math.max(options.timeoutMs, WRITE_TIMEOUT_MS), enableOfflineQueue: true, enableAutoPipelining: true });
    this.writer.on('error', (error: Error) => this.warn('l2 redis write connection error', error));
    this.metrics.l2Up.set(0);
  }

  get ready(): boolean {
    return this.client.status === 'ready';
  }

  private warn(message: string, error: Error): void {
    // A dead Redis fails every request; one line per 5 s is enough to tell.
    const now = Date.now();
    if (now - this.lastWarning < 5_000) return;
    this.lastWarning = now;
    this.logger.warn(message, { error: error.message });
  }

  private redisKey(ref: RecordRef): Buffer {
    return Buffer.concat([this.prefixes.get(ref.view.name)!, ref.key]);
  }

  getMany(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[] | undefined> {
    return this.mget(this.client, refs, this.readTimeoutMs);
  }

  getManyForWrite(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[] | undefined> {
    return this.mget(this.writer, refs);
  }

  /** `deadlineMs`: how long the caller waits before counting the read failed (else the connection's command timeout decides). */
  private mget(connection: Redis, refs: readonly RecordRef[], deadlineMs?: number): Promise<(Uint8Array | undefined)[] | undefined> {
    if (refs.length === 0) return Promise.resolve([]);
    if (!this.ready) {
      this.metrics.countTier('l2', 'error', refs.length);
      return Promise.resolve(undefined);
    }
    let failed = false;
    const fail = (error: Error): undefined => {
      // Once: a read given up on at the deadline may still fail later, at the connection's command timeout.
      if (failed) return undefined;
      failed = true;
      this.metrics.countTier('l2', 'error', refs.length);
      this.warn('l2 read failed; falling through to L3', error);
      return undefined;
    };
    const reply = connection.mgetBuffer(...refs.map((ref) => this.redisKey(ref))).then((values) => values.map((value) => value ?? undefined), fail);
    if (deadlineMs === undefined) return reply;
    return withStallTolerantDeadline(reply, deadlineMs, () => fail(new Error(`no reply within ${deadlineMs} ms`)));
  }

  fill(refs: readonly RecordRef[], records: readonly Uint8Array[]): void {
    if (!this.ready || refs.length === 0) return;
    const pipeline = this.client.pipeline();
    refs.forEach((ref, index) => pipeline.set(this.redisKey(ref), asBuffer(records[index]!), 'PX', this.ttlMs, 'NX'));
    pipeline.exec().catch((error: Error) => this.warn('l2 fill failed', error));
  }

  discard(refs: readonly RecordRef[]): void {
    if (!this.ready || refs.length === 0) return;
    this.client.del(...refs.map((ref) => this.redisKey(ref))).catch((error: Error) => this.warn('l2 discard failed', error));
  }

  async put(refs: readonly RecordRef[], records: readonly Uint8Array[], bloomOffsets: readonly number[]): Promise<boolean> {
    if (refs.length === 0) return true;
    if (!this.ready) return false;
    try {
      // One transaction: a writer that dies mid-way leaves no record without its invalidation, which
      // replicas' L1 entries, living as long as the subscription does, would otherwise never get.
      const pipeline = this.writer.multi();
      // Bloom bits first: a replica that can read the record must also pass the gate for it. A few
      // commands, not one per bit and per record: BITFIELD SET u1 sets the bits SETBIT would (same bit
      // order), MSET writes what SET would; a 2,000-record ingest step was 16,000 commands.
      for (let start = 0; start < bloomOffsets.length; start += BITS_PER_COMMAND) {
        const args: (string | number)[] = [];
        for (const offset of bloomOffsets.slice(start, start + BITS_PER_COMMAND)) args.push('SET', 'u1', offset, 1);
        pipeline.call('BITFIELD', this.bloomKey, ...args);
      }
      if (bloomOffsets.length > 0) pipeline.incr(this.bloomVersionKey);
      for (let start = 0; start < refs.length; start += RECORDS_PER_COMMAND) {
        const pairs: Buffer[] = [];
        for (let index = start; index < Math.min(refs.length, start + RECORDS_PER_COMMAND); index++) pairs.push(this.redisKey(refs[index]!), asBuffer(records[index]!));
        pipeline.mset(...pairs);
      }
      // After the records, in the same pipeline: a replica told of a write can already read it.
      pipeline.publish(this.invalidationChannel, encodeInvalidations(refs, records));
      const results = await pipeline.exec();
      const failed = results?.find(([error]) => error !== null);
      if (failed) throw failed[0]!;
      return true;
    } catch (error) {
      this.warn('l2 write-through failed; it will be retried from L3', error as Error);
      return false;
    }
  }

  waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ready: boolean): void => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(ready);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.client.on('ready', onReady);
    });
  }

  /**
   * The shared bloom bits move on a connection of their own, in 1 MiB pieces
   * with a generous timeout: a filter sized for tens of millions of keys is
   * tens of megabytes, which must neither fail on the read timeout nor queue
   * request reads behind it.
   */
  private bloomConnection(): Redis {
    if (this.bloomClient === undefined) {
      // Queued until connected (it is created on demand, from the main connection's ready event), each command bounded by its timeout.
      this.bloomClient = this.client.duplicate({ commandTimeout: BLOOM_TIMEOUT_MS, enableAutoPipelining: false, enableOfflineQueue: true });
      this.bloomClient.on('error', (error: Error) => this.warn('l2 bloom connection error', error));
    }
    return this.bloomClient;
  }

  async fetchBloom(): Promise<Uint8Array | undefined> {
    if (!this.ready) return undefined;
    try {
      const connection = this.bloomConnection();
      // Read before the bits: a change landing between the two is fetched now and again next time, never missed.
      const [[versionError, version], [lengthError, length]] = (await connection.pipeline().get(this.bloomVersionKey).strlen(this.bloomKey).exec()) as [[Error | null, string | null], [Error | null, number]];
      if (versionError ?? lengthError) throw (versionError ?? lengthError)!;
      if (version !== null && version === this.fetchedBloomVersion) return undefined;
      if (length === 0) return undefined;
      const pipeline = connection.pipeline();
      for (let start = 0; start < length; start += BLOOM_CHUNK_BYTES) pipeline.getrangeBuffer(this.bloomKey, start, Math.min(length, start + BLOOM_CHUNK_BYTES) - 1);
      const pieces = (await pipeline.exec()) ?? [];
      const failed = pieces.find(([error]) => error !== null);
      if (failed) throw failed[0]!;
      this.fetchedBloomVersion = version ?? undefined;
      return Buffer.concat(pieces.map(([, piece]) => piece as Buffer));
    } catch (error) {
      this.warn('l2 bloom fetch failed', error as Error);
      return undefined;
    }
  }

  async mergeBloom(bits: Uint8Array): Promise<void> {
    const staging = `${this.bloomKey}:merge:${process.pid}:${Date.now()}`;
    try {
      const connection = this.bloomConnection();
      const pipeline = connection.pipeline();
      for (let start = 0; start < bits.length; start += BLOOM_CHUNK_BYTES) pipeline.setrange(staging, start, asBuffer(bits.subarray(start, start + BLOOM_CHUNK_BYTES)));
      pipeline.pexpire(staging, 60_000);
      const staged = (await pipeline.exec())?.find(([error]) => error !== null);
      if (staged) throw staged[0]!;
      await connection.multi().bitop('OR', this.bloomKey, this.bloomKey, staging).del(staging).incr(this.bloomVersionKey).exec();
    } catch (error) {
      this.warn('l2 bloom merge failed', error as Error);
    }
  }

  async runId(): Promise<string | undefined> {
    if (!this.ready) return undefined;
    try {
      return /run_id:(\w+)/.exec(await this.writer.info('server'))?.[1];
    } catch (error) {
      this.warn('l2 info failed', error as Error);
      return undefined;
    }
  }

  onReady(listener: () => void): void {
    this.client.on('ready', listener);
    if (this.ready) listener();
  }

  onInvalidation(listener: InvalidationListener): void {
    // Pub/sub needs a connection of its own. It subscribes on every (re)connection itself, so that
    // `resumed` runs once the subscription is live: messages published while it was down are lost for good.
    const subscriber = this.client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, enableAutoPipelining: false, autoResubscribe: false });
    this.subscriber = subscriber;
    let live = false;
    const lose = (): void => {
      if (!live) return;
      live = false;
      listener.lost();
    };
    subscriber.on('error', (error: Error) => this.warn('l2 invalidation subscription error', error));
    subscriber.on('close', lose);
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      try {
        decodeInvalidations(message, (key, revision) => listener.invalidate(key, revision));
      } catch (error) {
        this.warn('l2 invalidation message malformed; clearing L1', error as Error);
        listener.resumed();
      }
    });
    subscriber.on('ready', () => {
      subscriber.subscribe(this.invalidationChannel).then(
        () => {
          live = true;
          listener.resumed();
        },
        (error: Error) => {
          this.warn('l2 invalidation subscribe failed; reconnecting', error);
          subscriber.disconnect(true);
        },
      );
    });
    let pinging = false;
    this.subscriptionPing = setInterval(() => {
      if (!live || pinging) return;
      pinging = true;
      const unanswered = setTimeout(() => {
        this.logger.warn('l2 invalidation subscription unanswered; reconnecting it', { ms: SUBSCRIPTION_PING_MS });
        lose();
        subscriber.disconnect(true);
      }, SUBSCRIPTION_PING_MS);
      subscriber
        .ping()
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(unanswered);
          pinging = false;
        });
    }, SUBSCRIPTION_PING_MS);
    this.subscriptionPing.unref();
  }

  async close(): Promise<void> {
    this.client.disconnect();
    this.writer.disconnect();
    this.bloomClient?.disconnect();
    clearInterval(this.subscriptionPing);
    this.subscriber?.disconnect();
  }
}

/** An invalidation message: per written record, u16 key length, key bytes, f64 revision. */
function encodeInvalidations(refs: readonly RecordRef[], records: readonly Uint8Array[]): Buffer {
  const message = Buffer.allocUnsafe(refs.reduce((size, ref) => size + 10 + ref.key.length, 0));
  let at = 0;
  refs.forEach((ref, index) => {
    at = message.writeUInt16BE(ref.key.length, at);
    at += ref.key.copy(message, at);
    at = message.writeDoubleBE(recordRevision(records[index]!), at);
  });
  return message;
}

function decodeInvalidations(message: Buffer, invalidate: (key: Buffer, revision: number) => void): void {
  let at = 0;
  while (at < message.length) {
    const length = message.readUInt16BE(at);
    const key = message.subarray(at + 2, at + 2 + length);
    const revision = message.readDoubleBE(at + 2 + length);
    at += 10 + length;
    invalidate(key, revision);
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
