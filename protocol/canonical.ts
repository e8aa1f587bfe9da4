/**
 * Canonical bytes for everything signed: a domain-separation prefix naming the protocol version
 * and message type, then the RFC 8785 JSON Canonicalization Scheme (JCS) of the body.
 *   bytes = UTF-8("tapsettle/1/" + type + "\n") || UTF-8(JCS(body))
 * The prefix makes a signature over one message type useless as any other type.
 */
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

/**
 * Texts already made, by object: canonicalJson returns a known value's text, and when it renders
 * (a value not in canonical order, such as a result the hub builds) splices a known nested
 * object's text instead of walking it again. Never mutate an object after its text was remembered.
 */
export interface JcsMemo {
  readonly texts: Map<object, string>;
  /** Whether to remember what is rendered under this property name (the top value always is). */
  remembers(key: string): boolean;
}

/**
 * RFC 8785 JCS; refuses values JSON cannot carry exactly (non-finite numbers, unsafe integers).
 * Written here rather than with the `canonicalize` package (the tests' oracle) because every
 * request and result passes through it: a value already in canonical order (everything decoded)
 * goes to the native JSON.stringify after one checking walk that allocates nothing; any other is
 * rendered in one pass, keys sorted in place, numbers checked as they are written — the package's
 * template-literal folds and a separate validating walk made canonicalization the hub's largest
 * allocator.
 */
export function canonicalJson(value: unknown, memo?: JcsMemo): string {
  let text = typeof value === 'object' && value !== null ? memo?.texts.get(value) : undefined;
  if (text !== undefined) return text;
  if (stringifiesCanonically(value)) {
    // Already in canonical order (what our schemas decode is): the native serializer writes the
    // same text in one flat string, where rendering builds it from many small pieces.
    text = JSON.stringify(value);
    if (memo !== undefined) memo.texts.set(value as object, text);
    return text;
  }
  try {
    text = render(value, memo, true);
  } catch (err) {
    // Walk again to name where it is.
    if (err instanceof UnsafeNumber) assertJsonSafe(value, '$');
    throw err;
  }
  if (text === undefined) throw new TypeError('canonicalJson: value has no JSON form');
  return text;
}

class UnsafeNumber extends TypeError {}

/**
 * Whether `JSON.stringify(value)` is already its JCS: every object plain with its keys in sorted
 * order (`for…in` gives them in JSON.stringify's order), every number a safe integer, no toJSON.
 * Anything else (and top-level undefined) is left to `render`, which also names what is wrong.
 */
function stringifiesCanonically(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isSafeInteger(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype || Object.hasOwn(value, 'toJSON')) return false;
    for (let i = 0; i < value.length; i++) if (!stringifiesCanonically(value[i])) return false;
    return true;
  }
  // toJSON may be own and not enumerable, which the walk below would not see.
  if (Object.getPrototypeOf(value) !== Object.prototype || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  let previous: string | undefined;
  for (const key in value) {
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    const item = (value as Record<string, unknown>)[key];
    if (item !== undefined && !stringifiesCanonically(item)) return false;
  }
  return true;
}

/** undefined for what JSON leaves out (undefined, functions, symbols). */
function render(value: unknown, memo: JcsMemo | undefined, remember: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new UnsafeNumber(`canonicalJson: not a safe integer (${value})`);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return value === null ? 'null' : renderObject(value, memo, remember);
    case 'bigint':
      throw new TypeError('canonicalJson: a BigInt has no JSON form');
    default:
      return undefined;
  }
}

function renderObject(value: object, memo: JcsMemo | undefined, remember: boolean): string | undefined {
  const known = memo?.texts.get(value);
  if (known !== undefined) return known;
  let text: string | undefined;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    text = render((value as { toJSON: () => unknown }).toJSON(), undefined, false);
  } else if (Array.isArray(value)) {
    text = '[';
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + (render(value[i], memo, false) ?? 'null');
    text += ']';
  } else {
    const keys = sortedKeys(value);
    text = '{';
    let first = true;
    for (const k of keys) {
      const v = render((value as Record<string, unknown>)[k], memo, memo !== undefined && memo.remembers(k));
      if (v === undefined) continue;
      text += (first ? '' : ',') + quotedKey(k) + ':' + v;
      first = false;
    }
    text += '}';
  }
  if (remember && memo !== undefined && text !== undefined) memo.texts.set(value, text);
  return text;
}

/** JCS §3.2.3: by UTF-16 code units, which is how `<` compares strings. */
function sortedKeys(value: object): string[] {
  const keys = Object.keys(value);
  // Our objects have a handful of keys: an insertion sort in place beats sort()'s copy.
  if (keys.length > 24) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i - 1;
    for (; j >= 0 && (keys[j] as string) > k; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = k;
  }
  return keys;
}

/** Property names recur in every message: quote each once (bounded: names can come from input). */
const quotedKeys = new Map<string, string>();
function quotedKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quotedKeys.size < 4096) quotedKeys.set(k, q);
  }
  return q;
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
