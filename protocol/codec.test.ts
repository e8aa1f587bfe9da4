import { describe, expect, it } from 'vitest';
import { decodeAndVerify, decodeMessage, encodeMessage, signMessage, verifyMessage } from './codec.ts';
import { generateKeyPair } from './crypto.ts';
import { toHex, utf8 } from './hex.ts';
import { MAX_BYTES } from './schemas.ts';
import { buildSampleMessages, VECTOR_KEYS } from './vectors/messages.ts';

const hub = VECTOR_KEYS.hub;

function completionReceipt() {
  return signMessage(
    'completion.receipt',
    { requestId: 'ab'.repeat(16), terminalId: 'v-1', outcome: 'dispensed', time: 1_700_000_000_000 },
    VECTOR_KEYS.terminal.secretKey,
  );
}

describe('codec', () => {
  it('round-trips every message type through encode → decode', () => {
    for (const m of buildSampleMessages()) {
      const decoded = decodeMessage(encodeMessage(m), m.type);
      expect(decoded).toEqual({ ok: true, value: m });
    }
  });

  it('verifies against the signer key and no other', () => {
    const r = completionReceipt();
    expect(verifyMessage(r, VECTOR_KEYS.terminal.publicKey)).toBe(true);
    expect(verifyMessage(r, toHex(VECTOR_KEYS.terminal.publicKey))).toBe(true);
    expect(verifyMessage(r, hub.publicKey)).toBe(false);
    expect(verifyMessage({ ...r, sig: 'zz' }, VECTOR_KEYS.terminal.publicKey)).toBe(false);
  });

  it('a signature over one type is useless as another (domain separation)', () => {
    const r = completionReceipt();
    const relabeled = { ...r, type: 'gate.admission' };
    expect(verifyMessage(relabeled, VECTOR_KEYS.terminal.publicKey)).toBe(false);
  });

  it('rejects tampered bodies', () => {
    const r = completionReceipt();
    const tampered = { ...r, body: { ...r.body, outcome: 'failed' as const } };
    const res = decodeAndVerify(encodeMessage(tampered), 'completion.receipt', VECTOR_KEYS.terminal.publicKey);
    expect(res).toEqual({ ok: false, code: 'BAD_SIGNATURE', detail: 'completion.receipt' });
  });

  it('checks the size limit before parsing', () => {
    const huge = utf8('{' + ' '.repeat(MAX_BYTES['completion.receipt'] + 10) + '}');
    const res = decodeMessage(huge, 'completion.receipt');
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.code).toBe('TOO_LARGE');
  });

  it.each([
    ['not json', 'MALFORMED'],
    ['[1,2]', 'MALFORMED'],
    ['null', 'MALFORMED'],
    ['{"v":2,"type":"completion.receipt","body":{},"sig":""}', 'UNSUPPORTED_VERSION'],
    ['{"v":1,"type":"ticket","body":{},"sig":""}', 'WRONG_TYPE'],
    ['{"v":1,"type":"completion.receipt","body":{},"sig":""}', 'MALFORMED'],
  ])('rejects %s with %s', (text, code) => {
    const res = decodeMessage(utf8(text), 'completion.receipt');
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.code).toBe(code);
  });

  it('rejects invalid UTF-8 and unknown fields', () => {
    const bad = decodeMessage(new Uint8Array([0x7b, 0xff, 0x7d]), 'completion.receipt');
    expect(bad.ok || bad.code).toBe('MALFORMED');
    const r = completionReceipt();
    const extra = decodeMessage(JSON.stringify({ ...r, body: { ...r.body, extra: 1 } }), 'completion.receipt');
    expect(extra.ok || extra.code).toBe('MALFORMED');
  });

  it('refuses to sign a body that breaks its own schema or carries a float', () => {
    const kp = generateKeyPair();
    expect(() =>
      signMessage('completion.receipt', { requestId: 'x', terminalId: 'v', outcome: 'dispensed', time: 1 }, kp.secretKey),
    ).toThrow(/schema/);
    expect(() =>
      signMessage('completion.receipt', { requestId: 'ab'.repeat(16), terminalId: 'v', outcome: 'dispensed', time: 1.5 }, kp.secretKey),
    ).toThrow();
  });
});
