// The content hash of commands with a cancellation window (seed 004 claim 13): what older ledgers
// logged must hash exactly as before, so a retry of a request they logged still matches.
import { describe, expect, it } from 'vitest';
import { canonicalCommand, commandHash } from './command.ts';
import type { OfflinePurchaseCommand, PurchaseCommand } from './types.ts';

const ID = 'a'.repeat(32);
const WALLET = 'b'.repeat(64);

describe('canonicalCommand of a purchase', () => {
  const base: PurchaseCommand = { kind: 'purchase', requestId: ID, walletId: WALLET, merchantId: 'snacks', amountMinor: 5000, currency: 'EUR', memo: 'm' };

  it('without a hold, and with an absolute hold, is what it always was', () => {
    expect(canonicalCommand(base)).toBe(JSON.stringify([1, 'purchase', ID, WALLET, 'snacks', 5000, 'EUR', 0, null, 'm']));
    expect(canonicalCommand({ ...base, feeMinor: 3, holdUntilMs: 1_800_000_000_000 })).toBe(JSON.stringify([1, 'purchase', ID, WALLET, 'snacks', 5000, 'EUR', 3, 1_800_000_000_000, 'm']));
    // Pinned (computed by the code before holdMs): a change here would make a retry of every
    // purchase an older hub logged a mismatch.
    expect(commandHash(base)).toBe('816c5790bdd031e19a1fe38474b61d26a3b72e01588d594e246fc8cf65c9b66c');
    expect(commandHash({ ...base, feeMinor: 3, holdUntilMs: 1_800_000_000_000 })).toBe('03b07558ab52600362a8cf58fcbcfb2a872dee2b6ff0180a9c88654b8a1e6c32');
  });

  it('with a length: the length is part of the content, distinct from no hold and from an end of the same number', () => {
    const held = canonicalCommand({ ...base, holdMs: 300_000 });
    expect(held).toBe(JSON.stringify([1, 'purchase', ID, WALLET, 'snacks', 5000, 'EUR', 0, null, 'm', 'holdMs', 300_000]));
    expect(held).not.toBe(canonicalCommand({ ...base, holdMs: 300_001 }));
    expect(held).not.toBe(canonicalCommand(base));
    expect(held).not.toBe(canonicalCommand({ ...base, holdUntilMs: 300_000 }));
  });
});

describe('canonicalCommand of an offline purchase', () => {
  const base: OfflinePurchaseCommand = { kind: 'offline_purchase', requestId: ID, walletId: WALLET, merchantId: 'snacks', amountMinor: 5000, currency: 'EUR', memo: 'm' };

  it('without a hold and with an absolute one, as before; a length is tagged apart from an end', () => {
    expect(canonicalCommand(base)).toBe(JSON.stringify([1, 'offline_purchase', ID, WALLET, 'snacks', 5000, 'EUR', 0, 'm']));
    expect(canonicalCommand({ ...base, holdUntilMs: 7 })).toBe(JSON.stringify([1, 'offline_purchase', ID, WALLET, 'snacks', 5000, 'EUR', 0, 'm', 7]));
    expect(canonicalCommand({ ...base, holdMs: 7 })).toBe(JSON.stringify([1, 'offline_purchase', ID, WALLET, 'snacks', 5000, 'EUR', 0, 'm', 'holdMs', 7]));
    expect(commandHash(base)).toBe('b39364113d5e14cbf5da13db78bbf1f8de77d0e2d0e7ff0558cffd86ce2c5bab');
    expect(commandHash({ ...base, holdUntilMs: 7 })).toBe('4ae6122a59aab91be0bf296845d502790b839ae447f877e0da99e43343c26afd');
  });
});
