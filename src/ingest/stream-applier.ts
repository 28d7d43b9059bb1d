/**
 * The one path by which events change stream state, whether consumed from
 * Kafka or pushed over the API: each event is checked against every view fed
 * by its topic (key, event time, stored columns), grouped by entity, and
 * written as one atomic batch through the tiers. An event valid for one view
 * and not another is rejected as a whole, so views of a topic never disagree
 * on which events they saw.
 */
import { formatDuration } from '../config/duration.js';
import type { JoinKeyType, Registry, StreamSource, ViewDef } from '../config/registry.js';
import type { TieredRecordStore } from '../cache/tiered-record-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { ColumnValue, EventOrigin, IncomingEvent } from '../storage/event-log.js';
import type { EventWrite } from '../storage/feature-store.js';
import { recordKeyLength, recordKeyPrefix, writeRecordKey } from '../storage/keys.js';
import { GroupRunner } from './group-runner.js';

/** Why an event was not applied: what `<topic>.dlq` headers and push responses say. */
export interface Rejection {
  readonly reason: 'undecodable' | 'unknown_schema' | 'invalid' | 'late';
  /** The rule broken; it names no field (a push error puts `events[i].<field>` before it, a dead letter `<field>`). */
  readonly detail: string;
  /** The event field at fault, when there is one. */
  readonly field?: string;
}

/** A rejection in one line, for a dead letter's detail header: the field at fault first. */
export function describeRejection({ field, detail }: Rejection): string {
  return field === undefined ? detail : `${field}: ${detail}`;
}

interface StreamView {
  readonly view: ViewDef;
  readonly source: StreamSource;
  readonly prefix: Buffer;
  readonly keyType: JoinKeyType;
  /** [keyType]: what the record key functions take. */
  readonly keyTypes: readonly JoinKeyType[];
}

/** The views fed by one topic, and what they share. */
interface StreamTopic {
  /** The event field holding the event time: the same for every view of the topic (the registry checks). */
  readonly timestampField: string;
  readonly maxClockSkewMs: number;
  readonly views: StreamView[];
}

/** An event checked against every view of its topic: the writes it makes, or why it cannot be applied. */
export type ExtractedEvent = { readonly ok: true; readonly ts: number; readonly parts: readonly EventPart[] } | { readonly ok: false; readonly rejection: Rejection };

interface EventPart {
  readonly view: StreamView;
  /** The entity's L1 id: the latin1 string of its record key (the key itself is built once per write, in apply). */
  readonly id: string;
  readonly values: readonly ColumnValue[];
}

const MAX_SAFE_TS = 8.64e15;

function columnValue(raw: unknown): ColumnValue {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'number' || typeof raw === 'string' || typeof raw === 'boolean') return raw;
  if (typeof raw === 'bigint') return Number(raw);
  // Records, arrays, maps: kept as their JSON text, so `last`/`first` can still return them.
  return JSON.stringify(raw);
}

export class StreamApplier {
  private readonly store: TieredRecordStore;
  private readonly metrics: Metrics;
  private readonly retentionMs: number;
  private readonly streamTopics = new Map<string, StreamTopic>();
  /** Where extract builds entity keys; grows to the longest key seen. */
  private keyScratch = Buffer.allocUnsafe(256);
  /**
   * The partitions of a fetch (and concurrent pushes) apply at the same time: their writes go to the
   * store together, one atomic write while the previous one is in flight. Fewer, larger LevelDB batches
   * and L2 round trips; each caller still resolves only once its own events are durable.
   */
  private readonly writer = new GroupRunner<{ readonly writes: readonly (EventWrite & { readonly id: string })[]; readonly nowMs: number }>(async (groups) => {
    await this.store.writeEvents(
      groups.flatMap((group) => group.writes),
      Math.max(...groups.map((group) => group.nowMs)),
    );
  });

  constructor(registry: Registry, store: TieredRecordStore, metrics: Metrics, retentionMs: number) {
    this.store = store;
    this.metrics = metrics;
    this.retentionMs = retentionMs;
    for (const view of registry.views.values()) {
      const source = view.source;
      if (source.type !== 'stream') continue;
      let streamTopic = this.streamTopics.get(source.topic);
      if (streamTopic === undefined) {
        streamTopic = { timestampField: source.timestampField, maxClockSkewMs: registry.topics.get(source.topic)!.maxClockSkewMs, views: [] };
        this.streamTopics.set(source.topic, streamTopic);
      }
      const keyType = view.entities[0]!.type;
      streamTopic.views.push({ view, source, prefix: recordKeyPrefix(view.name), keyType, keyTypes: [keyType] });
    }
  }

  /** Topics some stream view consumes. */
  get topics(): string[] {
    return [...this.streamTopics.keys()];
  }

  /** Checks a decoded event against every view of the topic; `nowMs` bounds how far in the future and past event times may be. */
  extract(topic: string, event: Record<string, unknown>, nowMs: number): ExtractedEvent {
    const streamTopic = this.streamTopics.get(topic);
    if (streamTopic === undefined) return { ok: false, rejection: { reason: 'invalid', detail: `no stream view consumes topic ${topic}` } };
    const { timestampField, maxClockSkewMs } = streamTopic;
    const ts = event[timestampField];
    if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0 || ts > MAX_SAFE_TS) {
      return reject(timestampField, `must be the event time in ms since the epoch, got ${JSON.stringify(ts) ?? 'nothing'}`);
    }
    if (ts > nowMs + maxClockSkewMs) {
      // Rounded up, so the distance never reads as within the limit it exceeds.
      const ahead = formatDuration(Math.ceil((ts - nowMs) / 1_000) * 1_000);
      return reject(
        timestampField,
        `event time ${new Date(ts).toISOString()} is ${ahead} ahead of the server's clock (${new Date(nowMs).toISOString()}), more than the topic's max_clock_skew of ${formatDuration(maxClockSkewMs)}`,
      );
    }
    const parts: EventPart[] = [];
    for (const streamView of streamTopic.views) {
      const { source, keyType } = streamView;
      if (ts < nowMs - this.retentionMs - source.maxWindowMs) {
        return reject(timestampField, `event time ${new Date(ts).toISOString()} is older than anything view ${streamView.view.name} keeps`);
      }
      const rawKey = event[source.key];
      if (keyType === 'int64') {
        if (!(typeof rawKey === 'number' && Number.isSafeInteger(rawKey)) && !(typeof rawKey === 'string' && /^-?\d{1,19}$/.test(rawKey))) {
          return reject(source.key, `must be an integer entity key, got ${JSON.stringify(rawKey) ?? 'nothing'}`);
        }
      } else if (typeof rawKey !== 'string' || rawKey.length === 0) {
        return reject(source.key, `must be a non-empty string entity key, got ${JSON.stringify(rawKey) ?? 'nothing'}`);
      }
      const values = new Array<ColumnValue>(source.columns.length);
      for (let column = 0; column < values.length; column++) values[column] = columnValue(event[source.columns[column]!]);
      parts.push({ view: streamView, id: this.entityId(streamView, rawKey), values });
    }
    return { ok: true, ts, parts };
  }

  /**
   * The latin1 string of the entity's record key, written into a scratch
   * buffer: the key's own Buffer is made once per entity and write, not per event.
   */
  private entityId(streamView: StreamView, rawKey: string | number): string {
    const columns = [[rawKey]];
    const length = recordKeyLength(streamView.prefix, streamView.keyTypes, columns, 0);
    if (length > this.keyScratch.length) this.keyScratch = Buffer.allocUnsafe(Math.max(length, 2 * this.keyScratch.length));
    return this.keyScratch.toString('latin1', 0, writeRecordKey(this.keyScratch, streamView.prefix, streamView.keyTypes, columns, 0));
  }

  /**
   * Applies extracted events (in partition order), all in one atomic write
   * (with those of concurrent calls); resolves once durable (see
   * TieredRecordStore.writeEvents). Events whose
   * origin offset an entity has already applied are skipped.
   */
  async apply(topic: string, events: readonly { readonly extracted: ExtractedEvent & { ok: true }; readonly origin: EventOrigin | undefined }[], nowMs: number): Promise<void> {
    const writes = new Map<string, EventWrite & { id: string; events: IncomingEvent[] }>();
    for (const { extracted, origin } of events) {
      for (const part of extracted.parts) {
        let write = writes.get(part.id);
        if (write === undefined) {
          write = { view: part.view.view, key: Buffer.from(part.id, 'latin1'), id: part.id, events: [] };
          writes.set(part.id, write);
        }
        write.events.push({ ts: extracted.ts, values: part.values, origin });
      }
    }
    if (writes.size === 0) return;
    await this.writer.submit({ writes: [...writes.values()], nowMs });
    // Freshness counts from the clock at most, as the watermark does: an event ahead of it (within the skew) would read as negative lag.
    let newest = -Infinity;
    for (const { extracted } of events) newest = Math.max(newest, Math.min(extracted.ts, nowMs));
    for (const { view } of this.streamTopics.get(topic)?.views ?? []) this.metrics.observeApplied(view.name, newest);
    // Replays of events an entity already has are skipped inside the merge, and counted here too.
    this.metrics.ingestEvents.inc({ topic, outcome: 'applied' }, events.length);
  }
}

function reject(field: string, rule: string): ExtractedEvent {
  return { ok: false, rejection: { reason: 'invalid', field, detail: rule } };
}
