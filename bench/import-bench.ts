/**
 * Snapshot import benchmark: rows per second through `importSnapshot`
 * (read → conform → encode → stage into LevelDB → audit → publish) for a
 * parquet and an NDJSON file of BENCH_IMPORT_ROWS (1,000,000) rows of a
 * 6-feature batch view, each entity once. Baseline in the same run: the same
 * number of pre-encoded records written to a fresh LevelDB in 10k-record
 * batches, the ceiling of the store itself. Medians over BENCH_ROUNDS (3).
 * Target (issue 4): ≥ 200k rows/s into L3 on this 2-core machine.
 *
 * BENCH_IMPORT_FROM: a comma-separated list of code roots to import with
 * (default src; dist, or another checkout's src for an A/B run of a change),
 * interleaved round by round so that a noisy neighbour hits all alike.
 *
 *   npm run bench:import
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { openRowWriter } from '../src/batch/files/row-writer.js';

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DAY = 86_400_000;
const CODE_ROOTS = (process.env.BENCH_IMPORT_FROM ?? 'src').split(',');
const REGISTRY_YAML = 
  `entities:
  card: { join_key: card_id }
feature_views:
  card_daily:
    entities: [card]
    ttl: 0
    source: { type: batch }
    features: { avg_ticket: double, txn_count_30d: int64, chargebacks_90d: int64, segment: string, country: string, is_business: bool }
`;
const scratch = mkdtempSync(join(tmpdir(), 'strata-import-bench-'));
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const now = Date.now();

async function writeInputs(): Promise<{ parquet: string; ndjson: string }> {
  const columns = new Map<string, unknown[]>([
    ['card_id', []], ['event_timestamp', []], ['avg_ticket', []], ['txn_count_30d', []], ['chargebacks_90d', []], ['segment', []], ['country', []], ['is_business', []],
  ]);
  const lines: string[] = [];
  for (let index = 0; index < ROWS; index++) {
    const row = { card_id: `card-${index}`, event_timestamp: now - DAY, avg_ticket: (index % 1000) / 7, txn_count_30d: index % 97, chargebacks_90d: index % 3, segment: `seg-${index % 12}`, country: ['US', 'GB', 'DE', 'FR'][index % 4]!, is_business: index % 5 === 0 };
    for (const [name, values] of columns) values.push((row as Record<string, unknown>)[name]);
    lines.push(JSON.stringify(row));
  }
  const ndjson = join(scratch, 'rows.ndjson');
  writeFileSync(ndjson, `${lines.join('\n')}\n`);
  const parquet = join(scratch, 'rows.parquet');
  const writer = await openRowWriter(parquet, [
    { name: 'card_id', type: 'string' }, { name: 'event_timestamp', type: 'timestamp' }, { name: 'avg_ticket', type: 'double' }, { name: 'txn_count_30d', type: 'int64' },
    { name: 'chargebacks_90d', type: 'int64' }, { name: 'segment', type: 'string' }, { name: 'country', type: 'string' }, { name: 'is_business', type: 'bool' },
  ]);
  await writer.write({ length: ROWS, columns });
  await writer.close();
  return { parquet, ndjson };
}

interface ImportCode {
  readonly root: string;
  readonly importSnapshot: typeof import('../src/batch/snapshot-import.js').importSnapshot;
  readonly LevelStore: typeof import('../src/storage/level-store.js').LevelStore;
  readonly compileRegistry: typeof import('../src/config/registry.js').compileRegistry;
}

async function loadCode(root: string): Promise<ImportCode> {
  const base = root === 'src' || root === 'dist' ? new URL(`../${root}/`, import.meta.url) : pathToFileURL(`${resolve(root)}/`);
  const load = async <T>(path: string): Promise<T> => (await import(new URL(path, base).href)) as T;
  const [{ importSnapshot }, { LevelStore }, { compileRegistry: compile }] = await Promise.all([
    load<typeof import('../src/batch/snapshot-import.js')>('batch/snapshot-import.js'),
    load<typeof import('../src/storage/level-store.js')>('storage/level-store.js'),
    load<typeof import('../src/config/registry.js')>('config/registry.js'),
  ]);
  return { root, importSnapshot, LevelStore, compileRegistry: compile };
}

/** Rows per second, and CPU µs per row over all of the process's threads: the second says what a loaded box's wall clock cannot. */
async function importRate(code: ImportCode, path: string): Promise<{ rate: number; cpuUsPerRow: number }> {
  const dataDir = mkdtempSync(join(scratch, 'data-'));
  // Each code root compiles its own registry: its store and importer take its own view objects.
  const registry = code.compileRegistry(REGISTRY_YAML, 'bench-registry.yaml');
  const view = registry.views.get('card_daily')!;
  const store = await code.LevelStore.open({ dataDir, registry, retentionMs: 30 * DAY, maxVersions: 100, maxEvents: 1000 });
  try {
    const cpu = process.cpuUsage();
    const report = await code.importSnapshot({ view, paths: [path], store, retentionMs: 30 * DAY, maxVersions: 100 });
    const { user, system } = process.cpuUsage(cpu);
    if (!report.published) throw new Error(`not published: ${report.reason}`);
    return { rate: (report.rows * 1000) / report.durationMs, cpuUsPerRow: (user + system) / report.rows };
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function levelDbCeiling(): Promise<number> {
  const dataDir = mkdtempSync(join(scratch, 'level-'));
  const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const value = Buffer.alloc(90, 7);
  const started = performance.now();
  for (let start = 0; start < ROWS; start += 10_000) {
    const batch = db.batch();
    for (let index = start; index < Math.min(ROWS, start + 10_000); index++) batch.put(Buffer.from(`rcard_daily\0G0000card-${index}`), value);
    await batch.write();
  }
  const rate = (ROWS * 1000) / (performance.now() - started);
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
  return rate;
}

const inputs = await writeInputs();
const codes = await Promise.all(CODE_ROOTS.map(loadCode));
const ceiling: number[] = [];
const rates = codes.map(() => ({ parquet: [] as number[], ndjson: [] as number[] }));
const cpuUs = codes.map(() => ({ parquet: [] as number[], ndjson: [] as number[] }));
const loadAtStart = loadavg();
for (let round = 0; round < ROUNDS; round++) {
  ceiling.push(await levelDbCeiling());
  for (const [index, code] of codes.entries()) {
    for (const format of ['parquet', 'ndjson'] as const) {
      const { rate, cpuUsPerRow } = await importRate(code, inputs[format]);
      rates[index]![format].push(rate);
      cpuUs[index]![format].push(cpuUsPerRow);
    }
  }
}
rmSync(scratch, { recursive: true, force: true });
const k = (value: number): string => `${(value / 1000).toFixed(0)}k`;
const load = (values: number[]): string => values.map((value) => value.toFixed(2)).join(' ');
console.log(`bench:import — ${ROWS.toLocaleString('en-US')} rows × 6 features, ${ROUNDS} rounds, load average ${load(loadAtStart)} at the start, ${load(loadavg())} at the end`);
console.log(`  LevelDB batch put ceiling   ${k(median(ceiling))} rows/s  (${ceiling.map(k).join(', ')})`);
for (const [index, code] of codes.entries()) {
  for (const format of ['parquet', 'ndjson'] as const) {
    const rate = median(rates[index]![format]);
    const from = codes.length > 1 ? ` [${code.root}]` : '';
    console.log(`  import ${format.padEnd(8)}            ${k(rate)} rows/s  (${rates[index]![format].map(k).join(', ')}) = ${(rate / median(ceiling)).toFixed(2)} × ceiling; target ≥ 200k: ${rate >= 200_000 ? 'met' : 'NOT met'}; CPU ${median(cpuUs[index]![format]).toFixed(2)} µs/row${from}`);
  }
}
