import { Blake3Hasher } from '@napi-rs/blake-hash';

/** BLAKE3 of a small in-memory value (an event payload, a manifest header), as lowercase hex. */
export function blake3Hex(bytes: Uint8Array): string {
  const hasher = new Blake3Hasher();
  hasher.update(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return hasher.digest('hex');
}
