/**
 * `work`'s value, or `missed()`'s once `ms` have passed without it, where an
 * event-loop stall does not count against an answer that came in during it.
 *
 * A plain timer does: after a stall (a full GC, the process descheduled)
 * Node runs expired timers before it polls for I/O, so a read in flight
 * across it is given up on even when its reply sits unread in the socket,
 * and the request then pays for L3 on top of the stall (ioredis's own
 * command timeout works that way; in the loadtest's Zipf runs, with
 * full-heap GC pauses of 40-90 ms, 17-119 of ~24k L2 reads per 20 s went on
 * to L3). Here an expired timer first lets one poll phase run (setImmediate
 * callbacks run after it), and misses only if the answer is still out then.
 */
export function withStallTolerantDeadline<T>(work: Promise<T>, ms: number, missed: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          settled = true;
          resolve(missed());
        }),
      ms,
    );
    work.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
