// Ed25519 worker for worker-verifier.ts. Plain JavaScript (node: modules, sodium-native and
// canonicalize), so it runs as-is under node, tsx and vitest.
//
// Verify: tapsettle's strict rule (protocol/crypto.ts, RFC 8032 §5.1.7): canonical A and R
// (y < p), S < L, neither A nor R of small order, then the cofactorless check — libsodium's where
// it loads (and workerData.sodium is not false), else OpenSSL's. Proved equal to protocol's
// verify by the vectors.
//   in:  { id, buf, count } with buf = items of [sig 64][pub 32][msgLen u32 LE][msg]
//   out: { id, verdicts } with verdicts[i] = 1 valid, 0 invalid
//
// Sign: hub results as protocol's signMessage + decode would give them (tested byte for byte,
// twin of hub/verify/result-signing.ts): the balance statement (if any) is signed and embedded,
// then the result is signed, and the wire JSON is written from the same canonical text.
//   in:  { id, kind: 'sign', secretKey, jobs: [{ result, statement? }] }
//   out: { id, wires: (Uint8Array | string)[] } — a string is the error for that job
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import canonicalize from 'canonicalize';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

function loadSodium() {
  if (workerData?.sodium === false) return null;
  try {
    return createRequire(import.meta.url)('sodium-native');
  } catch {
    return null;
  }
}
const sodium = loadSodium();

// Group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L_LE = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
// The small-order point encodings, the list protocol/crypto.ts refuses too.
const SMALL_ORDER = new Set(JSON.parse(readFileSync(new URL('../../protocol/small-order-points.json', import.meta.url), 'utf8')).encodings);

/** y < p = 2^255 - 19 for the 255-bit y of an encoded point (RFC 8032 §5.1.3 step 1), by bytes. */
function canonicalPoint(bytes) {
  if ((bytes[31] & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (bytes[i] !== 0xff) return true;
  return bytes[0] < 0xed;
}

/** S < L, comparing little-endian bytes from the most significant one. */
function canonicalScalar(bytes) {
  for (let i = 31; i >= 0; i--) {
    if (bytes[i] !== L_LE[i]) return bytes[i] < L_LE[i];
  }
  return false; // S == L
}

const KEY_CACHE_MAX = 50_000;
const keys = new Map();

function keyFor(pub) {
  const id = Buffer.from(pub).toString('hex');
  let key = keys.get(id);
  if (key !== undefined) return key;
  key = null;
  if (canonicalPoint(pub) && !SMALL_ORDER.has(id)) {
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
    } catch {
      key = null; // not a point on the curve
    }
  }
  if (keys.size >= KEY_CACHE_MAX) keys.delete(keys.keys().next().value);
  keys.set(id, key);
  return key;
}

function verifyOne(sig, msg, pub) {
  const R = sig.subarray(0, 32);
  if (!canonicalPoint(R) || !canonicalScalar(sig.subarray(32)) || SMALL_ORDER.has(R.toString('hex'))) return false;
  // libsodium refuses a non-canonical or small-order A itself.
  if (sodium) return sodium.crypto_sign_verify_detached(sig, msg, pub);
  const key = keyFor(pub);
  if (!key) return false;
  try {
    return verify(null, msg, key, sig);
  } catch {
    return false;
  }
}

// --- signing (keep in step with protocol/canonical.ts and protocol/codec.ts) ---

const PROTOCOL_VERSION = 1;
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const signingKeys = new Map();

function signerFor(secretKey) {
  const id = Buffer.from(secretKey).toString('hex');
  let signer = signingKeys.get(id);
  if (signer) return signer;
  if (sodium) {
    const pk = Buffer.alloc(32);
    const sk = Buffer.alloc(64);
    sodium.crypto_sign_seed_keypair(pk, sk, Buffer.from(secretKey));
    signer = (bytes) => {
      const sig = Buffer.alloc(64);
      sodium.crypto_sign_detached(sig, bytes, sk);
      return sig;
    };
  } else {
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(secretKey)]), format: 'der', type: 'pkcs8' });
    signer = (bytes) => sign(null, bytes, key);
  }
  signingKeys.clear(); // one hub key at a time
  signingKeys.set(id, signer);
  return signer;
}

/** protocol's canonicalJson: JCS, and only safe integers (money and times are integers). */
function jcs(value) {
  assertSafe(value);
  return canonicalize(value);
}

function assertSafe(value) {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`canonicalJson: not a safe integer (${value})`);
  } else if (Array.isArray(value)) {
    for (const v of value) assertSafe(v);
  } else if (value !== null && typeof value === 'object') {
    for (const k in value) assertSafe(value[k]);
  }
}

const utf8 = new TextEncoder();

function signedText(signer, type, text) {
  return signer(Buffer.from(`tapsettle/${PROTOCOL_VERSION}/${type}\n${text}`)).toString('hex');
}

function signResult(signer, { result, statement }) {
  if (statement) {
    const sig = signedText(signer, 'balance.statement', jcs(statement));
    result = { ...result, statement: { v: PROTOCOL_VERSION, type: 'balance.statement', body: statement, sig } };
  }
  const text = jcs(result);
  const sig = signedText(signer, 'settlement.result', text);
  // Its own ArrayBuffer, exact size, so it can be transferred: a Buffer.from slice would clone its
  // whole 8 KiB pool slab into the hub's thread, kept there as long as any result in it lives.
  return utf8.encode(`{"v":${PROTOCOL_VERSION},"type":"settlement.result","body":${text},"sig":"${sig}"}`);
}

function signJobs(id, secretKey, jobs) {
  const signer = signerFor(secretKey);
  const wires = jobs.map((job) => {
    try {
      return signResult(signer, job);
    } catch (err) {
      return String(err?.message ?? err);
    }
  });
  parentPort.postMessage({ id, wires }, wires.filter((w) => typeof w !== 'string').map((w) => w.buffer));
}

parentPort.on('message', (message) => {
  if (message.kind === 'sign') return signJobs(message.id, message.secretKey, message.jobs);
  const { id, buf, count } = message;
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const verdicts = new Uint8Array(count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const sig = bytes.subarray(off, off + 64);
    const pub = bytes.subarray(off + 64, off + 96);
    const len = bytes.readUInt32LE(off + 96);
    const msg = bytes.subarray(off + 100, off + 100 + len);
    off += 100 + len;
    verdicts[i] = verifyOne(sig, msg, pub) ? 1 : 0;
  }
  parentPort.postMessage({ id, verdicts }, [verdicts.buffer]);
});
