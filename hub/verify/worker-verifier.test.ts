import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fromHex, generateKeyPair, sign, verifyNoble } from '../../protocol/index.ts';
import vectors from '../../protocol/vectors/ed25519.json' with { type: 'json' };
import { WorkerVerifier } from './worker-verifier.ts';

// inlineMaxBatch 0: every check goes through the worker threads.
const verifier = new WorkerVerifier({ workers: 2, inlineMaxBatch: 0 });
afterAll(() => verifier.close());

describe('WorkerVerifier', () => {
  it.each(['sodium', 'node'] as const)('reproduces every verdict of protocol/vectors/ed25519.json (%s)', async (backend) => {
    const pool = new WorkerVerifier({ workers: 1, inlineMaxBatch: 0, backend });
    try {
      const items = vectors.verify.map((v) => ({ signature: fromHex(v.signature), message: fromHex(v.message), publicKey: fromHex(v.publicKey) }));
      const verdicts = await pool.verifyMany(items);
      expect(verdicts).toEqual(vectors.verify.map((v) => v.valid));
      expect(vectors.verify.some((v) => !v.valid)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('agrees with the noble reference on random and tampered signatures, across concurrent calls', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat(95), fc.boolean(), async (message, flipAt, tamper) => {
        const keys = generateKeyPair();
        const signature = sign(message, keys.secretKey);
        const sig = Uint8Array.from(signature);
        const pub = Uint8Array.from(keys.publicKey);
        if (tamper) {
          if (flipAt < 64) sig[flipAt]! ^= 1;
          else pub[flipAt - 64]! ^= 1;
        }
        // Two calls in the same turn share one batch.
        const [a, b] = await Promise.all([
          verifier.verifyMany([{ signature: sig, message, publicKey: pub }]),
          verifier.verifyMany([{ signature, message, publicKey: keys.publicKey }]),
        ]);
        expect(a[0]).toBe(verifyNoble(sig, message, pub));
        expect(b[0]).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('answers wrong-sized inputs with false and an empty batch with []', async () => {
    const keys = generateKeyPair();
    const message = new Uint8Array([1, 2, 3]);
    const signature = sign(message, keys.secretKey);
    expect(await verifier.verifyMany([])).toEqual([]);
    expect(await verifier.verifyMany([
      { signature: signature.subarray(0, 63), message, publicKey: keys.publicKey },
      { signature, message, publicKey: keys.publicKey.subarray(1) },
      { signature, message, publicKey: keys.publicKey },
    ])).toEqual([false, false, true]);
  });

  it('spreads a large batch over the pool and keeps the order of results', async () => {
    const keys = generateKeyPair();
    const items = Array.from({ length: 1000 }, (_, i) => {
      const message = new Uint8Array([i & 0xff, i >> 8]);
      const signature = sign(message, keys.secretKey);
      if (i % 7 === 0) signature[40]! ^= 0x10;
      return { signature, message, publicKey: keys.publicKey };
    });
    const verdicts = await verifier.verifyMany(items);
    expect(verdicts).toEqual(items.map((_, i) => i % 7 !== 0));
  });

  it('verifies a small turn inline with the same verdicts (default inlineMaxBatch)', async () => {
    const v = new WorkerVerifier({ workers: 1 });
    try {
      for (const vec of vectors.verify) {
        const [ok] = await v.verifyMany([{ signature: fromHex(vec.signature), message: fromHex(vec.message), publicKey: fromHex(vec.publicKey) }]);
        expect(ok, vec.name).toBe(vec.valid);
      }
    } finally {
      await v.close();
    }
  });

  it('rejects work after close', async () => {
    const v = new WorkerVerifier({ workers: 1 });
    await v.close();
    await expect(v.verifyMany([{ signature: new Uint8Array(64), message: new Uint8Array(), publicKey: new Uint8Array(32) }])).rejects.toThrow(/closed/);
  });
});

describe('WorkerVerifier strict encodings (byte-wise checks in crypto-worker.mjs)', () => {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  const P = 2n ** 255n - 19n;
  const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));

  it('agrees with the noble reference for S around L and R/A encodings around p', async () => {
    const v = new WorkerVerifier({ workers: 1, inlineMaxBatch: 0 });
    try {
      const keys = generateKeyPair();
      const message = new Uint8Array([7]);
      const good = sign(message, keys.secretKey);
      const items = [];
      for (const s of [0n, 1n, L - 1n, L, L + 1n, 2n ** 253n, 2n ** 256n - 1n]) {
        const sig = Uint8Array.from(good);
        sig.set(le(s), 32);
        items.push({ signature: sig, message, publicKey: keys.publicKey });
      }
      for (const y of [P - 2n, P - 1n, P, P + 1n, 2n ** 255n - 1n]) {
        for (const sign255 of [0, 0x80]) {
          const enc = le(y);
          enc[31] = (enc[31]! & 0x7f) | sign255;
          const asR = Uint8Array.from(good);
          asR.set(enc, 0);
          items.push({ signature: asR, message, publicKey: keys.publicKey });
          items.push({ signature: good, message, publicKey: enc });
        }
      }
      const verdicts = await v.verifyMany(items);
      expect(verdicts).toEqual(items.map((i) => verifyNoble(i.signature, i.message, i.publicKey)));
    } finally {
      await v.close();
    }
  });
});
