import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fixture answers for an id: the schema text, and optionally a schemaType other than AVRO. */
export type RegisteredSchema = string | { readonly schema: string; readonly schemaType: string };

/**
 * A tiny Confluent Schema Registry on 127.0.0.1 (port 0) for tests: serves
 * `GET /schemas/ids/{id}` from a map, answers an unknown id the way the real
 * one does (404, error_code 40403) and any other path with a plain 404.
 * Counts requests per id; `failWith(status)` and `hang()` stand in for a
 * registry in trouble until `recover()`.
 */
export class SchemaRegistryFixture {
  readonly #schemas: Map<number, RegisteredSchema>;
  readonly #requests = new Map<number, number>();
  #mode: { readonly kind: 'serve' } | { readonly kind: 'fail'; readonly status: number } | { readonly kind: 'hang' } = { kind: 'serve' };

  private constructor(
    private readonly server: Server,
    schemas: ReadonlyMap<number, RegisteredSchema>,
  ) {
    this.#schemas = new Map(schemas);
  }

  static async start(schemas: ReadonlyMap<number, RegisteredSchema> = new Map()): Promise<SchemaRegistryFixture> {
    const server = createServer();
    const fixture = new SchemaRegistryFixture(server, schemas);
    server.on('request', (request, response) => {
      const match = /^\/schemas\/ids\/(\d+)$/.exec(request.url ?? '');
      if (request.method !== 'GET' || match === null) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('no such route');
        return;
      }
      const id = Number(match[1]);
      fixture.#requests.set(id, fixture.requestsFor(id) + 1);
      const mode = fixture.#mode;
      if (mode.kind === 'hang') return;
      const json = (status: number, body: object): void =>
        void response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' }).end(JSON.stringify(body));
      if (mode.kind === 'fail') return json(mode.status, { error_code: mode.status * 100, message: 'Internal Server Error' });
      const registered = fixture.#schemas.get(id);
      if (registered === undefined) return json(404, { error_code: 40403, message: 'Schema not found' });
      json(200, typeof registered === 'string' ? { schema: registered } : registered);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fixture;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Requests for every id so far. */
  get requests(): number {
    return [...this.#requests.values()].reduce((sum, count) => sum + count, 0);
  }

  requestsFor(id: number): number {
    return this.#requests.get(id) ?? 0;
  }

  register(id: number, schema: RegisteredSchema): void {
    this.#schemas.set(id, schema);
  }

  /** Every schema request from now on gets this status (e.g. 500, 503). */
  failWith(status: number): void {
    this.#mode = { kind: 'fail', status };
  }

  /** Schema requests from now on are never answered. */
  hang(): void {
    this.#mode = { kind: 'hang' };
  }

  recover(): void {
    this.#mode = { kind: 'serve' };
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Hanging requests and idle keep-alive connections would hold close() open.
    this.server.closeAllConnections();
    await closed;
  }
}
