import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  generateKeyPair,
  publicKeyOf,
  sha256,
  sha256Hex,
  sign,
  signNode,
  signNoble,
  signSodium,
  sodiumAvailable,
  verify,
  verifyNode,
  verifyNoble,
  verifySodium,
  setVerifyBackend,
  getVerifyBackend,
} from './crypto.ts';
import { fromHex, toHex, utf8 } from './hex.ts';
import vectors from './vectors/ed25519.json' with { type: 'json' };

const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function addLToS(sigHex: string): string {
  const sig = fromHex(sigHex);
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += L;
  const out = Uint8Array.from(sig);
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return toHex(out);
}

describe('sha256Hex', () => {
  it('is SHA-256 in lowercase hex (FIPS 180-2 "abc" vector), for text and bytes alike', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(utf8('abc'))).toBe(sha256Hex('abc'));
  });

  it('agrees with the noble sha256 on any text (UTF-8 encoded)', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (text) => sha256Hex(text) === toHex(sha256(utf8(text)))));
  });
});

describe('Ed25519', () => {
  it.each(vectors.sign)('$name: derives the public key and signature', (v) => {
    const sk = fromHex(v.secretKey);
    expect(toHex(publicKeyOf(sk))).toBe(v.publicKey);
    expect(toHex(sign(fromHex(v.message), sk))).toBe(v.signature);
    expect(toHex(signNoble(fromHex(v.message), sk))).toBe(v.signature);
    expect(toHex(signNode(fromHex(v.message), sk))).toBe(v.signature);
    expect(toHex(signSodium(fromHex(v.message), sk))).toBe(v.signature);
  });

  it('libsodium loaded here (a platform without its prebuild falls back to node:crypto)', () => {
    expect(sodiumAvailable).toBe(true);
    expect(getVerifyBackend()).toBe('sodium');
  });

  it.each(vectors.verify)('$name: every back-end agrees (valid=$valid)', (v) => {
    const args = [fromHex(v.signature), fromHex(v.message), fromHex(v.publicKey)] as const;
    expect(verifyNoble(...args)).toBe(v.valid);
    expect(verifyNode(...args)).toBe(v.valid);
    expect(verifySodium(...args)).toBe(v.valid);
  });

  it('the vectors include rejected edge cases, not only valid ones', () => {
    expect(vectors.verify.filter((v) => !v.valid).length).toBeGreaterThanOrEqual(6);
  });

  it('rejects a non-canonical S (S + L) on both back-ends', () => {
    for (const v of vectors.sign) {
      const args = [fromHex(addLToS(v.signature)), fromHex(v.message), fromHex(v.publicKey)] as const;
      expect(verifyNoble(...args)).toBe(false);
      expect(verifyNode(...args)).toBe(false);
      expect(verifySodium(...args)).toBe(false);
    }
  });

  it('rejects a non-canonical encoding of the public key (y + p)', () => {
    // y = 1 (the identity's y) encoded as 1 + p: small-order and non-canonical, must fail strictly.
    const nonCanonical = fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
    const sig = fromHex(vectors.sign[0]!.signature);
    expect(verifyNoble(sig, new Uint8Array(), nonCanonical)).toBe(false);
    expect(verifyNode(sig, new Uint8Array(), nonCanonical)).toBe(false);
    expect(verifySodium(sig, new Uint8Array(), nonCanonical)).toBe(false);
  });

  it('agrees on random keys, messages and single-bit corruptions (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), fc.nat(64 * 8 - 1), (seed, msg, bit) => {
        const kp = generateKeyPair(seed);
        const sig = sign(msg, kp.secretKey);
        expect(signNoble(msg, kp.secretKey)).toEqual(sig);
        expect(verifyNode(sig, msg, kp.publicKey)).toBe(true);
        expect(verifyNoble(sig, msg, kp.publicKey)).toBe(true);
        const bad = Uint8Array.from(sig);
        bad[bit >> 3] = bad[bit >> 3]! ^ (1 << (bit & 7));
        expect(verifySodium(sig, msg, kp.publicKey)).toBe(true);
        expect(verifyNode(bad, msg, kp.publicKey)).toBe(verifyNoble(bad, msg, kp.publicKey));
        expect(verifySodium(bad, msg, kp.publicKey)).toBe(verifyNoble(bad, msg, kp.publicKey));
        expect(verifyNode(bad, msg, kp.publicKey)).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('verify() follows the selected back-end', () => {
    const kp = generateKeyPair();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = sign(msg, kp.secretKey);
    const before = getVerifyBackend();
    try {
      for (const backend of ['noble', 'node', 'sodium'] as const) {
        setVerifyBackend(backend);
        expect(getVerifyBackend()).toBe(backend);
        expect(verify(sig, msg, kp.publicKey)).toBe(true);
        expect(verify(sig, new Uint8Array([1, 2, 4]), kp.publicKey)).toBe(false);
      }
    } finally {
      setVerifyBackend(before);
    }
  });

  it('rejects wrong lengths without throwing', () => {
    expect(verify(new Uint8Array(63), new Uint8Array(), new Uint8Array(32))).toBe(false);
    expect(verifyNoble(new Uint8Array(64), new Uint8Array(), new Uint8Array(31))).toBe(false);
  });
});
