import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileRegistry, loadRegistry, type Registry } from '../../src/config/registry.js';
import { StrataError } from '../../src/errors.js';

const EXAMPLE = new URL('../../examples/fraud/registry.yaml', import.meta.url);
const FIXTURE = new URL('../fixtures/registry.yaml', import.meta.url);

/** Compiles a registry file under the name 'reg.yaml' in its own directory (schema paths are relative to it). */
function compileFile(url: URL): Registry {
  return compileRegistry(readFileSync(url, 'utf8'), fileURLToPath(new URL('reg.yaml', url)));
}

/** Compiles `text`, expecting STRATA_CONFIG_INVALID; returns the error message. */
function rejection(text: string): string {
  let caught: unknown;
  try {
    compileRegistry(text, 'reg.yaml');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(StrataError);
  expect((caught as StrataError).code).toBe('STRATA_CONFIG_INVALID');
  return (caught as StrataError).message;
}

/** The problem lines of a rejection message (everything after the heading). */
function problemLines(message: string): string[] {
  return message.split('\n').slice(1);
}

/**
 * A valid registry; line numbers matter to the tests below:
 *   1 entities:
 *   2   card: ...
 *   3   user: ...
 *   4 feature_views:
 *   5   card_profile:
 *   6     entities: [card]
 *   7     ttl: 1h
 *   8     source: { type: push }
 *   9     features:
 *  10       credit_limit: double
 *  11 <tail>
 */
function registryText(options: { entities?: string; viewEntities?: string; ttl?: string; viewExtra?: string; features?: string; tail?: string } = {}): string {
  return [
    'entities:',
    options.entities ?? '  card: { join_key: card_id }\n  user: { join_key: user_id }',
    'feature_views:',
    '  card_profile:',
    `    entities: ${options.viewEntities ?? '[card]'}`,
    `    ttl: ${options.ttl ?? '1h'}`,
    `    source: { type: push }${options.viewExtra === undefined ? '' : `\n${options.viewExtra}`}`,
    '    features:',
    options.features ?? '      credit_limit: double',
    options.tail ?? '',
  ].join('\n');
}

describe('compileRegistry on the bundled example', () => {
  const registry = compileFile(EXAMPLE);

  it('resolves a feature reference to its view, name, full name, type and slot index', () => {
    const feature = registry.featuresByRef.get('card_profile:credit_limit');
    expect(feature).toBeDefined();
    expect(feature!.name).toBe('credit_limit');
    expect(feature!.ref).toBe('card_profile:credit_limit');
    expect(feature!.fullName).toBe('card_profile__credit_limit');
    expect(feature!.type).toBe('double');
    expect(feature!.index).toBe(0);
    expect(feature!.view).toBe(registry.views.get('card_profile'));
    expect(registry.featuresByRef.get('card_profile:is_business')!.index).toBe(3);
  });

  it('indexes every feature of every view by reference, and nothing else', () => {
    const refs = [...registry.views.values()].flatMap((view) => view.features.map((feature) => feature.ref));
    expect([...registry.featuresByRef.keys()].sort()).toEqual(refs.sort());
    expect(refs).toHaveLength(4 + 3 + 6 + 4 + 3 + 12 + 6 + 3);
    expect(registry.featuresByRef.get('card_profile:nope')).toBeUndefined();
  });

  it('orders the join keys of a composite view as its entities are listed', () => {
    const view = registry.views.get('user_device')!;
    expect(view.joinKeys).toEqual(['user_id', 'device_id']);
    expect(view.entities.map((entity) => entity.name)).toEqual(['user', 'device']);
  });

  it('converts ttls to milliseconds, 0 meaning never expires', () => {
    expect(registry.views.get('card_profile')!.ttlMs).toBe(30 * 86_400_000);
    expect(registry.views.get('card_risk')!.ttlMs).toBe(86_400_000);
    expect(registry.views.get('user_profile')!.ttlMs).toBe(0);
    expect(registry.views.get('device_reputation')!.ttlMs).toBe(7 * 86_400_000);
  });

  it('resolves services in both the list and the mapping form to the same feature objects', () => {
    const fraudV1 = registry.services.get('fraud_v1')!;
    expect(fraudV1.features.map((feature) => feature.ref)).toEqual(['card_profile:credit_limit', 'card_profile:home_country']);
    expect(fraudV1.features[0]).toBe(registry.featuresByRef.get('card_profile:credit_limit'));
    const fraudV2 = registry.services.get('fraud_v2')!;
    expect(fraudV2.features).toHaveLength(9);
    expect(fraudV2.description).toMatch(/transaction scorer/);
    expect(fraudV2.features.at(-1)!.fullName).toBe('user_device__logins_30d');
    expect(registry.services.get('personalization_v1')!.features.map((feature) => feature.type)).toEqual(['string', 'list<string>', 'list<double>', 'double']);
  });

  it('maps each join key to its entity', () => {
    expect([...registry.entitiesByJoinKey.keys()].sort()).toEqual(['card_id', 'device_id', 'user_id']);
    expect(registry.entitiesByJoinKey.get('device_id')).toBe(registry.entities.get('device'));
    expect(registry.entities.get('card')!.type).toBe('string');
    expect(registry.entities.get('card')!.description).toBe('A payment card');
  });

  it('keeps the file name it was compiled from', () => {
    expect(registry.file).toMatch(/\/reg\.yaml$/);
  });

  it('freezes the registry and every definition in it', () => {
    expect(Object.isFrozen(registry)).toBe(true);
    for (const entity of registry.entities.values()) expect(Object.isFrozen(entity)).toBe(true);
    for (const view of registry.views.values()) {
      expect(Object.isFrozen(view)).toBe(true);
      expect(Object.isFrozen(view.features)).toBe(true);
      expect(Object.isFrozen(view.joinKeys)).toBe(true);
      expect(Object.isFrozen(view.entities)).toBe(true);
      expect(Object.isFrozen(view.source)).toBe(true);
      for (const feature of view.features) expect(Object.isFrozen(feature)).toBe(true);
    }
    for (const service of registry.services.values()) {
      expect(Object.isFrozen(service)).toBe(true);
      expect(Object.isFrozen(service.features)).toBe(true);
    }
    const view = registry.views.get('card_profile')!;
    expect(() => {
      (view as { ttlMs: number }).ttlMs = 1;
    }).toThrow(TypeError);
    expect(() => {
      (view.features as unknown as unknown[]).push(undefined);
    }).toThrow(TypeError);
  });

  it('gives views with different feature lists different schema fingerprints, and is stable across compiles', () => {
    const again = compileFile(EXAMPLE);
    const fingerprints = [...registry.views.values()].map((view) => view.schemaFingerprint);
    expect(new Set(fingerprints).size).toBe(fingerprints.length);
    expect([...again.views.values()].map((view) => view.schemaFingerprint)).toEqual(fingerprints);
  });

  it('changes the schema fingerprint when a feature type changes', () => {
    const base = compileRegistry(registryText(), 'reg.yaml').views.get('card_profile')!;
    const retyped = compileRegistry(registryText({ features: '      credit_limit: int64' }), 'reg.yaml').views.get('card_profile')!;
    expect(retyped.schemaFingerprint).not.toBe(base.schemaFingerprint);
  });

  it('loads the same registry from disk with loadRegistry', () => {
    const loaded = loadRegistry(EXAMPLE.pathname);
    expect(loaded.file).toBe(EXAMPLE.pathname);
    expect([...loaded.views.keys()]).toEqual([...registry.views.keys()]);
  });

  it('reports an unreadable file as STRATA_CONFIG_INVALID naming the file', () => {
    expect(() => loadRegistry('/nonexistent/reg.yaml')).toThrow(expect.objectContaining({ code: 'STRATA_CONFIG_INVALID', message: expect.stringContaining('/nonexistent/reg.yaml') }));
  });
});

describe('compileRegistry on the test fixture', () => {
  const registry = compileFile(FIXTURE);

  it('declares every value type in the everything view, in order', () => {
    const view = registry.views.get('everything')!;
    expect(view.features.map((feature) => [feature.name, feature.type, feature.index])).toEqual([
      ['i', 'int64', 0],
      ['d', 'double', 1],
      ['s', 'string', 2],
      ['b', 'bool', 3],
      ['raw', 'bytes', 4],
      ['il', 'list<int64>', 5],
      ['dl', 'list<double>', 6],
      ['sl', 'list<string>', 7],
    ]);
    expect(view.featuresByName.get('raw')).toBe(view.features[4]);
    expect(view.ttlMs).toBe(0);
  });

  it('compiles an int64 entity', () => {
    expect(registry.entities.get('store')!.type).toBe('int64');
    expect(registry.entitiesByJoinKey.get('store_id')!.name).toBe('store');
    expect(registry.views.get('store_stats')!.entities[0]!.type).toBe('int64');
  });

  it('compiles the composite view and the services', () => {
    expect(registry.views.get('user_device')!.joinKeys).toEqual(['user_id', 'device_id']);
    expect(registry.views.get('user_device')!.ttlMs).toBe(600_000);
    expect(registry.views.get('card_profile')!.ttlMs).toBe(3_600_000);
    expect(registry.services.get('device_trust')!.features.map((feature) => feature.ref)).toEqual(['user_device:trusted', 'everything:s']);
    expect(registry.services.get('device_trust')!.description).toBe('composite key view with a single-key view');
    expect(registry.featuresByRef.get('card_profile:credit_limit')!.fullName).toBe('card_profile__credit_limit');
  });
});

describe('compileRegistry rejects invalid registries with file:line, path and rule', () => {
  it('accepts the base registry used by these tests', () => {
    expect(compileRegistry(registryText(), 'reg.yaml').views.get('card_profile')!.features).toHaveLength(1);
  });

  it.each([
    {
      problem: 'an unknown top-level key',
      text: registryText({ tail: 'colour: blue' }),
      where: 'reg.yaml:11',
      path: 'colour',
      rule: 'unknown key; allowed here: entities, topics, feature_views, feature_services',
    },
    {
      problem: 'an unknown key inside a view',
      text: registryText({ viewExtra: '    owner: me' }),
      where: 'reg.yaml:9',
      path: 'feature_views.card_profile.owner',
      rule: 'unknown key; allowed here: entities, ttl, source, features, batch, description',
    },
    {
      problem: 'an unknown feature type',
      text: registryText({ features: '      credit_limit: float' }),
      where: 'reg.yaml:10',
      path: 'feature_views.card_profile.features.credit_limit',
      rule: 'type must be one of int64, double, string, bool, bytes, list<int64>, list<double>, list<string>',
    },
    {
      problem: 'a ttl with an unknown unit',
      text: registryText({ ttl: '1w' }),
      where: 'reg.yaml:7',
      path: 'feature_views.card_profile.ttl',
      rule: 'must be a duration like 500ms, 30s, 5m, 1h, 7d, or 0 for never expires',
    },
    {
      problem: 'a ttl given as a bare number',
      text: registryText({ ttl: '3600' }),
      where: 'reg.yaml:7',
      path: 'feature_views.card_profile.ttl',
      rule: 'must be a duration',
    },
    {
      problem: 'an undefined entity in a view',
      text: registryText({ viewEntities: '[card, merchant]' }),
      where: 'reg.yaml:6',
      path: 'feature_views.card_profile.entities.1',
      rule: 'merchant is not a defined entity (defined: card, user)',
    },
    {
      problem: 'an entity listed twice in a view',
      text: registryText({ viewEntities: '[card, card]' }),
      where: 'reg.yaml:6',
      path: 'feature_views.card_profile.entities.1',
      rule: 'entity card is listed twice',
    },
    {
      problem: 'an undefined feature in a service',
      text: registryText({ tail: 'feature_services:\n  svc: [card_profile:credit_limit, card_profile:nope]' }),
      where: 'reg.yaml:12',
      path: 'feature_services.svc.1',
      rule: 'card_profile:nope is not a defined feature (form view:feature)',
    },
    {
      problem: 'a feature listed twice in a service',
      text: registryText({ tail: 'feature_services:\n  svc:\n    - card_profile:credit_limit\n    - card_profile:credit_limit' }),
      where: 'reg.yaml:14',
      path: 'feature_services.svc.1',
      rule: 'card_profile:credit_limit is listed twice',
    },
    {
      problem: 'a feature listed twice in a service of the mapping form',
      text: registryText({ tail: 'feature_services:\n  svc:\n    description: x\n    features:\n      - card_profile:credit_limit\n      - card_profile:credit_limit' }),
      where: 'reg.yaml:16',
      path: 'feature_services.svc.features.1',
      rule: 'card_profile:credit_limit is listed twice',
    },
    {
      problem: 'a feature named like a join key of its view',
      text: registryText({ features: '      credit_limit: double\n      card_id: string' }),
      where: 'reg.yaml:11',
      path: 'feature_views.card_profile.features.card_id',
      rule: 'feature name clashes with join key card_id',
    },
    {
      problem: 'two entities with the same join key',
      text: registryText({ entities: '  card: { join_key: card_id }\n  user: { join_key: card_id }' }),
      where: 'reg.yaml:3',
      path: 'entities.user.join_key',
      rule: 'join key card_id is already used by entity card',
    },
    {
      problem: 'an entity type other than string or int64',
      text: registryText({ entities: '  card: { join_key: card_id, type: uuid }\n  user: { join_key: user_id }' }),
      where: 'reg.yaml:2',
      path: 'entities.card.type',
      rule: 'must be string or int64',
    },
    {
      problem: 'a view with an empty feature mapping',
      text: registryText({ features: '      {}' }),
      where: 'reg.yaml:10',
      path: 'feature_views.card_profile.features',
      rule: 'must declare at least one feature',
    },
    {
      problem: 'a view whose features are not a mapping',
      text: registryText({ features: '      - credit_limit' }),
      where: 'reg.yaml:10',
      path: 'feature_views.card_profile.features',
      rule: 'must be a mapping',
    },
    {
      problem: 'a feature name that is not a name',
      text: registryText({ features: '      credit-limit: double' }),
      where: 'reg.yaml:10',
      path: 'feature_views.card_profile.features.credit-limit',
      rule: 'must be a name',
    },
  ])('reports $problem', ({ text, where, path, rule }) => {
    const message = rejection(text);
    expect(message).toContain(`${where}: ${path}: ${rule}`);
  });

  it('reports a duplicate key with file, line, dotted path and rule', () => {
    const message = rejection(registryText({ features: '      credit_limit: double\n      credit_limit: string' }));
    expect(message).toContain('reg.yaml:11: feature_views.card_profile.features.credit_limit: duplicate key');
  });

  it('reports a missing required key at its parent mapping', () => {
    const text = registryText().replace('    source: { type: push }\n', '');
    const message = rejection(text);
    expect(message).toMatch(/reg\.yaml:\d+: feature_views\.card_profile\.source: is required/);
  });

  it('reports a missing top-level section at the document start', () => {
    const message = rejection('entities:\n  card: { join_key: card_id }\n');
    expect(message).toContain('reg.yaml:1: feature_views: is required');
  });

  it('reports both required sections of an empty file, without a line', () => {
    const message = rejection('');
    expect(problemLines(message)).toEqual(['  reg.yaml: entities: is required', '  reg.yaml: feature_views: is required']);
  });

  it('reports a document that is not a mapping', () => {
    expect(rejection('- a\n- b\n')).toContain('reg.yaml:1: (top level): must be a mapping');
  });

  it('reports every problem of a registry at once, counted in the heading', () => {
    const text = registryText({ ttl: 'soon', features: '      credit_limit: float', tail: 'extra: 1\nfeature_services:\n  svc: [card_profile:nope]' });
    const message = rejection(text);
    expect(message).toMatch(/^invalid registry \(4 problems\):/);
    const lines = problemLines(message);
    expect(lines).toHaveLength(4);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringContaining('reg.yaml:11: extra: unknown key'),
        expect.stringContaining('reg.yaml:7: feature_views.card_profile.ttl: must be a duration'),
        expect.stringContaining('reg.yaml:10: feature_views.card_profile.features.credit_limit: type must be one of'),
        expect.stringContaining('reg.yaml:13: feature_services.svc.0: card_profile:nope is not a defined feature'),
      ]),
    );
  });

  it('reports an entity with a bad type and, as a consequence, the view that uses it', () => {
    const message = rejection(registryText({ entities: '  card: { join_key: card_id, type: uuid }\n  user: { join_key: user_id }' }));
    expect(message).toMatch(/^invalid registry \(2 problems\):/);
    expect(message).toContain('reg.yaml:6: feature_views.card_profile.entities.0: card is not a defined entity (defined: user)');
  });

  it('says "1 problem" in the singular', () => {
    expect(rejection(registryText({ ttl: '1w' }))).toMatch(/^invalid registry \(1 problem\):\n/);
  });

  it('reports a topic max_clock_skew that is not a duration', () => {
    for (const skew of ['soon', '60', '-1m']) {
      const message = rejection(registryText({ tail: `topics:\n  txn:\n    max_clock_skew: ${skew}` }));
      expect(problemLines(message)).toEqual(['  reg.yaml:13: topics.txn.max_clock_skew: must be a duration like 5s or 1m']);
    }
  });

  it('reads a topic max_clock_skew, 1m when absent', () => {
    const registry = compileRegistry(registryText({ tail: 'topics:\n  txn:\n    max_clock_skew: 30s\n  clicks: {}' }), 'reg.yaml');
    expect(registry.topics.get('txn')!.maxClockSkewMs).toBe(30_000);
    expect(registry.topics.get('clicks')!.maxClockSkewMs).toBe(60_000);
  });

  /** Two stream views of topic txn after card_profile, from line 11, the second's source on line 20. */
  const twoStreamViews = (firstTimestamp: string, secondTimestamp: string) =>
    registryText({
      features: [
        '      credit_limit: double',
        '  card_txn:',
        '    entities: [card]',
        '    ttl: 1h',
        `    source: { type: stream, topic: txn, format: json, key: card_id${firstTimestamp} }`,
        '    aggregations:',
        '      n_5m: { fn: count, window: 5m }',
        '  card_spend:',
        '    entities: [card]',
        '    ttl: 1h',
        `    source: { type: stream, topic: txn, format: json, key: card_id${secondTimestamp} }`,
        '    aggregations:',
        '      n_1h: { fn: count, window: 1h }',
      ].join('\n'),
    });

  it('reports views of one topic that take the event time from different fields, naming the other field', () => {
    expect(problemLines(rejection(twoStreamViews(', timestamp_field: ts', ', timestamp_field: event_time')))).toEqual([
      '  reg.yaml:20: feature_views.card_spend.source.timestamp_field: topic txn takes its event time from ts in another view',
    ]);
    // The default field (timestamp) counts as the view's choice too.
    expect(problemLines(rejection(twoStreamViews('', ', timestamp_field: ts')))).toEqual([
      '  reg.yaml:20: feature_views.card_spend.source.timestamp_field: topic txn takes its event time from timestamp in another view',
    ]);
    const agreeing = compileRegistry(twoStreamViews(', timestamp_field: ts', ', timestamp_field: ts'), 'reg.yaml');
    expect([...agreeing.views.values()].flatMap((view) => (view.source.type === 'stream' ? [view.source.timestampField] : []))).toEqual(['ts', 'ts']);
  });
});

describe('compileRegistry reserves the df columns POST /push takes row times from', () => {
  it.each(['event_timestamp', 'created_timestamp'])('rejects a push view feature named %s with file:line, path and rule', (name) => {
    const message = rejection(registryText({ features: `      credit_limit: double\n      ${name}: int64` }));
    expect(problemLines(message)).toEqual([
      `  reg.yaml:11: feature_views.card_profile.features.${name}: is reserved in a push view: POST /push reads each row's times from its event_timestamp and created_timestamp columns, so a feature of this name could never be pushed over HTTP`,
    ]);
  });

  it('leaves the names to batch views, whose files map columns to features themselves', () => {
    const text = registryText({ features: '      event_timestamp: int64' }).replace('source: { type: push }', 'source: { type: batch, timestamp_column: computed_at }');
    expect(compileRegistry(text, 'reg.yaml').featuresByRef.get('card_profile:event_timestamp')?.type).toBe('int64');
  });
});
