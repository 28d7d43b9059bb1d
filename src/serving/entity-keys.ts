import type { JoinKeyType, Registry, ViewDef } from '../config/registry.js';
import type { RecordLookup } from '../cache/tiered-record-store.js';
import { recordKey, recordKeyPrefix, type JoinKeyValue } from '../storage/keys.js';

/** Builds record lookups for entity rows; per-view prefixes and key types are computed once. */
export class EntityKeys {
  private readonly prefixes = new Map<ViewDef, Buffer>();
  private readonly types = new Map<ViewDef, readonly JoinKeyType[]>();

  constructor(registry: Registry) {
    for (const view of registry.views.values()) {
      this.prefixes.set(view, recordKeyPrefix(view.name));
      this.types.set(view, view.entities.map((entity) => entity.type));
    }
  }

  /** `columns` holds typed join key values by join key; `row` picks the entity row. */
  lookup(view: ViewDef, columns: ReadonlyMap<string, readonly JoinKeyValue[]>, row: number): RecordLookup {
    const values = view.joinKeys.map((joinKey) => columns.get(joinKey)![row]!);
    const key = recordKey(this.prefixes.get(view)!, this.types.get(view)!, values);
    return { view, key, id: key.toString('latin1') };
  }
}
