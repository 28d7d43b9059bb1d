import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { compileRegistry } from '../../src/config/registry.js';
import { EntityKeys } from '../../src/serving/entity-keys.js';
import { recordKey, recordKeyPrefix, type JoinKeyValue } from '../../src/storage/keys.js';

const registry = compileRegistry(readFileSync(fileURLToPath(new URL('../fixtures/registry.yaml', import.meta.url)), 'utf8'), 'registry.yaml');

describe('EntityKeys.id', () => {
  const keys = new EntityKeys(registry, { publishedGeneration: () => 0, snapshotCutoff: () => 0, onPublish: () => undefined });
  const expectLatin1Key = (viewName: string, values: readonly JoinKeyValue[]): void => {
    const view = registry.views.get(viewName)!;
    const expected = recordKey(recordKeyPrefix(view.name), view.entities.map((entity) => entity.type), values).toString('latin1');
    expect(keys.id(view, values.map((value) => [value]), 0)).toBe(expected);
  };

  it('is the latin1 string of the record key, whichever way it is built', () => {
    // Single ASCII keys are built as strings; the others in a buffer.
    for (const id of ['', 'c0001', 'x'.repeat(127), 'x'.repeat(128), 'kärte', '日本', 'a\u007f']) expectLatin1Key('card_profile', [id]);
    expectLatin1Key('user_device', ['u1', 'd1']);
    expectLatin1Key('store_stats', [Long.fromString('-9223372036854775808')]);
  });
});
