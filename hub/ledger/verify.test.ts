import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { rid, tempLedger, walletId, type TempLedger } from './test-helpers.ts';
import { verifyLedger } from './verify.ts';

const CLI = fileURLToPath(new URL('./verify-cli.ts', import.meta.url));
let ledger: TempLedger | undefined;

afterEach(() => {
  ledger?.cleanup();
  ledger = undefined;
});

async function seeded(): Promise<TempLedger> {
  ledger = tempLedger();
  const e = await ledger.openEngine();
  await e.openWallet(walletId(1), 'EUR');
  await e.openMerchant('shop', { currency: 'EUR' });
  await e.submit({ kind: 'topup', requestId: rid(), walletId: walletId(1), amountMinor: 1000, currency: 'EUR', source: 'card' });
  await e.submit({ kind: 'purchase', requestId: rid(), walletId: walletId(1), merchantId: 'shop', amountMinor: 400, currency: 'EUR' });
  await e.submit({ kind: 'purchase', requestId: rid(), walletId: walletId(1), merchantId: 'shop', amountMinor: 100, currency: 'EUR', holdUntilMs: Date.now() + 3_600_000 });
  await e.close();
  return ledger;
}

function runCli(file: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, file], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('verifyLedger', () => {
  it('passes a consistent ledger and reports the conservation figures', async () => {
    const l = await seeded();
    const s = l.openStore();
    const r = await verifyLedger(s);
    await s.close();
    expect(r.ok).toBe(true);
    expect(r.currencies).toEqual([{ currency: 'EUR', issuedMinor: 1000, redeemedMinor: 0, walletsMinor: 500, merchantsMinor: 400, inTransitMinor: 0, holdsMinor: 100, feesMinor: 0 }]);
  });

  it('names a stored balance that the journal does not back', async () => {
    const l = await seeded();
    const s = l.openStore();
    s.db.prepare("UPDATE accounts SET balance_minor = balance_minor + 1 WHERE num = (SELECT num FROM account_ids WHERE id = 'shop')").run();
    const r = await verifyLedger(s);
    await s.close();
    expect(r.ok).toBe(false);
    expect(r.firstDiscrepancy).toEqual({ kind: 'balance_mismatch', accountId: 'shop', storedMinor: 401, journalMinor: 400 });
  });

  it('names an entry whose postings do not sum to zero, and broken conservation', async () => {
    const l = await seeded();
    const s = l.openStore();
    s.db.prepare("UPDATE postings SET amount_minor = amount_minor + 7 WHERE account_num = (SELECT num FROM account_ids WHERE id = 'shop')").run();
    s.db.prepare("UPDATE accounts SET balance_minor = balance_minor + 7 WHERE num = (SELECT num FROM account_ids WHERE id = 'shop')").run();
    const r = await verifyLedger(s);
    await s.close();
    expect(r.firstDiscrepancy).toMatchObject({ kind: 'entry_unbalanced', sumMinor: 7 });
    expect(r.discrepancies).toContainEqual({ kind: 'not_conserved', currency: 'EUR', issuedMinusRedeemedMinor: 1000, heldMinor: 1007 });
  });

  it('catches holds that disagree with the holds account', async () => {
    const l = await seeded();
    const s = l.openStore();
    s.db.prepare('DELETE FROM holds').run();
    const r = await verifyLedger(s);
    await s.close();
    expect(r.firstDiscrepancy).toEqual({ kind: 'holds_mismatch', currency: 'EUR', accountMinor: 100, holdsMinor: 0 });
  });

  it('CLI exits 0 on a consistent file and 1 naming the first discrepancy otherwise', async () => {
    const l = await seeded();
    const good = runCli(l.file);
    expect(good.status).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, firstDiscrepancy: null });
    const s = l.openStore();
    s.db.prepare("UPDATE accounts SET balance_minor = 5 WHERE num = (SELECT num FROM account_ids WHERE id = 'shop')").run();
    await s.close();
    const bad = runCli(l.file);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/FIRST DISCREPANCY .*balance_mismatch.*shop/);
    expect(runCli(`${l.dir}/missing.db`).status).toBe(2);
  });
});
