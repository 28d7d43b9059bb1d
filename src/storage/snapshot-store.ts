/**
 * Snapshot generations of batch views in L3 (write → audit → publish): an
 * import stages whole records under a generation never used before, and
 * publishing switches the view to it in one write. Readers address records
 * through the published generation's key prefix (keys.ts), so they see the
 * old generation or the new one, never a mix; a generation that is never
 * published (a failed audit, a killed import) is never read and is removed
 * when the next import of the view begins.
 */
import { ByteSink } from '../util/byte-sink.js';
import type { GenerationSource } from './feature-store.js';

/**
 * Records to stage, their keys and their bytes each laid end to end in one
 * buffer: a snapshot's chunk goes to LevelDB without an object per record.
 * Build by appending a record's key to `keys` and its bytes to `records`,
 * then calling endRecord(); or take packed ones as they are (packed()).
 */
export class StagedRecords {
  readonly keys: ByteSink;
  readonly records: ByteSink;
  private keyEnds: Uint32Array;
  private recordEnds: Uint32Array;
  private size: number;

  constructor(keyBytes: number, recordBytes: number, expectedRecords = 256) {
    this.keys = new ByteSink(keyBytes);
    this.records = new ByteSink(recordBytes);
    this.keyEnds = new Uint32Array(expectedRecords);
    this.recordEnds = new Uint32Array(expectedRecords);
    this.size = 0;
  }

  /** Records already packed, record i's key ending at `keyEnds[i]` and its bytes at `recordEnds[i]`: held, not copied. */
  static packed(keys: Uint8Array, keyEnds: Uint32Array, records: Uint8Array, recordEnds: Uint32Array): StagedRecords {
    const staged = new StagedRecords(0, 0, 0);
    staged.keys.hold(keys);
    staged.records.hold(records);
    staged.keyEnds = keyEnds;
    staged.recordEnds = recordEnds;
    staged.size = keyEnds.length;
    return staged;
  }

  get count(): number {
    return this.size;
  }

  endRecord(): void {
    if (this.size === this.keyEnds.length) {
      this.keyEnds = grown(this.keyEnds);
      this.recordEnds = grown(this.recordEnds);
    }
    this.keyEnds[this.size] = this.keys.length;
    this.recordEnds[this.size] = this.records.length;
    this.size++;
  }

  /** Record `index`'s key: a view of this batch's memory, valid as long as nothing more is appended. */
  key(index: number): Buffer {
    return this.keys.slice(index === 0 ? 0 : this.keyEnds[index - 1]!, this.keyEnds[index]!);
  }

  /** Record `index`'s bytes, a view as key() is. */
  record(index: number): Buffer {
    return this.records.slice(index === 0 ? 0 : this.recordEnds[index - 1]!, this.recordEnds[index]!);
  }
}

function grown(ends: Uint32Array): Uint32Array {
  const larger = new Uint32Array(Math.max(16, 2 * ends.length));
  larger.set(ends);
  return larger;
}

export interface SnapshotStore extends GenerationSource {
  /** Reserves a generation to stage (durably: a crash never reuses it) and removes what unpublished ones left behind. */
  beginGeneration(view: string): Promise<number>;
  /** Writes staged records as they are (no merge), all in one batch. */
  putStaged(records: StagedRecords): Promise<void>;
  getStaged(keys: readonly Buffer[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Makes `generation` the view's published one, in one write, and removes
   * all but it and the generation it replaces (reads that began just before
   * the switch may still be reading that one). `cutoffMs`: for a stream
   * view's tiles, the end of the newest tile the snapshot covers.
   */
  publish(view: string, generation: number, cutoffMs?: number): Promise<void>;
  /** Removes a staged generation that will not be published. */
  discard(view: string, generation: number): Promise<void>;
}
