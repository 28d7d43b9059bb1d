import { ownedBytes } from '../util/bytes.js';
import { EVENT_LOG_FORMAT, EventLog } from './event-log.js';
import type { StoredRecord } from './feature-store.js';
import { CorruptRecordError, FeatureRecord, RECORD_FORMAT } from './record.js';

/** Decodes record bytes of either format (the first byte tells which). Throws CorruptRecordError. */
export function decodeStoredRecord(bytes: Uint8Array): StoredRecord {
  return bytes[0] === EVENT_LOG_FORMAT ? EventLog.decode(bytes) : FeatureRecord.decode(bytes);
}

/**
 * Record bytes this process has just encoded (a write's result): trusted, so
 * an event log is not decoded until it is read — ingestion may write a hot
 * entity's log to L1 many times between two reads of it.
 */
export function openWrittenRecord(bytes: Uint8Array): StoredRecord {
  return bytes[0] === EVENT_LOG_FORMAT ? EventLog.open(ownedBytes(bytes)) : FeatureRecord.decode(bytes);
}

/** A record's revision without decoding it (for cache invalidation messages); both formats keep it at byte 5. */
export function recordRevision(bytes: Uint8Array): number {
  if (bytes.length < 13 || (bytes[0] !== RECORD_FORMAT && bytes[0] !== EVENT_LOG_FORMAT)) throw new CorruptRecordError(`unknown record format ${bytes[0]}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(5);
}
