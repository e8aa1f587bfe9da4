import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertCommand } from '../ledger/command.ts';
import type { Engine } from '../ledger/engine.ts';
import { manualClock, rid, tempLedger, walletId, type TempLedger } from '../ledger/test-helpers.ts';
import { Registry } from '../registry/registry.ts';
import { claimMemo, parseClaimMemo, restoreClaimsFromLedger, type WalletClaim } from './claim-memo.ts';

const hex = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789abcdef'), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

const claimArb: fc.Arbitrary<WalletClaim> = fc.record(
  {
    wallet: hex(64, 64),
    challenge: hex(32, 64),
    requestId: hex(32, 64),
    counter: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    entryRecord: hex(32, 64),
  },
  { requiredKeys: ['wallet', 'challenge', 'requestId'] },
);

describe('claim memo', () => {
  it('parses back every claim it writes, inside the ledger memo limit', () => {
    const purchase = { kind: 'purchase', requestId: 'a'.repeat(32), walletId: 'b'.repeat(64), merchantId: 'm1', amountMinor: 1, currency: 'EUR' } as const;
    fc.assert(
      fc.property(claimArb, (c) => {
        const memo = claimMemo(c);
        expect(() => assertCommand({ ...purchase, memo })).not.toThrow();
        expect(parseClaimMemo(memo)).toEqual(c);
      }),
    );
    const longest = claimMemo({ wallet: 'a'.repeat(64), challenge: 'b'.repeat(64), requestId: 'c'.repeat(64), counter: Number.MAX_SAFE_INTEGER, entryRecord: 'd'.repeat(64) });
    expect(() => assertCommand({ ...purchase, memo: longest })).not.toThrow();
    expect(() => assertCommand({ ...purchase, memo: `${longest}${'e'.repeat(321 - longest.length)}` })).toThrow(TypeError);
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

  /** The claim as the service makes it: in the registry first, with the ledger's next seq. */
  function claimed(c: WalletClaim): void {
    expect(registry.claimFreshness({ ...c, nowMs: clock.now(), ledgerSeq: engine.nextSeq })).toBe('fresh');
  }

  const fresh = (c: WalletClaim, requestId = rid()) => registry.claimFreshness({ challenge: c.challenge, wallet: c.wallet, requestId, nowMs: T });

  it('re-enters the claims of the rows logged from the ledger seq of the registry last claim on, whatever the clock did', async () => {
    const before = await logged(T);
    claimed({ wallet: walletId(1), challenge: rid(), requestId: rid() });
    await registry.flush();
    // Then the clock steps back an hour, and the registry loses what follows.
    const lost = await logged(T - 3_600_000, 9);
    const alsoLost = await logged(T - 3_600_001);
    expect(await restoreClaimsFromLedger(registry, engine.store)).toBe(2);
    expect(fresh(lost)).toBe('replay');
    expect(fresh(alsoLost)).toBe('replay');
    expect(fresh(lost, lost.requestId)).toBe('retry');
    expect(registry.claimFreshness({ challenge: rid(), wallet: walletId(1), requestId: rid(), counter: 9, nowMs: T })).toBe('replay');
    // Rows before it were claimed before it: the registry has those (here: never did; not read).
    expect(fresh(before)).toBe('fresh');
    // Done once: the next open starts after the last row.
    expect(registry.claimsLedgerSeq()).toBe(engine.nextSeq);
    expect(await restoreClaimsFromLedger(registry, engine.store)).toBe(0);
  });

  it('sets the registry seq back to the ledger next seq: a claim may have recorded seqs of rows the ledger lost', async () => {
    // A claim recorded seq 1000; the batch it saw handed to the writer never reached the file.
    expect(registry.claimFreshness({ challenge: rid(), wallet: walletId(1), requestId: rid(), nowMs: T, ledgerSeq: 1000 })).toBe('fresh');
    await registry.flush();
    expect(registry.claimsLedgerSeq()).toBe(1000);
    expect(await restoreClaimsFromLedger(registry, engine.store)).toBe(0);
    expect(registry.claimsLedgerSeq()).toBe(engine.nextSeq);
    // The ledger gives those seqs out again; claims on them the registry loses come back.
    const lost = [await logged(T + 1, 1), await logged(T + 2)];
    expect(await restoreClaimsFromLedger(registry, engine.store)).toBe(2);
    for (const c of lost) expect(fresh(c)).toBe('replay');
  });

  // 4 claims fill their last page of 2 exactly (one more, empty read ends it); 5 do not.
  it.each([4, 5])('reads the whole log page by page when the registry never recorded a claim (%i claims)', async (n) => {
    const claims = [];
    for (let i = 0; i < n; i++) {
      claims.push(await logged(T + i, i));
      // A row whose memo is no claim, between them.
      await engine.submit({ kind: 'purchase', requestId: rid(), walletId: walletId(2), merchantId: 'm1', amountMinor: 5, currency: 'EUR', memo: 'operator:7' });
    }
    expect(await restoreClaimsFromLedger(registry, engine.store, 2)).toBe(n);
    for (const c of claims) expect(fresh(c)).toBe('replay');
    expect(registry.claimsLedgerSeq()).toBe(engine.nextSeq);
  });
});
