/**
 * Customer restrictions (seed 004 claim 14): an article may be limited to, or barred for,
 * customers by the attributes their license attests (age-over, groups), and a blocklisted wallet
 * buys nothing. Pure; returns a reason code, never throws on a decline.
 */
import type { ArticleT, RestrictionT } from '../../protocol/index.ts';

export interface CustomerAttributes {
  /** The holder is at least this old (0 = not attested). */
  readonly ageOver: number;
  readonly groups: readonly string[];
}

export type RestrictionCheck = { ok: true } | { ok: false; code: 'RESTRICTED' | 'BLOCKLISTED'; reason: string };

export function checkRestriction(restriction: RestrictionT | undefined, customer: CustomerAttributes): RestrictionCheck {
  if (!restriction) return { ok: true };
  if (restriction.minAge !== undefined && customer.ageOver < restriction.minAge) {
    return { ok: false, code: 'RESTRICTED', reason: `age ${restriction.minAge}+ required` };
  }
  if (restriction.groupsAny && restriction.groupsAny.length > 0 && !restriction.groupsAny.some((g) => customer.groups.includes(g))) {
    return { ok: false, code: 'RESTRICTED', reason: `member of ${restriction.groupsAny.join('|')} required` };
  }
  const barred = restriction.groupsNone?.find((g) => customer.groups.includes(g));
  if (barred !== undefined) return { ok: false, code: 'RESTRICTED', reason: `group ${barred} barred` };
  return { ok: true };
}

/** Blocklist first (a stolen or overspent wallet is stopped at once), then each article. */
export function checkCustomer(customer: CustomerAttributes, blocklisted: boolean, articles: readonly ArticleT[]): RestrictionCheck {
  if (blocklisted) return { ok: false, code: 'BLOCKLISTED', reason: 'wallet is on the blocklist' };
  for (const a of articles) {
    const r = checkRestriction(a.restriction, customer);
    if (!r.ok) return { ok: false, code: r.code, reason: `${a.sku}: ${r.reason}` };
  }
  return { ok: true };
}
