/** Bytes a non-negative integer (up to 2^53) takes as a protobuf-style varint. */
export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Writes a non-negative integer (< 2^53) as a varint at `at`; returns the offset after it. */
export function writeVarint(target: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    target[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  target[at++] = value;
  return at;
}

/** Reads a varint (< 2^35) at `at`: [value, offset after it]; undefined when the bytes end first. */
export function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] | undefined {
  let value = 0;
  let shift = 0;
  for (let pos = at; pos < bytes.length && shift < 35; pos++) {
    const byte = bytes[pos]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos + 1];
    shift += 7;
  }
  return undefined;
}
