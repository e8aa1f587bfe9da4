import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../ledger/engine.ts';
import { manualClock, rid, tempLedger, walletId, type TempLedger } from '../ledger/test-helpers.ts';
import { Registry } from '../registry/registry.ts';
import { CLAIM_RECOVERY_MARGIN_MS, claimMemo, parseClaimMemo, restoreClaimsFromLedger, type WalletClaim } from './claim-memo.ts';

const hex = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789abcdef'), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

const claimArb: fc.Arbitrary<WalletClaim> = fc.record(
  {
    wallet: hex(64, 64),
    challenge: hex(32, 64),
    requestId: hex(32, 64),
    counter: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  },
  { requiredKeys: ['wallet', 'challenge', 'requestId'] },
);

describe('claim memo', () => {
  it('parses back every claim it writes, inside the ledger memo limit of 256 chars', () => {
    fc.assert(
      fc.property(claimArb, (c) => {
        const memo = claimMemo(c);
        expect(memo.length).toBeLessThanOrEqual(256);
        expect(parseClaimMemo(memo)).toEqual(c);
      }),
    );
  });

  it('is null for any other memo', () => {
    const ok = claimMemo({ wallet: 'a'.repeat(64), challenge: 'b'.repeat(32), requestId: 'c'.repeat(32), counter: 3 });
    expect(parseClaimMemo(ok)).not.toBeNull();
    for (const memo of ['operator:7', 'cash', ok.toUpperCase(), ok.replace(' 3', ' 3.5'), `${ok} `, ok.replace('a'.repeat(64), 'a'.repeat(63)), `${ok.slice(0, -1)}99999999999999999`]) {
      expect(parseClaimMemo(memo)).toBeNull();
    }
  });
});

describe('restoreClaimsFromLedger', () => {
  let ledger: TempLedger;
  let registry: Registry;
  let engine: Engine;
  const clock = manualClock(1_800_000_000_000);
  const T = clock.now();

  beforeEach(async () => {
    ledger = tempLedger();
    registry = Registry.open(join(ledger.dir, 'registry.sqlite'));
    engine = await ledger.openEngine({ clock: clock.now });
  });

  afterEach(async () => {
    await engine.close();
    registry.close();
    ledger.cleanup();
  });

  /** A purchase carrying its claim, logged at `atMs` (declined: the wallet has no account; the claim is kept all the same). */
  async function logged(atMs: number, counter?: number): Promise<WalletClaim> {
    clock.set(atMs);
    const c: WalletClaim = { wallet: walletId(1), challenge: rid(), requestId: rid(), ...(counter !== undefined ? { counter } : {}) };
    const outcome = await engine.submit({ kind: 'purchase', requestId: c.requestId, walletId: c.wallet, merchantId: 'm1', amountMinor: 5, currency: 'EUR', memo: claimMemo(c) });
    expect(outcome.status).toBe('declined');
    return c;
  }

  const fresh = (c: WalletClaim, requestId = rid()) => registry.claimFreshness({ challenge: c.challenge, wallet: c.wallet, requestId, nowMs: T });

  it('re-enters the claims logged since the registry last claim minus the margin, and no older', async () => {
    const tooOld = await logged(T - CLAIM_RECOVERY_MARGIN_MS - 1);
    const inMargin = await logged(T - CLAIM_RECOVERY_MARGIN_MS + 1, 8);
    const kept = await logged(T);
    expect(fresh(kept, kept.requestId)).toBe('fresh');
    await registry.flush();
    const lost = await logged(T + 5, 9);
    expect(await restoreClaimsFromLedger(registry, engine.store, 0)).toBe(2);
    expect(fresh(lost)).toBe('replay');
    expect(fresh(inMargin)).toBe('replay');
    expect(fresh(tooOld)).toBe('fresh');
    expect(registry.claimFreshness({ challenge: rid(), wallet: walletId(1), requestId: rid(), counter: 9, nowMs: T })).toBe('replay');
  });

  it('with no claim kept, scans back to the oldest time it is given', async () => {
    const older = await logged(T - 20_000);
    const old = await logged(T - 10_000);
    expect(await restoreClaimsFromLedger(registry, engine.store, T - 15_000)).toBe(1);
    expect(fresh(old)).toBe('replay');
    expect(fresh(older)).toBe('fresh');
  });
});
