import { spawn, type ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { freePort } from './ports.js';

/**
 * A real redis-server on a free loopback port, owned by the test: no
 * persistence, killed when the test is done. Installed by
 * scripts/ensure-test-deps.sh.
 */
export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.resume();
    return server;
  }

  /** (Re)starts the server on its port. */
  async resume(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning', '--enable-debug-command', 'local'], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await this.ping())) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${this.port}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Sends raw RESP and resolves with the reply text (enough for PING, INFO, DBSIZE). */
  command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let reply = '';
      socket.setTimeout(1_000, () => socket.destroy(new Error('redis command timed out')));
      socket.once('error', reject);
      socket.connect(this.port, '127.0.0.1', () => socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`));
      socket.on('data', (chunk) => {
        reply += chunk.toString('utf8');
        // One complete reply: a simple/integer/error line, or a bulk string whose length is met.
        const bulk = /^\$(\d+)\r\n/.exec(reply);
        if (bulk === null ? reply.endsWith('\r\n') : Buffer.byteLength(reply) >= bulk[0].length + Number(bulk[1]) + 2) {
          socket.end();
          resolve(reply);
        }
      });
    });
  }

  private async ping(): Promise<boolean> {
    try {
      return (await this.command('PING')).startsWith('+PONG');
    } catch {
      return false;
    }
  }

  /** SIGKILL: the way a crashed or partitioned Redis looks to clients. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}
