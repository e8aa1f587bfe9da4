import { describe, expect, it } from 'vitest';
import { CardAuthorizationMismatchError } from '../../hub/service/card-authorizer.ts';
import { generateSealingKeyPair, newRequestId, sealCard } from '../../protocol/index.ts';
import { CardAuthorizerSimulator, TEST_PAN_APPROVED, TEST_PAN_DECLINED, luhnValid } from './card-authorizer-simulator.ts';

const WALLET = 'aa'.repeat(32);

describe('card authorizer simulator', () => {
  it('opens the sealed card, approves good cards, declines test PANs and bad numbers, idempotent by request id', async () => {
    const sim = new CardAuthorizerSimulator({ declinePans: [TEST_PAN_DECLINED] });
    const auth = (pan: string, requestId = newRequestId(), amountMinor = 1000) =>
      sim.authorize({ requestId, sealedCard: sealCard({ pan, expiry: '01/30' }, sim.sealingPublicKey, requestId), amountMinor, currency: 'EUR', wallet: WALLET });
    const id = newRequestId();
    const ok = await auth(TEST_PAN_APPROVED, id);
    expect(ok).toMatchObject({ approved: true });
    expect(await auth(TEST_PAN_APPROVED, id)).toEqual(ok);
    expect(sim.approvals).toEqual([{ requestId: id, last4: '4242', amountMinor: 1000, currency: 'EUR', wallet: WALLET, authCode: ok.approved ? ok.authCode : '?' }]);
    expect(await auth(TEST_PAN_DECLINED)).toEqual({ approved: false, reason: 'do_not_honor' });
    expect(await auth('4242424242424241')).toEqual({ approved: false, reason: 'invalid_number' });
    expect(await auth(TEST_PAN_APPROVED, newRequestId(), 10_000_000)).toEqual({ approved: false, reason: 'limit_exceeded' });
  });

  it('cannot open a card sealed to another key or for another request', async () => {
    const sim = new CardAuthorizerSimulator();
    const other = generateSealingKeyPair();
    const id = newRequestId();
    const wrongKey = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, other.publicKey, id);
    expect(await sim.authorize({ requestId: id, sealedCard: wrongKey, amountMinor: 1, currency: 'EUR', wallet: WALLET })).toEqual({ approved: false, reason: 'unreadable' });
    const moved = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, newRequestId());
    expect(await sim.authorize({ requestId: id, sealedCard: moved, amountMinor: 1, currency: 'EUR', wallet: WALLET })).toEqual({ approved: false, reason: 'unreadable' });
  });

  it('binds the request id to amount, currency, wallet and card: other content under it is refused and charges nothing', async () => {
    const sim = new CardAuthorizerSimulator();
    const id = newRequestId();
    const sealedCard = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, id);
    const req = { requestId: id, sealedCard, amountMinor: 1000, currency: 'EUR', wallet: WALLET };
    expect(await sim.authorize(req)).toMatchObject({ approved: true });
    await expect(sim.authorize({ ...req, amountMinor: 900_000 })).rejects.toBeInstanceOf(CardAuthorizationMismatchError);
    await expect(sim.authorize({ ...req, wallet: 'bb'.repeat(32) })).rejects.toMatchObject({ code: 'idempotency_mismatch' });
    await expect(sim.authorize({ ...req, currency: 'USD' })).rejects.toBeInstanceOf(CardAuthorizationMismatchError);
    const otherCard = sealCard({ pan: '4111111111111111', expiry: '01/30' }, sim.sealingPublicKey, id);
    await expect(sim.authorize({ ...req, sealedCard: otherCard })).rejects.toBeInstanceOf(CardAuthorizationMismatchError);
    // The same card sealed again (a new ephemeral key) is the same content: the first answer.
    const resealed = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, id);
    expect(await sim.authorize({ ...req, sealedCard: resealed })).toMatchObject({ approved: true });
    expect(sim.approvals.map((a) => a.amountMinor)).toEqual([1000]);
  });

  it('void: reverses once, answers a voided id with voided, refuses a void of other content, remembers an early void', async () => {
    const sim = new CardAuthorizerSimulator();
    const id = newRequestId();
    const req = { requestId: id, sealedCard: sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, id), amountMinor: 1000, currency: 'EUR', wallet: WALLET };
    expect(await sim.authorize(req)).toMatchObject({ approved: true });
    await expect(sim.void({ ...req, amountMinor: 1 }, 'ledger_declined')).rejects.toBeInstanceOf(CardAuthorizationMismatchError);
    const auth = await sim.authorize(req);
    expect(sim.settlementReport()).toEqual({ charges: [{ requestId: id, amountMinor: 1000, currency: 'EUR', wallet: WALLET, authCode: auth.approved ? auth.authCode : '?' }] });
    await sim.void(req, 'ledger_declined');
    await sim.void(req, 'ledger_declined');
    expect(sim.voids).toEqual([{ requestId: id, amountMinor: 1000, currency: 'EUR', reason: 'ledger_declined' }]);
    expect(sim.settlementReport()).toEqual({ charges: [] });
    expect(await sim.authorize(req)).toEqual({ approved: false, reason: 'voided' });
    // A void that overtook its authorization: the late authorization charges nothing.
    const late = newRequestId();
    const lateReq = { ...req, requestId: late, sealedCard: sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, late) };
    await sim.void(lateReq, 'no_answer');
    expect(await sim.authorize(lateReq)).toEqual({ approved: false, reason: 'voided' });
    expect(sim.approvals.map((a) => a.requestId)).toEqual([id]);
  });

  it('Luhn', () => {
    expect(luhnValid('79927398713')).toBe(false); // too short for a PAN
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
  });
});
