// Property: random sequences of purchases, duplicate deliveries, cancellations, failed-dispense
// receipts and top-ups through the service keep every wallet's balance equal to a simple model,
// answer every duplicate with the original bytes, settle each request at most once, and leave
// verify-ledger clean.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNACKS, cancellation, cashTopup, enroll, openHubFixture, purchase, readResult, receipt, register, signRequest, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

type Action =
  | { t: 'buy'; wallet: number; sku: 'cola' | 'chips' | 'jacket'; qty: number; vending: boolean }
  | { t: 'dup'; pick: number }
  | { t: 'cancel'; pick: number }
  | { t: 'fail'; pick: number }
  | { t: 'topup'; wallet: number; amountMinor: number }
  | { t: 'wait'; ms: number };

const PRICE = { cola: 250, chips: 180, jacket: 5000 } as const;

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('buy' as const), wallet: fc.nat(2), sku: fc.constantFrom('cola' as const, 'chips' as const, 'jacket' as const), qty: fc.integer({ min: 1, max: 3 }), vending: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('dup' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('fail' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('topup' as const), wallet: fc.nat(2), amountMinor: fc.integer({ min: 1, max: 20_000 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.constantFrom(60_000, 20 * 60_000) }) },
);

let fx: HubFixture;
let pos: TestTerminal;
let vend: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-p', 'pos', 'snacks');
  vend = await enroll(fx.hub, 'vend-p', 'vending', 'snacks');
  fx.hub.importCatalog(SNACKS);
});

afterAll(async () => {
  await fx.cleanup();
});

describe('settlement service properties', () => {
  it('balances follow the model; duplicates are byte-identical; the ledger verifies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 25 }), async (actions) => {
        const wallets: TestWallet[] = [];
        const model: number[] = [];
        for (let i = 0; i < 3; i++) {
          wallets.push(await register(fx.hub));
          model.push(0);
          const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, wallets[i] as TestWallet, 6000, fx.now).bytes));
          if (r.status === 'approved') model[i] = (model[i] as number) + 6000;
        }
        const sent: Array<{ requestId: string; bytes: Uint8Array; answer: Uint8Array; wallet: number; amount: number; approved: boolean; terminal: TestTerminal; refunded: boolean }> = [];
        for (const a of actions) {
          if (a.t === 'buy') {
            const term = a.vending ? vend : pos;
            const req = purchase(term, wallets[a.wallet] as TestWallet, [{ sku: a.sku, qty: a.qty, unitMinor: PRICE[a.sku] }], fx.now);
            const answer = await fx.hub.handleRequest(term.id, req.bytes);
            const r = readResult(fx.hub, answer);
            const amount = PRICE[a.sku] * a.qty;
            if (r.status === 'approved') model[a.wallet] = (model[a.wallet] as number) - amount;
            else expect(r.code).toBe('INSUFFICIENT_FUNDS');
            sent.push({ requestId: req.requestId, bytes: req.bytes, answer, wallet: a.wallet, amount, approved: r.status === 'approved', terminal: term, refunded: false });
          } else if (a.t === 'dup' && sent.length > 0) {
            const s = sent[a.pick % sent.length]!;
            const again = await fx.hub.handleRequest(s.terminal.id, s.bytes);
            expect(Buffer.from(again).equals(Buffer.from(s.answer))).toBe(true);
          } else if (a.t === 'cancel' && sent.length > 0) {
            const s = sent[a.pick % sent.length]!;
            const w = wallets[s.wallet] as TestWallet;
            const c = signRequest(pos, { type: 'cancel', cancellation: cancellation(w, s.requestId, fx.now) }, fx.now);
            const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, c.bytes));
            if (r.status === 'approved') {
              expect(s.approved && !s.refunded).toBe(true);
              s.refunded = true;
              model[s.wallet] = (model[s.wallet] as number) + s.amount;
            }
          } else if (a.t === 'fail' && sent.length > 0) {
            const s = sent[a.pick % sent.length]!;
            const out = await fx.hub.handleReceipt(s.terminal.id, receipt(s.terminal, s.requestId, 'failed', fx.now));
            if (out.status === 'refunded') {
              // A vending machine's failed dispense, or a POS's timeout reversal: either refunds once.
              expect(s.approved && !s.refunded).toBe(true);
              s.refunded = true;
              model[s.wallet] = (model[s.wallet] as number) + s.amount;
            }
          } else if (a.t === 'topup') {
            const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, cashTopup(pos, wallets[a.wallet] as TestWallet, a.amountMinor, fx.now).bytes));
            if (r.status === 'approved') model[a.wallet] = (model[a.wallet] as number) + a.amountMinor;
          } else if (a.t === 'wait') {
            fx.advance(a.ms);
            await fx.hub.releaseDueHolds();
          }
        }
        for (let i = 0; i < wallets.length; i++) {
          expect((await fx.hub.showAccount((wallets[i] as TestWallet).id))?.account.balanceMinor).toBe(model[i]);
        }
      }),
      { numRuns: 30 },
    );
    const report = await fx.hub.verifyLedger();
    expect(report.firstDiscrepancy).toBeNull();
  });
});
