/**
 * Request/reply over a Node IPC channel: a cluster worker's `process`, or
 * the primary's handle on one worker. Each side calls the methods the other
 * serves; a call carries an id and its reply names it. Use one endpoint per
 * channel: replies are matched by id, so two endpoints on one channel would
 * take each other's replies.
 */
import type { Worker } from 'node:cluster';

/** Method name → its arguments and its result, as they cross the channel (structured-clone types). */
export type Methods = Record<string, { args: unknown; result: unknown }>;

export interface IpcChannel {
  /** Sends a message; `failed` runs when it cannot be delivered (the channel is closed). */
  send(message: unknown, failed: (error: Error) => void): void;
  onMessage(listener: (message: unknown) => void): void;
  onClose(listener: () => void): void;
}

interface CallMessage {
  readonly ipc: 'call';
  readonly id: number;
  readonly method: string;
  readonly args: unknown;
}

interface ReplyMessage {
  readonly ipc: 'reply';
  readonly id: number;
  readonly result?: unknown;
  readonly error?: { readonly message: string; readonly code: string | undefined; readonly field?: string };
}

/** A failure reported by the other side (with its error code and field, if it had them), or the channel closing under a call. */
export class RemoteCallError extends Error {
  override readonly name = 'RemoteCallError';
  readonly code: string | undefined;
  readonly field: string | undefined;

  constructor(message: string, code: string | undefined, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

interface PendingCall {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class IpcEndpoint<Outgoing extends Methods, Incoming extends Methods> {
  private readonly channel: IpcChannel;
  private readonly pending = new Map<number, PendingCall>();
  private readonly handlers = new Map<string, (args: never) => unknown>();
  private nextId = 1;
  private closed = false;

  constructor(channel: IpcChannel) {
    this.channel = channel;
    channel.onMessage((message) => this.receive(message));
    channel.onClose(() => this.close());
  }

  /** Calls `method` on the other side; with `timeoutMs`, rejects when no reply came in time. */
  call<M extends keyof Outgoing & string>(method: M, args: Outgoing[M]['args'], timeoutMs?: number): Promise<Outgoing[M]['result']> {
    if (this.closed) return Promise.reject(new RemoteCallError(`cannot call ${method}: the IPC channel is closed`, undefined));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => this.settle(id, undefined, new RemoteCallError(`${method}: no reply within ${timeoutMs}ms`, undefined)), timeoutMs);
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject, timer });
      const message: CallMessage = { ipc: 'call', id, method, args };
      this.channel.send(message, (error) => this.settle(id, undefined, new RemoteCallError(`${method}: ${error.message}`, undefined)));
    });
  }

  /** Answers calls of `method` from the other side; a thrown error goes back with its message and code. */
  serve<M extends keyof Incoming & string>(method: M, handler: (args: Incoming[M]['args']) => Incoming[M]['result'] | Promise<Incoming[M]['result']>): void {
    this.handlers.set(method, handler);
  }

  /** Rejects the calls still waiting; later calls reject at once. Runs by itself when the channel closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, new RemoteCallError('the IPC channel closed before the reply', undefined));
  }

  private receive(message: unknown): void {
    if (typeof message !== 'object' || message === null || !('ipc' in message)) return;
    const typed = message as CallMessage | ReplyMessage;
    if (typed.ipc === 'reply') {
      this.settle(typed.id, typed.result, typed.error === undefined ? undefined : new RemoteCallError(typed.error.message, typed.error.code, typed.error.field));
      return;
    }
    const handler = this.handlers.get(typed.method) as ((args: unknown) => unknown) | undefined;
    const answer = (reply: ReplyMessage): void => {
      // The caller is gone when its channel is: nobody is left to tell.
      if (!this.closed) this.channel.send(reply, () => undefined);
    };
    new Promise((resolve) => {
      if (handler === undefined) throw new Error(`no handler for ${typed.method}`);
      resolve(handler(typed.args));
    }).then(
      (result) => answer({ ipc: 'reply', id: typed.id, result }),
      (error: Error & { code?: unknown; field?: unknown }) =>
        answer({ ipc: 'reply', id: typed.id, error: { message: error.message, code: typeof error.code === 'string' ? error.code : undefined, ...(typeof error.field === 'string' ? { field: error.field } : {}) } }),
    );
  }

  private settle(id: number, result: unknown, error: Error | undefined): void {
    const call = this.pending.get(id);
    if (call === undefined) return;
    this.pending.delete(id);
    clearTimeout(call.timer);
    if (error === undefined) call.resolve(result);
    else call.reject(error);
  }
}

/** A cluster worker's channel to its primary. */
export function primaryChannel(): IpcChannel {
  return {
    send: (message, failed) => {
      if (!process.connected) return failed(new Error('not connected to the primary'));
      process.send!(message, undefined, {}, (error: Error | null) => error && failed(error));
    },
    onMessage: (listener) => void process.on('message', listener),
    onClose: (listener) => void process.once('disconnect', listener),
  };
}

/** The primary's channel to one worker. */
export function workerChannel(worker: Worker): IpcChannel {
  return {
    send: (message, failed) => {
      if (!worker.isConnected()) return failed(new Error(`worker ${worker.id} is not connected`));
      worker.send(message as never, undefined, (error: Error | null) => error && failed(error));
    },
    onMessage: (listener) => void worker.on('message', listener),
    onClose: (listener) => void worker.once('exit', listener),
  };
}
