/**
 * Batch file layer throughput: how fast src/batch/files reads a file of
 * feature rows, and reads and conforms it, per format. The later snapshot
 * import must stage ≥ 200k rows/s end to end into LevelDB on this project's
 * 2-core machine, so reading has to leave most of that budget to LevelDB.
 *
 *   npm run bench:files
 *   BENCH_ROWS=200000 BENCH_ROUNDS=1 BENCH_FORMATS=parquet,csv npm run bench:files
 *   NODE_OPTIONS=--max-semi-space-size=64 npm run bench:files      (a larger young generation)
 *
 * BENCH_ROWS (1 000 000) rows of 6 columns — card_id (string, 200k distinct),
 * txn_count (int64), amount (double), merchant_category (string, 8 values),
 * is_fraud (bool), event_timestamp — seeded, written once to a temp dir:
 * parquet and NDJSON by this layer's own writers (snappy parquet in 100k-row
 * groups; NDJSON timestamps as ISO-8601), CSV as pandas writes it (ISO-8601
 * times, True/False), Avro by avsc (timestamp-millis, deflate off). Then
 * BENCH_ROUNDS (3) rounds per format of:
 *   read          openRowReader + every chunk, values untouched
 *   +conform      … + valueConverter / timestampConverter over every column
 *   +encode       … converting with encodeColumn instead: each feature value conformed and
 *                 encoded to the Value bytes staging will store, packed in one buffer per column
 * reporting medians of rows/s (wall), rows per CPU-second of this process
 * (user+system: steadier than wall time when other processes share the
 * box), and GC time. Writing the fixtures is timed once too.
 * BENCH_CHUNK_ROWS sets the row-oriented readers' chunk size. Runs through
 * tsx from src/: the converters are closures made once per column and chunk,
 * so tsx's __name wrapping (see ingest-bench.ts) costs nothing measurable.
 */
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { finished } from 'node:stream/promises';
import avsc from 'avsc';
import { conformColumn, encodeColumn, timestampConverter, valueConverter } from '../src/batch/files/column-conform.js';
import type { FileFormat } from '../src/batch/files/file-format.js';
import { openRowReader } from '../src/batch/files/row-reader.js';
import { openRowWriter, type OutputColumn } from '../src/batch/files/row-writer.js';
import { seededRandom } from '../src/util/seeded-random.js';

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

const ROWS = setting('BENCH_ROWS', 1_000_000);
const ROUNDS = setting('BENCH_ROUNDS', 3);
const FORMATS = (process.env.BENCH_FORMATS ?? 'parquet,csv,ndjson,avro').split(',') as FileFormat[];
/** Rows per chunk of CSV, NDJSON and Avro; unset, the readers' default. */
const CHUNK_ROWS = process.env.BENCH_CHUNK_ROWS === undefined ? undefined : setting('BENCH_CHUNK_ROWS', 1);
const BATCH = 10_000;

const COLUMNS: readonly OutputColumn[] = [
  { name: 'card_id', type: 'string' },
  { name: 'txn_count', type: 'int64' },
  { name: 'amount', type: 'double' },
  { name: 'merchant_category', type: 'string' },
  { name: 'is_fraud', type: 'bool' },
  { name: 'event_timestamp', type: 'timestamp' },
];
const CATEGORIES = ['grocery', 'online', 'atm', 'travel', 'restaurant', 'fuel', 'pharmacy', 'electronics'];
const START_MS = Date.UTC(2026, 0, 1);

/** Rows `from`…`from + count - 1` of the seeded data set, column by column. */
function batchOf(random: () => number, from: number, count: number): Map<string, unknown[]> {
  const columns = new Map<string, unknown[]>(COLUMNS.map(({ name }) => [name, []]));
  for (let row = from; row < from + count; row++) {
    columns.get('card_id')!.push(`card-${String(Math.floor(random() * 200_000)).padStart(6, '0')}`);
    columns.get('txn_count')!.push(Math.floor(random() * 5_000));
    columns.get('amount')!.push(Math.round(random() * 100_000) / 100);
    columns.get('merchant_category')!.push(CATEGORIES[Math.floor(random() * CATEGORIES.length)]);
    columns.get('is_fraud')!.push(random() < 0.02);
    columns.get('event_timestamp')!.push(START_MS + row * 1_000 + Math.floor(random() * 1_000));
  }
  return columns;
}

async function writeWithRowWriter(path: string): Promise<void> {
  const random = seededRandom(7);
  const writer = await openRowWriter(path, COLUMNS);
  for (let from = 0; from < ROWS; from += BATCH) {
    const count = Math.min(BATCH, ROWS - from);
    await writer.write({ length: count, columns: batchOf(random, from, count) });
  }
  await writer.close();
}

async function writeCsv(path: string): Promise<void> {
  const random = seededRandom(7);
  const out = createWriteStream(path);
  out.write(`${COLUMNS.map(({ name }) => name).join(',')}\n`);
  for (let from = 0; from < ROWS; from += BATCH) {
    const count = Math.min(BATCH, ROWS - from);
    const columns = batchOf(random, from, count);
    let text = '';
    for (let index = 0; index < count; index++) {
      const fraud = columns.get('is_fraud')![index] ? 'True' : 'False';
      const time = new Date(columns.get('event_timestamp')![index] as number).toISOString().replace('T', ' ').replace('Z', '+00:00');
      text += `${columns.get('card_id')![index]},${columns.get('txn_count')![index]},${columns.get('amount')![index]},${columns.get('merchant_category')![index]},${fraud},${time}\n`;
    }
    if (!out.write(text)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
}

async function writeAvro(path: string): Promise<void> {
  const random = seededRandom(7);
  const schema = {
    type: 'record',
    name: 'Txn',
    fields: [
      { name: 'card_id', type: 'string' },
      { name: 'txn_count', type: 'long' },
      { name: 'amount', type: 'double' },
      { name: 'merchant_category', type: 'string' },
      { name: 'is_fraud', type: 'boolean' },
      { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
    ],
  };
  const encoder = new avsc.streams.BlockEncoder(schema as avsc.Schema, { codec: 'null' });
  const out = encoder.pipe(createWriteStream(path));
  for (let from = 0; from < ROWS; from += BATCH) {
    const count = Math.min(BATCH, ROWS - from);
    const columns = batchOf(random, from, count);
    for (let index = 0; index < count; index++) {
      const record = Object.fromEntries(COLUMNS.map(({ name }) => [name, columns.get(name)![index]]));
      if (!encoder.write(record)) await once(encoder, 'drain');
    }
  }
  encoder.end();
  await finished(out);
}

type Mode = 'read' | '+conform' | '+encode';
const MODES: readonly Mode[] = ['read', '+conform', '+encode'];

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

/** One full read of the file; returns the rows seen (checked against ROWS) and a checksum that keeps the work from being optimised away. */
async function readOnce(path: string, mode: Mode): Promise<{ rows: number; checksum: number }> {
  const reader = await openRowReader(path, { columns: COLUMNS.map(({ name }) => name), ...(CHUNK_ROWS === undefined ? {} : { chunkRows: CHUNK_ROWS }) });
  let rows = 0;
  let checksum = 0;
  for await (const chunk of reader.chunks()) {
    rows += chunk.length;
    if (mode === 'read') {
      checksum += chunk.columns.size;
      continue;
    }
    for (const { name, type } of COLUMNS) {
      const values = chunk.columns.get(name)!;
      if (type === 'timestamp') {
        const times = conformColumn(values, chunk.rowOffset, timestampConverter(reader, name));
        checksum += times[times.length - 1]! % 1000;
        continue;
      }
      if (mode === '+encode') {
        const encoded = encodeColumn(values, chunk.rowOffset, type, reader, name);
        checksum += encoded.ends[encoded.ends.length - 1]!;
      } else {
        checksum += conformColumn(values, chunk.rowOffset, valueConverter(type, reader, name)).length;
      }
    }
  }
  await reader.close();
  return { rows, checksum };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const dir = mkdtempSync(join(tmpdir(), 'strata-files-bench-'));
const PATHS: Record<FileFormat, string> = {
  parquet: join(dir, 'rows.parquet'),
  csv: join(dir, 'rows.csv'),
  ndjson: join(dir, 'rows.ndjson'),
  avro: join(dir, 'rows.avro'),
};
const WRITERS: Record<FileFormat, (path: string) => Promise<void>> = { parquet: writeWithRowWriter, csv: writeCsv, ndjson: writeWithRowWriter, avro: writeAvro };

const results: Record<string, unknown>[] = [];
try {
  console.log(`${ROWS.toLocaleString('en')} rows × ${COLUMNS.length} columns, ${ROUNDS} round(s), node ${process.version}, NODE_OPTIONS=${process.env.NODE_OPTIONS ?? ''}`);
  for (const format of FORMATS) {
    const path = PATHS[format];
    const writeStart = performance.now();
    await WRITERS[format](path);
    const writeMs = performance.now() - writeStart;
    const megabytes = statSync(path).size / 1e6;
    console.log(`\n${format}: ${megabytes.toFixed(1)} MB, written in ${(writeMs / 1000).toFixed(2)} s (${Math.round(ROWS / (writeMs / 1000)).toLocaleString('en')} rows/s${format === 'csv' || format === 'avro' ? ', not by this layer' : ''})`);
    for (const mode of MODES) {
      const wall: number[] = [];
      const cpu: number[] = [];
      const gc: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const gcBefore = gcMs;
        const cpuBefore = process.cpuUsage();
        const start = performance.now();
        const { rows } = await readOnce(path, mode);
        const seconds = (performance.now() - start) / 1000;
        const cpuUsed = process.cpuUsage(cpuBefore);
        if (rows !== ROWS) throw new Error(`${format}: read ${rows} rows, wrote ${ROWS}`);
        wall.push(ROWS / seconds);
        cpu.push(ROWS / ((cpuUsed.user + cpuUsed.system) / 1e6));
        gc.push(gcMs - gcBefore);
      }
      const row = { format, mode, rowsPerSecond: Math.round(median(wall)), rowsPerCpuSecond: Math.round(median(cpu)), gcMs: Math.round(median(gc)) };
      results.push(row);
      console.log(`  ${mode.padEnd(9)} ${row.rowsPerSecond.toLocaleString('en').padStart(10)} rows/s  ${row.rowsPerCpuSecond.toLocaleString('en').padStart(10)} rows/CPU-s  GC ${row.gcMs} ms`);
    }
    rmSync(path, { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
