// The checks a terminal runs on every hub-signed answer before it acts on one.
import { describe, expect, it } from 'vitest';
import { generateKeyPair, signMessage, toHex } from '../../protocol/index.ts';
import { checkHubAnswer, checkHubResult } from './checks.ts';
import { T0 } from './fixtures.ts';

const hub = generateKeyPair();
const hubKey = toHex(hub.publicKey);
const requestId = 'ab'.repeat(16);
const error = (terminalId: string, signer = hub) => signMessage('error', { requestId, terminalId, code: 'MALFORMED', message: 'x', time: T0, hubKey }, signer.secretKey);
const ack = (terminalId: string) => signMessage('receipt.ack', { requestId, terminalId, status: 'refunded', time: T0, hubKey }, hub.secretKey);
const result = (terminalId: string) =>
  signMessage('settlement.result', { requestId, terminalId, status: 'declined', code: 'TERMINAL_MISMATCH', withdrawal: 'none', amountMinor: 0, currency: 'EUR', time: T0, hubKey }, hub.secretKey);

describe('checkHubAnswer', () => {
  it('accepts a hub-signed answer addressed to this terminal', () => {
    expect(checkHubAnswer(error('vend-1'), 'vend-1', [hubKey])).toMatchObject({ ok: true, body: { requestId, code: 'MALFORMED' } });
    expect(checkHubAnswer(ack('vend-1'), 'vend-1', [hubKey])).toMatchObject({ ok: true, body: { status: 'refunded' } });
  });

  it("refuses the hub's answer to another terminal about our request id (one that claimed it)", () => {
    expect(checkHubAnswer(error('pos-evil'), 'vend-1', [hubKey])).toEqual({ ok: false, code: 'TERMINAL_MISMATCH' });
    expect(checkHubAnswer(ack('pos-evil'), 'vend-1', [hubKey])).toEqual({ ok: false, code: 'TERMINAL_MISMATCH' });
    expect(checkHubResult(result('pos-evil'), { requestId, terminalId: 'vend-1' }, [hubKey])).toEqual({ ok: false, code: 'TERMINAL_MISMATCH' });
  });

  it('refuses an untrusted hub key and a forged signature', () => {
    expect(checkHubAnswer(error('vend-1'), 'vend-1', [toHex(generateKeyPair().publicKey)])).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
    expect(checkHubAnswer(error('vend-1', generateKeyPair()), 'vend-1', [hubKey])).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    const tampered = { ...ack('vend-1'), body: { ...ack('vend-1').body, status: 'recorded' as const } };
    expect(checkHubAnswer(tampered, 'vend-1', [hubKey])).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });
});
