import { describe, expect, it } from 'vitest';
import { GroupRunner } from '../../src/ingest/group-runner.js';

/** A run that stays in flight until released, recording what it was given. */
function gatedRuns() {
  const runs: { items: number[]; release: () => void; fail: (error: Error) => void }[] = [];
  let active = 0;
  let overlapped = false;
  const runner = new GroupRunner<number>(
    (items) =>
      new Promise<void>((resolve, reject) => {
        active++;
        if (active > 1) overlapped = true;
        const settle = (then: () => void) => () => {
          active--;
          then();
        };
        runs.push({ items: [...items], release: settle(resolve), fail: (error) => settle(() => reject(error))() });
      }),
  );
  return { runner, runs, overlapped: () => overlapped };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupRunner', () => {
  it('runs what is submitted within one event-loop turn as one run, though the submitters come one microtask after another', async () => {
    const { runner, runs } = gatedRuns();
    const submitted = [runner.submit(1)];
    for (const item of [2, 3]) {
      await Promise.resolve();
      submitted.push(runner.submit(item));
    }
    await tick();
    expect(runs.map((run) => run.items)).toEqual([[1, 2, 3]]);
    runs[0]!.release();
    await Promise.all(submitted);
  });

  it('runs what is submitted while a run is in flight as one next run, never two at once', async () => {
    const { runner, runs, overlapped } = gatedRuns();
    const first = runner.submit(1);
    await tick();
    const rest = [runner.submit(2), runner.submit(3), runner.submit(4)];
    await tick();
    expect(runs.map((run) => run.items)).toEqual([[1]]);
    runs[0]!.release();
    await first;
    await tick();
    expect(runs.map((run) => run.items)).toEqual([[1], [2, 3, 4]]);
    runs[1]!.release();
    await Promise.all(rest);
    expect(overlapped()).toBe(false);
  });

  it('fails exactly the submitters of a failed run, and runs the next group after it', async () => {
    const { runner, runs } = gatedRuns();
    const first = runner.submit(1);
    await tick();
    const second = [runner.submit(2), runner.submit(3)];
    const settled = Promise.allSettled([first, ...second]);
    runs[0]!.fail(new Error('L3 write failed'));
    await tick();
    expect(runs.map((run) => run.items)).toEqual([[1], [2, 3]]);
    runs[1]!.release();
    const outcomes = await settled;
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
  });
});
