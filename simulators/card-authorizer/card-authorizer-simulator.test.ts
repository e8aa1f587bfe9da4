import { describe, expect, it } from 'vitest';
import { generateSealingKeyPair, newRequestId, sealCard } from '../../protocol/index.ts';
import { CardAuthorizerSimulator, TEST_PAN_APPROVED, TEST_PAN_DECLINED, luhnValid } from './card-authorizer-simulator.ts';

describe('card authorizer simulator', () => {
  it('opens the sealed card, approves good cards, declines test PANs and bad numbers, idempotent by request id', async () => {
    const sim = new CardAuthorizerSimulator({ declinePans: [TEST_PAN_DECLINED] });
    const auth = (pan: string, requestId = newRequestId(), amountMinor = 1000) =>
      sim.authorize({ requestId, sealedCard: sealCard({ pan, expiry: '01/30' }, sim.sealingPublicKey, requestId), amountMinor, currency: 'EUR' });
    const id = newRequestId();
    const ok = await auth(TEST_PAN_APPROVED, id);
    expect(ok).toMatchObject({ approved: true });
    expect(await auth(TEST_PAN_APPROVED, id)).toEqual(ok);
    expect(sim.approvals).toEqual([{ requestId: id, last4: '4242', amountMinor: 1000, currency: 'EUR' }]);
    expect(await auth(TEST_PAN_DECLINED)).toEqual({ approved: false, reason: 'do_not_honor' });
    expect(await auth('4242424242424241')).toEqual({ approved: false, reason: 'invalid_number' });
    expect(await auth(TEST_PAN_APPROVED, newRequestId(), 10_000_000)).toEqual({ approved: false, reason: 'limit_exceeded' });
  });

  it('cannot open a card sealed to another key or for another request', async () => {
    const sim = new CardAuthorizerSimulator();
    const other = generateSealingKeyPair();
    const id = newRequestId();
    const wrongKey = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, other.publicKey, id);
    expect(await sim.authorize({ requestId: id, sealedCard: wrongKey, amountMinor: 1, currency: 'EUR' })).toEqual({ approved: false, reason: 'unreadable' });
    const moved = sealCard({ pan: TEST_PAN_APPROVED, expiry: '01/30' }, sim.sealingPublicKey, newRequestId());
    expect(await sim.authorize({ requestId: id, sealedCard: moved, amountMinor: 1, currency: 'EUR' })).toEqual({ approved: false, reason: 'unreadable' });
  });

  it('Luhn', () => {
    expect(luhnValid('79927398713')).toBe(false); // too short for a PAN
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
  });
});
