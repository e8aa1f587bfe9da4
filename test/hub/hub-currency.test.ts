// A data folder keeps the currency its hub started with: a hub started again with another, or the
// operator CLI run without the hub's config, settles in the ledger's currency or refuses, never
// opening accounts in a second one (real hub, real SQLite files, the CLI as a child process).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../hub/ledger/engine.ts';
import { createHub, settlementCurrency } from '../../hub/service/hub.ts';
import { InputError } from '../../hub/service/input-error.ts';
import { SqliteLedgerStore } from '../../hub/ledger/sqlite-store.ts';
import { runCli, runCliHere } from './kit.ts';

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

  it('the CLI: --init --currency makes a new hub in that currency, --currency picks one of a mixed ledger, and nothing else names one for good', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-currency-'));
    const root = dir;
    const cli = (dataDir: string, ...args: string[]) => runCliHere(dataDir, args, root);
    const chf = join(root, 'chf');
    expect((await cli(chf, 'hub-keys', '--init', '--currency', 'CHF')).code).toBe(0);
    expect(await ledgerCurrencies(chf)).toEqual(['CHF']);
    expect((await cli(chf, 'hub-keys', '--currency', 'eur')).stderr).toContain('invalid currency: expected an ISO 4217 code');

    // A folder from before the hub held its currency, with no account yet: a CLI command leaves it so.
    const bare = join(root, 'bare');
    await (await createHub({ dataDir: bare, holdReleaseIntervalMs: 0 })).close();
    expect(await ledgerCurrencies(bare)).toEqual([]);
    expect((await cli(bare, 'hub-keys')).code).toBe(0);
    expect(await ledgerCurrencies(bare)).toEqual([]);

    // A folder an older CLI mixed (EUR accounts beside USD ones): refused until one is named.
    const mixed = join(root, 'mixed');
    await (await createHub({ dataDir: mixed, currency: 'USD', holdReleaseIntervalMs: 0 })).close();
    const store = SqliteLedgerStore.open(join(mixed, 'ledger.sqlite'));
    const engine = await Engine.open(store);
    await engine.openCurrency('EUR');
    await engine.close();
    const refused = await cli(mixed, 'blocklist', 'list');
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining("the ledger holds EUR and USD: name the hub's currency (its config's currency, the CLI's --currency)")]);
    expect((await cli(mixed, 'blocklist', 'list', '--currency', 'USD')).code).toBe(0);
  });
});
