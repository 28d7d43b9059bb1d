/**
 * Group commit: items submitted while a run is in flight wait for it and then
 * go together in the next run, so N concurrent submitters cost about two runs
 * instead of N (one LevelDB batch and one Kafka offset commit for all the
 * partitions of a fetch, rather than one per partition). Runs never overlap,
 * which also keeps them in submission order. A submitter learns the outcome
 * of the run its item was in: if it fails, every item in it fails.
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
      // Starts once the run in flight has settled, with whatever was submitted by then.
      const done = this.running.then(() => {
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
