import type { JoinKeyType, Registry, ViewDef } from '../config/registry.js';
import { recordKeyLength, recordKeyPrefix, writeRecordKey, type JoinKeyValue } from '../storage/keys.js';

/**
 * Builds the L1 ids (latin1 strings of record keys, see storage/keys.ts) of
 * entity rows. Keys are assembled in one reused scratch buffer, so a row
 * costs one string and no Buffer; the Buffer form is made only for keys that
 * go past L1.
 */
export class EntityKeys {
  private readonly prefixes = new Map<ViewDef, Buffer>();
  private readonly types = new Map<ViewDef, readonly JoinKeyType[]>();
  private scratch = Buffer.allocUnsafe(256);

  constructor(registry: Registry) {
    for (const view of registry.views.values()) {
      this.prefixes.set(view, recordKeyPrefix(view.name));
      this.types.set(view, view.entities.map((entity) => entity.type));
    }
  }

  /** The view's join key columns, in its key order, out of a request's columns by join key. */
  static keyColumns(view: ViewDef, columns: ReadonlyMap<string, readonly JoinKeyValue[]>): (readonly JoinKeyValue[])[] {
    return view.joinKeys.map((joinKey) => columns.get(joinKey)!);
  }

  id(view: ViewDef, keyColumns: readonly (readonly JoinKeyValue[])[], row: number): string {
    const prefix = this.prefixes.get(view)!;
    const types = this.types.get(view)!;
    const size = recordKeyLength(prefix, types, keyColumns, row);
    if (size > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(size, this.scratch.length * 2));
    return this.scratch.toString('latin1', 0, writeRecordKey(this.scratch, prefix, types, keyColumns, row));
  }
}
