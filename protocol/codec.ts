/**
 * Encode, sign, decode and verify wire messages. Every decoder takes untrusted bytes and checks,
 * in this order: size limit, JSON parse, envelope + schema, then (by the caller, who knows the
 * signer) the signature. It returns a typed result and never throws on bad input.
 */
import { canonicalBytes, PROTOCOL_VERSION } from './canonical.ts';
import { sign, verify } from './crypto.ts';
import type { ErrorCode } from './errors.ts';
import { fromHex, toHex } from './hex.ts';
import { MAX_BYTES, MAX_MESSAGE_BYTES, MESSAGE_SCHEMAS, type Body, type Envelope, type MessageType } from './schemas.ts';

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; detail: string };

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Signs a body of the given type; a body that fails its own schema is a programming error. */
export function signMessage<T extends MessageType>(type: T, body: Body<T>, secretKey: Uint8Array): Envelope<T> {
  const envelope = { v: PROTOCOL_VERSION, type, body, sig: '0'.repeat(128) };
  const parsed = MESSAGE_SCHEMAS[type].safeParse(envelope);
  if (!parsed.success) throw new TypeError(`signMessage(${type}): body does not match its schema: ${parsed.error.message}`);
  return { ...envelope, sig: toHex(sign(canonicalBytes(type, body), secretKey)) } as Envelope<T>;
}

export function signingBytes<T extends MessageType>(message: Envelope<T>): Uint8Array {
  return canonicalBytes(message.type, message.body);
}

/** Verifies the envelope's signature against the signer's public key (raw 32 bytes or hex). */
export function verifyMessage(message: { type: string; body: unknown; sig: string }, publicKey: Uint8Array | string): boolean {
  try {
    const key = typeof publicKey === 'string' ? fromHex(publicKey) : publicKey;
    return verify(fromHex(message.sig), canonicalBytes(message.type, message.body), key);
  } catch {
    return false;
  }
}

export function encodeMessage(message: Envelope<MessageType>): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

export function messageDigest(message: Envelope<MessageType>): Uint8Array {
  return signingBytes(message);
}

function fail(code: ErrorCode, detail: string): { ok: false; code: ErrorCode; detail: string } {
  return { ok: false, code, detail };
}

/** Parses untrusted bytes into an envelope of one of the allowed types (schema only, no signature). */
export function decodeMessage<T extends MessageType>(
  bytes: Uint8Array | string,
  allowed: readonly T[] | T,
): DecodeResult<Envelope<T>> {
  const types: readonly T[] = Array.isArray(allowed) ? allowed : [allowed as T];
  const limit = Math.max(...types.map((t) => MAX_BYTES[t] ?? MAX_MESSAGE_BYTES));
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > limit) return fail('TOO_LARGE', `${size} bytes > ${limit}`);
  let raw: unknown;
  try {
    raw = JSON.parse(typeof bytes === 'string' ? bytes : decoder.decode(bytes));
  } catch (err) {
    return fail('MALFORMED', `not UTF-8 JSON: ${(err as Error).message.slice(0, 80)}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return fail('MALFORMED', 'not a JSON object');
  const { v, type } = raw as { v?: unknown; type?: unknown };
  if (v !== PROTOCOL_VERSION) return fail('UNSUPPORTED_VERSION', `v=${JSON.stringify(v)?.slice(0, 20)}`);
  if (typeof type !== 'string' || !types.includes(type as T)) {
    return fail('WRONG_TYPE', `type=${JSON.stringify(type)?.slice(0, 40)}; expected ${types.join('|')}`);
  }
  if (size > MAX_BYTES[type as T]) return fail('TOO_LARGE', `${size} bytes > ${MAX_BYTES[type as T]} for ${type}`);
  const parsed = MESSAGE_SCHEMAS[type as T].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail('MALFORMED', `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`.slice(0, 200));
  }
  return { ok: true, value: parsed.data as Envelope<T> };
}

/** Decode and verify against a key known in advance (e.g. the hub key for results). */
export function decodeAndVerify<T extends MessageType>(
  bytes: Uint8Array | string,
  allowed: readonly T[] | T,
  publicKey: Uint8Array | string,
): DecodeResult<Envelope<T>> {
  const decoded = decodeMessage(bytes, allowed);
  if (!decoded.ok) return decoded;
  if (!verifyMessage(decoded.value, publicKey)) return fail('BAD_SIGNATURE', decoded.value.type);
  return decoded;
}
