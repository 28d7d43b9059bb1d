/** Bytes a non-negative integer (up to 2^53) takes as a protobuf-style varint. */
export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}
