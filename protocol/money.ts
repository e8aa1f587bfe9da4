import { TapsettleError } from './errors.ts';

/** Money is an integer count of minor units with an ISO 4217 currency code. Never a float. */
export interface Money {
  readonly amountMinor: number;
  readonly currency: string;
}

const CURRENCY_RE = /^[A-Z]{3}$/;

export function isCurrency(code: unknown): code is string {
  return typeof code === 'string' && CURRENCY_RE.test(code);
}

export function isAmountMinor(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Builds a Money value; refuses floats, negatives, unsafe integers and bad currency codes. */
export function money(amountMinor: number, currency: string): Money {
  if (!isAmountMinor(amountMinor)) throw new TapsettleError('AMOUNT_INVALID', `amountMinor=${amountMinor}`);
  if (!isCurrency(currency)) throw new TapsettleError('CURRENCY_MISMATCH', `currency=${String(currency)}`);
  return Object.freeze({ amountMinor, currency });
}

function sameCurrency(a: Money, b: Money): void {
  if (a.currency !== b.currency) throw new TapsettleError('CURRENCY_MISMATCH', `${a.currency} vs ${b.currency}`);
}

export function addMoney(a: Money, b: Money): Money {
  sameCurrency(a, b);
  const sum = a.amountMinor + b.amountMinor;
  if (!Number.isSafeInteger(sum)) throw new TapsettleError('AMOUNT_INVALID', 'sum overflows the safe integer range');
  return money(sum, a.currency);
}

/** a − b; refuses to go below zero (a negative balance is a ledger decision, not arithmetic). */
export function subtractMoney(a: Money, b: Money): Money {
  sameCurrency(a, b);
  if (b.amountMinor > a.amountMinor) throw new TapsettleError('INSUFFICIENT_FUNDS', `${a.amountMinor} - ${b.amountMinor}`);
  return money(a.amountMinor - b.amountMinor, a.currency);
}

export function multiplyMoney(a: Money, factor: number): Money {
  if (!Number.isSafeInteger(factor) || factor < 0) throw new TapsettleError('AMOUNT_INVALID', `factor=${factor}`);
  const product = a.amountMinor * factor;
  if (!Number.isSafeInteger(product)) throw new TapsettleError('AMOUNT_INVALID', 'product overflows the safe integer range');
  return money(product, a.currency);
}

export function sumMoney(items: readonly Money[], currency: string): Money {
  return items.reduce((acc, m) => addMoney(acc, m), money(0, currency));
}

export function compareMoney(a: Money, b: Money): -1 | 0 | 1 {
  sameCurrency(a, b);
  return a.amountMinor < b.amountMinor ? -1 : a.amountMinor > b.amountMinor ? 1 : 0;
}

/** Display only (receipts, dashboard): 2 decimals for most ISO 4217 currencies. */
export function formatMoney(m: Money, exponent = 2): string {
  const sign = m.amountMinor < 0 ? '-' : '';
  const abs = Math.abs(m.amountMinor);
  if (exponent === 0) return `${sign}${abs} ${m.currency}`;
  const unit = 10 ** exponent;
  return `${sign}${Math.floor(abs / unit)}.${String(abs % unit).padStart(exponent, '0')} ${m.currency}`;
}
