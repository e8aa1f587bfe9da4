import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TapsettleError } from '../../protocol/index.ts';
import type { LogState } from '../ledger/types.ts';
import { engineRequestId } from '../service/engine-ids.ts';
import { parseAcquirerReport, type AcquirerChargeT } from './acquirer-report.ts';
import { reconcileCardTopups, type LedgerCardCredit } from './card-reconciliation.ts';

const W1 = 'a1'.repeat(32);
const W2 = 'b2'.repeat(32);
const id = (n: number) => n.toString(16).padStart(32, '0');
const PERIOD = { fromMs: 1000, toMs: 2000 };

function credit(n: number, over: Partial<LedgerCardCredit> = {}): LedgerCardCredit {
  return { seq: n, ledgerRequestId: engineRequestId(id(n)), wallet: W1, amountMinor: 100 * n, currency: 'EUR', state: 'done', atMs: 1500, ...over };
}

function charge(n: number, over: Partial<AcquirerChargeT> = {}): AcquirerChargeT {
  return { requestId: id(n), amountMinor: 100 * n, currency: 'EUR', wallet: W1, ...over };
}

function reconcile(charges: AcquirerChargeT[], credits: LedgerCardCredit[], elsewhere: LedgerCardCredit[] = []) {
  return reconcileCardTopups({
    ...PERIOD,
    charges,
    creditsInPeriod: credits,
    creditsOfCharges: new Map([...credits, ...elsewhere].map((c) => [c.ledgerRequestId, c])),
  });
}

describe('card top-up reconciliation', () => {
  it('all charges credited: ok, counted and totalled per currency', () => {
    const r = reconcile([charge(1), charge(2), charge(3, { currency: 'CHF' })], [credit(1), credit(2), credit(3, { currency: 'CHF' })]);
    expect(r).toMatchObject({ ok: true, matched: { count: 3, totalsMinor: { EUR: 300, CHF: 300 } }, chargedNotCredited: [], creditedNotCharged: [], mismatched: [], duplicateCharges: [] });
  });

  it('a charge credited outside the period (just after its end) still matches, by request id', () => {
    const late = credit(4, { atMs: 2001 });
    expect(reconcile([charge(1), charge(4)], [credit(1)], [late])).toMatchObject({ ok: true, matched: { count: 2 } });
  });

  it('charged but not credited: no ledger row, or the ledger declined it', () => {
    const declined = credit(2, { state: 'declined' });
    const r = reconcile([charge(1), charge(2), charge(9)], [credit(1), declined]);
    expect(r.ok).toBe(false);
    expect(r.chargedNotCredited).toEqual([
      { charge: charge(2), ledger: declined },
      { charge: charge(9), ledger: null },
    ]);
    // The declined row is no credit without a charge either.
    expect(r.creditedNotCharged).toEqual([]);
  });

  it('credited but not charged: a credit of the period the report does not have; in-flight rows count as credits', () => {
    const inFlight = credit(3, { state: 'withdrawn' });
    const r = reconcile([charge(1)], [credit(1), credit(2), inFlight, credit(4, { state: 'declined' })]);
    expect(r.ok).toBe(false);
    expect(r.creditedNotCharged).toEqual([credit(2), inFlight]);
  });

  it('mismatched: amount, currency or wallet differ; a report without wallets compares amounts only', () => {
    const r = reconcile([charge(1, { amountMinor: 101 }), charge(2, { currency: 'USD', wallet: W2 }), charge(3, { wallet: undefined })], [credit(1), credit(2), credit(3)]);
    expect(r.mismatched.map((m) => [m.charge.requestId, m.fields])).toEqual([
      [id(1), ['amountMinor']],
      [id(2), ['currency', 'wallet']],
    ]);
    expect(r.matched.count).toBe(1);
    // Compared, so neither side counts as missing.
    expect([r.chargedNotCredited, r.creditedNotCharged]).toEqual([[], []]);
  });

  it('a request id listed twice is a duplicate charge, whatever its amount', () => {
    const r = reconcile([charge(1), charge(1), charge(1, { amountMinor: 5 })], [credit(1)]);
    expect(r).toMatchObject({ ok: false, matched: { count: 1, totalsMinor: { EUR: 100 } } });
    expect(r.duplicateCharges).toEqual([charge(1), charge(1, { amountMinor: 5 })]);
  });

  it('wire request ids longer than 16 bytes meet their ledger ids', () => {
    const long = 'c3'.repeat(32);
    const c = { ...credit(1), ledgerRequestId: engineRequestId(long) };
    expect(engineRequestId(long)).not.toBe(long);
    expect(reconcile([{ ...charge(1), requestId: long }], [c]).ok).toBe(true);
  });

  it('refuses a total beyond the safe integer range instead of rounding it', () => {
    const big = Number.MAX_SAFE_INTEGER - 10;
    expect(() => reconcile([charge(1, { amountMinor: big }), charge(2, { amountMinor: big })], [credit(1, { amountMinor: big }), credit(2, { amountMinor: big })])).toThrow(TapsettleError);
  });

  it('every charge and every credit of the period lands in exactly one place', () => {
    const states: LogState[] = ['logged', 'withdrawn', 'done', 'declined'];
    const arb = fc.record({
      charges: fc.array(fc.record({ n: fc.integer({ min: 1, max: 30 }), amount: fc.integer({ min: 1, max: 5 }) }), { maxLength: 30 }),
      credits: fc.uniqueArray(fc.record({ n: fc.integer({ min: 1, max: 30 }), amount: fc.integer({ min: 1, max: 5 }), state: fc.constantFrom(...states) }), { selector: (c) => c.n, maxLength: 30 }),
    });
    fc.assert(
      fc.property(arb, ({ charges, credits }) => {
        const cs = charges.map((c) => charge(c.n, { amountMinor: c.amount }));
        const ls = credits.map((c) => credit(c.n, { amountMinor: c.amount, state: c.state }));
        const r = reconcile(cs, ls);
        expect(r.matched.count + r.chargedNotCredited.length + r.mismatched.length + r.duplicateCharges.length).toBe(cs.length);
        const reportedIds = new Set(cs.map((c) => engineRequestId(c.requestId)));
        const unreported = ls.filter((l) => l.state !== 'declined' && !reportedIds.has(l.ledgerRequestId));
        expect(r.creditedNotCharged).toEqual(unreported);
        expect(r.ok).toBe(r.matched.count === cs.length && unreported.length === 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('acquirer report file', () => {
  it('names the first bad field', () => {
    const good = { requestId: id(1), amountMinor: 100, currency: 'EUR' };
    expect(parseAcquirerReport({ charges: [good] })).toEqual({ ok: true, value: { charges: [good] } });
    for (const [raw, field] of [
      [{ charges: [good, { ...good, amountMinor: 1.5 }] }, 'charges.1.amountMinor'],
      [{ charges: [{ ...good, amountMinor: 0 }] }, 'charges.0.amountMinor'],
      [{ charges: [{ ...good, amountMinor: '100' }] }, 'charges.0.amountMinor'],
      [{ charges: [{ ...good, currency: 'eur' }] }, 'charges.0.currency'],
      [{ charges: [{ ...good, requestId: 'x' }] }, 'charges.0.requestId'],
      [{ charges: [{ ...good, wallet: 'W1' }] }, 'charges.0.wallet'],
      [{ charges: [{ ...good, pan: '4242424242424242' }] }, 'charges.0'],
      [{ charges: {} }, 'charges'],
      [[], '(root)'],
    ] as const) {
      expect(parseAcquirerReport(raw)).toMatchObject({ ok: false, field });
    }
  });
});
