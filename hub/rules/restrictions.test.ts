import { describe, expect, it } from 'vitest';
import { checkCustomer, checkRestriction } from './restrictions.ts';

const beer = { sku: 'beer', name: 'Beer', priceMinor: 400, currency: 'EUR', restriction: { minAge: 18 } };
const staffMeal = { sku: 'meal', name: 'Meal', priceMinor: 300, currency: 'EUR', restriction: { groupsAny: ['staff', 'crew'] } };
const noKids = { sku: 'ride', name: 'Ride', priceMinor: 300, currency: 'EUR', restriction: { groupsNone: ['kids'] } };
const cola = { sku: 'cola', name: 'Cola', priceMinor: 250, currency: 'EUR' };

describe('customer restrictions (seed 004 claim 14)', () => {
  it('allows and denies by age-over', () => {
    expect(checkRestriction(beer.restriction, { ageOver: 18, groups: [] }).ok).toBe(true);
    expect(checkRestriction(beer.restriction, { ageOver: 16, groups: [] })).toMatchObject({ ok: false, code: 'RESTRICTED' });
    // 0 = not attested: never old enough.
    expect(checkRestriction(beer.restriction, { ageOver: 0, groups: [] }).ok).toBe(false);
  });

  it('allows listed groups, bars barred groups', () => {
    expect(checkRestriction(staffMeal.restriction, { ageOver: 0, groups: ['crew'] }).ok).toBe(true);
    expect(checkRestriction(staffMeal.restriction, { ageOver: 0, groups: ['guest'] }).ok).toBe(false);
    expect(checkRestriction(noKids.restriction, { ageOver: 0, groups: ['kids'] })).toMatchObject({ ok: false, reason: 'group kids barred' });
    expect(checkRestriction(noKids.restriction, { ageOver: 0, groups: [] }).ok).toBe(true);
    expect(checkRestriction(undefined, { ageOver: 0, groups: [] }).ok).toBe(true);
  });

  it('blocklist first, then every article', () => {
    expect(checkCustomer({ ageOver: 30, groups: ['staff'] }, true, [cola])).toMatchObject({ ok: false, code: 'BLOCKLISTED' });
    expect(checkCustomer({ ageOver: 30, groups: [] }, false, [cola, beer, staffMeal])).toMatchObject({ ok: false, code: 'RESTRICTED', reason: expect.stringContaining('meal') });
    expect(checkCustomer({ ageOver: 30, groups: ['staff'] }, false, [cola, beer, staffMeal]).ok).toBe(true);
  });
});
