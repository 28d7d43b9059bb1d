/**
 * The worker thread of a snapshot import, driven as importSnapshot drives
 * it: an error deep in a file crosses to the main thread as the same
 * StrataError (code, field, message) the converter throws in process, and
 * the worker encodes no more than a few chunks ahead of what was taken.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { valueReader } from '../../src/batch/files/column-conform.js';
import { ChunkFeed, failureOf } from '../../src/batch/snapshot-import-feed.js';
import type { ChunkEncoding, ChunkMessage } from '../../src/batch/snapshot-import-worker.js';
import { StrataError } from '../../src/errors.js';

const scratch = mkdtempSync(join(tmpdir(), 'strata-import-worker-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const NOW = 1_790_000_000_000;

function ndjson(name: string, count: number, edit: (row: Record<string, unknown>, index: number) => void = () => undefined): string {
  const path = join(scratch, name);
  const lines = Array.from({ length: count }, (_, index) => {
    const row: Record<string, unknown> = { card_id: `card-${index}`, event_timestamp: NOW, amount: index / 4 };
    edit(row, index);
    return JSON.stringify(row);
  });
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function encoding(paths: readonly string[]): ChunkEncoding {
  return {
    paths,
    prefix: Buffer.from('rdaily\0G0001'),
    keys: [{ joinKey: 'card_id', column: 'card_id', type: 'string' }],
    features: [{ column: 'amount', type: 'double' }],
    timestampColumn: 'event_timestamp',
    createdTimestampColumn: 'created_timestamp',
    tileMs: 0,
    cutoffMs: undefined,
    maxRows: 1e9,
    fingerprint: 7,
    nowMs: NOW,
  };
}

/** Every message up to `done` or `failed`, taking each chunk as it comes. */
async function drain(feed: ChunkFeed): Promise<ChunkMessage[]> {
  const messages: ChunkMessage[] = [];
  for (;;) {
    const message = await feed.next();
    messages.push(message);
    if (message.type === 'chunk') feed.taken();
    if (message.type === 'done' || message.type === 'failed') return messages;
  }
}

describe('snapshot import worker', () => {
  it('fails with the code, field and message of the converter, and the rows counted up to the failing chunk', async () => {
    const path = ndjson('deep-bad.ndjson', 40_000, (row, index) => {
      if (index === 37_123) row.amount = 'lots';
    });
    const feed = new ChunkFeed();
    try {
      feed.start(encoding([path]));
      const messages = await drain(feed);
      const failed = messages.at(-1)!;
      if (failed.type !== 'failed') throw new Error(`expected a failure, got ${failed.type}`);
      const staged = messages.reduce((rows, message) => rows + (message.type === 'chunk' ? message.length : 0), 0);
      expect(staged).toBeGreaterThan(0);
      expect(failed.rows).toBeGreaterThan(37_123);
      expect(failed.rows).toBeGreaterThan(staged);

      let inProcess: unknown;
      try {
        valueReader('double', { path, textValues: false }, 'amount')('lots', 37_123);
      } catch (error) {
        inProcess = error;
      }
      const crossed = failureOf(failed.failure);
      expect(crossed).toBeInstanceOf(StrataError);
      expect(crossed).toMatchObject({ code: 'STRATA_VALUE_TYPE_MISMATCH', kind: 'invalid_argument', field: `${path}:row 37123 column amount` });
      expect(crossed.message).toBe((inProcess as StrataError).message);
    } finally {
      await feed.close();
    }
  });

  it('says when a file cannot be opened, before any chunk', async () => {
    const feed = new ChunkFeed();
    try {
      feed.start(encoding([join(scratch, 'absent.ndjson')]));
      const [failed] = await drain(feed);
      expect(failed).toMatchObject({ type: 'failed', rows: 0, failure: { kind: 'strata', code: 'STRATA_FILE_UNUSABLE' } });
    } finally {
      await feed.close();
    }
  });

  it('encodes at most two chunks that were not taken', async () => {
    // 16 384-row chunks: six of them.
    const feed = new ChunkFeed();
    try {
      feed.start(encoding([ndjson('many-chunks.ndjson', 6 * 16_384)]));
      const arrived: ChunkMessage[] = [];
      const collect = async (): Promise<void> => {
        for (;;) arrived.push(await feed.next());
      };
      void collect().catch(() => undefined);
      const chunks = (): number => arrived.filter((message) => message.type === 'chunk').length;
      await vi.waitFor(() => expect(chunks()).toBe(2), { timeout: 10_000 });
      // Time enough to read and encode a chunk or two more, had it room for them.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(arrived.map((message) => message.type)).toEqual(['opened', 'file', 'chunk', 'chunk']);
      feed.taken();
      await vi.waitFor(() => expect(chunks()).toBe(3), { timeout: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(chunks()).toBe(3);
    } finally {
      await feed.close();
    }
  });
});
