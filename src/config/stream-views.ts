/**
 * The stream half of the registry: topics with their schemas, and views fed
 * by a topic whose features are aggregations over event-time windows (plus
 * features derived from those at read time). Compiled once at start into
 * column indexes, so neither ingestion nor reads look anything up by name.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ValueType } from '../values/value-codec.js';
import { parseAvroSchema, type AvroType } from './avro.js';
import { formatDuration, parseDuration } from './duration.js';
import { type Checker, type EntityDef } from './registry.js';

/** The format each topic was claimed with by the first stream view compiled on it. */
const claimedFormats = new WeakMap<TopicDef, EventFormat>();
/** The event-time field of each topic, as the first stream view compiled on it reads it. */
const claimedTimestampFields = new WeakMap<TopicDef, string>();
/** Topics whose reader_schema was named but could not be loaded (already reported where it is named). */
const failedReaders = new WeakSet<TopicDef>();

export type EventFormat = 'avro' | 'json';

export interface TopicDef {
  readonly name: string;
  readonly format: EventFormat;
  /** The schema events are read as (Avro schema resolution from each writer schema); optional for JSON. */
  readonly readerType: AvroType | undefined;
  /** Writer schemas by Confluent schema id, from local files; empty when a schema registry URL serves them. */
  readonly writerTypes: ReadonlyMap<number, AvroType>;
  /** How far behind a partition's newest event time an event may be and still count. */
  readonly allowedLatenessMs: number;
  /** How far ahead of the server's clock an event time may be; further is invalid. */
  readonly maxClockSkewMs: number;
}

export interface StreamSource {
  readonly type: 'stream';
  readonly topic: string;
  readonly format: EventFormat;
  /** Event field holding the entity key. */
  readonly key: string;
  readonly timestampField: string;
  /** Event fields kept per event (aggregated or filtered on), in stored order. */
  readonly columns: readonly string[];
  /**
   * Longest stretch of events a read needs from the stream: the longest
   * window served from the stream alone, or the view's snapshot tile (the
   * part of a tile-backed window after the last whole tile). Events are kept
   * this long past the as_of retention.
   */
  readonly maxWindowMs: number;
  /**
   * Its lifetime (windowless) `last` and `first` aggregations: the event each
   * reads may be older than the horizon, so pruning keeps it (mergeEventLog).
   */
  readonly pins: readonly AggregationDef[];
}

export const AGGREGATION_FNS = ['count', 'sum', 'avg', 'min', 'max', 'last', 'first', 'count_distinct', 'most_frequent', 'span'] as const;
export type AggregationFn = (typeof AGGREGATION_FNS)[number];

export interface WhereClause {
  readonly column: number;
  readonly values: ReadonlySet<string | number | boolean>;
}

export interface AggregationDef {
  readonly kind: 'aggregation';
  readonly fn: AggregationFn;
  /** Index into the source's columns; -1 for count and span. */
  readonly column: number;
  /** Events with event time in (T − window, T]; 0 = since the first event kept. */
  readonly windowMs: number;
  /** Every clause must hold for an event to count. */
  readonly where: readonly WhereClause[];
  /**
   * Slots of its partial results in the view's snapshot tiles (see
   * src/aggregation/window-evaluator.ts): [partial] for count, sum, min and
   * max, [sum, count] for avg. Empty: the stream alone serves it.
   */
  readonly tileSlots: readonly number[];
}

export type DerivedDef =
  | { readonly kind: 'derived'; readonly fn: 'ratio'; readonly numerator: number; readonly denominator: number }
  | { readonly kind: 'derived'; readonly fn: 'rate'; readonly of: number; readonly perMs: number; readonly windowMs: number }
  | { readonly kind: 'derived'; readonly fn: 'time_since_last'; readonly unitMs: number };

export type ComputeDef = AggregationDef | DerivedDef;

export const MIN_WINDOW_MS = 60_000;
/** Longest window the stream alone serves; longer ones need snapshot tiles. */
export const MAX_WINDOW_MS = 7 * 86_400_000;
export const MAX_TILED_WINDOW_MS = 366 * 86_400_000;
export const MAX_TILE_MS = 86_400_000;
/** Aggregations whose partial results over tiles combine exactly with the stream's. */
const TILEABLE: ReadonlySet<AggregationFn> = new Set(['count', 'sum', 'avg', 'min', 'max']);
export const DEFAULT_ALLOWED_LATENESS_MS = 5_000;
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000;

const NEEDS_FIELD: ReadonlySet<AggregationFn> = new Set(['sum', 'avg', 'min', 'max', 'last', 'first', 'count_distinct', 'most_frequent']);
const NUMERIC_FIELD: ReadonlySet<AggregationFn> = new Set(['sum', 'avg', 'min', 'max']);
/** Without a window these mean "over every event kept"; the others need one. */
const WINDOW_OPTIONAL: ReadonlySet<AggregationFn> = new Set(['last', 'first']);
const TIME_UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function loadSchema(file: string, relative: unknown, path: (string | number)[], check: Checker): AvroType | undefined {
  if (typeof relative !== 'string') {
    check.report(path, 'must be the path of an .avsc file (relative to the registry file)');
    return undefined;
  }
  const full = resolve(dirname(file), relative);
  try {
    return parseAvroSchema(readFileSync(full, 'utf8'));
  } catch (error) {
    check.report(path, `cannot load Avro schema ${full}: ${(error as Error).message}`);
    return undefined;
  }
}

/** A duration setting of a topic; `fallback` when absent or reported. */
function topicDuration(raw: unknown, path: (string | number)[], fallback: number, check: Checker): number {
  if (raw === undefined) return fallback;
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
  if (ms === undefined) check.report(path, 'must be a duration like 5s or 1m');
  return ms ?? fallback;
}

/** The `topics` section: reader and writer schemas, lateness and clock skew per topic. */
export function compileTopics(raw: unknown, file: string, check: Checker): Map<string, TopicDef> {
  const topics = new Map<string, TopicDef>();
  const section = check.object(raw ?? {}, ['topics']);
  if (section === undefined) return topics;
  for (const [name, value] of Object.entries(section)) {
    const path = ['topics', name];
    const spec = check.object(value, path);
    if (spec === undefined) continue;
    check.keys(spec, path, ['reader_schema', 'writer_schemas', 'allowed_lateness', 'max_clock_skew'], []);
    const readerType = spec.reader_schema === undefined ? undefined : loadSchema(file, spec.reader_schema, [...path, 'reader_schema'], check);
    const writerTypes = new Map<number, AvroType>();
    const writers = check.object(spec.writer_schemas ?? {}, [...path, 'writer_schemas']);
    for (const [id, schemaFile] of Object.entries(writers ?? {})) {
      if (!/^\d+$/.test(id) || Number(id) > 0xffff_ffff) check.report([...path, 'writer_schemas', id], 'must be a schema id (0 … 4294967295)');
      const type = loadSchema(file, schemaFile, [...path, 'writer_schemas', id], check);
      if (type !== undefined) writerTypes.set(Number(id), type);
    }
    const allowedLatenessMs = topicDuration(spec.allowed_lateness, [...path, 'allowed_lateness'], DEFAULT_ALLOWED_LATENESS_MS, check);
    const maxClockSkewMs = topicDuration(spec.max_clock_skew, [...path, 'max_clock_skew'], DEFAULT_MAX_CLOCK_SKEW_MS, check);
    // The format is filled in by the views that consume the topic.
    const topic: TopicDef = { name, format: 'json', readerType, writerTypes, allowedLatenessMs, maxClockSkewMs };
    if (spec.reader_schema !== undefined && readerType === undefined) failedReaders.add(topic);
    topics.set(name, topic);
  }
  return topics;
}

/** `source: { type: stream, topic, format, key, timestamp_field }`. Columns and longest window are filled in by compileStreamFeatures. */
export function compileStreamSource(
  raw: unknown,
  path: (string | number)[],
  viewEntities: readonly EntityDef[] | undefined,
  topics: Map<string, TopicDef>,
  check: Checker,
): StreamSource | undefined {
  const spec = check.object(raw, path);
  if (spec === undefined) return undefined;
  check.keys(spec, path, ['type', 'topic', 'format', 'key', 'timestamp_field'], ['type', 'topic', 'format', 'key']);
  if (viewEntities !== undefined && viewEntities.length !== 1) check.report(path, 'a stream view is keyed by exactly one entity');
  const { topic, format, key } = spec;
  const timestampField = spec.timestamp_field ?? 'timestamp';
  let valid = true;
  if (typeof topic !== 'string' || topic.length === 0) {
    check.report([...path, 'topic'], 'must be a topic name');
    valid = false;
  }
  if (format !== 'avro' && format !== 'json') {
    check.report([...path, 'format'], 'must be avro or json');
    valid = false;
  }
  for (const [field, value] of [['key', key], ['timestamp_field', timestampField]] as const) {
    if (typeof value !== 'string' || value.length === 0) {
      check.report([...path, field], 'must be an event field name');
      valid = false;
    }
  }
  if (!valid) return undefined;
  let topicDef = topics.get(topic as string);
  if (topicDef === undefined) {
    if (format === 'avro') {
      check.report([...path, 'topic'], `avro topic ${String(topic)} needs an entry under topics: with its reader_schema`);
      return undefined;
    }
    topicDef = { name: topic as string, format: 'json', readerType: undefined, writerTypes: new Map(), allowedLatenessMs: DEFAULT_ALLOWED_LATENESS_MS, maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS };
    topics.set(topicDef.name, topicDef);
  }
  const claimed = claimedFormats.get(topicDef);
  if (claimed !== undefined && claimed !== format) check.report([...path, 'format'], `topic ${topicDef.name} is read as ${claimed} by another view`);
  if (format === 'avro' && topicDef.readerType === undefined && !failedReaders.has(topicDef)) check.report([...path, 'topic'], `avro topic ${topicDef.name} needs a reader_schema under topics:`);
  claimedFormats.set(topicDef, format as EventFormat);
  Object.assign(topicDef, { format });
  // An event has one event time, for the watermark and for every view of its topic.
  const claimedTimestampField = claimedTimestampFields.get(topicDef);
  if (claimedTimestampField === undefined) claimedTimestampFields.set(topicDef, timestampField as string);
  else if (claimedTimestampField !== timestampField) {
    check.report([...path, 'timestamp_field'], `topic ${topicDef.name} takes its event time from ${claimedTimestampField} in another view`);
  }
  for (const [field, value] of [['key', key], ['timestamp_field', timestampField]] as const) {
    checkField(topicDef, value as string, [...path, field], check);
  }
  return { type: 'stream', topic: topicDef.name, format: format as EventFormat, key: key as string, timestampField: timestampField as string, columns: [], maxWindowMs: 0, pins: [] };
}

/** Avro type name of a top-level field of the topic's reader schema; undefined when there is no schema to check against. */
function fieldType(topic: TopicDef, field: string): string | null | undefined {
  const reader = topic.readerType as { fields?: { name: string; type: { typeName: string; types?: { typeName: string }[] } }[] } | undefined;
  if (reader?.fields === undefined) return undefined;
  const found = reader.fields.find((candidate) => candidate.name === field);
  if (found === undefined) return null;
  const type = found.type;
  // A nullable union: the type of its non-null branch.
  if (type.typeName === 'union:unwrapped' || type.typeName === 'union:wrapped') return type.types?.find((branch) => branch.typeName !== 'null')?.typeName ?? 'null';
  return type.typeName;
}

function checkField(topic: TopicDef, field: string, path: (string | number)[], check: Checker): void {
  if (fieldType(topic, field) === null) check.report(path, `topic ${topic.name}'s reader schema has no field ${field}`);
}

function valueTypeOfField(avroType: string | null | undefined): ValueType {
  switch (avroType) {
    case 'double':
    case 'float':
      return 'double';
    case 'long':
    case 'int':
      return 'int64';
    case 'boolean':
      return 'bool';
    default:
      return 'string';
  }
}

function compileWindow(raw: unknown, path: (string | number)[], optional: boolean, tileable: boolean, check: Checker): number | undefined {
  if (raw === undefined) {
    if (optional) return 0;
    check.report(path, 'is required');
    return undefined;
  }
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
  const longest = tileable ? MAX_TILED_WINDOW_MS : MAX_WINDOW_MS;
  if (ms === undefined || ms < MIN_WINDOW_MS || ms > longest) {
    const beyond = tileable ? '' : `; windows up to ${formatDuration(MAX_TILED_WINDOW_MS)} need count, sum, avg, min or max and the view's snapshot tiles (batch: { tile: 1d })`;
    check.report(path, `must be a duration from ${formatDuration(MIN_WINDOW_MS)} to ${formatDuration(longest)}, like 5m, 1h, 7d${beyond}`);
    return undefined;
  }
  return ms;
}

/** `batch.tile` of a stream view: the width of the snapshot's partial-aggregate tiles. Undefined: no batch half. */
export function compileTile(batch: unknown, path: (string | number)[], check: Checker): number | undefined {
  if (batch === undefined || batch === null || typeof batch !== 'object') return undefined;
  const raw = (batch as Record<string, unknown>).tile;
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
  if (ms === undefined || ms < MIN_WINDOW_MS || ms > MAX_TILE_MS || MAX_TILE_MS % ms !== 0) {
    check.report([...path, 'tile'], `must be a duration from ${formatDuration(MIN_WINDOW_MS)} to ${formatDuration(MAX_TILE_MS)} that divides a day, like 1h or 1d`);
    return MAX_TILE_MS;
  }
  return ms;
}

/**
 * The columns a stream view's snapshot tiles hold, in slot order: one per
 * tiled count, sum, min and max (named as the feature), two per tiled avg
 * (feature_sum, feature_count).
 */
export function tileColumns(features: readonly StreamFeatureSpec[]): { name: string; type: ValueType }[] {
  const columns: { name: string; type: ValueType }[] = [];
  for (const { name, compute } of features) {
    if (compute.kind !== 'aggregation' || compute.tileSlots.length === 0) continue;
    if (compute.fn === 'avg') columns.push({ name: `${name}_sum`, type: 'double' }, { name: `${name}_count`, type: 'int64' });
    else columns.push({ name, type: compute.fn === 'count' ? 'int64' : 'double' });
  }
  return columns;
}

export interface StreamFeatureSpec {
  readonly name: string;
  readonly type: ValueType;
  readonly compute: ComputeDef;
}

/**
 * `aggregations` and `derived` of a stream view, as feature specs in
 * declaration order (aggregations first). Fills in the source's columns and
 * longest window. With snapshot tiles (`tileMs`), every count, sum, avg, min
 * and max over a window of at least one tile is served from tiles and stream
 * together; the others from the stream alone.
 */
export function compileStreamFeatures(
  spec: Record<string, unknown>,
  path: (string | number)[],
  source: StreamSource | undefined,
  ttlMs: number | undefined,
  tileMs: number | undefined,
  topics: ReadonlyMap<string, TopicDef>,
  check: Checker,
): StreamFeatureSpec[] | undefined {
  const topic = source === undefined ? undefined : topics.get(source.topic);
  const aggregations = check.object(spec.aggregations, [...path, 'aggregations']);
  const derived = spec.derived === undefined ? {} : check.object(spec.derived, [...path, 'derived']);
  if (source === undefined || topic === undefined || aggregations === undefined || derived === undefined) return undefined;
  const problemsBefore = check.problems.length;
  const columns: string[] = [];
  const columnOf = (field: string, fieldPath: (string | number)[]): number => {
    checkField(topic, field, fieldPath, check);
    const known = columns.indexOf(field);
    return known >= 0 ? known : columns.push(field) - 1;
  };

  const features: StreamFeatureSpec[] = [];
  let nextTileSlot = 0;
  for (const [name, value] of Object.entries(aggregations)) {
    const featurePath = [...path, 'aggregations', name];
    check.name(name, featurePath);
    const aggregation = check.object(value, featurePath);
    if (aggregation === undefined) continue;
    check.keys(aggregation, featurePath, ['fn', 'field', 'window', 'where', 'type', 'description'], ['fn']);
    const fn = aggregation.fn as AggregationFn;
    if (!(AGGREGATION_FNS as readonly unknown[]).includes(fn)) {
      check.report([...featurePath, 'fn'], `must be one of ${AGGREGATION_FNS.join(', ')}`);
      continue;
    }
    let column = -1;
    if (NEEDS_FIELD.has(fn)) {
      if (typeof aggregation.field !== 'string') check.report([...featurePath, 'field'], `${fn} needs the event field it aggregates`);
      else {
        column = columnOf(aggregation.field, [...featurePath, 'field']);
        const avroType = fieldType(topic, aggregation.field);
        if (NUMERIC_FIELD.has(fn) && avroType !== undefined && avroType !== null && valueTypeOfField(avroType) === 'string') {
          check.report([...featurePath, 'field'], `${fn} needs a numeric field; ${aggregation.field} is ${avroType}`);
        }
      }
    } else if (aggregation.field !== undefined) check.report([...featurePath, 'field'], `${fn} takes no field`);
    const tileable = tileMs !== undefined && TILEABLE.has(fn);
    const windowMs = compileWindow(aggregation.window, [...featurePath, 'window'], WINDOW_OPTIONAL.has(fn), tileable, check);
    const where: WhereClause[] = [];
    if (aggregation.where !== undefined) {
      const clauses = check.object(aggregation.where, [...featurePath, 'where']);
      for (const [field, allowed] of Object.entries(clauses ?? {})) {
        const clausePath = [...featurePath, 'where', field];
        if (!Array.isArray(allowed) || allowed.length === 0 || !allowed.every((item) => ['string', 'number', 'boolean'].includes(typeof item))) {
          check.report(clausePath, 'must be a non-empty list of values the field may have');
          continue;
        }
        where.push({ column: columnOf(field, clausePath), values: new Set(allowed as (string | number | boolean)[]) });
      }
    }
    let type: ValueType;
    if (fn === 'count' || fn === 'count_distinct') type = 'int64';
    else if (fn === 'last' || fn === 'first' || fn === 'most_frequent') type = valueTypeOfField(column < 0 ? undefined : fieldType(topic, columns[column]!));
    else type = 'double';
    if (aggregation.type !== undefined) {
      if (fn !== 'last' && fn !== 'first' && fn !== 'most_frequent') check.report([...featurePath, 'type'], `${fn} always gives ${type}`);
      else if (aggregation.type !== 'string' && aggregation.type !== 'double' && aggregation.type !== 'int64' && aggregation.type !== 'bool') {
        check.report([...featurePath, 'type'], 'must be string, double, int64 or bool');
      } else type = aggregation.type;
    }
    if (windowMs === undefined) continue;
    let tileSlots: number[] = [];
    if (tileable && windowMs >= tileMs) {
      tileSlots = fn === 'avg' ? [nextTileSlot, nextTileSlot + 1] : [nextTileSlot];
      nextTileSlot += tileSlots.length;
    } else if (windowMs > MAX_WINDOW_MS) {
      check.report([...featurePath, 'window'], `is longer than the stream alone serves (${formatDuration(MAX_WINDOW_MS)}) but shorter than the view's snapshot tile`);
    }
    features.push({ name, type, compute: Object.freeze({ kind: 'aggregation', fn, column, windowMs, where: Object.freeze(where), tileSlots: Object.freeze(tileSlots) }) });
  }

  const aggregationIndex = (ref: unknown, refPath: (string | number)[]): number => {
    const index = features.findIndex((feature) => feature.name === ref && feature.compute.kind === 'aggregation');
    if (index < 0) check.report(refPath, `must name an aggregation of this view (${features.map((feature) => feature.name).join(', ')})`);
    return index;
  };
  for (const [name, value] of Object.entries(derived)) {
    const featurePath = [...path, 'derived', name];
    check.name(name, featurePath);
    if (Object.hasOwn(aggregations, name)) check.report(featurePath, 'is already an aggregation of this view');
    const def = check.object(value, featurePath);
    if (def === undefined) continue;
    switch (def.fn) {
      case 'ratio': {
        check.keys(def, featurePath, ['fn', 'numerator', 'denominator', 'description'], ['fn', 'numerator', 'denominator']);
        const numerator = aggregationIndex(def.numerator, [...featurePath, 'numerator']);
        const denominator = aggregationIndex(def.denominator, [...featurePath, 'denominator']);
        if (numerator >= 0 && denominator >= 0) features.push({ name, type: 'double', compute: Object.freeze({ kind: 'derived', fn: 'ratio', numerator, denominator }) });
        break;
      }
      case 'rate': {
        check.keys(def, featurePath, ['fn', 'of', 'per', 'description'], ['fn', 'of']);
        const of = aggregationIndex(def.of, [...featurePath, 'of']);
        const perMs = def.per === undefined ? 60_000 : typeof def.per === 'string' ? parseDuration(def.per) : undefined;
        if (perMs === undefined || perMs === 0) check.report([...featurePath, 'per'], 'must be a duration like 1m');
        const windowMs = of >= 0 ? (features[of]!.compute as AggregationDef).windowMs : 0;
        if (of >= 0 && windowMs === 0) check.report([...featurePath, 'of'], 'must name a windowed aggregation');
        if (of >= 0 && perMs !== undefined && perMs > 0 && windowMs > 0) features.push({ name, type: 'double', compute: Object.freeze({ kind: 'derived', fn: 'rate', of, perMs, windowMs }) });
        break;
      }
      case 'time_since_last': {
        check.keys(def, featurePath, ['fn', 'unit', 'description'], ['fn']);
        const unitMs = TIME_UNITS[(def.unit as string | undefined) ?? 'm'];
        if (unitMs === undefined) check.report([...featurePath, 'unit'], `must be one of ${Object.keys(TIME_UNITS).join(', ')}`);
        else features.push({ name, type: 'double', compute: Object.freeze({ kind: 'derived', fn: 'time_since_last', unitMs }) });
        break;
      }
      default:
        check.report([...featurePath, 'fn'], 'must be ratio, rate or time_since_last');
    }
  }
  if (features.length === 0 && check.problems.length === problemsBefore) check.report([...path, 'aggregations'], 'must declare at least one aggregation');

  const windows = features.map(({ compute }) => (compute.kind === 'aggregation' ? compute.windowMs : 0));
  const longestWindowMs = Math.max(0, ...windows);
  if (ttlMs !== undefined && ttlMs > 0 && ttlMs < longestWindowMs) {
    check.report([...path, 'ttl'], `must be 0 or at least the longest window (${formatDuration(longestWindowMs)}): past the ttl, every feature of an entity reads OUTSIDE_MAX_AGE`);
  }
  const streamOnlyWindows = features.map(({ compute }, index) => (compute.kind === 'aggregation' && compute.tileSlots.length > 0 ? 0 : windows[index]!));
  const maxWindowMs = Math.max(tileMs ?? 0, ...streamOnlyWindows);
  // Only last and first may be windowless (WINDOW_OPTIONAL).
  const pins = features.flatMap(({ compute }) => (compute.kind === 'aggregation' && compute.windowMs === 0 ? [compute] : []));
  Object.assign(source as { columns: readonly string[]; maxWindowMs: number; pins: readonly AggregationDef[] }, { columns: Object.freeze(columns), maxWindowMs, pins: Object.freeze(pins) });
  Object.freeze(source);
  return check.problems.length === problemsBefore ? features : undefined;
}
