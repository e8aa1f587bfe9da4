// A data folder keeps the currency its hub started with: a hub started again with another, or the
// operator CLI run without the hub's config, settles in the ledger's currency or refuses, never
// opening accounts in a second one (real hub, real SQLite files, the CLI as a child process).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHub, settlementCurrency } from '../../hub/service/hub.ts';
import { InputError } from '../../hub/service/input-error.ts';
import { SqliteLedgerStore } from '../../hub/ledger/sqlite-store.ts';
import { runCli } from './kit.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function ledgerCurrencies(dataDir: string): Promise<string[]> {
  const store = SqliteLedgerStore.open(join(dataDir, 'ledger.sqlite'), { readonly: true });
  try {
    return await store.currencies();
  } finally {
    await store.close();
  }
}

describe("the hub's currency", () => {
  it('is the ledger’s: a configured one must match it, a missing one is taken from it', () => {
    expect(settlementCurrency(undefined, [])).toBe('EUR');
    expect(settlementCurrency('USD', [])).toBe('USD');
    expect(settlementCurrency(undefined, ['USD'])).toBe('USD');
    expect(settlementCurrency('USD', ['USD'])).toBe('USD');
    expect(() => settlementCurrency('EUR', ['USD'])).toThrow(/settles in USD, not EUR/);
    expect(() => settlementCurrency(undefined, ['EUR', 'USD'])).toThrow(InputError);
    expect(settlementCurrency('USD', ['EUR', 'USD'])).toBe('USD');
  });

  it('a USD hub: held from its first start, refused under another, and used by the CLI without a config', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-currency-'));
    const dataDir = join(dir, 'hub');
    const hub = await createHub({ dataDir, currency: 'USD', holdReleaseIntervalMs: 0 });
    expect(hub.currency).toBe('USD');
    await hub.close();
    // Nothing registered yet, and still a USD folder.
    expect(await ledgerCurrencies(dataDir)).toEqual(['USD']);
    await expect(createHub({ dataDir, currency: 'EUR', holdReleaseIntervalMs: 0 })).rejects.toThrow(/currency: this data folder settles in USD, not EUR/);
    // The refusal released the folder and wrote no EUR account.
    expect(await ledgerCurrencies(dataDir)).toEqual(['USD']);
    // The CLI knows no config: it settles in the folder's currency.
    const reg = await runCli(dataDir, ['register-wallet']);
    expect(reg.code).toBe(0);
    expect((JSON.parse(reg.stdout) as { license: { body: { currency: string } } }).license.body.currency).toBe('USD');
    const wallet = (JSON.parse(reg.stdout) as { wallet: string }).wallet;
    const top = await runCli(dataDir, ['top-up', '--wallet', wallet, '--amount', '500', '--operator', 'op']);
    expect([top.code, JSON.parse(top.stdout)]).toMatchObject([0, { status: 'approved', currency: 'USD' }]);
    expect(await ledgerCurrencies(dataDir)).toEqual(['USD']);
  });
});
