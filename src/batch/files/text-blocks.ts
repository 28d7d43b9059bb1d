import type { FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/** 1 MiB: a few hundred reads for a large file; large enough that read calls cost nothing next to parsing. */
const BLOCK_BYTES = 1 << 20;

/**
 * A text file as UTF-8 blocks of about a MiB, read sequentially through an
 * open handle. A character split between two reads arrives whole in the
 * later block. Invalid UTF-8 becomes U+FFFD, as Node decodes everywhere.
 */
export async function* textBlocks(handle: FileHandle): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  // One buffer for every read: the decoder copies what it returns.
  const buffer = Buffer.allocUnsafe(BLOCK_BYTES);
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, BLOCK_BYTES, null);
    if (bytesRead === 0) break;
    const text = decoder.write(buffer.subarray(0, bytesRead));
    if (text !== '') yield text;
  }
  const tail = decoder.end();
  if (tail !== '') yield tail;
}
