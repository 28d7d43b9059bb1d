/**
 * Bloom gate cost per lookup: Strata's BloomFilter against bloom-filters 3
 * (the library first chosen), and against the L3 read the gate spares.
 * Same keys, same 1 % false-positive target, same process; medians of 5 runs.
 *   npm run bench:bloom
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bloomFilters from 'bloom-filters';
import { ClassicLevel } from 'classic-level';
import { BloomFilter } from '../src/cache/bloom-filter.js';

const KEYS = 200_000;
const PROBES = 200_000;
const keys = Array.from({ length: KEYS }, (_, index) => Buffer.from(`rcard_profile\u0000\u0001\u000ccard-${String(index).padStart(7, '0')}`));
const probes = Array.from({ length: PROBES }, (_, index) => Buffer.from(`rcard_profile\u0000\u0001\u000cnope-${String(index).padStart(7, '0')}`));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function nsPerOp(run: () => void, ops: number): number {
  const samples: number[] = [];
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start) / ops);
  }
  return median(samples);
}

const ours = new BloomFilter(KEYS, 0.01);
for (const key of keys) ours.add(key);
let positives = 0;
const oursNs = nsPerOp(() => {
  positives = 0;
  for (const probe of probes) if (ours.has(probe)) positives++;
}, PROBES);
const oursFalsePositives = positives / PROBES;

const library = bloomFilters.BloomFilter.create(KEYS, 0.01);
const libraryKeys = keys.map((key) => key.toString('latin1'));
for (const key of libraryKeys) library.add(key);
const libraryProbes = probes.slice(0, 20_000).map((probe) => probe.toString('latin1'));
const libraryNs = nsPerOp(() => {
  for (const probe of libraryProbes) library.has(probe);
}, libraryProbes.length);

const dir = mkdtempSync(join(tmpdir(), 'strata-bloom-bench-'));
const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
await db.open();
const value = Buffer.alloc(200, 7);
for (let start = 0; start < KEYS; start += 10_000) await db.batch(keys.slice(start, start + 10_000).map((key) => ({ type: 'put' as const, key, value })));
const missProbes = probes.slice(0, 20_000);
const levelSamples: number[] = [];
for (let round = 0; round < 5; round++) {
  const start = process.hrtime.bigint();
  for (const probe of missProbes) await db.get(probe);
  levelSamples.push(Number(process.hrtime.bigint() - start) / missProbes.length);
}
const levelNs = median(levelSamples);
const manySamples: number[] = [];
for (let round = 0; round < 5; round++) {
  const start = process.hrtime.bigint();
  for (let offset = 0; offset < missProbes.length; offset += 100) await db.getMany(missProbes.slice(offset, offset + 100));
  manySamples.push(Number(process.hrtime.bigint() - start) / missProbes.length);
}
const levelManyNs = median(manySamples);
await db.close();
rmSync(dir, { recursive: true, force: true });

const rows = [
  ['Strata BloomFilter.has', oursNs],
  ['bloom-filters 3 BloomFilter.has', libraryNs],
  ['classic-level get (miss, awaited)', levelNs],
  ['classic-level getMany (miss, 100 per call)', levelManyNs],
] as const;
console.log(`bloom gate, ${KEYS} keys, 1 % target; median ns per lookup of 5 runs`);
for (const [name, ns] of rows) console.log(`  ${name.padEnd(44)} ${ns.toFixed(0).padStart(7)} ns   ${(ns / oursNs).toFixed(1).padStart(6)}× Strata's filter`);
console.log(`  Strata filter false-positive rate: ${(oursFalsePositives * 100).toFixed(2)} %, ${(ours.byteSize / 1024).toFixed(0)} KiB`);
