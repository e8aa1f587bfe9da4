import { describe, expect, it } from 'vitest';
import { checkPrices, holdUntilMs, parseCatalogFile, type CatalogVersion } from './catalog.ts';

const catalog: CatalogVersion = {
  merchantId: 'snacks',
  version: 3,
  timeMs: 0,
  articles: [
    { sku: 'cola', name: 'Cola', priceMinor: 250, currency: 'EUR' },
    { sku: 'jacket', name: 'Jacket', priceMinor: 5000, currency: 'EUR', cancelWindowMs: 900_000 },
    { sku: 'hat', name: 'Hat', priceMinor: 1000, currency: 'EUR', cancelWindowMs: 60_000 },
    { sku: 'dollar', name: 'Dollar thing', priceMinor: 100, currency: 'USD' },
  ],
};

describe('catalog', () => {
  it('accepts lines at catalog prices whose total is the authorized amount', () => {
    const r = checkPrices(catalog, [{ sku: 'cola', qty: 2, unitMinor: 250 }, { sku: 'hat', qty: 1, unitMinor: 1000 }], 1500, 'EUR');
    expect(r).toMatchObject({ ok: true, totalMinor: 1500 });
  });

  it('names the reason for each decline', () => {
    expect(checkPrices(catalog, [{ sku: 'cola', qty: 1, unitMinor: 249 }], 249, 'EUR')).toEqual({ ok: false, code: 'AMOUNT_MISMATCH', sku: 'cola' });
    expect(checkPrices(catalog, [{ sku: 'cola', qty: 1, unitMinor: 250 }], 300, 'EUR')).toEqual({ ok: false, code: 'AMOUNT_MISMATCH' });
    expect(checkPrices(catalog, [{ sku: 'gold', qty: 1, unitMinor: 1 }], 1, 'EUR')).toEqual({ ok: false, code: 'UNKNOWN_ARTICLE', sku: 'gold' });
    expect(checkPrices(undefined, [{ sku: 'cola', qty: 1, unitMinor: 250 }], 250, 'EUR')).toMatchObject({ code: 'UNKNOWN_ARTICLE' });
    expect(checkPrices(catalog, [{ sku: 'dollar', qty: 1, unitMinor: 100 }], 100, 'EUR')).toMatchObject({ code: 'CURRENCY_MISMATCH' });
    expect(checkPrices(catalog, [], 0, 'EUR')).toMatchObject({ ok: false, code: 'AMOUNT_MISMATCH' });
  });

  it('declines lines whose total is past the safe integers (a final answer, never a throw)', () => {
    const dear: CatalogVersion = { ...catalog, articles: [{ sku: 'yacht', name: 'Yacht', priceMinor: 2 ** 52, currency: 'EUR' }] };
    expect(checkPrices(dear, [{ sku: 'yacht', qty: 3, unitMinor: 2 ** 52 }], Number.MAX_SAFE_INTEGER, 'EUR')).toEqual({ ok: false, code: 'AMOUNT_MISMATCH' });
  });

  it('holds for the longest cancellation window among the articles (seed 004 claim 13)', () => {
    const [, jacket, hat, cola] = [null, catalog.articles[1]!, catalog.articles[2]!, catalog.articles[0]!];
    expect(holdUntilMs([hat, jacket], 1000)).toBe(901_000);
    expect(holdUntilMs([cola], 1000)).toBeUndefined();
  });

  it('parses a catalog file and names the first bad field', () => {
    expect(parseCatalogFile({ merchantId: 'snacks', articles: catalog.articles }).ok).toBe(true);
    expect(parseCatalogFile({ merchantId: 'snacks', articles: [{ ...catalog.articles[0], priceMinor: 1.5 }] })).toMatchObject({
      ok: false,
      field: 'articles.0.priceMinor',
    });
    expect(parseCatalogFile({ merchantId: 'snacks', articles: [catalog.articles[0], catalog.articles[0]] })).toMatchObject({ ok: false, field: 'articles.1.sku' });
    expect(parseCatalogFile({ merchantId: 'snacks', articles: [], extra: 1 })).toMatchObject({ ok: false });
  });
});
