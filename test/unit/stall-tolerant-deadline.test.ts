import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withStallTolerantDeadline } from '../../src/util/stall-tolerant-deadline.js';

/** Blocks the event loop, as a full-heap GC pause does. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('withStallTolerantDeadline', () => {
  let server: Server;
  let client: Socket;
  let peer: Socket;

  beforeAll(async () => {
    const accepted = new Promise<Socket>((resolve) => (server = createServer(resolve)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    peer = await accepted;
  });

  afterAll(async () => {
    client.destroy();
    peer.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('keeps an answer that came in while the event loop was stalled past the deadline', async () => {
    const reply = new Promise<string>((resolve) => client.once('data', (data) => resolve(data.toString())));
    const answer = withStallTolerantDeadline(reply, 20, () => 'missed');
    // Written to the kernel at once (libuv tries the write before queueing it): the reply is in
    // the client's socket during the whole stall, unread until the loop polls again.
    peer.write('pong');
    stall(100);
    expect(await answer).toBe('pong');
  });

  it('misses once the deadline has passed without an answer', async () => {
    const started = performance.now();
    expect(await withStallTolerantDeadline(new Promise<string>(() => {}), 20, () => 'missed')).toBe('missed');
    expect(performance.now() - started).toBeGreaterThanOrEqual(19);
  });

  it('passes a failure on, and an answer in time', async () => {
    await expect(withStallTolerantDeadline(Promise.reject(new Error('refused')), 20, () => 'missed')).rejects.toThrow('refused');
    expect(await withStallTolerantDeadline(Promise.resolve('quick'), 20, () => 'missed')).toBe('quick');
  });
});
