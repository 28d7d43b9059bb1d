import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { EventSink, OutgoingEvent } from './event-sink.js';

/**
 * One line per event, in generation order: `{"topic", "key", "event"}`, plus
 * `"fraud"` on events of a fraud pattern — an oracle for tests. Unpaced: event
 * times still advance at --rate, but the file is written as fast as it can be.
 */
export class NdjsonFileEventSink implements EventSink {
  readonly paced = false;
  readonly target: string;
  readonly #file: WriteStream;
  #failure: Error | undefined;
  /** One wait for 'drain' shared by every batch sent while the file is behind. */
  #draining: Promise<void> | undefined;

  /** Opens (truncates) the file at once, so a bad path fails before any event is made. */
  constructor(path: string) {
    this.target = path;
    this.#file = createWriteStream(path, { fd: openSync(path, 'w') });
    this.#file.on('error', (error) => void (this.#failure ??= error));
  }

  async send(batch: readonly OutgoingEvent[]): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    let text = '';
    for (const { topic, generated } of batch) {
      text += `${JSON.stringify({ topic, key: generated.key, event: generated.event, ...(generated.fraud === undefined ? {} : { fraud: generated.fraud }) })}\n`;
    }
    if (!this.#file.write(text)) this.#draining ??= once(this.#file, 'drain').then(() => void (this.#draining = undefined));
    await this.#draining;
  }

  async close(): Promise<void> {
    this.#file.end();
    await finished(this.#file);
  }
}
