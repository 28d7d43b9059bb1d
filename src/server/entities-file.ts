import Long from 'long';
import { conformColumn, joinKeyReader, timestampConverter, valueLocation, type ValueOrigin } from '../batch/files/column-conform.js';
import { openRowReader } from '../batch/files/row-reader.js';
import type { JoinKeyType } from '../config/registry.js';
import type { EntityRows } from '../serving/historical-reader.js';
import type { JoinKeyValue } from '../storage/keys.js';

/** The column holding each row's time, as in batch snapshot files. */
const EVENT_TIMESTAMP_COLUMN = 'event_timestamp';

export interface JoinKeyColumn {
  readonly name: string;
  readonly type: JoinKeyType;
}

/**
 * GetHistoricalFeatures' entities_path: the entity rows of a file on the
 * server's disk (parquet, Avro, NDJSON or CSV, see src/batch/files), read a
 * chunk at a time, only the join key columns and event_timestamp. Values
 * are converted as a snapshot import converts them — so "12" in a CSV is an
 * int64 key, and a time may be epoch ms, ISO-8601 or a timestamp type —
 * then given in the form the gRPC decoder gives join keys (strings, Longs),
 * so the gRPC edge's protoValues reads them. Errors name `file:row N column X`.
 */
export async function* entityRowsOfFile(path: string, joinKeys: readonly JoinKeyColumn[], chunkRows: number): AsyncGenerator<EntityRows> {
  const reader = await openRowReader(path, { columns: [...joinKeys.map((joinKey) => joinKey.name), EVENT_TIMESTAMP_COLUMN] });
  const toMs = timestampConverter(reader, EVENT_TIMESTAMP_COLUMN);
  const converters = joinKeys.map((joinKey) => joinKeyConverter(reader, joinKey));
  const timeField = (row: number): string => valueLocation(reader, EVENT_TIMESTAMP_COLUMN, row);
  try {
    for await (const chunk of reader.chunks()) {
      const times = conformColumn(chunk.columns.get(EVENT_TIMESTAMP_COLUMN)!, chunk.rowOffset, toMs) as number[];
      const keys = joinKeys.map((joinKey, index) => conformColumn(chunk.columns.get(joinKey.name)!, chunk.rowOffset, converters[index]!));
      // Text formats hand over whole blocks of rows: cut them to the chunk size the reader takes.
      for (let from = 0; from < chunk.length; from += chunkRows) {
        const to = Math.min(chunk.length, from + chunkRows);
        const firstRow = chunk.rowOffset + from;
        yield {
          entities: new Map(joinKeys.map((joinKey, index) => [joinKey.name, keys[index]!.slice(from, to)])),
          times: times.slice(from, to),
          timesField: EVENT_TIMESTAMP_COLUMN,
          timeField: (row) => timeField(firstRow + row),
        };
      }
    }
  } finally {
    await reader.close();
  }
}

function joinKeyConverter(origin: ValueOrigin, joinKey: JoinKeyColumn): (raw: unknown, row: number) => JoinKeyValue {
  const read = joinKeyReader(joinKey.type, origin, joinKey.name);
  return (raw, row) => {
    const value = read(raw, row);
    if (joinKey.type === 'string') return value;
    const number = value as number | bigint | Long | string;
    return typeof number === 'bigint' ? Long.fromString(number.toString()) : Long.fromValue(number);
  };
}
