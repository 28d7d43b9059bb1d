import { ClassicLevel } from 'classic-level';
import type { Registry, ViewDef } from '../config/registry.js';
import { StrataError } from '../errors.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { asBuffer } from '../util/bytes.js';
import type { ValueType } from '../values/value-codec.js';
import { compactRecord, type CompactableStore, type CompactionBatch } from './compaction.js';
import { EVENT_LOG_FORMAT, EventLog, mergeEventLog } from './event-log.js';
import { isEventWrite, type EventWrite, type FeatureStore, type PublishedSnapshot, type RecordRef, type RecordWrite, type VersionWrite, type WrittenRecord } from './feature-store.js';
import { generationPrefix, isSnapshotKey, LAST_SWEEP_KEY, nextGenerationKey, publishedGenerationKey, RECORD_NAMESPACE, SAVED_BLOOM_GATE_KEY, SCHEMA_NAMESPACE, schemaKey, viewOfRecordKey } from './keys.js';
import type { SnapshotStore, StagedRecords } from './snapshot-store.js';
import { FeatureRecord, encodeRecord, mergeVersions, nextRevision, type Version } from './record.js';
import { recordRevision, writtenBytes } from './stored-record.js';

type SchemaFields = readonly { name: string; type: ValueType }[];

export interface LevelStoreOptions {
  readonly dataDir: string;
  readonly registry: Registry;
  readonly retentionMs: number;
  /** Most versions kept per record, whatever the retention. */
  readonly maxVersions: number;
  /** Most events kept per stream view entity, whatever the retention. */
  readonly maxEvents: number;
  /** Where the store's warnings go; stderr at warn level unless given. */
  readonly logger?: Logger;
}

/**
 * Records this store last wrote, by id, up to this many bytes: a write to a
 * key written recently merges into them without reading LevelDB back (the
 * read, its result Buffers and their garbage were ~8 % of ingestion's main
 * thread). Exact: this process alone writes its LevelDB (it holds the lock)
 * and a key's writes run one at a time. The bytes are the ones L1 holds too.
 * Event logs are kept opened as the merge wrote them, so the next merge of the
 * key reads nothing back, not even the header.
 */
const RECENT_WRITES_BYTES = 32 * 1024 ** 2;
/** Charged per remembered record beyond its bytes and id: the map entry and the record's objects. */
const RECENT_WRITE_OVERHEAD_BYTES = 200;

function recentWriteCost(id: string, record: WrittenRecord): number {
  return writtenBytes(record).byteLength + id.length + RECENT_WRITE_OVERHEAD_BYTES;
}

/**
 * The recent writes: two generations of plain Maps, each up to the budget.
 * New records go to the current one; when it is full it becomes the previous
 * one and the old previous one is dropped whole. A key found only in the
 * previous generation moves to the current one, so a key written again
 * within a budget's worth of writes stays. Cheaper per write than an LRU's
 * bookkeeping (lru-cache's set was ~2.5 % of ingestion). Each generation
 * holds a whole budget: with half each, keys fell out sooner than under the
 * LRU, and the LevelDB reads that took their place cost more than the LRU did
 * (bench:ingest part 2). The bytes are mostly L1's too; what this adds is
 * about the objects and map entries.
 */
class RecentWrites {
  private current = new Map<string, WrittenRecord>();
  private previous = new Map<string, WrittenRecord>();
  private currentBytes = 0;

  get(id: string): WrittenRecord | undefined {
    const record = this.current.get(id);
    if (record !== undefined) return record;
    const older = this.previous.get(id);
    if (older !== undefined) this.set(id, older);
    return older;
  }

  set(id: string, record: WrittenRecord): void {
    const replaced = this.current.get(id);
    if (replaced !== undefined) this.currentBytes -= recentWriteCost(id, replaced);
    else if (this.currentBytes >= RECENT_WRITES_BYTES) {
      this.previous = this.current;
      this.current = new Map();
      this.currentBytes = 0;
    }
    this.current.set(id, record);
    this.currentBytes += recentWriteCost(id, record);
  }

  delete(id: string): void {
    const record = this.current.get(id);
    if (record !== undefined) {
      this.current.delete(id);
      this.currentBytes -= recentWriteCost(id, record);
    }
    this.previous.delete(id);
  }
}

function storageError(action: string, error: unknown): StrataError {
  return new StrataError('STRATA_STORAGE_UNAVAILABLE', `L3 ${action} failed: ${(error as Error).message}`, { cause: error });
}

/**
 * A stream view's record as an event log. A versioned record there is left
 * from before the view became a stream view (the registry changed): the
 * write replaces it.
 */
function openEventLog(record: WrittenRecord | undefined): EventLog | undefined {
  if (record instanceof EventLog) return record;
  return record?.[0] === EVENT_LOG_FORMAT ? EventLog.open(record) : undefined;
}

/** Either format's revision: a replaced record's still bounds the next one from below. */
function revisionOf(record: WrittenRecord | undefined): number {
  if (record === undefined) return 0;
  return record instanceof EventLog ? record.revision : recordRevision(record);
}

/** L3 on classic-level (LevelDB). One process owns a data dir: LevelDB takes an exclusive lock. */
export class LevelStore implements FeatureStore, SnapshotStore, CompactableStore {
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly logger: Logger;
  private readonly registry: Registry;
  private readonly retentionMs: number;
  private readonly maxVersions: number;
  private readonly maxEvents: number;
  /** Per view: for each older schema fingerprint seen in this store, where each current feature sits in it (-1: absent). */
  private readonly upgrades = new Map<string, Map<number, Int32Array>>();
  /**
   * Writes are read-modify-write of whole records: a write waits for the
   * writes in flight that share a key with it (by L1 id), and no others, so
   * the writes of different partitions overlap their reads, merges and
   * commits. Each key maps to the last write of it, settled either way.
   */
  private readonly lastWriteOf = new Map<string, Promise<unknown>>();
  /** Published snapshot per view with a batch half (absent: none yet). */
  private readonly generations = new Map<string, PublishedSnapshot>();
  private readonly publishListeners: ((view: string, generation: number) => void)[] = [];
  private readonly recentWrites = new RecentWrites();
  private savedGate: Buffer | undefined;

  private constructor(options: LevelStoreOptions) {
    this.db = new ClassicLevel<Buffer, Buffer>(options.dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    this.registry = options.registry;
    this.retentionMs = options.retentionMs;
    this.maxVersions = options.maxVersions;
    this.maxEvents = options.maxEvents;
    this.logger = options.logger ?? createLogger('warn');
  }

  static async open(options: LevelStoreOptions): Promise<LevelStore> {
    const store = new LevelStore(options);
    try {
      await store.db.open();
    } catch (error) {
      const cause = (error as { cause?: Error }).cause ?? (error as Error);
      throw new StrataError('STRATA_STORAGE_UNAVAILABLE', `cannot open L3 at ${options.dataDir}: ${cause.message} (is another strata process using this data dir?)`, { cause: error });
    }
    await store.takeSavedGateFromDisk();
    await store.registerSchemas();
    await store.loadGenerations();
    return store;
  }

  /** Before anything can be written: from here on the saved gate may miss keys, until a clean close saves a new one. */
  private async takeSavedGateFromDisk(): Promise<void> {
    try {
      this.savedGate = await this.db.get(SAVED_BLOOM_GATE_KEY);
      if (this.savedGate !== undefined) await this.db.del(SAVED_BLOOM_GATE_KEY, { sync: true });
    } catch (error) {
      throw storageError('write', error);
    }
  }

  takeSavedBloomGate(): Buffer | undefined {
    const saved = this.savedGate;
    this.savedGate = undefined;
    return saved;
  }

  async saveBloomGate(bytes: Buffer): Promise<void> {
    await Promise.all(this.lastWriteOf.values());
    try {
      await this.db.put(SAVED_BLOOM_GATE_KEY, bytes, { sync: true });
    } catch (error) {
      throw storageError('write', error);
    }
  }

  /** Records the current schema of every view and learns how to upgrade records written under older ones. */
  private async registerSchemas(): Promise<void> {
    const known = new Map<string, Map<number, SchemaFields>>();
    for await (const [key, value] of this.db.iterator({ gte: Buffer.of(SCHEMA_NAMESPACE), lt: Buffer.of(SCHEMA_NAMESPACE + 1) })) {
      const view = key.subarray(1, key.length - 5).toString('utf8');
      const fingerprint = key.readUInt32BE(key.length - 4);
      if (!known.has(view)) known.set(view, new Map());
      known.get(view)!.set(fingerprint, JSON.parse(value.toString('utf8')) as SchemaFields);
    }
    const batch = this.db.batch();
    for (const view of this.registry.views.values()) {
      const current: SchemaFields = view.features.map((feature) => ({ name: feature.name, type: feature.type }));
      if (!known.get(view.name)?.has(view.schemaFingerprint)) batch.put(schemaKey(view.name, view.schemaFingerprint), Buffer.from(JSON.stringify(current)));
      const upgrades = new Map<number, Int32Array>();
      for (const [fingerprint, fields] of known.get(view.name) ?? []) {
        if (fingerprint === view.schemaFingerprint) continue;
        // A feature keeps its values across schema changes only if name and type both match.
        upgrades.set(fingerprint, Int32Array.from(current, (field) => fields.findIndex((old) => old.name === field.name && old.type === field.type)));
      }
      this.upgrades.set(view.name, upgrades);
    }
    await batch.write();
  }

  private async loadGenerations(): Promise<void> {
    const batchViews = [...this.registry.views.values()].filter((view) => view.batch !== undefined);
    const published = await this.db.getMany(batchViews.map((view) => publishedGenerationKey(view.name)));
    batchViews.forEach((view, index) => {
      const value = published[index];
      // Written before snapshots had cutoffs: 4 bytes, no cutoff.
      if (value !== undefined) this.generations.set(view.name, { generation: value.readUInt32BE(0), cutoffMs: value.length >= 12 ? value.readDoubleBE(4) : 0 });
    });
  }

  publishedGeneration(view: string): number {
    return this.generations.get(view)?.generation ?? 0;
  }

  snapshotCutoff(view: string): number {
    return this.generations.get(view)?.cutoffMs ?? 0;
  }

  async beginGeneration(view: string): Promise<number> {
    const published = this.publishedGeneration(view);
    const next = await this.db.get(nextGenerationKey(view));
    const generation = Math.max(next?.readUInt32BE(0) ?? 0, published + 1);
    if (generation >= 0xffff_ffff) throw new StrataError('STRATA_INTERNAL', `view ${view} has used every snapshot generation number`);
    const following = Buffer.alloc(4);
    following.writeUInt32BE(generation + 1);
    try {
      await this.db.put(nextGenerationKey(view), following, { sync: true });
      // What imports that never published left behind: every generation after the published one.
      await this.db.clear({ gte: generationPrefix(view, published + 1), lt: generationPrefix(view, 0xffff_ffff) });
    } catch (error) {
      throw storageError('write', error);
    }
    return generation;
  }

  async putStaged(records: StagedRecords): Promise<void> {
    const batch = this.db.batch();
    for (let index = 0; index < records.count; index++) batch.put(records.key(index), records.record(index));
    try {
      await batch.write();
    } catch (error) {
      throw storageError('write', error);
    }
  }

  async getStaged(keys: readonly Buffer[]): Promise<(Uint8Array | undefined)[]> {
    try {
      return await this.db.getMany([...keys]);
    } catch (error) {
      throw storageError('read', error);
    }
  }

  async publish(view: string, generation: number, cutoffMs = 0): Promise<void> {
    const replaced = this.publishedGeneration(view);
    const value = Buffer.alloc(12);
    value.writeUInt32BE(generation);
    value.writeDoubleBE(cutoffMs, 4);
    try {
      // Synced: an import reported published stays published across a crash.
      await this.db.put(publishedGenerationKey(view), value, { sync: true });
    } catch (error) {
      throw storageError('write', error);
    }
    this.generations.set(view, { generation, cutoffMs });
    for (const listener of this.publishListeners) listener(view, generation);
    try {
      await this.db.clear({ gte: generationPrefix(view, 0), lt: generationPrefix(view, replaced) });
      await this.db.clear({ gte: generationPrefix(view, replaced + 1), lt: generationPrefix(view, generation) });
    } catch (error) {
      // The generation serves from here on, so the import has succeeded. What stays is never
      // read (nor swept), and the view's next publish removes it: every generation below the one it replaces.
      this.logger.warn('snapshot published, but older generations could not be removed; the next publish of the view removes them', {
        view,
        generation,
        error: (error as Error).message,
      });
    }
  }

  async discard(view: string, generation: number): Promise<void> {
    try {
      await this.db.clear({ gte: generationPrefix(view, generation), lt: generationPrefix(view, generation + 1) });
    } catch (error) {
      throw storageError('write', error);
    }
  }

  onPublish(listener: (view: string, generation: number) => void): void {
    this.publishListeners.push(listener);
  }

  /** Bytes in the view's current schema; records from an older schema are re-laid out. */
  private current(view: ViewDef, bytes: Buffer): Uint8Array {
    // Event logs name their columns: they are laid out afresh when next written. A stream view's
    // other records are snapshot tiles, checked against the tile layout where they are read.
    if (bytes[0] === EVENT_LOG_FORMAT || view.source.type === 'stream' || bytes.readUInt32BE(1) === view.schemaFingerprint) return bytes;
    const record = FeatureRecord.decode(bytes);
    const mapping = this.upgrades.get(view.name)?.get(record.schema);
    const versions = record.versions().map((version): Version => ({
      eventTs: version.eventTs,
      createdTs: version.createdTs,
      slots: mapping === undefined ? view.features.map(() => undefined) : Array.from(mapping, (old) => (old < 0 ? undefined : version.slots[old])),
    }));
    return encodeRecord(view.schemaFingerprint, record.revision, view.features.length, versions);
  }

  async getRecords(refs: readonly RecordRef[]): Promise<(Uint8Array | undefined)[]> {
    if (refs.length === 0) return [];
    let values: (Buffer | undefined)[];
    try {
      values = await this.db.getMany(refs.map((ref) => ref.key));
    } catch (error) {
      throw storageError('read', error);
    }
    return values.map((bytes, index) => (bytes === undefined ? undefined : this.current(refs[index]!.view, bytes)));
  }

  applyWrites(writes: readonly RecordWrite[], nowMs: number): Promise<WrittenRecord[]> {
    const ids = writes.map((write) => write.id ?? write.key.toString('latin1'));
    return this.inKeyOrder(ids, () => this.mergeAndWrite(writes, ids, nowMs));
  }

  /** Runs `task` after the writes in flight that share a key with it, and before any later one of those keys. */
  private inKeyOrder<T>(ids: readonly string[], task: () => Promise<T>): Promise<T> {
    const before = new Set<Promise<unknown>>();
    for (const id of ids) {
      const last = this.lastWriteOf.get(id);
      if (last !== undefined) before.add(last);
    }
    const run = before.size === 0 ? task() : Promise.all(before).then(task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    for (const id of ids) this.lastWriteOf.set(id, settled);
    void settled.then(() => {
      for (const id of ids) if (this.lastWriteOf.get(id) === settled) this.lastWriteOf.delete(id);
    });
    return run;
  }

  private async mergeAndWrite(writes: readonly RecordWrite[], ids: readonly string[], nowMs: number): Promise<WrittenRecord[]> {
    const existing = await this.lastWritten(writes, ids);
    // A key may appear more than once in one call; later writes build on earlier ones.
    const pending = new Map<string, { readonly key: Buffer; record: WrittenRecord }>();
    const results: WrittenRecord[] = [];
    const batch = this.db.batch();
    writes.forEach((write, index) => {
      const id = ids[index]!;
      const earlier = pending.get(id);
      const before = earlier === undefined ? existing[index] : earlier.record;
      const record = isEventWrite(write) ? this.mergeEventWrite(write, before, nowMs) : this.mergeVersionWrite(write, before === undefined ? undefined : writtenBytes(before), nowMs);
      if (earlier === undefined) pending.set(id, { key: write.key, record });
      else earlier.record = record;
      results.push(record);
    });
    for (const { key, record } of pending.values()) batch.put(key, asBuffer(writtenBytes(record)));
    try {
      await batch.write();
    } catch (error) {
      throw storageError('write', error);
    }
    for (const [id, { record }] of pending) this.recentWrites.set(id, record);
    return results;
  }

  /** Each write's current record: from the recent writes where there, else read from LevelDB. */
  private async lastWritten(writes: readonly RecordWrite[], ids: readonly string[]): Promise<(WrittenRecord | undefined)[]> {
    const records: (WrittenRecord | undefined)[] = new Array(writes.length);
    const unknown: RecordWrite[] = [];
    const positions: number[] = [];
    for (let index = 0; index < writes.length; index++) {
      const recent = this.recentWrites.get(ids[index]!);
      if (recent !== undefined) records[index] = recent;
      else {
        unknown.push(writes[index]!);
        positions.push(index);
      }
    }
    const read = await this.getRecords(unknown);
    positions.forEach((position, index) => (records[position] = read[index]));
    return records;
  }

  /** An event log found here is left from before the view stopped being a stream view: replaced, its revision still counts. */
  private mergeVersionWrite(write: VersionWrite, before: Uint8Array | undefined, nowMs: number): Uint8Array {
    const record = before === undefined || before[0] === EVENT_LOG_FORMAT ? undefined : FeatureRecord.decode(before);
    const versions = mergeVersions(record?.versions() ?? [], write.versions, nowMs, this.retentionMs, this.maxVersions);
    return encodeRecord(write.view.schemaFingerprint, nextRevision(revisionOf(before), nowMs), write.view.features.length, versions);
  }

  private mergeEventWrite(write: EventWrite, before: WrittenRecord | undefined, nowMs: number): EventLog {
    const source = write.view.source;
    if (source.type !== 'stream') throw new StrataError('STRATA_INTERNAL', `events written to ${write.view.name}, which is not a stream view`);
    const local = openEventLog(before);
    const shared = openEventLog(write.shared);
    const base = shared !== undefined && (local === undefined || shared.revision > local.revision) ? shared : local;
    const horizon = nowMs - this.retentionMs - source.maxWindowMs;
    const revision = nextRevision(Math.max(revisionOf(before), revisionOf(write.shared)), nowMs);
    return mergeEventLog(base, source.columns, write.events, horizon, this.maxEvents, revision, source).log;
  }

  /**
   * Retention compaction (compaction.ts) of up to `limit` records after
   * `after`, read from a fresh iterator each batch (no LevelDB snapshot is
   * held across a sweep). Records that need it are re-read and rewritten in
   * their keys' write order, so a write that raced the scan is built on,
   * never overwritten; snapshot records only in their published
   * generation (staged ones belong to their import).
   */
  async compactBatch(after: Buffer | undefined, limit: number, nowMs: number): Promise<CompactionBatch> {
    const limits = { retentionMs: this.retentionMs, maxVersions: this.maxVersions, maxEvents: this.maxEvents };
    let entries: [Buffer, Buffer][];
    try {
      entries = await this.db.iterator({ ...(after === undefined ? { gte: Buffer.of(RECORD_NAMESPACE) } : { gt: after }), lt: Buffer.of(RECORD_NAMESPACE + 1), limit }).all();
    } catch (error) {
      throw storageError('read', error);
    }
    const candidates: Buffer[] = [];
    let bytesRead = 0;
    for (const [key, bytes] of entries) {
      bytesRead += bytes.length;
      const view = this.compactableView(key);
      if (view !== undefined && compactRecord(view, key, bytes, nowMs, limits).action !== 'keep') candidates.push(key);
    }
    const outcome = { rewritten: 0, deleted: 0, bytesBefore: 0, bytesAfter: 0 };
    if (candidates.length > 0) {
      const ids = candidates.map((key) => key.toString('latin1'));
      await this.inKeyOrder(ids, async () => {
        const current = await this.db.getMany(candidates);
        const batch = this.db.batch();
        candidates.forEach((key, index) => {
          const bytes = current[index];
          // Gone (a publish cleared the generation), or no longer published: nothing to do.
          const view = bytes === undefined ? undefined : this.compactableView(key);
          if (bytes === undefined || view === undefined) return;
          const compaction = compactRecord(view, key, bytes, nowMs, limits);
          if (compaction.action === 'keep') return;
          outcome.bytesBefore += bytes.length;
          if (compaction.action === 'delete') {
            batch.del(key);
            outcome.deleted++;
          } else {
            batch.put(key, asBuffer(compaction.bytes));
            outcome.bytesAfter += compaction.bytes.length;
            outcome.rewritten++;
          }
        });
        try {
          await batch.write();
        } catch (error) {
          throw storageError('write', error);
        }
        // The next write of these keys reads the compacted record back.
        for (const id of ids) this.recentWrites.delete(id);
      });
    }
    return { next: entries.length < limit ? undefined : entries[entries.length - 1]![0], scanned: entries.length, bytesRead, ...outcome };
  }

  /** What a sweep compacts for: a mark left under other settings says nothing about what is left to compact now. */
  private sweepSettings(): string {
    return `registry ${this.registry.digest}, retention ${this.retentionMs} ms, ${this.maxVersions} versions, ${this.maxEvents} events`;
  }

  async lastSweepStart(): Promise<number | undefined> {
    let mark: Buffer | undefined;
    try {
      mark = await this.db.get(LAST_SWEEP_KEY);
    } catch (error) {
      throw storageError('read', error);
    }
    if (mark === undefined || mark.length < 8 || mark.toString('utf8', 8) !== this.sweepSettings()) return undefined;
    return mark.readDoubleBE(0);
  }

  async markSwept(startedAtMs: number): Promise<void> {
    const settings = Buffer.from(this.sweepSettings(), 'utf8');
    const mark = Buffer.alloc(8 + settings.length);
    mark.writeDoubleBE(startedAtMs, 0);
    settings.copy(mark, 8);
    try {
      await this.db.put(LAST_SWEEP_KEY, mark);
    } catch (error) {
      throw storageError('write', error);
    }
  }

  /** The view of a record key the sweep may compact: known, and for a snapshot record in its published generation. */
  private compactableView(key: Buffer): ViewDef | undefined {
    const view = this.registry.views.get(viewOfRecordKey(key));
    if (view === undefined || !isSnapshotKey(key)) return view;
    const prefix = generationPrefix(view.name, this.publishedGeneration(view.name));
    return prefix.compare(key, 0, prefix.length) === 0 ? view : undefined;
  }

  /** Snapshot records count only in their published generation. */
  async *recordRefs(): AsyncIterable<RecordRef> {
    const published = new Map<string, Buffer>();
    for (const [view, { generation }] of this.generations) published.set(view, generationPrefix(view, generation));
    for await (const key of this.db.keys({ gte: Buffer.of(RECORD_NAMESPACE), lt: Buffer.of(RECORD_NAMESPACE + 1) })) {
      const view = this.registry.views.get(viewOfRecordKey(key));
      if (view === undefined) continue;
      if (isSnapshotKey(key)) {
        const prefix = published.get(view.name);
        if (prefix === undefined || prefix.compare(key, 0, prefix.length) !== 0) continue;
      }
      yield { view, key };
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.lastWriteOf.values());
    await this.db.close();
  }
}

