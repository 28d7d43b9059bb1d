import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Group commit: items submitted while a run is in flight wait for it and then
 * go together in the next run, so N concurrent submitters cost about one run
 * instead of N (one LevelDB batch and one Kafka offset commit for all the
 * partitions of a fetch, rather than one per partition). A run starts an
 * event-loop turn after its first item rather than at once: the partitions
 * of a fetch are decoded one after another within one turn, and starting on
 * the first one's item split each fetch into a write of that partition and
 * a second write, begun only after the first was durable, for the rest. Runs
 * never overlap, which also keeps them in submission order. A submitter
 * learns the outcome of the run its item was in: if it fails, every item in
 * it fails.
 */
export class GroupRunner<T> {
  private readonly run: (items: T[]) => Promise<void>;
  private pending: { items: T[]; done: Promise<void> } | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(run: (items: T[]) => Promise<void>) {
    this.run = run;
  }

  submit(item: T): Promise<void> {
    if (this.pending === undefined) {
      const items: T[] = [];
      // Starts once the run in flight has settled and this turn is over, with whatever was submitted by then.
      const done = Promise.all([this.running, nextTurn()]).then(() => {
        this.pending = undefined;
        return this.run(items);
      });
      this.pending = { items, done };
      this.running = done.catch(() => undefined);
    }
    this.pending.items.push(item);
    return this.pending.done;
  }
}
