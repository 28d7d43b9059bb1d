import type avsc from 'avsc';

/**
 * The Confluent wire format every Kafka Avro serializer writes: a zero magic
 * byte, the writer schema's registry id as a 4-byte big-endian integer, then
 * the Avro binary encoding of one datum.
 */
export const CONFLUENT_MAGIC_BYTE = 0;
export const CONFLUENT_HEADER_BYTES = 5;

/** Encodes one event; throws if it does not fit the type (as avsc's toBuffer does). */
export function encodeConfluent(schemaId: number, type: avsc.Type, event: object): Buffer {
  const payload = type.toBuffer(event);
  const message = Buffer.allocUnsafe(CONFLUENT_HEADER_BYTES + payload.length);
  message[0] = CONFLUENT_MAGIC_BYTE;
  message.writeUInt32BE(schemaId, 1);
  payload.copy(message, CONFLUENT_HEADER_BYTES);
  return message;
}
