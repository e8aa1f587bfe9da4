import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMessage, generateKeyPair, signMessage, toHex, verifyMessage, type Body } from '../../protocol/index.ts';
import { signResultInline, type ResultSigningJob } from './result-signing.ts';
import { WorkerVerifier } from './worker-verifier.ts';

const hub = generateKeyPair();
const hubKey = toHex(hub.publicKey);
// inlineMaxBatch 0: every job goes through the worker threads.
const pool = new WorkerVerifier({ workers: 2, inlineMaxBatch: 0 });
const pooled = pool.resultSigner(hub.secretKey);
afterAll(() => pool.close());

function job(amountMinor: number, balanceMinor: number | null, extra: Partial<Body<'settlement.result'>> = {}): ResultSigningJob {
  const result = {
    requestId: 'cd'.repeat(16),
    terminalId: 'pos-1',
    status: 'approved' as const,
    withdrawal: 'complete' as const,
    amountMinor,
    currency: 'EUR',
    time: 1_700_000_000_000,
    hubKey,
    ...extra,
  };
  if (balanceMinor === null) return { result };
  return { result, statement: { wallet: 'ab'.repeat(32), balanceMinor, currency: 'EUR', asOf: 1_700_000_000_000, entries: [], hubKey } };
}

/** What protocol's own functions make of the same job. */
function reference(j: ResultSigningJob) {
  const statement = j.statement ? signMessage('balance.statement', j.statement, hub.secretKey) : undefined;
  return signMessage('settlement.result', { ...j.result, ...(statement ? { statement } : {}) }, hub.secretKey);
}

describe('result signing', () => {
  it('inline and on the workers: the same bytes, decoding to what protocol signMessage makes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(1_000_000), fc.option(fc.integer({ min: -100_000, max: 1_000_000 })), fc.constantFrom('approved', 'declined'), async (amount, balance, status) => {
        const j = job(amount, balance, { status, ...(status === 'declined' ? { code: 'INSUFFICIENT_FUNDS' as const, withdrawal: 'none' as const } : {}) });
        const inline = signResultInline(hub.secretKey, j);
        const [a, b] = await Promise.all([pooled.signResult(j), pooled.signResult(job(amount + 1, balance))]);
        expect(Buffer.from(a).equals(Buffer.from(inline))).toBe(true);
        expect(Buffer.from(b).equals(Buffer.from(inline))).toBe(false);
        const decoded = decodeMessage(inline, 'settlement.result');
        if (!decoded.ok) throw new Error(decoded.detail);
        expect(decoded.value).toEqual(reference(j));
        expect(verifyMessage(decoded.value, hub.publicKey)).toBe(true);
        if (decoded.value.body.statement) expect(verifyMessage(decoded.value.body.statement, hub.publicKey)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('gives each result its own exact-size ArrayBuffer, inline and from the workers (a slice of Buffer\'s 8 KiB pool kept the whole slab alive)', async () => {
    const jobs = [job(250, 1000), job(100, null), job(7, 3)];
    const results = [...jobs.map((j) => signResultInline(hub.secretKey, j)), ...(await Promise.all(jobs.map((j) => pooled.signResult(j))))];
    for (const wire of results) {
      expect(wire.byteOffset).toBe(0);
      expect(wire.buffer.byteLength).toBe(wire.byteLength);
    }
  });

  it('refuses an amount that is not a safe integer, on the workers as inline', async () => {
    const bad = job(0.5, 10);
    expect(() => signResultInline(hub.secretKey, bad)).toThrow(/safe integer/);
    await expect(pooled.signResult(bad)).rejects.toThrow(/safe integer/);
    // The pool goes on working after a refused job.
    expect(decodeMessage(await pooled.signResult(job(1, 1)), 'settlement.result').ok).toBe(true);
  });

  it('signs with libsodium and with OpenSSL alike', async () => {
    const openssl = new WorkerVerifier({ workers: 1, inlineMaxBatch: 0, backend: 'node' });
    try {
      const j = job(250, 750);
      expect(toHex(await openssl.resultSigner(hub.secretKey).signResult(j))).toBe(toHex(signResultInline(hub.secretKey, j)));
    } finally {
      await openssl.close();
    }
  });
});
