// Operator input the hub checks against what it holds (real hub, SQLite): enrolling a terminal
// (everything the ledger would refuse about its merchant and a parent is refused first, naming the
// field, and a refused enrollment opens no account), ticket products against the fare table, and
// wallet registrations of one key at once.
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair, toHex } from '../../protocol/index.ts';
import { InputError } from '../../hub/service/input-error.ts';
import { FARES, openHubFixture, PRODUCTS, register, runCliHere, type HubFixture } from './kit.ts';

let fx: HubFixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

describe('enroll-terminal', () => {
  it('refuses a bad share, a self-parent, a sub-merchant as parent, a wallet as merchant and a changed split, writing nothing', async () => {
    const f = (fx = await openHubFixture());
    const ok = await f.hub.enrollTerminal({ terminalId: 'shop-a-pos', kind: 'pos', merchantId: 'shop-a', parentMerchantId: 'mall', shareBps: 1000 });
    expect(ok.openedMerchants).toEqual(['mall', 'shop-a']);
    const wallet = await register(f.hub);
    const cases: Array<[Parameters<typeof f.hub.enrollTerminal>[0], string, RegExp]> = [
      [{ terminalId: 't1', kind: 'pos', merchantId: 'shop-b', parentMerchantId: 'mall', shareBps: 10_001 }, 'shareBps', /0 to 10000/],
      [{ terminalId: 't2', kind: 'pos', merchantId: 'shop-b', parentMerchantId: 'mall', shareBps: 2.5 }, 'shareBps', /integer/],
      [{ terminalId: 't3', kind: 'pos', merchantId: 'shop-b', shareBps: 500 }, 'shareBps', /needs a parent/],
      [{ terminalId: 't4', kind: 'pos', merchantId: 'shop-b', parentMerchantId: 'shop-b' }, 'parentMerchantId', /own parent/],
      [{ terminalId: 't5', kind: 'pos', merchantId: 'shop-b', parentMerchantId: 'shop-a' }, 'parentMerchantId', /sub-merchant/],
      [{ terminalId: 't6', kind: 'pos', merchantId: wallet.id }, 'merchantId', /exists as a EUR wallet/],
      [{ terminalId: 't7', kind: 'pos', merchantId: 'shop-a', parentMerchantId: 'other-mall', shareBps: 100 }, 'parentMerchantId', /under another parent/],
      [{ terminalId: 't8', kind: 'pos', merchantId: 'mall', parentMerchantId: 'other-mall' }, 'parentMerchantId', /without a parent/],
    ];
    for (const [input, field, message] of cases) {
      const err = await f.hub.enrollTerminal(input).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect([input.terminalId, err instanceof InputError ? err.field : err]).toEqual([input.terminalId, field]);
      expect((err as Error).message).toMatch(message);
    }
    for (const id of ['shop-b', 'other-mall']) expect(await f.hub.engine.getAccount(id)).toBeNull();
    expect(f.hub.registry.terminal('t1')).toBeUndefined();
    // More tills for shop-a: its split repeated, its parent alone, or nothing about it.
    for (const [terminalId, split] of [
      ['shop-a-pos-2', { parentMerchantId: 'mall', shareBps: 1000 }],
      ['shop-a-pos-3', { parentMerchantId: 'mall' }],
      ['shop-a-pos-4', {}],
    ] as const) {
      expect((await f.hub.enrollTerminal({ terminalId, kind: 'pos', merchantId: 'shop-a', ...split })).openedMerchants).toEqual([]);
    }
    // A different share for it: refused, naming shareBps.
    await expect(f.hub.enrollTerminal({ terminalId: 'shop-a-pos-5', kind: 'pos', merchantId: 'shop-a', parentMerchantId: 'mall', shareBps: 500 })).rejects.toMatchObject({ field: 'shareBps' });
    expect((await f.hub.engine.getAccount('shop-a'))?.shareBps).toBe(1000);
  });

  it('the CLI: --share-bps only with --parent and at most 10000, exit 2 before the folder is opened', async () => {
    const run = (...args: string[]) => runCliHere('/nonexistent/hub', ['enroll-terminal', '--id', 'p1', '--kind', 'pos', '--merchant', 'shop', ...args]);
    expect(await run('--share-bps', '100')).toEqual({ code: 2, stdout: '', stderr: expect.stringContaining('invalid share-bps: only with --parent') });
    expect(await run('--parent', 'mall', '--share-bps', '10001')).toEqual({ code: 2, stdout: '', stderr: expect.stringContaining('invalid share-bps: at most 10000') });
  });
});

describe('import-products', () => {
  it('refuses a station the fare table in force does not know (no gate would take the ticket)', async () => {
    const f = (fx = await openHubFixture());
    const product = (stations: string[]) => ({ products: [{ ...PRODUCTS.products[0], stations }] });
    // Before any fare table there is nothing to check against.
    expect(f.hub.importProducts(product(['nowhere']))).toBe(1);
    f.hub.importFares(FARES);
    expect(() => f.hub.importProducts(product(['central', 'nowhere']))).toThrow(expect.objectContaining({ field: 'products.0.stations.1' }));
    expect(f.hub.importProducts(product(['central', 'harbor']))).toBe(2);
  });
});

describe('register-wallet', () => {
  it('two registrations of one key at once: one registers it, the other is refused as a second one in sequence is (InputError on publicKey)', async () => {
    const f = (fx = await openHubFixture());
    const publicKey = toHex(generateKeyPair().publicKey);
    const settled = await Promise.allSettled([f.hub.registerWallet({ publicKey }), f.hub.registerWallet({ publicKey })]);
    expect(settled.map((s) => s.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')?.reason as unknown;
    const sequential = await f.hub.registerWallet({ publicKey }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(sequential).toBeInstanceOf(InputError);
    expect(refused).toBeInstanceOf(InputError);
    expect(refused).toMatchObject({ code: 'INVALID_INPUT', field: 'publicKey', message: (sequential as Error).message });
    expect(f.hub.registry.wallet(publicKey)).toBeDefined();
  });
});
