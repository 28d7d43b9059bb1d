import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runGenerate } from '../../src/cli/generate-command.js';
import { loadAvroSchemaFile } from '../../src/config/avro.js';
import { conformEvent } from '../../src/ingest/conform-event.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-generate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function generate(args: string[]): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  await runGenerate(args, out);
  return text;
}

const readLines = (path: string) => readFileSync(path, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as { topic: string; key: string; event: Record<string, unknown>; fraud?: string });

describe('strata generate --out', () => {
  it('writes rate × duration NDJSON lines, topics in turn, the same for the same seed and start', async () => {
    const args = (file: string) => ['--topic', 'txn.events,click.events', '--rate', '2000', '--duration', '5s', '--seed', '3', '--start', '2024-01-01T00:00:00Z', '--out', join(dir, file)];
    const summary = await generate(args('a.ndjson'));
    await generate(args('b.ndjson'));
    expect(summary).toMatch(/^strata generate: 10000 events in [\d.]+ s \(\d+ events\/s\) → .*a\.ndjson: txn\.events=5000 \(fraud \d+\) click\.events=5000\n$/);
    expect(readFileSync(join(dir, 'a.ndjson'), 'utf8')).toBe(readFileSync(join(dir, 'b.ndjson'), 'utf8'));
    const lines = readLines(join(dir, 'a.ndjson'));
    expect(lines).toHaveLength(10_000);
    expect(lines.slice(0, 4).map((line) => line.topic)).toEqual(['txn.events', 'click.events', 'txn.events', 'click.events']);
    expect(lines[0]!.event.timestamp).toBe(Date.UTC(2024, 0, 1));
    // The clock reaches start + duration at the last event.
    expect(Math.max(...lines.map((line) => line.event.timestamp as number))).toBe(Date.UTC(2024, 0, 1) + 4_999);
    expect(lines.filter((line) => line.fraud !== undefined).length).toBeGreaterThan(0);
    expect(lines.filter((line) => line.key !== line.event[line.topic === 'txn.events' ? 'card_id' : 'user_id'])).toEqual([]);
  });
});

describe('strata generate --push', () => {
  let server: Server | undefined;
  afterAll(() => server?.close());

  it('POSTs batches of JSON events to /push-events, paced to the rate', async () => {
    const bodies: { topic: string; events: Record<string, unknown>[] }[] = [];
    let status = 200;
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (request.url === '/push-events' && request.method === 'POST' && status === 200) bodies.push(JSON.parse(body) as (typeof bodies)[number]);
        response.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"events_applied": 1}' : '{"error": "no"}');
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const started = Date.now();
    const summary = await generate(['--rate', '3000', '--duration', '1s', '--batch', '200', '--push', `${url}/`]);
    expect(Date.now() - started).toBeGreaterThan(900);
    expect(summary).toContain(`→ ${url}/push-events: txn.events=1000`);
    expect(bodies.reduce((sum, body) => sum + body.events.length, 0)).toBe(3_000);
    expect(Math.max(...bodies.map((body) => body.events.length))).toBeLessThanOrEqual(200);
    const schemas: Record<string, ReturnType<typeof loadAvroSchemaFile>> = Object.fromEntries(
      [['txn.events', 'txn_event.v2.avsc'], ['click.events', 'click_event.avsc'], ['device.events', 'device_event.avsc']].map(([topic, file]) => [
        topic,
        loadAvroSchemaFile(fileURLToPath(new URL(`../../examples/fraud/schemas/${file}`, import.meta.url))),
      ]),
    );
    expect(bodies.flatMap(({ topic, events }) => events.map((event) => conformEvent(schemas[topic]!, event)).filter((outcome) => !outcome.ok))).toEqual([]);

    status = 400;
    await expect(generate(['--rate', '100', '--duration', '1s', '--push', url])).rejects.toThrow(/POST .*\/push-events \(\d+ \S+ events\) answered 400: \{"error": "no"\}/);
  });
});

describe('strata generate options', () => {
  it.each([
    [['--rate', 'fast', '--out', 'x'], '--rate must be a positive number, got "fast"'],
    [['--rate=-5', '--out', 'x'], '--rate must be a positive number, got "-5"'],
    [['--topic', 'txn.events,pay.events', '--out', 'x'], '--topic: unknown topic "pay.events" (known: txn.events, click.events, device.events)'],
    [['--duration', '60', '--out', 'x'], '--duration must be a duration like 60s or 5m, got "60"'],
    [['--seed', '1.5', '--out', 'x'], '--seed must be an integer, got "1.5"'],
    [['--start', 'yesterday', '--out', 'x'], '--start must be an ISO 8601 time or epoch ms, got "yesterday"'],
    // Date.parse takes these; snapshot files' timestamps do not.
    [['--start', 'Jan 1 2024', '--out', 'x'], '--start must be an ISO 8601 time or epoch ms, got "Jan 1 2024"'],
    [['--start', '2024-01-01T00:00:00 GMT', '--out', 'x'], '--start must be an ISO 8601 time or epoch ms, got "2024-01-01T00:00:00 GMT"'],
    [['--users', '0', '--out', 'x'], '--users must be a positive integer, got "0"'],
    [[], 'choose one output: --brokers, --push or --out'],
    [['--out', 'x', '--push', 'http://127.0.0.1:1'], 'choose one output: --brokers, --push or --out (got --push and --out)'],
    [['--push', '127.0.0.1:8080'], '--push must be an http(s) URL, got "127.0.0.1:8080"'],
    [['--brokers', 'localhost'], '--brokers: "localhost" is not HOST:PORT'],
    [['--out', 'x', '--schema-ids', 'click.events=9'], '--schema-ids applies only with --brokers'],
    [['--brokers', 'h:1', '--schema-ids', 'v2=9'], '--schema-ids: "v2=9" names a version but no topic before it'],
    [['--brokers', 'h:1', '--schema-ids', 'txn.events:v1=1,v3=3'], '--schema-ids: unknown "txn.events:v3" (known: txn.events:v1, txn.events:v2, click.events, device.events)'],
    [['--brokers', 'h:1', '--schema-ids', 'txn.events=x'], '--schema-ids: cannot read "txn.events=x" (expected TOPIC[:vN]=ID or vN=ID)'],
    [['--out', 'x', '--verbose'], "generate: Unknown option '--verbose'"],
  ])('rejects %j', async (args, message) => {
    await expect(generate(args)).rejects.toMatchObject({ code: 'STRATA_CONFIG_INVALID', message: expect.stringContaining(message) });
  });

  it('reads --start without a zone as UTC, and epoch ms as they are', async () => {
    const firstEventMs = async (start: string): Promise<unknown> => {
      const path = join(dir, `start-${start.replace(/\W/g, '')}.ndjson`);
      await generate(['--topic', 'txn.events', '--rate', '10', '--duration', '1s', '--start', start, '--out', path]);
      return readLines(path)[0]!.event.timestamp;
    };
    // On a machine whose zone is not UTC: there a zone-less time read as local time would be 5.5 h off.
    const zone = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata';
    try {
      expect(await firstEventMs('2024-01-01T00:00:00')).toBe(Date.UTC(2024, 0, 1));
      expect(await firstEventMs(String(Date.UTC(2024, 0, 1)))).toBe(Date.UTC(2024, 0, 1));
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('names an --out file it cannot open', async () => {
    await expect(generate(['--out', join(dir, 'missing', 'x.ndjson')])).rejects.toMatchObject({ code: 'STRATA_CONFIG_INVALID', message: expect.stringMatching(/^--out: cannot write .*ENOENT/) });
  });

  it('prints usage for --help', async () => {
    expect(await generate(['--help'])).toMatch(/^usage: strata generate/);
  });
});
