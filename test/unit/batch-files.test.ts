import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import avsc from 'avsc';
import { parquetWriteFile } from 'hyparquet-writer';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformColumn, encodeColumn, joinKeyReader, parseIso8601, timestampConverter, valueConverter, type ValueOrigin } from '../../src/batch/files/column-conform.js';
import { CsvParser, type CsvField } from '../../src/batch/files/csv-parser.js';
import { openRowReader, type RowReader, type RowReaderOptions } from '../../src/batch/files/row-reader.js';
import { openRowWriter, type OutputColumn } from '../../src/batch/files/row-writer.js';
import { StrataError } from '../../src/errors.js';
import { seededRandom } from '../../src/util/seeded-random.js';
import { packedValue } from '../../src/storage/record.js';
import { encodeTypedValue, valueBytesToJson, type ValueType } from '../../src/values/value-codec.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-batch-files-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string): string => join(dir, name);

/** 2026-01-31T12:00:00.123Z and the hours after it. */
const T0 = Date.UTC(2026, 0, 31, 12, 0, 0, 123);
const HOUR = 3_600_000;
/** Beyond 2^32 and near 2^53 (avsc refuses longs from 2^53 - 1 on, as imprecise). */
const BIG = 2 ** 52 + 1;

/** The columns every input fixture holds, and what they are declared as. */
const TYPES: Readonly<Record<string, ValueType | 'timestamp'>> = {
  card_id: 'string',
  n: 'int64',
  amount: 'double',
  flag: 'bool',
  tags: 'list<string>',
  event_timestamp: 'timestamp',
};

/** The fixture rows after conformance: values as the codec renders their encoded bytes, timestamps in epoch ms. */
const EXPECTED = [
  { card_id: '"c1"', n: '12', amount: '1.5', flag: 'true', tags: '["a","b"]', event_timestamp: T0 },
  { card_id: '"c,2 \\"q\\""', n: String(BIG), amount: '-0.25', flag: 'false', tags: '[]', event_timestamp: T0 + HOUR },
  { card_id: '"c3"', n: null, amount: null, flag: null, tags: null, event_timestamp: T0 + 2 * HOUR },
  { card_id: '"ünï"', n: '-7', amount: '1e+300', flag: 'true', tags: '["x"]', event_timestamp: T0 + 3 * HOUR },
];

async function rejection(promise: Promise<unknown>): Promise<StrataError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StrataError);
    return error as StrataError;
  }
  throw new Error('expected a rejection');
}

function thrown(run: () => unknown): StrataError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(StrataError);
    return error as StrataError;
  }
  throw new Error('expected an error');
}

/** Every chunk of a reader, checked to be contiguous from row 0, as one column map. */
async function readColumns(reader: RowReader): Promise<Map<string, unknown[]>> {
  const columns = new Map<string, unknown[]>(reader.columns.map((name) => [name, []]));
  let next = 0;
  for await (const chunk of reader.chunks()) {
    expect(chunk.rowOffset).toBe(next);
    next += chunk.length;
    for (const [name, values] of chunk.columns) {
      expect(values.length).toBe(chunk.length);
      columns.get(name)!.push(...Array.from(values));
    }
  }
  return columns;
}

/** Reads a file and conforms each column to `types`, rendering values through the codec as the server would store them. */
async function conformedRows(path: string, types: Readonly<Record<string, ValueType | 'timestamp'>> = TYPES, options: RowReaderOptions = {}): Promise<Record<string, unknown>[]> {
  const reader = await openRowReader(path, { columns: Object.keys(types), ...options });
  const rows: Record<string, unknown>[] = [];
  for await (const chunk of reader.chunks()) {
    for (let index = 0; index < chunk.length; index++) rows.push({});
    for (const [name, type] of Object.entries(types)) {
      const values = chunk.columns.get(name)!;
      const converted =
        type === 'timestamp'
          ? conformColumn(values, chunk.rowOffset, timestampConverter(reader, name))
          : conformColumn(values, chunk.rowOffset, valueConverter(type, reader, name)).map((typed) => (typed === null ? null : valueBytesToJson(encodeTypedValue(typed))));
      converted.forEach((value, index) => (rows[chunk.rowOffset + index]![name] = value));
    }
  }
  return rows;
}

function writeParquetFixture(path: string): void {
  const micros = (ms: number): bigint => BigInt(ms) * 1000n + 456n;
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'card_id', data: ['c1', 'c,2 "q"', 'c3', 'ünï'] },
      { name: 'n', data: [12n, BigInt(BIG), null, -7n] },
      { name: 'amount', data: [1.5, -0.25, null, 1e300] },
      { name: 'flag', data: [true, false, null, true] },
      { name: 'tags', data: [['a', 'b'], [], null, ['x']] },
      { name: 'event_timestamp', data: [0, 1, 2, 3].map((hours) => micros(T0 + hours * HOUR)) },
      { name: 'extra', data: [1, 2, 3, 4] },
    ],
    schema: [
      { name: 'schema', num_children: 7 },
      { name: 'card_id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'n', type: 'INT64', repetition_type: 'OPTIONAL' },
      { name: 'amount', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
      { name: 'flag', type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
      { name: 'tags', repetition_type: 'OPTIONAL', converted_type: 'LIST', logical_type: { type: 'LIST' }, num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'event_timestamp', type: 'INT64', repetition_type: 'REQUIRED', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } },
      { name: 'extra', type: 'INT32', repetition_type: 'REQUIRED' },
    ],
    rowGroupSize: 3,
  });
}

const AVRO_SCHEMA = {
  type: 'record',
  name: 'Row',
  fields: [
    { name: 'card_id', type: 'string' },
    { name: 'n', type: ['null', 'long'] },
    { name: 'amount', type: ['null', 'double'] },
    { name: 'flag', type: ['null', 'boolean'] },
    { name: 'tags', type: ['null', { type: 'array', items: 'string' }] },
    { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-micros' } },
  ],
};

const AVRO_RECORDS = [
  { card_id: 'c1', n: 12, amount: 1.5, flag: true, tags: ['a', 'b'], event_timestamp: T0 * 1000 + 456 },
  { card_id: 'c,2 "q"', n: BIG, amount: -0.25, flag: false, tags: [], event_timestamp: (T0 + HOUR) * 1000 },
  { card_id: 'c3', n: null, amount: null, flag: null, tags: null, event_timestamp: (T0 + 2 * HOUR) * 1000 },
  { card_id: 'ünï', n: -7, amount: 1e300, flag: true, tags: ['x'], event_timestamp: (T0 + 3 * HOUR) * 1000 },
];

/** Avro's snappy codec with a compressor that only emits literals: valid snappy, enough to prove the reader's decompression and CRC. */
function literalSnappy(data: Buffer, callback: (error: Error | null, compressed?: Buffer) => void): void {
  const parts: Buffer[] = [];
  const varint: number[] = [];
  for (let length = data.length; ; length = Math.floor(length / 128)) {
    varint.push(length >= 128 ? (length & 0x7f) | 0x80 : length);
    if (length < 128) break;
  }
  parts.push(Buffer.from(varint));
  for (let start = 0; start < data.length; start += 65_536) {
    const literal = data.subarray(start, start + 65_536);
    const header = Buffer.alloc(3);
    header[0] = 61 << 2;
    header.writeUInt16LE(literal.length - 1, 1);
    parts.push(header, literal);
  }
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data));
  callback(null, Buffer.concat([...parts, crc]));
}

async function writeAvroFixture(path: string, codec: 'null' | 'deflate' | 'snappy' = 'null', blockSize?: number): Promise<void> {
  // avsc's createFileEncoder, with the file stream in reach so the test can wait until it is on disk.
  const encoder = new avsc.streams.BlockEncoder(AVRO_SCHEMA as avsc.Schema, {
    codec,
    codecs: { ...avsc.streams.BlockEncoder.defaultCodecs(), snappy: literalSnappy },
    ...(blockSize === undefined ? {} : { blockSize }),
  });
  const out = encoder.pipe(createWriteStream(path));
  for (const record of AVRO_RECORDS) encoder.write(record);
  encoder.end();
  await finished(out);
}

const NDJSON_FIXTURE = [
  JSON.stringify({ card_id: 'c1', n: 12, amount: 1.5, flag: true, tags: ['a', 'b'], event_timestamp: new Date(T0).toISOString() }),
  '',
  `${JSON.stringify({ card_id: 'c,2 "q"', n: BIG, amount: -0.25, flag: false, tags: [], event_timestamp: T0 + HOUR })}\r`,
  JSON.stringify({ card_id: 'c3', n: null, amount: null, event_timestamp: '2026-01-31T14:00:00.123+00:00' }),
  JSON.stringify({ card_id: 'ünï', n: '-7', amount: 1e300, flag: true, tags: ['x'], event_timestamp: '2026-01-31T16:00:00.123+01:00' }),
].join('\n');

const CSV_FIXTURE = [
  'card_id,n,amount,flag,tags,event_timestamp',
  'c1,12,1.5,true,"[""a"",""b""]",2026-01-31T12:00:00.123Z',
  `"c,2 ""q""",${BIG},-0.25,False,[],${T0 + HOUR}`,
  'c3,,,,,2026-01-31 14:00:00.123',
  'ünï,-7.0,1e300,1,"[""x""]",2026-01-31T16:00:00.123+01:00',
].join('\r\n');

describe('reading each format, then conforming its columns', () => {
  it('parquet: row groups in chunks, totalRows from the footer, micros timestamps in ms, bigint int64s', async () => {
    const path = file('rows.parquet');
    writeParquetFixture(path);
    const reader = await openRowReader(path);
    expect(reader.format).toBe('parquet');
    expect(reader.columns).toEqual(['card_id', 'n', 'amount', 'flag', 'tags', 'event_timestamp', 'extra']);
    expect(reader.totalRows).toBe(4);
    expect(reader.textValues).toBe(false);
    const lengths: number[] = [];
    for await (const chunk of reader.chunks()) lengths.push(chunk.length);
    expect(lengths).toEqual([3, 1]);
    expect(await conformedRows(path)).toEqual(EXPECTED);
    expect(await conformedRows(path, TYPES, { chunkRows: 2 })).toEqual(EXPECTED);
    const spans: number[][] = [];
    for await (const chunk of (await openRowReader(path, { chunkRows: 2 })).chunks()) spans.push([chunk.rowOffset, chunk.length]);
    expect(spans).toEqual([[0, 2], [2, 1], [3, 1]]);
  });

  it('parquet: reads only the requested columns, and a missing one is STRATA_MISSING_COLUMN', async () => {
    const path = file('rows.parquet');
    const reader = await openRowReader(path, { columns: ['extra', 'n'] });
    expect(reader.columns).toEqual(['extra', 'n']);
    const columns = await readColumns(reader);
    expect([...columns.keys()]).toEqual(['extra', 'n']);
    expect(columns.get('n')).toEqual([12n, BigInt(BIG), null, -7n]);
    const error = await rejection(openRowReader(path, { columns: ['n', 'nope'] }));
    expect(error.code).toBe('STRATA_MISSING_COLUMN');
    expect(error.message).toContain(`${path}: has no column "nope"`);
  });

  it.each(['null', 'deflate', 'snappy'] as const)('avro (%s codec): record fields as columns, timestamp-micros in ms', async (codec) => {
    const path = file(`rows-${codec}.avro`);
    await writeAvroFixture(path, codec);
    const reader = await openRowReader(path);
    expect(reader.format).toBe('avro');
    expect(reader.columns).toEqual(AVRO_SCHEMA.fields.map((field) => field.name));
    await reader.close();
    expect(await conformedRows(path)).toEqual(EXPECTED);
  });

  it('avro: small chunks across many blocks keep their row numbers', async () => {
    const path = file('rows-blocks.avro');
    await writeAvroFixture(path, 'null', 16);
    const reader = await openRowReader(path, { chunkRows: 3 });
    const columns = await readColumns(reader);
    expect(columns.get('card_id')).toEqual(AVRO_RECORDS.map((record) => record.card_id));
    expect(await conformedRows(path, TYPES, { chunkRows: 1 })).toEqual(EXPECTED);
  });

  it('ndjson: blank lines and CRLF skipped, absent keys are missing values', async () => {
    const path = file('rows.ndjson');
    writeFileSync(path, NDJSON_FIXTURE);
    const reader = await openRowReader(path);
    expect(reader.format).toBe('ndjson');
    expect(reader.columns).toEqual(['card_id', 'n', 'amount', 'flag', 'tags', 'event_timestamp']);
    await reader.close();
    expect(await conformedRows(path)).toEqual(EXPECTED);
    writeFileSync(file('rows.jsonl'), NDJSON_FIXTURE);
    expect(await conformedRows(file('rows.jsonl'), TYPES, { chunkRows: 1 })).toEqual(EXPECTED);
  });

  it('csv: quoted fields, typed from text, empty fields NULL, zone-less times in UTC', async () => {
    const path = file('rows.csv');
    writeFileSync(path, CSV_FIXTURE);
    const reader = await openRowReader(path);
    expect(reader.format).toBe('csv');
    expect(reader.textValues).toBe(true);
    expect(reader.columns).toEqual(['card_id', 'n', 'amount', 'flag', 'tags', 'event_timestamp']);
    const columns = await readColumns(reader);
    expect(columns.get('card_id')).toEqual(['c1', 'c,2 "q"', 'c3', 'ünï']);
    expect(columns.get('n')).toEqual(['12', String(BIG), null, '-7.0']);
    expect(await conformedRows(path)).toEqual(EXPECTED);
  });

  it('a 200k-row parquet file reads through, a row group at a time, in chunks of at most chunkRows', async () => {
    const path = file('large.parquet');
    const rows = 200_000;
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'card_id', data: Array.from({ length: rows }, (_, row) => `card-${row % 5000}`), type: 'STRING' },
        { name: 'n', data: Array.from({ length: rows }, (_, row) => BigInt(row)), type: 'INT64' },
        { name: 'event_timestamp', data: Array.from({ length: rows }, (_, row) => new Date(T0 + row)), type: 'TIMESTAMP' },
      ],
      rowGroupSize: 50_000,
    });
    const reader = await openRowReader(path);
    expect(reader.totalRows).toBe(rows);
    const toInt64 = valueConverter('int64', reader, 'n');
    const toMs = timestampConverter(reader, 'event_timestamp');
    let seen = 0;
    let sum = 0;
    let chunks = 0;
    let wrongTimes = 0;
    for await (const chunk of reader.chunks()) {
      chunks++;
      expect(chunk.rowOffset).toBe(seen);
      const n = chunk.columns.get('n')!;
      const times = chunk.columns.get('event_timestamp')!;
      for (let index = 0; index < chunk.length; index++) {
        const row = chunk.rowOffset + index;
        sum += toInt64(n[index], row)!.value as number;
        if (toMs(times[index], row) !== T0 + row) wrongTimes++;
      }
      seen += chunk.length;
    }
    // 4 groups of 50 000 rows, each in chunks of 16 384, 16 384, 16 384 and 848.
    expect({ seen, chunks, sum, wrongTimes }).toEqual({ seen: rows, chunks: 16, sum: (rows * (rows - 1)) / 2, wrongTimes: 0 });
  });
});

describe('opening files that cannot be read', () => {
  it('rejects an unknown extension, naming the file and the known ones', async () => {
    const error = await rejection(openRowReader(file('rows.xlsx')));
    expect(error.code).toBe('STRATA_FILE_UNUSABLE');
    expect(error.kind).toBe('invalid_argument');
    expect(error.message).toBe(`${file('rows.xlsx')}: has the extension .xlsx; expected one of .parquet, .avro, .ndjson, .jsonl, .json, .csv (or name the format explicitly)`);
    expect((await rejection(openRowReader(file('rows')))).message).toContain('has no extension');
  });

  it('takes the format from options over the extension', async () => {
    const path = file('rows.txt');
    writeFileSync(path, CSV_FIXTURE);
    expect(await conformedRows(path, TYPES, { format: 'csv' })).toEqual(EXPECTED);
    const reader = await openRowReader(path, 'csv');
    expect(reader.format).toBe('csv');
    await reader.close();
  });

  it('rejects a missing file, a directory, and bytes that are not the format', async () => {
    const missing = await rejection(openRowReader(file('missing.csv')));
    expect(missing.code).toBe('STRATA_FILE_UNUSABLE');
    expect(missing.message).toMatch(new RegExp(`^${file('missing.csv')}: cannot open: ENOENT`));
    mkdirSync(file('folder.parquet'));
    expect((await rejection(openRowReader(file('folder.parquet')))).message).toBe(`${file('folder.parquet')}: is not a regular file`);
    writeFileSync(file('fake.parquet'), CSV_FIXTURE);
    const parquet = await rejection(openRowReader(file('fake.parquet')));
    expect(parquet.code).toBe('STRATA_FILE_UNUSABLE');
    expect(parquet.message).toMatch(/fake\.parquet: not a readable parquet file: /);
    writeFileSync(file('fake.avro'), CSV_FIXTURE);
    expect((await rejection(openRowReader(file('fake.avro')))).message).toBe(`${file('fake.avro')}: not a readable Avro container file: invalid magic bytes`);
    writeFileSync(file('empty.avro'), '');
    expect((await rejection(openRowReader(file('empty.avro')))).message).toMatch(/empty\.avro: not a readable Avro container file: the file ends before its header does/);
    writeFileSync(file('empty.csv'), '');
    expect((await rejection(openRowReader(file('empty.csv')))).message).toMatch(/empty\.csv: is empty; a CSV file starts with a header row/);
  });

  it('names the rows and column of a parquet row group that cannot be decoded', async () => {
    const path = file('corrupt.parquet');
    writeParquetFixture(path);
    const bytes = readFileSync(path);
    bytes.fill(0xff, 4, 40); // the first column chunk's page header, after the PAR1 magic
    writeFileSync(path, bytes);
    const reader = await openRowReader(path);
    const error = await rejection(readColumns(reader));
    expect(error.code).toBe('STRATA_FILE_UNUSABLE');
    expect(error.message).toMatch(new RegExp(`^${path}: rows 0-2, column card_id: cannot decode: `));
  });

  it('names file:line for NDJSON that is not one object per line', async () => {
    writeFileSync(file('bad.ndjson'), '{"a": 1}\n{"a": 2}\n{"a": 3,,}\n');
    const error = await rejection(openRowReader(file('bad.ndjson')).then(readColumns));
    expect(error.code).toBe('STRATA_FILE_UNUSABLE');
    expect(error.message).toMatch(new RegExp(`^${file('bad.ndjson')}:3: not valid JSON: `));

    writeFileSync(file('array.json'), '[\n{"a": 1}\n]\n');
    expect((await rejection(openRowReader(file('array.json')))).message).toMatch(/array\.json:1: not valid JSON: .*\(a JSON array is not NDJSON: write one object per line\)$/);

    writeFileSync(file('scalar.ndjson'), '{"a": 1}\n42\n');
    expect((await rejection(openRowReader(file('scalar.ndjson')).then(readColumns))).message).toBe(`${file('scalar.ndjson')}:2: expected a JSON object, got number`);
  });

  it('refuses an NDJSON key the first line lacks, unless the columns are requested; reads rows whatever the order of their keys', async () => {
    writeFileSync(file('keys.ndjson'), '{"a": 1, "b": 2}\n{"a": 3}\n{"a": 4, "b": 5, "c": 6}\n');
    const error = await rejection(openRowReader(file('keys.ndjson')).then(readColumns));
    expect(error.message).toBe(
      `${file('keys.ndjson')}:3: row 2 has the key "c", which the first line lacks; the first line's keys are the columns (a, b), or request the columns`,
    );
    const columns = await readColumns(await openRowReader(file('keys.ndjson'), { columns: ['c', 'a'] }));
    expect(columns).toEqual(new Map([['c', [undefined, undefined, 6]], ['a', [1, 3, 4]]]));
    writeFileSync(file('reordered.ndjson'), '{"a": 1, "b": 2}\n{"a": 3, "b": 4}\n{"b": 5, "a": 6}\n{"a": 7}\n{"a": 8, "c": 9, "b": 10}\n{"__proto__": 11, "a": 12}\n{"a": 13, "b": 14}\n');
    expect(await readColumns(await openRowReader(file('reordered.ndjson'), { columns: ['b', 'a', '__proto__'], optionalColumns: ['d'] }))).toEqual(
      new Map([
        ['b', [2, 4, 5, undefined, 10, undefined, 14]],
        ['a', [1, 3, 6, 7, 8, 12, 13]],
        ['__proto__', [undefined, undefined, undefined, undefined, undefined, 11, undefined]],
        ['d', [undefined, undefined, undefined, undefined, undefined, undefined, undefined]],
      ]),
    );
    writeFileSync(file('inherited.ndjson'), '{"constructor": "x", "toString": 1}\n{}\n');
    expect(await readColumns(await openRowReader(file('inherited.ndjson'), { columns: ['constructor', 'toString'] }))).toEqual(
      new Map([['constructor', ['x', undefined]], ['toString', [1, undefined]]]),
    );
  });

  it('refuses a requested NDJSON column no line has, once the file is read; one on some lines only, or optional, reads missing values', async () => {
    writeFileSync(file('sparse.ndjson'), '{"a": 1}\n{"a": 2, "b": null}\n{"a": 3}\n');
    expect(await readColumns(await openRowReader(file('sparse.ndjson'), { columns: ['a', 'b'], optionalColumns: ['created'], chunkRows: 1 }))).toEqual(
      new Map([['a', [1, 2, 3]], ['b', [undefined, null, undefined]], ['created', [undefined, undefined, undefined]]]),
    );
    // Misspelt, say: every row would read NULL.
    const error = await rejection(openRowReader(file('sparse.ndjson'), { columns: ['a', 'amount'] }).then(readColumns));
    expect(error.code).toBe('STRATA_MISSING_COLUMN');
    expect(error.field).toBe('amount');
    expect(error.message).toBe(`${file('sparse.ndjson')}: has no column "amount" (none of its 3 rows has the key)`);
    // A name every object inherits is a key only where a line has it.
    expect((await rejection(openRowReader(file('sparse.ndjson'), { columns: ['a', 'constructor'] }).then(readColumns))).field).toBe('constructor');
    // A file without rows has no lines to hold a column: the import's min_rows audit judges it.
    writeFileSync(file('no-rows.ndjson'), '\n');
    expect(await readColumns(await openRowReader(file('no-rows.ndjson'), { columns: ['a', 'amount'] }))).toEqual(new Map([['a', []], ['amount', []]]));
  });

  it('reads an optional column where the file has it and leaves it out where it does not, in every format with a schema or header', async () => {
    writeFileSync(file('optional.csv'), 'a,created\n1,2\n');
    expect(await readColumns(await openRowReader(file('optional.csv'), { columns: ['a'], optionalColumns: ['created', 'absent'] }))).toEqual(new Map([['a', ['1']], ['created', ['2']]]));
    const parquet = await openRowReader(file('rows.parquet'), { columns: ['n'], optionalColumns: ['extra', 'created_timestamp'] });
    expect(parquet.columns).toEqual(['n', 'extra']);
    await parquet.close();
  });
});

describe('CSV parsing', () => {
  function parse(text: string, splits: readonly number[] = []): { fields: CsvField[]; line: number }[] {
    const records: { fields: CsvField[]; line: number }[] = [];
    const parser = new CsvParser((fields, count, line) => records.push({ fields: fields.slice(0, count), line }));
    let from = 0;
    for (const at of [...splits, text.length]) {
      parser.push(text.slice(from, at));
      from = at;
    }
    parser.end();
    return records;
  }

  const TRICKY = '\uFEFFid,text,note\r\n1,"a,b","say ""hi"""\r\n2,"two\nlines",\n\n3,,""\r4,x"y,"\r\n"\n5,"",';

  it('handles quoted commas, doubled quotes, line breaks inside quotes, CRLF, lone CR, blank lines, a BOM and no final newline', () => {
    expect(parse(TRICKY)).toEqual([
      { fields: ['id', 'text', 'note'], line: 1 },
      { fields: ['1', 'a,b', 'say "hi"'], line: 2 },
      { fields: ['2', 'two\nlines', null], line: 3 },
      { fields: ['3', null, ''], line: 6 },
      { fields: ['4', 'x"y', '\r\n'], line: 7 },
      { fields: ['5', '', null], line: 9 },
    ]);
  });

  it('gives the same records wherever the text is split between pushes', () => {
    const whole = parse(TRICKY);
    for (let at = 0; at <= TRICKY.length; at++) {
      expect(parse(TRICKY, [at])).toEqual(whole);
      expect(parse(TRICKY, [at, Math.min(TRICKY.length, at + 3)])).toEqual(whole);
    }
  });

  it('rejects an unclosed quote and text after a closing quote, naming the line', () => {
    expect(() => parse('a,b\n1,"open\n2,3\n')).toThrow('line 2: a quoted field is never closed');
    expect(() => parse('a,b\n1,"x"y\n')).toThrow('line 2: unexpected "y" after a closing quote');
  });

  it('reports a row with the wrong field count as file:line with the row number', async () => {
    writeFileSync(file('ragged.csv'), 'a,b\n1,2\n"multi\nline",3\n4,5,6\n');
    const error = await rejection(openRowReader(file('ragged.csv')).then(readColumns));
    expect(error.code).toBe('STRATA_FILE_UNUSABLE');
    expect(error.message).toBe(`${file('ragged.csv')}:5: row 2 has 3 fields; the header has 2`);
    writeFileSync(file('unclosed.csv'), 'a,b\n1,2\n3,"4\n');
    expect((await rejection(openRowReader(file('unclosed.csv')).then(readColumns))).message).toBe(`${file('unclosed.csv')}:3: a quoted field is never closed`);
  });

  it('keeps a header column with an empty name (the pandas index) and reads requested columns only', async () => {
    writeFileSync(file('pandas.csv'), ',a,b\n0,x,1\n1,y,2\n');
    const reader = await openRowReader(file('pandas.csv'), { columns: ['b', 'a'] });
    expect(await readColumns(reader)).toEqual(new Map([['b', ['1', '2']], ['a', ['x', 'y']]]));
  });
});

describe('column conformance', () => {
  const csv: ValueOrigin = { path: 'in.csv', textValues: true };
  const json: ValueOrigin = { path: 'in.ndjson', textValues: false };
  const convert = (type: ValueType, origin: ValueOrigin, raw: unknown): unknown => {
    const typed = valueConverter(type, origin, 'x')(raw, 0);
    return typed === null ? null : valueBytesToJson(encodeTypedValue(typed));
  };

  it.each([
    ['int64', '12', '12'],
    ['int64', '+12', '12'],
    ['int64', '-9223372036854775808', '-9223372036854775808'],
    ['int64', '12.0', '12'],
    ['int64', '', null],
    ['double', '1.5', '1.5'],
    ['double', '-.5e3', '-500'],
    ['double', '7', '7'],
    ['double', 'inf', '"Infinity"'],
    ['double', 'NaN', '"NaN"'],
    ['bool', 'true', 'true'],
    ['bool', 'FALSE', 'false'],
    ['bool', '1', 'true'],
    ['string', '', '""'],
    ['string', 'x', '"x"'],
    ['bytes', 'AAE=', '"AAE="'],
    ['list<int64>', '[1, "9007199254740993"]', '[1,9007199254740993]'],
    ['list<double>', '[1.5, 2]', '[1.5,2]'],
    ['list<string>', '[]', '[]'],
    ['list<string>', '', null],
  ] as const)('text %s %j → %s', (type, raw, expected) => {
    expect(convert(type, csv, raw)).toBe(expected);
  });

  it.each([
    ['int64', 12, '12'],
    ['int64', 2n ** 60n, '1152921504606846976'],
    ['int64', '9223372036854775807', '9223372036854775807'],
    ['int64', Long.fromString('-5'), '-5'],
    ['double', 1.5, '1.5'],
    ['double', 3n, '3'],
    ['double', 'NaN', '"NaN"'],
    ['string', 'x', '"x"'],
    ['string', new TextEncoder().encode('ü'), '"ü"'],
    ['bool', false, 'false'],
    ['bytes', new Uint8Array([0, 1]), '"AAE="'],
    ['bytes', 'AAE=', '"AAE="'],
    ['list<int64>', [1n, 2, '3'], '[1,2,3]'],
    ['list<double>', [0.5], '[0.5]'],
    ['list<string>', ['a'], '["a"]'],
    ['string', null, null],
    ['double', undefined, null],
  ] as const)('typed %s %o → %s', (type, raw, expected) => {
    expect(convert(type, json, raw)).toBe(expected);
  });

  it.each([
    [csv, 'int64', 'abc', 'expected int64 (an integer in the int64 range), got the text "abc"'],
    [csv, 'int64', '1.5', 'expected int64 (an integer in the int64 range), got the text "1.5"'],
    [csv, 'int64', '9223372036854775808', 'expected int64 (an integer in the int64 range), got the text "9223372036854775808"'],
    [csv, 'double', '1,5', 'expected double (a decimal number, NaN or Infinity), got the text "1,5"'],
    [csv, 'double', '0x10', 'expected double (a decimal number, NaN or Infinity), got the text "0x10"'],
    [csv, 'bool', 'yes', 'expected bool (true, false, 1 or 0), got the text "yes"'],
    [csv, 'list<int64>', '[1, 2.5]', 'expected list<int64> (a JSON array of integers), got the text "[1, 2.5]"'],
    [csv, 'list<string>', '[a]', 'expected list<string> (a JSON array of strings), got the text "[a]"'],
    [json, 'int64', 1.5, 'expected int64 (an integer in the int64 range, or a string of its digits), got the number 1.5'],
    [json, 'int64', 2n ** 63n, 'expected int64 (an integer in the int64 range, or a string of its digits), got the number 9223372036854775808'],
    [json, 'int64', '12.0', 'expected int64 (an integer in the int64 range, or a string of its digits), got the string "12.0"'],
    [json, 'double', '1.5', 'expected double (a number), got the string "1.5"'],
    [json, 'double', 2n ** 60n + 1n, 'expected double (a number), got the number 1152921504606846977'],
    [json, 'string', 12, 'expected string (a string), got the number 12'],
    [json, 'string', new Uint8Array([0xff]), 'expected string (a string), got 1 byte of binary'],
    [json, 'bool', 1, 'expected bool (true or false), got the number 1'],
    [json, 'bytes', 'not base64!', 'expected bytes (binary, or base64 text), got the string "not base64!"'],
    [json, 'list<string>', ['a', null], 'expected list<string> (an array of strings), got the array ["a",null]'],
    [json, 'list<int64>', { a: 1 }, 'expected list<int64> (an array of integers), got the object {"a":1}'],
  ] as const)('%o %s rejects %o', (origin, type, raw, reason) => {
    const error = thrown(() => valueConverter(type, origin, 'x')(raw, 41));
    expect(error.code).toBe('STRATA_VALUE_TYPE_MISMATCH');
    expect(error.field).toBe(`${origin.path}:row 41 column x`);
    expect(error.message).toBe(`${origin.path}:row 41 column x: ${reason}`);
  });

  it('encodes a column to the Value bytes L3 stores, NULL as the empty value', () => {
    const encoded = encodeColumn(['3', '', '-4'], 10, 'int64', csv, 'n');
    expect([0, 1, 2].map((row) => valueBytesToJson(packedValue(encoded, row)))).toEqual(['3', 'null', '-4']);
    expect(packedValue(encoded, 1)).toHaveLength(0);
    expect(encoded.nulls).toBe(1);
    expect(thrown(() => encodeColumn(['1', 'x'], 10, 'int64', csv, 'n')).field).toBe('in.csv:row 11 column n');
  });

  it('names file, row and column for a bad value read from a file', async () => {
    writeFileSync(file('bad-values.csv'), 'id,n\na,1\nb,2\nc,abc\n');
    const reader = await openRowReader(file('bad-values.csv'), { chunkRows: 2 });
    const toInt64 = valueConverter('int64', reader, 'n');
    const error = await rejection(
      (async () => {
        for await (const chunk of reader.chunks()) conformColumn(chunk.columns.get('n')!, chunk.rowOffset, toInt64);
      })(),
    );
    expect(error.message).toBe(`${file('bad-values.csv')}:row 2 column n: expected int64 (an integer in the int64 range), got the text "abc"`);
  });

  it.each([
    ['2026-01-31T12:00:00.123Z', T0],
    ['2026-01-31T12:00:00.123456789Z', T0],
    ['2026-01-31 12:00:00.123', T0],
    ['2026-01-31T13:00:00.123+01:00', T0],
    ['2026-01-31T07:30:00.123-0430', T0],
    ['2026-01-31T14:00:00,123+02', T0],
    ['2026-01-31', Date.UTC(2026, 0, 31)],
    ['2024-02-29T00:00Z', Date.UTC(2024, 1, 29)],
    ['0050-06-01T00:00:00Z', new Date('0050-06-01T00:00:00Z').getTime()],
  ])('parses ISO-8601 %s', (text, ms) => {
    expect(parseIso8601(text)).toBe(ms);
  });

  it('agrees with Date for ISO strings across ±3000 years', () => {
    const random = seededRandom(11);
    for (let index = 0; index < 2000; index++) {
      const ms = Math.floor((random() - 0.5) * 2 * 3000 * 365.25 * 86_400_000);
      const iso = new Date(ms).toISOString();
      if (iso.length !== 24) continue; // six-digit years (±YYYYYY) are not ISO-8601's basic form
      expect(parseIso8601(iso)).toBe(ms);
    }
    expect(parseIso8601('1969-12-31T23:59:59.999Z')).toBe(-1);
  });

  it.each(['2026-02-29', '2026-13-01', '2026-01-31T24:00:00Z', '2026-01-31T12:00:00+25:00', '31/01/2026', '2026-01-31T12:00:00 UTC', 'now'])('refuses %s as ISO-8601', (text) => {
    expect(parseIso8601(text)).toBeUndefined();
  });

  it('reads a join key column: a missing value is a type mismatch naming file, row and column', () => {
    const toKey = joinKeyReader('int64', csv, 'card', 'card_id');
    expect(['7', 8].map((raw, row) => toKey(raw, row))).toEqual([7, 8]);
    const missing = thrown(() => toKey('', 3));
    expect(missing.code).toBe('STRATA_VALUE_TYPE_MISMATCH');
    expect(missing.field).toBe('in.csv:row 3 column card');
    expect(missing.message).toBe('in.csv:row 3 column card: join key card_id is missing; every row needs one (expected int64)');
    expect(thrown(() => joinKeyReader('string', json, 'card_id')(undefined, 4)).message).toBe('in.ndjson:row 4 column card_id: join key card_id is missing; every row needs one (expected string)');
    expect(thrown(() => toKey('x', 5)).message).toMatch(/^in\.csv:row 5 column card: expected int64/);
  });

  it('reads timestamps from epoch ms, bigint, Date and ISO text; missing is an error unless optional', () => {
    const toMs = timestampConverter(json, 'event_timestamp');
    expect([T0, BigInt(T0), new Date(T0), String(T0), '2026-01-31T12:00:00.123Z', T0 + 0.9].map((raw) => toMs(raw, 0))).toEqual(Array(6).fill(T0));
    const missing = thrown(() => toMs(null, 3));
    expect(missing.code).toBe('STRATA_BAD_TIMESTAMP');
    expect(missing.message).toBe('in.ndjson:row 3 column event_timestamp: is missing; every row needs this timestamp');
    expect(thrown(() => toMs('yesterday', 4)).message).toBe(
      'in.ndjson:row 4 column event_timestamp: expected a timestamp (epoch milliseconds, or ISO-8601 such as 2026-01-31T12:00:00Z), got the string "yesterday"',
    );
    expect(thrown(() => toMs(new Date(Number.NaN), 5)).message).toMatch(/got the date Invalid Date$/);
    expect(thrown(() => toMs(1e20, 6)).code).toBe('STRATA_BAD_TIMESTAMP');
    const created = timestampConverter(csv, 'created_timestamp', { optional: true });
    expect([created(null, 0), created('', 1), created('2026-01-31T12:00:00.123Z', 2)]).toEqual([null, null, T0]);
  });
});

describe('writing output files', () => {
  const COLUMNS: OutputColumn[] = [
    { name: 'card_id', type: 'string' },
    { name: 'n', type: 'int64' },
    { name: 'amount', type: 'double' },
    { name: 'flag', type: 'bool' },
    { name: 'blob', type: 'bytes' },
    { name: 'ids', type: 'list<int64>' },
    { name: 'scores', type: 'list<double>' },
    { name: 'tags', type: 'list<string>' },
    { name: 'event_timestamp', type: 'timestamp' },
  ];
  const batches = [
    new Map<string, unknown[]>([
      ['card_id', ['c1', 'c,2 "q"\n', null]],
      ['n', [12, 2n ** 60n, null]],
      ['amount', [1.5, Number.NaN, null]],
      ['flag', [true, false, null]],
      ['blob', [new Uint8Array([0, 1, 255]), new Uint8Array(0), null]],
      ['ids', [[1, 2n ** 62n], [], null]],
      ['scores', [[0.5, -1], [Number.POSITIVE_INFINITY], null]],
      ['tags', [['a'], [], null]],
      ['event_timestamp', [T0, new Date(T0 + HOUR), null]],
    ]),
    new Map<string, unknown[]>([
      ['card_id', ['ünï']],
      ['n', [Long.fromString('-9223372036854775808')]],
      ['amount', [-0.25]],
      ['flag', [null]],
      ['blob', [null]],
      ['ids', [['7']]],
      ['scores', [[]]],
      ['tags', [['x', 'y']]],
      ['event_timestamp', [T0 + 2 * HOUR]],
    ]),
  ];
  const EXPECTED_OUT = [
    { card_id: '"c1"', n: '12', amount: '1.5', flag: 'true', blob: '"AAH/"', ids: '[1,4611686018427387904]', scores: '[0.5,-1]', tags: '["a"]', event_timestamp: T0 },
    { card_id: '"c,2 \\"q\\"\\n"', n: '1152921504606846976', amount: '"NaN"', flag: 'false', blob: '""', ids: '[]', scores: '["Infinity"]', tags: '[]', event_timestamp: T0 + HOUR },
    { card_id: null, n: null, amount: null, flag: null, blob: null, ids: null, scores: null, tags: null, event_timestamp: null },
    { card_id: '"ünï"', n: '-9223372036854775808', amount: '-0.25', flag: null, blob: null, ids: '[7]', scores: '[]', tags: '["x","y"]', event_timestamp: T0 + 2 * HOUR },
  ];

  /** Conformed like an import would, with the timestamp optional since one row has none. */
  async function readOutput(path: string): Promise<Record<string, unknown>[]> {
    const reader = await openRowReader(path);
    expect(reader.columns).toEqual(COLUMNS.map(({ name }) => name));
    const rows: Record<string, unknown>[] = [];
    for await (const chunk of reader.chunks()) {
      for (let index = 0; index < chunk.length; index++) rows.push({});
      for (const { name, type } of COLUMNS) {
        const values = chunk.columns.get(name)!;
        const converted =
          type === 'timestamp'
            ? conformColumn(values, chunk.rowOffset, timestampConverter(reader, name, { optional: true }))
            : conformColumn(values, chunk.rowOffset, valueConverter(type, reader, name)).map((typed) => (typed === null ? null : valueBytesToJson(encodeTypedValue(typed))));
        converted.forEach((value, index) => (rows[chunk.rowOffset + index]![name] = value));
      }
    }
    return rows;
  }

  it.each(['out.parquet', 'out.ndjson'])('%s: written in row groups, renamed into place on close, read back as written', async (name) => {
    const path = file(name);
    const writer = await openRowWriter(path, COLUMNS, { rowGroupRows: 2 });
    expect(existsSync(`${path}.partial`)).toBe(true);
    for (const columns of batches) await writer.write({ length: columns.get('n')!.length, columns });
    expect(writer.rowsWritten).toBe(4);
    expect(existsSync(path)).toBe(false);
    await writer.close();
    expect(existsSync(`${path}.partial`)).toBe(false);
    expect(await readOutput(path)).toEqual(EXPECTED_OUT);
  });

  it('parquet output has row groups of rowGroupRows and states its row count', async () => {
    const reader = await openRowReader(file('out.parquet'));
    expect(reader.totalRows).toBe(4);
    const lengths: number[] = [];
    for await (const chunk of reader.chunks()) lengths.push(chunk.length);
    expect(lengths).toEqual([3, 1]);
  });

  it('rejects a bad batch whole, naming row and column, and abort leaves no file', async () => {
    const path = file('rejected.parquet');
    const writer = await openRowWriter(path, [{ name: 'n', type: 'int64' }, { name: 'event_timestamp', type: 'timestamp' }]);
    const bad = await rejection(writer.write({ length: 2, columns: new Map([['n', [1, 1.5]], ['event_timestamp', [T0, T0]]]) }));
    expect(bad.code).toBe('STRATA_VALUE_TYPE_MISMATCH');
    expect(bad.message).toBe(`${path}:row 1 column n: expected int64, got number 1.5`);
    expect(writer.rowsWritten).toBe(0);
    expect((await rejection(writer.write({ length: 1, columns: new Map([['n', [1]], ['event_timestamp', ['noon']]]) }))).code).toBe('STRATA_BAD_TIMESTAMP');
    expect((await rejection(writer.write({ length: 1, columns: new Map([['n', [1]]]) }))).code).toBe('STRATA_MISSING_COLUMN');
    expect((await rejection(writer.write({ length: 1, columns: new Map([['n', [1]], ['event_timestamp', [T0]], ['x', [1]]]) }))).code).toBe('STRATA_UNEXPECTED_COLUMN');
    expect((await rejection(writer.write({ length: 2, columns: new Map([['n', [1]], ['event_timestamp', [T0, T0]]]) }))).code).toBe('STRATA_COLUMN_LENGTH_MISMATCH');
    await writer.abort();
    expect(existsSync(path) || existsSync(`${path}.partial`)).toBe(false);
  });

  it('refuses output formats it does not write', async () => {
    const error = await rejection(openRowWriter(file('out.csv'), [{ name: 'n', type: 'int64' }]));
    expect(error.code).toBe('STRATA_FILE_UNUSABLE');
    expect(error.message).toBe(`${file('out.csv')}: has the extension .csv; expected one of .parquet, .ndjson, .jsonl, .json (or name the format explicitly)`);
  });
});
