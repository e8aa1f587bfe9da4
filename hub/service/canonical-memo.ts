/**
 * RFC 8785 JCS for the settlement hot path, memoized by object for ONE request: each text (the
 * request body, the authorization's, the license's, the lines') is made once and reused for the
 * signature checks, the license cache and the lines digest. What was decoded is in canonical
 * order and goes to the native serializer; objects the hub builds are rendered, splicing the
 * remembered texts of their envelope bodies and line lists. It is protocol's `canonicalJson`
 * with this as its memo. Use a fresh memo per request and never mutate an object after it was
 * canonicalized. The memo holds what it canonicalized strongly (a plain Map: a weak one costs
 * the collector ephemeron work, and one kept across requests kept their objects alive through
 * scavenges): drop it with the request.
 */
import { canonicalJson, domainPrefix, type JcsMemo } from '../../protocol/index.ts';

const encoder = new TextEncoder();

export class CanonicalMemo implements JcsMemo {
  readonly texts = new Map<object, string>();

  /** Remembered beside what is asked for directly: envelope bodies and line lists (the texts reused). */
  remembers(key: string): boolean {
    return key === 'body' || key === 'lines';
  }

  /** JCS text of a JSON value. */
  json(value: unknown): string {
    return canonicalJson(value, this);
  }

  /** What protocol's `canonicalBytes(type, body)` returns: domain prefix || UTF-8(JCS(body)). */
  bytes(type: string, body: unknown): Uint8Array {
    const prefix = domainPrefix(type);
    const text = this.json(body);
    // Exact size: a backing store is external memory until a scavenge frees it, and V8 starts a
    // mark-compact when external memory has grown 64 MiB (worst-case 3 bytes a char was ~3×).
    const out = new Uint8Array(prefix.length + Buffer.byteLength(text, 'utf8'));
    out.set(prefix, 0);
    encoder.encodeInto(text, out.subarray(prefix.length));
    return out;
  }
}
