/** A Buffer over the same memory: for APIs that want Buffers, where Buffer.from(Uint8Array) would copy. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The bytes alone in their own memory: copied when they are a window on a larger buffer, so whoever keeps them never pins more. */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}

/**
 * Native memory an ArrayBuffer costs beyond its bytes, whatever its size:
 * V8's backing-store bookkeeping and the allocator's headers, which neither
 * the JS heap nor `arrayBuffers` in process.memoryUsage() counts. 175–185 B
 * on this machine kind (200k buffers of 64 B to 2 KiB, resident growth under
 * --expose-gc); byte-bounded caches charge it per buffer they hold.
 */
export const ARRAY_BUFFER_NATIVE_BYTES = 180;
