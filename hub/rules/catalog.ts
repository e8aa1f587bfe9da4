/**
 * Merchant catalogs (seed 004 claims 13–14): articles with a price, an optional cancellation
 * window and an optional customer restriction. Pure: parsing, lookup and the price check of the
 * line items a terminal sends against the catalog version the hub holds.
 */
import { z } from 'zod';
import { Article, Name, linesTotalMinor, type ArticleT, type LineItemT } from '../../protocol/index.ts';

/** The file an operator imports (`import-catalog FILE`). */
export const CatalogFile = z.strictObject({
  merchantId: Name,
  articles: z.array(Article).max(1000),
});
export type CatalogFileT = z.infer<typeof CatalogFile>;

export interface CatalogVersion {
  readonly merchantId: string;
  readonly version: number;
  readonly articles: readonly ArticleT[];
  readonly timeMs: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

/** Validates untrusted JSON; names the first bad field so the CLI can say which. */
export function parseWith<T>(schema: z.ZodType<T>, raw: unknown): ParseResult<T> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, field: issue && issue.path.length > 0 ? issue.path.join('.') : '(root)', message: issue?.message ?? 'invalid' };
}

export function parseCatalogFile(raw: unknown): ParseResult<CatalogFileT> {
  const r = parseWith(CatalogFile, raw);
  if (!r.ok) return r;
  const seen = new Set<string>();
  for (const [i, a] of r.value.articles.entries()) {
    if (seen.has(a.sku)) return { ok: false, field: `articles.${i}.sku`, message: `duplicate sku ${a.sku}` };
    seen.add(a.sku);
  }
  return r;
}

export type PriceCheck =
  | { ok: true; totalMinor: number; articles: ArticleT[] }
  | { ok: false; code: 'UNKNOWN_ARTICLE' | 'AMOUNT_MISMATCH' | 'CURRENCY_MISMATCH'; sku?: string };

/**
 * Every line must name a catalog article at exactly its catalog price and currency, and the
 * authorized amount must equal the sum of the lines (the wallet signed the lines' digest).
 */
export function checkPrices(catalog: CatalogVersion | undefined, lines: readonly LineItemT[], authorizedMinor: number, currency: string): PriceCheck {
  if (lines.length === 0) return { ok: false, code: 'AMOUNT_MISMATCH' };
  const bySku = new Map((catalog?.articles ?? []).map((a) => [a.sku, a]));
  const articles: ArticleT[] = [];
  for (const line of lines) {
    const article = bySku.get(line.sku);
    if (!article) return { ok: false, code: 'UNKNOWN_ARTICLE', sku: line.sku };
    if (article.currency !== currency) return { ok: false, code: 'CURRENCY_MISMATCH', sku: line.sku };
    if (article.priceMinor !== line.unitMinor) return { ok: false, code: 'AMOUNT_MISMATCH', sku: line.sku };
    articles.push(article);
  }
  let total: number;
  try {
    total = linesTotalMinor(lines);
  } catch (err) {
    // Lines whose sum is past the safe integers can't match any authorized amount: a final
    // decline, not a fault of the hub's that the terminal would retry for ever.
    if (err instanceof RangeError) return { ok: false, code: 'AMOUNT_MISMATCH' };
    throw err;
  }
  if (total !== authorizedMinor) return { ok: false, code: 'AMOUNT_MISMATCH' };
  return { ok: true, totalMinor: total, articles };
}

/** seed 004 claim 13: the longest window among the bought articles; undefined when none has one. */
export function holdUntilMs(articles: readonly ArticleT[], nowMs: number): number | undefined {
  let windowMs = 0;
  for (const a of articles) windowMs = Math.max(windowMs, a.cancelWindowMs ?? 0);
  return windowMs > 0 ? nowMs + windowMs : undefined;
}
