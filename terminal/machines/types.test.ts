import { describe, expect, it } from 'vitest';
import { minorDigits, price } from './types.ts';

describe('price: one money formatter for the display and every slip line', () => {
  it('uses the currency\'s ISO 4217 decimal places (JPY 0, EUR 2, KWD and BHD 3)', () => {
    expect([minorDigits('JPY'), minorDigits('EUR'), minorDigits('KWD'), minorDigits('BHD')]).toEqual([0, 2, 3, 3]);
    expect(price(490, 'EUR')).toBe('4.90 EUR');
    expect(price(7, 'EUR')).toBe('0.07 EUR');
    expect(price(2000, 'EUR')).toBe('20.00 EUR');
    expect(price(500, 'JPY')).toBe('500 JPY');
    expect(price(1250, 'KWD')).toBe('1.250 KWD');
    expect(price(5, 'BHD')).toBe('0.005 BHD');
    expect(price(0, 'EUR')).toBe('0.00 EUR');
    expect(price(-120, 'EUR')).toBe('-1.20 EUR');
  });

  it('formats with integer arithmetic, exact up to the largest safe integer', () => {
    expect(price(Number.MAX_SAFE_INTEGER, 'EUR')).toBe('90071992547409.91 EUR');
    expect(price(Number.MAX_SAFE_INTEGER, 'KWD')).toBe('9007199254740.991 KWD');
    expect(() => price(1.5, 'EUR')).toThrow(/amountMinor/);
  });
});
