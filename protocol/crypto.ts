/**
 * Ed25519 and SHA-256 for every part. Signing and verification each have three back-ends
 * that must agree bit for bit (proved by the vectors in vectors/ed25519.json):
 *   - `noble`:  pure JS, the reference (runs anywhere, e.g. inside a wallet simulator);
 *   - `node`:   node:crypto (OpenSSL), ~12x faster;
 *   - `sodium`: libsodium (sodium-native), twice OpenSSL's speed: the default where it loads.
 * The accepted set is RFC 8032 strict (not ZIP-215) and libsodium's: canonical encodings of A
 * and R, S < L, neither A nor R of small order, and the cofactorless equation [S]B = R + [k]A.
 * RFC 8032 §5.1.7 allows either equation; OpenSSL and libsodium check the cofactorless one, and
 * libsodium also refuses a small-order R, so every back-end refuses it and all accept one set.
 */
import { createPrivateKey, createPublicKey, hash as oneShotHash, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes } from './hex.ts';
import { sodium, sodiumSecretKey } from './sodium.ts';
import smallOrderPoints from './small-order-points.json' with { type: 'json' };

export interface KeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export type VerifyBackend = 'node' | 'noble' | 'sodium';

const Point = ed25519.Point;
const L = Point.Fn.ORDER; // group order

export function sha256(bytes: Uint8Array): Uint8Array {
  return nobleSha256(bytes);
}

/**
 * SHA-256 as lowercase hex, for the hub's hot path: node:crypto's one-shot `hash` (Node ≥ 20.12)
 * makes no `Hash` object. `createHash` makes one per call, a native object behind a weak handle,
 * and every young-generation GC then walks those of the requests since the last: ~2 ms of each
 * scavenge's pause at 1000 requests/s (`--trace-gc-nvp` heap.external_weak_global_handles).
 */
export function sha256Hex(data: string | Uint8Array): string {
  return oneShotHash('sha256', data, 'hex');
}

export function generateKeyPair(seed?: Uint8Array): KeyPair {
  const secretKey = seed ? Uint8Array.from(seed) : randomBytes(32);
  if (secretKey.length !== 32) throw new TypeError('generateKeyPair: seed must be 32 bytes');
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(secretKey);
}

export function signNoble(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return ed25519.sign(message, secretKey);
}

// DER prefix of an Ed25519 PKCS#8 private key (RFC 8410) around the 32-byte seed.
const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const SIGNING_KEY_CACHE_MAX = 1024;
const signingKeys = new Map<string, KeyObject>();

/** node:crypto signing: Ed25519 is deterministic, so the bytes equal noble's (checked by the RFC 8032 vectors). */
export function signNode(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32) throw new TypeError('sign: secretKey must be 32 bytes');
  const id = Buffer.from(secretKey).toString('base64');
  let key = signingKeys.get(id);
  if (!key) {
    key = createPrivateKey({ key: Buffer.from(concatBytes(PKCS8_ED25519_PREFIX, secretKey)), format: 'der', type: 'pkcs8' });
    if (signingKeys.size >= SIGNING_KEY_CACHE_MAX) signingKeys.delete(signingKeys.keys().next().value as string);
    signingKeys.set(id, key);
  }
  return new Uint8Array(nodeSign(null, message, key));
}

const sodiumKeys = new Map<string, Uint8Array>();

/** libsodium signing (same bytes: Ed25519 is deterministic); throws where sodium-native is absent. */
export function signSodium(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!sodium) throw new Error('sign: sodium-native is not available on this platform');
  if (secretKey.length !== 32) throw new TypeError('sign: secretKey must be 32 bytes');
  const id = Buffer.from(secretKey).toString('base64');
  let expanded = sodiumKeys.get(id);
  if (!expanded) {
    expanded = sodiumSecretKey(sodium, secretKey);
    if (sodiumKeys.size >= SIGNING_KEY_CACHE_MAX) sodiumKeys.delete(sodiumKeys.keys().next().value as string);
    sodiumKeys.set(id, expanded);
  }
  const signature = new Uint8Array(64);
  sodium.crypto_sign_detached(signature, message, expanded);
  return signature;
}

/** The one sign function every part calls (libsodium where it loads, else node:crypto). */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return sodium ? signSodium(message, secretKey) : signNode(message, secretKey);
}

function leToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

// Little-endian bytes of p = 2^255 - 19 and of the group order L, for byte-wise comparisons on
// the verify hot path (no BigInt allocation per call).
const P_BYTES = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0xed : i === 31 ? 0x7f : 0xff));
const L_BYTES = Uint8Array.from(Array.from({ length: 32 }, (_, i) => Number((L >> BigInt(8 * i)) & 0xffn)));

/** a < b for 32-byte little-endian numbers; `topMask` drops bits of a's last byte (the x sign). */
function lessThanLe(a: Uint8Array, b: Uint8Array, topMask = 0xff): boolean {
  for (let i = 31; i >= 0; i--) {
    const ai = i === 31 ? a[i]! & topMask : a[i]!;
    if (ai !== b[i]) return ai < b[i]!;
  }
  return false;
}

/** y < p, i.e. the 255-bit y coordinate is reduced (RFC 8032 §5.1.3 step 1). */
function isCanonicalPointEncoding(bytes: Uint8Array): boolean {
  return lessThanLe(bytes, P_BYTES, 0x7f);
}

function isCanonicalScalar(bytes: Uint8Array): boolean {
  return lessThanLe(bytes, L_BYTES);
}

/** Decodes A strictly; null when not canonical, not on the curve, or of small order. */
function decodeStrictPublicKey(publicKey: Uint8Array): InstanceType<typeof Point> | null {
  if (publicKey.length !== 32 || !isCanonicalPointEncoding(publicKey)) return null;
  try {
    const A = Point.fromBytes(publicKey, false);
    return A.isSmallOrder() ? null : A;
  } catch {
    return null;
  }
}

// Small-order point encodings (shared with hub/verify/crypto-worker.mjs).
const SMALL_ORDER_ENCODINGS = new Set(smallOrderPoints.encodings);

/** R canonical and not of small order, S < L: the checks on the signature alone. */
function shapeOk(signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const R = signature.subarray(0, 32);
  return isCanonicalPointEncoding(R) && isCanonicalScalar(signature.subarray(32)) && !SMALL_ORDER_ENCODINGS.has(Buffer.from(R).toString('hex'));
}

export function verifyNoble(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!shapeOk(signature, publicKey)) return false;
  const A = decodeStrictPublicKey(publicKey);
  if (!A) return false;
  let R;
  try {
    R = Point.fromBytes(signature.subarray(0, 32), false);
  } catch {
    return false;
  }
  const S = leToBigInt(signature.subarray(32));
  const k = leToBigInt(sha512(concatBytes(signature.subarray(0, 32), publicKey, message))) % L;
  // cofactorless: [S]B == R + [k]A
  const SB = S === 0n ? Point.ZERO : Point.BASE.multiply(S);
  const rhs = k === 0n ? R : R.add(A.multiply(k));
  return SB.equals(rhs);
}

// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING }
const SPKI_ED25519_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** Bounded cache of decoded keys: the hub sees the same terminals and wallets over and over. */
const KEY_CACHE_MAX = 50_000;
const keyCache = new Map<string, KeyObject | null>();

function nodeKeyFor(publicKey: Uint8Array): KeyObject | null {
  const id = Buffer.from(publicKey).toString('base64');
  const cached = keyCache.get(id);
  if (cached !== undefined) return cached;
  const key = decodeStrictPublicKey(publicKey)
    ? createPublicKey({ key: Buffer.from(concatBytes(SPKI_ED25519_PREFIX, publicKey)), format: 'der', type: 'spki' })
    : null;
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string);
  keyCache.set(id, key);
  return key;
}

export function verifyNode(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!shapeOk(signature, publicKey)) return false;
  const key = nodeKeyFor(publicKey);
  if (!key) return false;
  return nodeVerify(null, message, key, signature);
}

/** libsodium checks A (canonical, not of small order) and the cofactorless equation itself. */
export function verifySodium(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!sodium) throw new Error('verify: sodium-native is not available on this platform');
  if (!shapeOk(signature, publicKey)) return false;
  return sodium.crypto_sign_verify_detached(signature, message, publicKey);
}

/** Whether the libsodium back-end loaded here. */
export const sodiumAvailable = sodium !== null;

let activeBackend: VerifyBackend = sodium ? 'sodium' : 'node';

export function setVerifyBackend(backend: VerifyBackend): void {
  if (backend === 'sodium' && !sodium) throw new Error('setVerifyBackend: sodium-native is not available on this platform');
  activeBackend = backend;
}

export function getVerifyBackend(): VerifyBackend {
  return activeBackend;
}

/** The one verify function every part calls. */
export function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  switch (activeBackend) {
    case 'sodium':
      return verifySodium(signature, message, publicKey);
    case 'node':
      return verifyNode(signature, message, publicKey);
    case 'noble':
      return verifyNoble(signature, message, publicKey);
  }
}

export function randomId(bytes = 16): Uint8Array {
  return randomBytes(bytes);
}
