/**
 * Canonical bytes for everything signed: a domain-separation prefix naming the protocol version
 * and message type, then the RFC 8785 JSON Canonicalization Scheme (JCS) of the body.
 *   bytes = UTF-8("tapsettle/1/" + type + "\n") || UTF-8(JCS(body))
 * The prefix makes a signature over one message type useless as any other type.
 */
import canonicalizeJcs from 'canonicalize';
import { concatBytes, utf8 } from './hex.ts';

export const PROTOCOL_VERSION = 1;
export const DOMAIN_PREFIX = `tapsettle/${PROTOCOL_VERSION}/`;

const prefixCache = new Map<string, Uint8Array>();

export function domainPrefix(type: string): Uint8Array {
  let prefix = prefixCache.get(type);
  if (!prefix) {
    prefix = utf8(`${DOMAIN_PREFIX}${type}\n`);
    prefixCache.set(type, prefix);
  }
  return prefix;
}

/** RFC 8785 JCS; refuses values JSON cannot carry exactly (non-finite numbers, unsafe integers). */
export function canonicalJson(value: unknown): string {
  assertJsonSafe(value, '$');
  const text = (canonicalizeJcs as unknown as (v: unknown) => string | undefined)(value);
  if (text === undefined) throw new TypeError('canonicalJson: value has no JSON form');
  return text;
}

function assertJsonSafe(value: unknown, path: string): void {
  if (typeof value === 'number') {
    // Money and times are integers; a float or unsafe integer in signed data is a programming error.
    if (!Number.isSafeInteger(value)) throw new TypeError(`canonicalJson: ${path} is not a safe integer (${value})`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => assertJsonSafe(v, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) assertJsonSafe(v, `${path}.${k}`);
  }
}

export function canonicalBytes(type: string, body: unknown): Uint8Array {
  return concatBytes(domainPrefix(type), utf8(canonicalJson(body)));
}
