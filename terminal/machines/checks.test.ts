// The checks a terminal runs on every hub-signed answer before it acts on one.
import { describe, expect, it } from 'vitest';
import { generateKeyPair, signMessage, toHex } from '../../protocol/index.ts';
import { checkHubAnswer, checkHubResult, hubErrorEvent } from './checks.ts';
import { Fixture, T0 } from './fixtures.ts';
import { POS_IDLE, posStep, type PosState } from './pos.ts';
import { HUB_BUSY_TEXT, TOPUP_PENDING_TEXT } from './types.ts';
import { vendingStep, type VendingState } from './vending.ts';

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

describe('hubErrorEvent: a hub error code this version does not know (a newer hub)', () => {
  it('is a final decline to the machine, as the runtime stores it — not "hub busy" for the whole deadline', () => {
    const f = new Fixture();
    const rid = f.id();
    const event = hubErrorEvent(rid, 'SOME_NEWER_CODE');
    expect(event).toEqual({ e: 'hub.error', requestId: rid, code: 'SOME_NEWER_CODE' });
    const vending: VendingState = { s: 'settling', article: f.ctx().catalog[0]!, requestId: rid, untilMs: T0 + 3000 };
    const v = vendingStep(vending, event, f.ctx(), T0);
    expect(v.state.s).toBe('idle');
    expect(v.commands).toContainEqual({ c: 'display', text: 'declined: SOME_NEWER_CODE', tone: 'error' });
    // A cash top-up: the cashier is told it was declined (give the cash back), never to keep it.
    const topup: PosState = { s: 'settling', kind: 'topup', requestId: rid, lines: [], untilMs: T0 + 3000 };
    const p = posStep(topup, event, f.ctx(), T0);
    expect(p.state).toEqual(POS_IDLE);
    const texts = p.commands.flatMap((c) => (c.c === 'display' ? [c.text] : []));
    expect(texts).toEqual(['declined: SOME_NEWER_CODE']);
    expect(texts).not.toContain(HUB_BUSY_TEXT);
    expect(texts).not.toContain(TOPUP_PENDING_TEXT);
    // The retry-later codes stay what they are.
    expect(vendingStep(vending, hubErrorEvent(rid, 'INTERNAL'), f.ctx(), T0).state).toEqual(vending);
  });
});
