/**
 * The feature registry: a YAML file read once at start, validated completely
 * (every problem reported with file, line, path and rule), then compiled into
 * frozen lookup tables. Nothing here runs per request.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Document, type Node } from 'yaml';
import { StrataError } from '../errors.js';
import { VALUE_TYPES, type ValueType } from '../values/value-codec.js';
import { parseDuration } from './duration.js';
import { compileStreamFeatures, compileStreamSource, compileTile, compileTopics, tileColumns, type ComputeDef, type StreamSource, type TopicDef } from './stream-views.js';
import { compileBatchSource, type BatchHalfShape, type BatchSource } from './batch-views.js';

export type { AggregationDef, AggregationFn, ComputeDef, DerivedDef, StreamSource, TopicDef } from './stream-views.js';

export type JoinKeyType = 'string' | 'int64';

export interface EntityDef {
  readonly name: string;
  readonly joinKey: string;
  readonly type: JoinKeyType;
  readonly description: string;
}

export interface FeatureDef {
  readonly view: ViewDef;
  /** How a stream view computes the feature at read time; undefined for stored (push) features. */
  readonly compute?: ComputeDef;
  readonly name: string;
  /** `view:feature`, the reference clients use. */
  readonly ref: string;
  /** `view__feature`, the name under `full_feature_names`. */
  readonly fullName: string;
  readonly type: ValueType;
  /** Position in the view's feature list and in every stored version of it. */
  readonly index: number;
}

export interface PushSource {
  readonly type: 'push';
}
export type SourceDef = PushSource | StreamSource | BatchSource;

export interface ViewDef {
  readonly name: string;
  readonly entities: readonly EntityDef[];
  /** Join keys in the order they form the storage key. */
  readonly joinKeys: readonly string[];
  /** Max age of a value at read time; 0 = never expires. */
  readonly ttlMs: number;
  readonly source: SourceDef;
  /**
   * Where snapshot imports go: the source itself for a batch view, the
   * `batch:` half of a push or stream view (a lambda view, whose reads merge
   * both halves), else undefined.
   */
  readonly batch: BatchSource | undefined;
  readonly features: readonly FeatureDef[];
  readonly featuresByName: ReadonlyMap<string, FeatureDef>;
  /** Changes whenever the feature list (names, types, order) changes; stored with every record. */
  readonly schemaFingerprint: number;
  readonly description: string;
}

export interface FeatureServiceDef {
  readonly name: string;
  readonly features: readonly FeatureDef[];
  readonly description: string;
}

export interface Registry {
  readonly file: string;
  /** A hash of the registry's text: state derived from one registry (a compaction sweep's mark) tells whether it still holds. */
  readonly digest: string;
  readonly entities: ReadonlyMap<string, EntityDef>;
  readonly views: ReadonlyMap<string, ViewDef>;
  /** Every `view:feature` reference, precomputed so requests are resolved by one map lookup. */
  readonly featuresByRef: ReadonlyMap<string, FeatureDef>;
  readonly services: ReadonlyMap<string, FeatureServiceDef>;
  /** The entity owning each join key (join keys are unique across entities). */
  readonly entitiesByJoinKey: ReadonlyMap<string, EntityDef>;
  /** Topics stream views consume, with their formats and schemas. */
  readonly topics: ReadonlyMap<string, TopicDef>;
}

interface Problem {
  path: (string | number)[];
  rule: string;
  /** Source offset, when the path alone cannot place it (a duplicate key shares its path). */
  offset?: number;
}

export const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_RULE = 'must be a name: letters, digits and _, not starting with a digit';

/** The `df` columns POST /push takes each row's event and created time from (Feast's names), never a feature's values. */
export const PUSH_TIME_COLUMNS = { event: 'event_timestamp', created: 'created_timestamp' } as const;
const PUSH_TIME_COLUMN_NAMES: readonly string[] = Object.values(PUSH_TIME_COLUMNS);
const PUSH_TIME_COLUMN_RULE = `is reserved in a push view: POST /push reads each row's times from its ${PUSH_TIME_COLUMN_NAMES.join(' and ')} columns, so a feature of this name could never be pushed over HTTP`;

export class Checker {
  readonly problems: Problem[] = [];

  report(path: (string | number)[], rule: string, offset?: number): void {
    this.problems.push({ path, rule, offset });
  }

  /** Rejects keys not in `allowed` and reports required ones that are absent. */
  keys(value: Record<string, unknown>, path: (string | number)[], allowed: readonly string[], required: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.report([...path, key], `unknown key; allowed here: ${allowed.join(', ')}`);
    }
    for (const key of required) {
      if (!(key in value)) this.report([...path, key], 'is required');
    }
  }

  object(value: unknown, path: (string | number)[]): Record<string, unknown> | undefined {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    this.report(path, 'must be a mapping');
    return undefined;
  }

  name(value: string, path: (string | number)[]): void {
    if (!NAME.test(value)) this.report(path, NAME_RULE);
  }

  text(value: unknown, path: (string | number)[]): string {
    if (value === undefined) return '';
    if (typeof value === 'string') return value;
    this.report(path, 'must be a string');
    return '';
  }
}

function lineOf(doc: Document, lines: LineCounter, path: (string | number)[]): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true) as Node | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
    // A key without a value node: find the key itself in the parent mapping.
    const parent = doc.getIn(path.slice(0, depth - 1), true);
    if (depth > 0 && isMap(parent)) {
      const pair = parent.items.find((item) => (item.key as { value?: unknown } | null)?.value === path[depth - 1]);
      const key = pair?.key as Node | undefined;
      if (key?.range) return lines.linePos(key.range[0]).line;
    }
  }
  return undefined;
}

function reportDuplicateKeys(node: unknown, path: (string | number)[], check: Checker): void {
  if (isSeq(node)) node.items.forEach((item, index) => reportDuplicateKeys(item, [...path, index], check));
  if (!isMap(node)) return;
  const seen = new Set<unknown>();
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? pair.key.value : String(pair.key);
    const keyPath = [...path, String(key)];
    if (seen.has(key)) check.report(keyPath, 'duplicate key: a name may appear only once here', (pair.key as Node).range?.[0]);
    seen.add(key);
    reportDuplicateKeys(pair.value, keyPath, check);
  }
}

function fingerprint(features: readonly { name: string; type: ValueType }[]): number {
  const digest = createHash('sha256').update(features.map((f) => `${f.name}:${f.type}`).join('\n')).digest();
  return digest.readUInt32BE(0);
}

/** Reads, validates and compiles a registry file. Throws STRATA_CONFIG_INVALID listing every problem. */
export function loadRegistry(file: string): Registry {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new StrataError('STRATA_CONFIG_INVALID', `${file}: cannot read registry: ${(error as Error).message}`, { cause: error });
  }
  return compileRegistry(text, file);
}

export function compileRegistry(text: string, file: string): Registry {
  const lines = new LineCounter();
  // Duplicate keys are found below, with their paths; the parser would report them with a line only.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) {
    const details = doc.errors.map((error) => `  ${file}:${lines.linePos(error.pos[0]).line}: ${error.message.split('\n')[0]}`);
    throw new StrataError('STRATA_CONFIG_INVALID', `invalid registry YAML:\n${details.join('\n')}`);
  }
  const check = new Checker();
  reportDuplicateKeys(doc.contents, [], check);
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const registry = compileDocument(doc.toJS() as unknown, file, digest, check);
  if (check.problems.length > 0 || registry === undefined) {
    const details = check.problems.map((problem) => {
      const line = problem.offset === undefined ? lineOf(doc, lines, problem.path) : lines.linePos(problem.offset).line;
      const where = line === undefined ? file : `${file}:${line}`;
      return `  ${where}: ${problem.path.join('.') || '(top level)'}: ${problem.rule}`;
    });
    throw new StrataError('STRATA_CONFIG_INVALID', `invalid registry (${check.problems.length} problem${check.problems.length === 1 ? '' : 's'}):\n${details.join('\n')}`);
  }
  return registry;
}

function compileDocument(root: unknown, file: string, digest: string, check: Checker): Registry | undefined {
  const top = check.object(root ?? {}, []);
  if (top === undefined) return undefined;
  check.keys(top, [], ['entities', 'topics', 'feature_views', 'feature_services'], ['entities', 'feature_views']);

  const entities = compileEntities(top.entities, check);
  const entitiesByJoinKey = new Map<string, EntityDef>();
  for (const entity of entities.values()) {
    const owner = entitiesByJoinKey.get(entity.joinKey);
    if (owner !== undefined) check.report(['entities', entity.name, 'join_key'], `join key ${entity.joinKey} is already used by entity ${owner.name}`);
    entitiesByJoinKey.set(entity.joinKey, entity);
  }
  const topics = compileTopics(top.topics, file, check);
  const views = compileViews(top.feature_views, entities, topics, check);
  const featuresByRef = new Map<string, FeatureDef>();
  for (const view of views.values()) for (const feature of view.features) featuresByRef.set(feature.ref, feature);
  const services = compileServices(top.feature_services, featuresByRef, check);

  return Object.freeze({ file, digest, entities, views, featuresByRef, services, entitiesByJoinKey, topics });
}

function compileEntities(raw: unknown, check: Checker): Map<string, EntityDef> {
  const entities = new Map<string, EntityDef>();
  const section = check.object(raw ?? {}, ['entities']);
  if (section === undefined) return entities;
  for (const [name, value] of Object.entries(section)) {
    const path = ['entities', name];
    check.name(name, path);
    const spec = check.object(value, path);
    if (spec === undefined) continue;
    check.keys(spec, path, ['join_key', 'type', 'description'], ['join_key']);
    const joinKey = spec.join_key;
    if (typeof joinKey !== 'string' || !NAME.test(joinKey)) {
      if (joinKey !== undefined) check.report([...path, 'join_key'], NAME_RULE);
      continue;
    }
    const type = spec.type ?? 'string';
    if (type !== 'string' && type !== 'int64') {
      check.report([...path, 'type'], 'must be string or int64');
      continue;
    }
    entities.set(name, Object.freeze({ name, joinKey, type, description: check.text(spec.description, [...path, 'description']) }));
  }
  return entities;
}

function compileViews(raw: unknown, entities: ReadonlyMap<string, EntityDef>, topics: Map<string, TopicDef>, check: Checker): Map<string, ViewDef> {
  const views = new Map<string, ViewDef>();
  const section = check.object(raw ?? {}, ['feature_views']);
  if (section === undefined) return views;
  for (const [name, value] of Object.entries(section)) {
    const path = ['feature_views', name];
    check.name(name, path);
    const spec = check.object(value, path);
    if (spec === undefined) continue;
    const sourceType = (spec.source as { type?: unknown } | undefined)?.type;
    const stream = sourceType === 'stream';
    check.keys(
      spec,
      path,
      ['entities', 'ttl', 'source', ...(stream ? ['aggregations', 'derived'] : ['features']), ...(stream || sourceType === 'push' ? ['batch'] : []), 'description'],
      ['entities', 'ttl', 'source', stream ? 'aggregations' : 'features'],
    );
    const viewEntities = compileViewEntities(spec.entities, [...path, 'entities'], entities, check);
    const ttlMs = compileTtl(spec.ttl, [...path, 'ttl'], check);
    let source: SourceDef | undefined;
    let batch: BatchSource | undefined;
    let featureSpecs: { name: string; type: ValueType; compute?: ComputeDef }[] | undefined;
    const batchPath = [...path, 'batch'];
    if (stream) {
      const tileMs = compileTile(spec.batch, batchPath, check);
      source = compileStreamSource(spec.source, [...path, 'source'], viewEntities, topics, check);
      const streamSpecs = compileStreamFeatures(spec, path, source as StreamSource | undefined, ttlMs, tileMs, topics, check);
      featureSpecs = streamSpecs;
      if (tileMs !== undefined && streamSpecs !== undefined) {
        const tiled = tileColumns(streamSpecs);
        if (tiled.length === 0) check.report(batchPath, 'no aggregation of this view is served from tiles: that takes count, sum, avg, min or max over a window of at least one tile');
        else batch = compileBatchSource(spec.batch, batchPath, viewEntities, { isSource: false, storedColumns: tiled, fingerprint: fingerprint(tiled), tileMs }, check);
      }
    } else {
      featureSpecs = compileFeatureSpecs(spec.features, [...path, 'features'], viewEntities, sourceType === 'push', check);
      const shape = { storedColumns: featureSpecs, fingerprint: fingerprint(featureSpecs ?? []), tileMs: 0 };
      source = compileSource(spec.source, [...path, 'source'], viewEntities, shape, check);
      if (source?.type === 'batch') batch = source;
      else if (spec.batch !== undefined) batch = compileBatchSource(spec.batch, batchPath, viewEntities, { ...shape, isSource: false }, check);
    }
    if (viewEntities === undefined || ttlMs === undefined || source === undefined || featureSpecs === undefined) continue;

    const features: FeatureDef[] = [];
    const view: ViewDef = {
      name,
      entities: Object.freeze(viewEntities),
      joinKeys: Object.freeze(viewEntities.map((entity) => entity.joinKey)),
      ttlMs,
      source,
      batch,
      features,
      featuresByName: new Map(),
      schemaFingerprint: fingerprint(featureSpecs),
      description: check.text(spec.description, [...path, 'description']),
    };
    const byName = view.featuresByName as Map<string, FeatureDef>;
    featureSpecs.forEach((feature, index) => {
      const def: FeatureDef = Object.freeze({ view, name: feature.name, ref: `${name}:${feature.name}`, fullName: `${name}__${feature.name}`, type: feature.type, index, compute: feature.compute });
      features.push(def);
      byName.set(feature.name, def);
    });
    Object.freeze(features);
    views.set(name, Object.freeze(view));
  }
  return views;
}

function compileViewEntities(raw: unknown, path: string[], entities: ReadonlyMap<string, EntityDef>, check: Checker): EntityDef[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0) {
    check.report(path, 'must be a non-empty list of entity names');
    return undefined;
  }
  const result: EntityDef[] = [];
  raw.forEach((name: unknown, index) => {
    const entity = typeof name === 'string' ? entities.get(name) : undefined;
    if (entity === undefined) check.report([...path, index], `${String(name)} is not a defined entity (defined: ${[...entities.keys()].join(', ') || 'none'})`);
    else if (result.includes(entity)) check.report([...path, index], `entity ${entity.name} is listed twice`);
    else result.push(entity);
  });
  return result.length === raw.length ? result : undefined;
}

function compileTtl(raw: unknown, path: string[], check: Checker): number | undefined {
  const ms = typeof raw === 'string' ? parseDuration(raw) : raw === 0 ? 0 : undefined;
  if (ms === undefined) check.report(path, 'must be a duration like 500ms, 30s, 5m, 1h, 7d, or 0 for never expires');
  return ms;
}

function compileSource(raw: unknown, path: string[], viewEntities: readonly EntityDef[] | undefined, shape: Omit<BatchHalfShape, 'isSource'>, check: Checker): SourceDef | undefined {
  const spec = check.object(raw, path);
  if (spec === undefined) return undefined;
  if (spec.type === 'batch') return compileBatchSource(spec, path, viewEntities, { ...shape, isSource: true }, check);
  check.keys(spec, path, ['type'], ['type']);
  if (spec.type !== 'push') {
    check.report([...path, 'type'], 'must be push, batch or stream');
    return undefined;
  }
  return Object.freeze({ type: 'push' });
}

function compileFeatureSpecs(
  raw: unknown,
  path: string[],
  viewEntities: readonly EntityDef[] | undefined,
  isPushView: boolean,
  check: Checker,
): { name: string; type: ValueType; compute?: ComputeDef }[] | undefined {
  const spec = check.object(raw, path);
  if (spec === undefined) return undefined;
  const result: { name: string; type: ValueType }[] = [];
  let valid = true;
  for (const [name, type] of Object.entries(spec)) {
    check.name(name, [...path, name]);
    if (viewEntities?.some((entity) => entity.joinKey === name)) {
      check.report([...path, name], `feature name clashes with join key ${name}`);
      valid = false;
    }
    if (isPushView && PUSH_TIME_COLUMN_NAMES.includes(name)) {
      check.report([...path, name], PUSH_TIME_COLUMN_RULE);
      valid = false;
    }
    if (typeof type !== 'string' || !(VALUE_TYPES as readonly string[]).includes(type)) {
      check.report([...path, name], `type must be one of ${VALUE_TYPES.join(', ')}`);
      valid = false;
      continue;
    }
    result.push({ name, type: type as ValueType });
  }
  if (result.length === 0 && valid) {
    check.report(path, 'must declare at least one feature');
    return undefined;
  }
  return valid ? result : undefined;
}

function compileServices(raw: unknown, featuresByRef: ReadonlyMap<string, FeatureDef>, check: Checker): Map<string, FeatureServiceDef> {
  const services = new Map<string, FeatureServiceDef>();
  const section = check.object(raw ?? {}, ['feature_services']);
  if (section === undefined) return services;
  for (const [name, value] of Object.entries(section)) {
    const path: (string | number)[] = ['feature_services', name];
    check.name(name, path);
    let refs: unknown = value;
    let description = '';
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const spec = value as Record<string, unknown>;
      check.keys(spec, path, ['features', 'description'], ['features']);
      refs = spec.features;
      description = check.text(spec.description, [...path, 'description']);
      path.push('features');
    }
    if (!Array.isArray(refs) || refs.length === 0) {
      check.report(path, 'must be a non-empty list of view:feature references');
      continue;
    }
    const features: FeatureDef[] = [];
    refs.forEach((ref: unknown, index) => {
      const feature = typeof ref === 'string' ? featuresByRef.get(ref) : undefined;
      if (feature === undefined) check.report([...path, index], `${String(ref)} is not a defined feature (form view:feature)`);
      else if (features.includes(feature)) check.report([...path, index], `${feature.ref} is listed twice`);
      else features.push(feature);
    });
    services.set(name, Object.freeze({ name, features: Object.freeze(features), description }));
  }
  return services;
}
