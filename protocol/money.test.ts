import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { addMoney, compareMoney, formatMoney, money, multiplyMoney, subtractMoney, sumMoney } from './money.ts';
import { TapsettleError } from './errors.ts';

describe('money', () => {
  it('accepts integer minor units and ISO 4217 codes only', () => {
    expect(money(125, 'EUR')).toEqual({ amountMinor: 125, currency: 'EUR' });
    for (const bad of [1.5, -1, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity]) {
      expect(() => money(bad, 'EUR')).toThrow(TapsettleError);
    }
    for (const bad of ['eur', 'EURO', '', '12A']) expect(() => money(1, bad)).toThrow(/currency/);
  });

  it('refuses to mix currencies', () => {
    expect(() => addMoney(money(1, 'EUR'), money(1, 'USD'))).toThrow(expect.objectContaining({ code: 'CURRENCY_MISMATCH' }));
    expect(() => compareMoney(money(1, 'EUR'), money(1, 'USD'))).toThrow(TapsettleError);
  });

  it('refuses overflow instead of losing precision', () => {
    const big = money(Number.MAX_SAFE_INTEGER, 'EUR');
    expect(() => addMoney(big, money(1, 'EUR'))).toThrow(expect.objectContaining({ code: 'AMOUNT_INVALID' }));
    expect(() => multiplyMoney(big, 2)).toThrow(expect.objectContaining({ code: 'AMOUNT_INVALID' }));
  });

  it('subtracts without going negative', () => {
    expect(subtractMoney(money(500, 'EUR'), money(200, 'EUR')).amountMinor).toBe(300);
    expect(() => subtractMoney(money(100, 'EUR'), money(200, 'EUR'))).toThrow(expect.objectContaining({ code: 'INSUFFICIENT_FUNDS' }));
  });

  it('adds exactly (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1_000_000_000 }), { maxLength: 50 }), (amounts) => {
        const total = sumMoney(amounts.map((a) => money(a, 'CHF')), 'CHF');
        expect(total.amountMinor).toBe(amounts.reduce((a, b) => a + b, 0));
      }),
    );
  });

  it('formats for display without floats', () => {
    expect(formatMoney(money(1205, 'EUR'))).toBe('12.05 EUR');
    expect(formatMoney(money(7, 'EUR'))).toBe('0.07 EUR');
    expect(formatMoney(money(500, 'JPY'), 0)).toBe('500 JPY');
  });
});
