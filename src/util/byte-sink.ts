/**
 * Bytes appended end to end into one growing buffer: many small encodings
 * (a snapshot chunk's values, keys and records) cost one allocation instead
 * of a Uint8Array each. Writers reserve room, write at `length` through
 * `bytes` or `view`, then advance `length`.
 */
/** Below this many bytes a range is copied by a loop: cheaper than the subarray and native call of set(). */
const COPY_LOOP_BYTES = 32;

export class ByteSink {
  bytes: Buffer;
  /** Over `bytes`; replaced with it when the sink grows. */
  view: DataView;
  length = 0;

  constructor(capacity: number) {
    this.bytes = Buffer.allocUnsafe(Math.max(16, capacity));
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** Makes `bytes` (not a copy) this sink's content: appending more grows it into a buffer of its own. */
  hold(bytes: Uint8Array): void {
    this.bytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.length = bytes.length;
  }

  /** Makes room for `count` more bytes after `length`. */
  reserve(count: number): void {
    if (this.length + count > this.bytes.length) this.grow(this.length + count);
  }

  append(source: Uint8Array): void {
    this.reserve(source.length);
    this.bytes.set(source, this.length);
    this.length += source.length;
  }

  /** Appends `source[start…end)`: short ranges by a loop, which costs less than a subarray and set(). */
  appendRange(source: Uint8Array, start: number, end: number): void {
    this.reserve(end - start);
    if (end - start >= COPY_LOOP_BYTES) this.bytes.set(source.subarray(start, end), this.length);
    else for (let index = start, at = this.length; index < end; index++, at++) this.bytes[at] = source[index]!;
    this.length += end - start;
  }

  /** Bytes `start`…`end` as a Buffer over this sink's memory (not a copy: valid until the sink grows). */
  slice(start: number, end: number): Buffer {
    return this.bytes.subarray(start, end);
  }

  private grow(needed: number): void {
    const bytes = Buffer.allocUnsafe(Math.max(needed, 2 * this.bytes.length));
    this.bytes.copy(bytes, 0, 0, this.length);
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

/**
 * Writes `text` at `at` as ASCII, one byte per character, when every
 * character is ASCII; returns false (having written a prefix) at the first
 * one that is not. Short keys and values are mostly ASCII, and this loop
 * costs less than the native call of Buffer.write (and of byteLength before it).
 */
export function writeAscii(target: Uint8Array, at: number, text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0x80) return false;
    target[at + index] = code;
  }
  return true;
}
