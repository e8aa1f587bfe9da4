import { hexToBytes } from '@noble/hashes/utils.js';

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

export function toHex(bytes: Uint8Array): string {
  // Node's encoder writes the string once; a per-byte concatenation allocated ~2 KB per signature.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Lowercase hex only: one canonical spelling for every byte string that gets signed. */
export function fromHex(hex: string): Uint8Array {
  if (!HEX_RE.test(hex)) throw new TypeError(`fromHex: not lowercase even-length hex (${hex.slice(0, 16)}…)`);
  return hexToBytes(hex);
}

const encoder = new TextEncoder();

/** UTF-8 bytes in their own ArrayBuffer of exact size (never a slice of Buffer's shared pool). */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
