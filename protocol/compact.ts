/**
 * Compact transfer encoding for the NFC hop (ISO 14443-4 at 106 kbps behind a 115200-baud PN532
 * UART costs ~0.16 ms per byte): the same envelope as the JSON wire form, in CBOR (RFC 8949) with
 *   - every envelope as tag 40501 [v, typeIndex, body, sig-bytes],
 *   - every known field name replaced by its index in FIELD_KEYS,
 *   - every lowercase hex string of ≥ 16 bytes (keys, nonces, digests, signatures) as a byte string.
 * Decoding restores the exact JSON values, so signatures (over JCS of the JSON body) are unchanged:
 * a terminal relays what it read from a wallet to the hub in JSON, byte-for-byte the same meaning.
 * The tables are append-only: never reorder or remove an entry, or deployed wallets break.
 */
import { decode as cborDecode, encode as cborEncode, Tag } from 'cbor2';
import { decodeMessage, type DecodeResult } from './codec.ts';
import { fromHex, toHex } from './hex.ts';
import { MAX_BYTES, MESSAGE_SCHEMAS, type Envelope, type MessageType } from './schemas.ts';

export const COMPACT_ENVELOPE_TAG = 40501;

/** Message types by index (append-only). */
export const COMPACT_TYPES: readonly MessageType[] = [
  'terminal.certificate',
  'wallet.license',
  'purchase.offer',
  'wallet.authorization',
  'gate.admission',
  'ticket',
  'cancellation',
  'transfer',
  'history.query',
  'settlement.request',
  'settlement.result',
  'balance.statement',
  'completion.receipt',
  'error',
  'announce.blocklist',
  'announce.catalog',
  'announce.fares',
  'announce.keys',
  'receipt.ack',
  'announce.products',
];

/** Field names by index (append-only). A test checks every schema field is listed. */
export const FIELD_KEYS: readonly string[] = [
  'serial', 'terminalId', 'kind', 'merchantId', 'publicKey', 'notBefore', 'notAfter', 'issuerKey',
  'wallet', 'ageOver', 'groups', 'offlineLimitMinor', 'currency', 'sku', 'qty', 'unitMinor',
  'purpose', 'challenge', 'amountMinor', 'lines', 'linesDigest', 'time', 'terminalCert', 'counter',
  'recordId', 'station', 'ticketId', 'product', 'stations', 'validFrom', 'validUntil', 'issuedAt',
  'hubKey', 'originalRequestId', 'from', 'to', 'limit', 'ephemeralPublicKey', 'nonce', 'ciphertext',
  'type', 'authorization', 'license', 'entry', 'exitStation', 'exitTime', 'ticket', 'usedAt',
  'cancellation', 'method', 'operatorId', 'sealedCard', 'transfer', 'query', 'requestId', 'offline',
  'op', 'balanceMinor', 'asOf', 'entries', 'counterparty', 'status', 'code', 'withdrawal',
  'holdUntil', 'statement', 'outcome', 'reason', 'message', 'version', 'wallets', 'minAge',
  'groupsAny', 'groupsNone', 'name', 'priceMinor', 'cancelWindowMs', 'restriction', 'slot',
  'articles', 'baseFareMinor', 'perZoneMinor', 'maxFareMinor', 'maxTripMs', 'utcOffsetMinutes',
  'timeBands', 'fromMinute', 'toMinute', 'percent', 'table', 'hubKeys', 'issuerKeys',
  'revokedTerminals', 'catalogVersion', 'gates', 'detail', 'fareTableVersion', 'products',
  'validityMs', 'timeZone', 'tickets',
];

const KEY_INDEX = new Map(FIELD_KEYS.map((k, i) => [k, i]));
const TYPE_INDEX = new Map(COMPACT_TYPES.map((t, i) => [t, i]));
const LONG_HEX = /^(?:[0-9a-f]{2}){16,}$/;
const MAX_DEPTH = 16;

function isEnvelope(value: Record<string, unknown>): value is { v: number; type: MessageType; body: unknown; sig: string } {
  const keys = Object.keys(value);
  return keys.length === 4 && 'v' in value && 'type' in value && 'body' in value && 'sig' in value && TYPE_INDEX.has(value.type as MessageType);
}

function pack(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new RangeError('compact: nesting too deep');
  if (typeof value === 'string') return LONG_HEX.test(value) ? fromHex(value) : value;
  if (Array.isArray(value)) return value.map((v) => pack(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    if (isEnvelope(obj)) {
      return new Tag(COMPACT_ENVELOPE_TAG, [obj.v, TYPE_INDEX.get(obj.type), pack(obj.body, depth + 1), pack(obj.sig, depth + 1)]);
    }
    const map = new Map<number | string, unknown>();
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      map.set(KEY_INDEX.get(k) ?? k, pack(v, depth + 1));
    }
    return map;
  }
  return value;
}

class CompactError extends Error {}

function unpack(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new CompactError('nesting too deep');
  if (value instanceof Uint8Array) return toHex(value);
  if (Array.isArray(value)) return value.map((v) => unpack(v, depth + 1));
  if (value instanceof Tag) {
    if (Number(value.tag) !== COMPACT_ENVELOPE_TAG || !Array.isArray(value.contents) || value.contents.length !== 4) {
      throw new CompactError(`unexpected tag ${String(value.tag)}`);
    }
    const [v, typeIndex, body, sig] = value.contents as unknown[];
    const type = typeof typeIndex === 'number' ? COMPACT_TYPES[typeIndex] : undefined;
    if (type === undefined) throw new CompactError(`unknown type index ${String(typeIndex)}`);
    return { v, type, body: unpack(body, depth + 1), sig: unpack(sig, depth + 1) };
  }
  if (value instanceof Map || (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)) {
    // cbor2 gives a Map for integer keys and a plain object when every key is a string.
    const entries = value instanceof Map ? [...value.entries()] : Object.entries(value as Record<string, unknown>);
    const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of entries) {
      const name = typeof k === 'number' ? FIELD_KEYS[k] : typeof k === 'string' ? k : undefined;
      if (name === undefined) throw new CompactError(`bad map key ${String(k)}`);
      obj[name] = unpack(v, depth + 1);
    }
    return { ...obj };
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return value;
  throw new CompactError(`unsupported CBOR item ${typeof value}`);
}

/** Compact CBOR form of an envelope (see the module comment). */
export function encodeCompact(message: Envelope<MessageType>): Uint8Array {
  return cborEncode(pack(message, 0));
}

/**
 * Untrusted compact bytes → a schema-checked envelope, with the same typed errors as
 * decodeMessage: size limit (the JSON limit bounds the compact form too), CBOR, envelope, schema.
 */
export function decodeCompact<T extends MessageType>(bytes: Uint8Array, allowed: readonly T[] | T): DecodeResult<Envelope<T>> {
  const types: readonly T[] = Array.isArray(allowed) ? allowed : [allowed as T];
  const limit = Math.max(...types.map((t) => MAX_BYTES[t]));
  if (bytes.length > limit) return { ok: false, code: 'TOO_LARGE', detail: `${bytes.length} bytes > ${limit}` };
  let raw: unknown;
  try {
    raw = unpack(cborDecode(bytes, { rejectDuplicateKeys: true }), 0);
  } catch (err) {
    return { ok: false, code: 'MALFORMED', detail: `not compact CBOR: ${(err as Error).message.slice(0, 80)}` };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !('type' in raw)) {
    return { ok: false, code: 'MALFORMED', detail: 'not a compact envelope' };
  }
  const { v, type } = raw as { v: unknown; type: T };
  if (v !== 1) return { ok: false, code: 'UNSUPPORTED_VERSION', detail: `v=${String(v)}` };
  if (!types.includes(type)) return { ok: false, code: 'WRONG_TYPE', detail: `type=${type}; expected ${types.join('|')}` };
  const parsed = MESSAGE_SCHEMAS[type].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, code: 'MALFORMED', detail: `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`.slice(0, 200) };
  }
  return { ok: true, value: parsed.data as Envelope<T> };
}

/** Either wire form: JSON starts with `{` (0x7b); the compact form with its CBOR tag (0xd9). */
export function decodeAnyForm<T extends MessageType>(bytes: Uint8Array, allowed: readonly T[] | T): DecodeResult<Envelope<T>> {
  return bytes[0] === 0x7b ? decodeMessage(bytes, allowed) : decodeCompact(bytes, allowed);
}
