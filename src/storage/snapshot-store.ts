/**
 * Snapshot generations of batch views in L3 (write → audit → publish): an
 * import stages whole records under a generation never used before, and
 * publishing switches the view to it in one write. Readers address records
 * through the published generation's key prefix (keys.ts), so they see the
 * old generation or the new one, never a mix; a generation that is never
 * published (a failed audit, a killed import) is never read and is removed
 * when the next import of the view begins.
 */
import type { GenerationSource } from './feature-store.js';

export interface StagedRecord {
  readonly key: Buffer;
  readonly bytes: Uint8Array;
}

export interface SnapshotStore extends GenerationSource {
  /** Reserves a generation to stage (durably: a crash never reuses it) and removes what unpublished ones left behind. */
  beginGeneration(view: string): Promise<number>;
  /** Writes staged records as they are (no merge), all in one batch. */
  putStaged(records: readonly StagedRecord[]): Promise<void>;
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
