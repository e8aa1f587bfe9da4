/**
 * RFC 8785 JCS for the settlement hot path, memoized by object for ONE request: the request's
 * nested envelopes (authorization, license) are canonicalized once, while the terminal's signed
 * bytes are, and reused for their own signature checks, the license cache and the lines digest.
 * Output equals protocol/canonical.ts `canonicalJson`
 * (property-tested against it); like it, refuses numbers that are not safe integers.
 * Use a fresh memo per request and never mutate an object after it was canonicalized. The memo
 * holds what it canonicalized strongly (a plain Map: a weak one costs the collector ephemeron
 * work, and one kept across requests kept their objects alive through scavenges): drop it with
 * the request.
 */
import { canonicalJson, domainPrefix } from '../../protocol/index.ts';

const encoder = new TextEncoder();

export class CanonicalMemo {
  readonly #memo = new Map<object, string>();

  /** JCS text of a JSON value. */
  json(value: unknown): string {
    return this.#value(value, true);
  }

  #value(value: unknown, remember: boolean): string {
    if (value === null) return 'null';
    switch (typeof value) {
      case 'string':
        return JSON.stringify(value);
      case 'number':
        if (!Number.isSafeInteger(value)) throw new TypeError(`canonicalJson: not a safe integer (${value})`);
        return String(value);
      case 'boolean':
        return value ? 'true' : 'false';
      case 'object':
        return this.#object(value, remember);
      default:
        throw new TypeError(`canonicalJson: value has no JSON form (${typeof value})`);
    }
  }

  /** What protocol's `canonicalBytes(type, body)` returns: domain prefix || UTF-8(JCS(body)). */
  bytes(type: string, body: unknown): Uint8Array {
    const prefix = domainPrefix(type);
    const text = this.json(body);
    const out = new Uint8Array(prefix.length + text.length * 3);
    out.set(prefix, 0);
    const { written } = encoder.encodeInto(text, out.subarray(prefix.length));
    return out.subarray(0, prefix.length + written);
  }

  /**
   * Remembered: what was asked for directly, envelope bodies and line lists (the texts reused);
   * a weak entry per nested object would cost more in GC than it saves.
   */
  #object(value: object, remember: boolean): string {
    const known = remember ? this.#memo.get(value) : undefined;
    if (known !== undefined) return known;
    let text: string;
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
      text = canonicalJson(value); // not in our messages; the library's rule, exactly
    } else if (Array.isArray(value)) {
      text = '[';
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i];
        text += (i === 0 ? '' : ',') + (v === undefined || typeof v === 'symbol' || typeof v === 'function' ? 'null' : this.#value(v, false));
      }
      text += ']';
    } else {
      // JCS §3.2.3: properties sorted by their UTF-16 code units (the default sort).
      const keys = Object.keys(value).sort();
      text = '{';
      let first = true;
      for (const k of keys) {
        const v: unknown = (value as Record<string, unknown>)[k];
        if (v === undefined || typeof v === 'symbol' || typeof v === 'function') continue;
        text += (first ? '' : ',') + JSON.stringify(k) + ':' + this.#value(v, k === 'body' || k === 'lines');
        first = false;
      }
      text += '}';
    }
    if (remember) this.#memo.set(value, text);
    return text;
  }
}
