import type { EventSink, OutgoingEvent } from './event-sink.js';

const REQUEST_TIMEOUT_MS = 30_000;

/** `POST {url}/push-events` with `{"topic": …, "events": […]}`, one request per topic of a batch. */
export class PushEventSink implements EventSink {
  readonly paced = true;
  readonly target: string;
  readonly #endpoint: string;

  constructor(url: string) {
    this.#endpoint = `${url.replace(/\/+$/, '')}/push-events`;
    this.target = this.#endpoint;
  }

  async send(batch: readonly OutgoingEvent[]): Promise<void> {
    const byTopic = new Map<string, Record<string, unknown>[]>();
    for (const { topic, generated } of batch) {
      let events = byTopic.get(topic);
      if (events === undefined) byTopic.set(topic, (events = []));
      events.push(generated.event);
    }
    await Promise.all([...byTopic].map(([topic, events]) => this.#post(topic, events)));
  }

  async #post(topic: string, events: readonly Record<string, unknown>[]): Promise<void> {
    const response = await fetch(this.#endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic, events }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`POST ${this.#endpoint} (${events.length} ${topic} events) answered ${response.status}: ${body.slice(0, 500)}`);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
