import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../ledger/engine.ts';
import { rid, tempLedger, walletId, type TempLedger } from '../ledger/test-helpers.ts';
import { Registry } from '../registry/registry.ts';
import { restoreOverspendBlocklist } from './overspend-blocklist.ts';

describe('restoreOverspendBlocklist', () => {
  let ledger: TempLedger;
  let registry: Registry;
  let engine: Engine;

  beforeEach(async () => {
    ledger = tempLedger();
    registry = Registry.open(join(ledger.dir, 'registry.sqlite'));
    engine = await ledger.openEngine();
    await engine.openMerchant('shop', { currency: 'EUR' });
  });

  afterEach(async () => {
    await engine.close();
    registry.close();
    ledger.cleanup();
  });

  /** An offline sale of 150 on a wallet holding 100, and an ordinary sale beside it. */
  async function overdraw(n: number): Promise<{ wallet: string; seq: number }> {
    const wallet = walletId(n);
    await engine.openWallet(wallet, 'EUR');
    await engine.submit({ kind: 'topup', requestId: rid(), walletId: wallet, amountMinor: 100, currency: 'EUR', source: 'cash' });
    const outcome = await engine.submit({ kind: 'offline_purchase', requestId: rid(), walletId: wallet, merchantId: 'shop', amountMinor: 150, currency: 'EUR' });
    expect(outcome).toMatchObject({ status: 'approved', overspent: true });
    return { wallet, seq: outcome.seq };
  }

  // 4 overdrafts fill their last page of 2 exactly (one more, empty read ends it); 5 do not.
  it.each([4, 5])('blocklists every overdrawn wallet the registry lacks, page by page (%i overdrafts)', async (n) => {
    const overdrafts = [];
    for (let i = 1; i <= n; i++) overdrafts.push(await overdraw(i));
    const wallets = overdrafts.map((o) => o.wallet);
    registry.blocklistOverspent(wallets[0]!, overdrafts[0]!.seq, 1); // handled at run time, then lifted by an operator
    registry.blocklistRemove(wallets[0]!, 2);
    expect(await restoreOverspendBlocklist(registry, engine.store, 3, 2)).toEqual(wallets.slice(1));
    expect(registry.isBlocklisted(wallets[0]!)).toBe(false);
    expect(registry.overspendLedgerSeq()).toBe(engine.nextSeq);
    expect(await restoreOverspendBlocklist(registry, engine.store, 4, 2)).toEqual([]);
  });
});
