/** A Buffer over the same memory: for APIs that want Buffers, where Buffer.from(Uint8Array) would copy. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
