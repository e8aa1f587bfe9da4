import { describe, expect, it } from 'vitest';
import { blocklistAfterSettlement, decideOffline } from './offline-policy.ts';

const limits = { offlineLimitMinor: 1000, maxSingleMinor: 500 };

describe('offline spending policy (seed 002)', () => {
  it('allows within the single cap, the wallet limit and the signed balance', () => {
    expect(decideOffline(limits, { amountMinor: 400, statementBalanceMinor: 1000, unsettledOfflineMinor: 500, blocklisted: false })).toEqual({ ok: true });
    expect(decideOffline(limits, { amountMinor: 400, statementBalanceMinor: undefined, unsettledOfflineMinor: 0, blocklisted: false })).toEqual({ ok: true });
  });

  it('refuses blocklisted wallets, oversize payments, an exhausted limit and a short balance', () => {
    const base = { amountMinor: 100, statementBalanceMinor: 1000, unsettledOfflineMinor: 0, blocklisted: false };
    expect(decideOffline(limits, { ...base, blocklisted: true })).toEqual({ ok: false, code: 'BLOCKLISTED' });
    expect(decideOffline(limits, { ...base, amountMinor: 501 })).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    expect(decideOffline(limits, { ...base, unsettledOfflineMinor: 950 })).toEqual({ ok: false, code: 'OFFLINE_LIMIT' });
    expect(decideOffline(limits, { ...base, statementBalanceMinor: 50 })).toEqual({ ok: false, code: 'INSUFFICIENT_FUNDS' });
  });

  it('blocklists after an overspent settlement only', () => {
    expect(blocklistAfterSettlement({ status: 'approved', overspent: true })).toBe(true);
    expect(blocklistAfterSettlement({ status: 'approved' })).toBe(false);
    expect(blocklistAfterSettlement({ status: 'declined' })).toBe(false);
  });
});
