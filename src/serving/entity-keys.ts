import type { JoinKeyType, Registry, ViewDef } from '../config/registry.js';
import type { GenerationSource } from '../storage/feature-store.js';
import { generationPrefix, recordKeyLength, recordKeyPrefix, STRING_TAG, writeRecordKey, type JoinKeyValue } from '../storage/keys.js';

const STRING_TAG_CHAR = String.fromCharCode(STRING_TAG);
/** Below this length, a string's length varint is one byte. */
const ONE_BYTE_VARINT = 0x80;

interface ViewKeys {
  readonly prefix: Buffer;
  /** The prefix as a latin1 string: the start of every L1 id of the view. */
  readonly prefixText: string;
  readonly types: readonly JoinKeyType[];
  /** One string join key: the common case, whose ids can be built as strings. */
  readonly singleString: boolean;
}

/** True when every character of `text` is ASCII, so its UTF-8 bytes read back as latin1 are `text` itself. */
function isAscii(text: string): boolean {
  for (let index = 0; index < text.length; index++) if (text.charCodeAt(index) >= 0x80) return false;
  return true;
}

/**
 * Builds the L1 ids (latin1 strings of record keys, see storage/keys.ts) of
 * entity rows. The id of a single ASCII string key shorter than 128 bytes is
 * built by string concatenation — it is the prefix, the tag, a one-byte
 * length and the text itself — with no native call (bench:read, plan+keys of
 * 100 rows: 90 → 35 CPU µs). Other keys are assembled in one reused scratch
 * buffer, so a row costs one string and no Buffer; the Buffer form is made
 * only for keys that go past L1.
 *
 * Snapshot records' keys carry the published generation; a publish swaps
 * the view's snapshot prefix, so every key built after it addresses the new
 * generation and no cached record of the old one is ever asked for again.
 * A batch view has only snapshot records; a lambda view (push or stream
 * with a batch half) has both kinds, read side by side.
 */
export class EntityKeys {
  /** The keys `id` builds: a batch view's snapshot records, other views' pushed or streamed ones. */
  private readonly views = new Map<ViewDef, ViewKeys>();
  /** The keys `snapshotId` builds, for lambda views. */
  private readonly snapshots = new Map<ViewDef, ViewKeys>();
  private scratch = Buffer.allocUnsafe(256);

  constructor(registry: Registry, generations: GenerationSource) {
    const keysOf = (view: ViewDef, prefix: Buffer): ViewKeys => {
      const types = view.entities.map((entity) => entity.type);
      return { prefix, prefixText: prefix.toString('latin1'), types, singleString: types.length === 1 && types[0] === 'string' };
    };
    const setSnapshotPrefix = (view: ViewDef, generation: number): void => {
      const keys = keysOf(view, generationPrefix(view.name, generation));
      this.snapshots.set(view, keys);
      if (view.source.type === 'batch') this.views.set(view, keys);
    };
    for (const view of registry.views.values()) {
      if (view.source.type !== 'batch') this.views.set(view, keysOf(view, recordKeyPrefix(view.name)));
      if (view.batch !== undefined) setSnapshotPrefix(view, generations.publishedGeneration(view.name));
    }
    generations.onPublish((name, generation) => {
      const view = registry.views.get(name);
      if (view !== undefined) setSnapshotPrefix(view, generation);
    });
  }

  /** The view's join key columns, in its key order, out of a request's columns by join key. */
  static keyColumns(view: ViewDef, columns: ReadonlyMap<string, readonly JoinKeyValue[]>): (readonly JoinKeyValue[])[] {
    return view.joinKeys.map((joinKey) => columns.get(joinKey)!);
  }

  id(view: ViewDef, keyColumns: readonly (readonly JoinKeyValue[])[], row: number): string {
    return this.build(this.views.get(view)!, keyColumns, row);
  }

  /** The id of a lambda view's snapshot record of the row (a batch view's is `id`). */
  snapshotId(view: ViewDef, keyColumns: readonly (readonly JoinKeyValue[])[], row: number): string {
    return this.build(this.snapshots.get(view)!, keyColumns, row);
  }

  private build({ prefix, prefixText, types, singleString }: ViewKeys, keyColumns: readonly (readonly JoinKeyValue[])[], row: number): string {
    if (singleString) {
      const text = keyColumns[0]![row] as string;
      if (text.length < ONE_BYTE_VARINT && isAscii(text)) return prefixText + STRING_TAG_CHAR + String.fromCharCode(text.length) + text;
    }
    const size = recordKeyLength(prefix, types, keyColumns, row);
    if (size > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(size, this.scratch.length * 2));
    return this.scratch.toString('latin1', 0, writeRecordKey(this.scratch, prefix, types, keyColumns, row));
  }
}
