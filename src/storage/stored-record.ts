import { ownedBytes } from '../util/bytes.js';
import { EVENT_LOG_FORMAT, EventLog } from './event-log.js';
import type { StoredRecord, WrittenRecord } from './feature-store.js';
import { CorruptRecordError, FeatureRecord, RECORD_FORMAT } from './record.js';

/** Decodes record bytes of either format (the first byte tells which). Throws CorruptRecordError. */
export function decodeStoredRecord(bytes: Uint8Array): StoredRecord {
  return bytes[0] === EVENT_LOG_FORMAT ? EventLog.decode(bytes) : FeatureRecord.decode(bytes);
}

/**
 * A record this process has just written (a write's result): trusted, so an
 * event log is not decoded until it is read — ingestion may write a hot
 * entity's log to L1 many times between two reads of it. A log the merge
 * handed back is not even read: its twin goes to the caller (see EventLog.twin).
 */
export function openWrittenRecord(record: WrittenRecord): StoredRecord {
  if (record instanceof EventLog) return record.twin();
  return record[0] === EVENT_LOG_FORMAT ? EventLog.open(ownedBytes(record)) : FeatureRecord.decode(record);
}

export function writtenBytes(record: WrittenRecord): Uint8Array {
  return record instanceof EventLog ? record.bytes : record;
}

/** A record's revision without decoding it (for cache invalidation messages); both formats keep it at byte 5. */
export function recordRevision(bytes: Uint8Array): number {
  if (bytes.length < 13 || (bytes[0] !== RECORD_FORMAT && bytes[0] !== EVENT_LOG_FORMAT)) throw new CorruptRecordError(`unknown record format ${bytes[0]}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(5);
}
