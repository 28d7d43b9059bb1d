/**
 * GetHistoricalFeaturesRequest, decoded by hand. Fields 1, 2, 3 and 5 are
 * GetOnlineFeaturesRequest's and are decoded by its decoder (online-request.ts,
 * which skips the others); a second pass over the message reads fields 6 and
 * 7, stepping over the rest by their lengths.
 *
 * Wire layout (proto/strata/v1/feature_service.proto):
 *   1 features, 2 feature_service, 3 entities, 5 full_feature_names   as in GetOnlineFeaturesRequest
 *   6 event_timestamps   repeated Timestamp { 1 int64 seconds, 2 int32 nanos }
 *   7 entities_path      string
 */
import type Long from 'long';
import protobuf from 'protobufjs/minimal.js';
import { invalid, StrataError } from '../errors.js';
import { OnlineRequestDecoder, type OnlineRpcRequest } from './online-request.js';
import { timestampToMs } from './proto-values.js';

const { Reader } = protobuf;

const FIELD_EVENT_TIMESTAMPS = 6;
const FIELD_ENTITIES_PATH = 7;
const WIRE_LENGTH = 2;
const TAG_SECONDS = 0x08; // field 1, varint
const TAG_NANOS = 0x10; // field 2, varint

/** A decoded GetHistoricalFeaturesRequest. */
export interface HistoricalRequestMessage extends OnlineRpcRequest {
  /** event_timestamps in ms since the epoch, one per row. */
  readonly times: number[];
  readonly entitiesPath: string | undefined;
}

export class HistoricalRequestDecoder {
  private readonly online = new OnlineRequestDecoder();

  /** `firstRow`: the number, within the call, of the message's first row: errors name rows as the call counts them. */
  decode(body: Buffer, firstRow: number): HistoricalRequestMessage {
    const online = this.online.decode(body);
    const times: number[] = [];
    let entitiesPath: string | undefined;
    try {
      const reader = Reader.create(body);
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        const field = tag >>> 3;
        if ((field === FIELD_EVENT_TIMESTAMPS || field === FIELD_ENTITIES_PATH) && (tag & 7) !== WIRE_LENGTH) throw new Error(`field ${field} has wire type ${tag & 7}, expected ${WIRE_LENGTH}`);
        if (field === FIELD_EVENT_TIMESTAMPS) times.push(timestampMs(reader, firstRow + times.length));
        else if (field === FIELD_ENTITIES_PATH) entitiesPath = reader.string();
        else reader.skipType(tag & 7);
      }
    } catch (error) {
      if (error instanceof StrataError) throw error;
      throw invalid('STRATA_MALFORMED_REQUEST', 'request', `not a valid GetHistoricalFeaturesRequest message: ${(error as Error).message}`);
    }
    return { ...online, times, entitiesPath };
  }
}

/**
 * One Timestamp in ms. The check is timestampToMs's, made without the
 * field name it would need; a bad timestamp goes through timestampToMs to
 * be explained, naming the row.
 */
function timestampMs(reader: protobuf.Reader, row: number): number {
  const end = reader.uint32() + reader.pos;
  let seconds = 0;
  let nanos = 0;
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (tag === TAG_SECONDS) seconds = (reader.int64() as unknown as Long).toNumber();
    else if (tag === TAG_NANOS) nanos = reader.int32();
    else reader.skipType(tag & 7);
  }
  const ms = seconds * 1000 + Math.floor(nanos / 1_000_000);
  if (nanos >= 0 && nanos <= 999_999_999 && Number.isSafeInteger(ms) && Math.abs(ms) <= 8.64e15) return ms;
  return timestampToMs({ seconds, nanos }, `event_timestamps[${row}]`);
}
