// Licenses expire (365 days by default) and attributes change (a staff member leaves): the
// operator reissues a wallet's license without a new key, and from then on the hub takes only the
// new one. Real hub, real SQLite, requests signed as a terminal signs them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWalletLicense } from '../../protocol/index.ts';
import { InputError, OperationRefused } from '../../hub/service/input-error.ts';
import { SNACKS, enroll, fundedWallet, openHubFixture, purchase, readResult, type HubFixture, type TestTerminal } from './kit.ts';

const DAY = 24 * 3600_000;
let fx: HubFixture;
let pos: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-1', 'pos', 'snacks');
  fx.hub.importCatalog(SNACKS);
});
afterAll(async () => {
  await fx.cleanup();
});

const meal = [{ sku: 'staff-meal', qty: 1, unitMinor: 300 }];

describe('reissue a wallet license', () => {
  it('renews it with the attributes kept unless changed; the hub then takes only the new one, also after a restart', async () => {
    const w = await fundedWallet(fx, pos, 2000, { groups: ['staff'], ageOver: 21, offlineLimitMinor: 500 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, meal, fx.now).bytes)).status).toBe('approved');

    fx.advance(300 * DAY);
    const renewed = fx.hub.reissueLicense(w.id, { validityMs: 400 * DAY, groups: [] }); // left the staff
    expect(renewed.body).toMatchObject({ wallet: w.id, ageOver: 21, groups: [], offlineLimitMinor: 500, notAfter: fx.now + 400 * DAY });
    expect(renewed.body.serial).not.toBe(w.license.body.serial);
    expect(verifyWalletLicense(renewed, { trustedIssuers: [renewed.body.issuerKey], nowMs: fx.now }).ok).toBe(true);

    // The old license is retired at the hub at once.
    const old = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes));
    expect(old).toMatchObject({ status: 'declined', code: 'REVOKED' });
    const holder = { ...w, license: renewed };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes)).status).toBe('approved');
    // The changed attribute counts: no staff meal any more.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, meal, fx.now).bytes))).toMatchObject({ status: 'declined', code: 'RESTRICTED' });

    await fx.reopen();
    expect(fx.hub.registry.wallet(w.id)?.serial).toBe(renewed.body.serial);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now).bytes)).status).toBe('approved');
  });

  it('refuses an unknown or revoked wallet and bad attributes, changing nothing', async () => {
    const w = await fundedWallet(fx, pos, 0);
    expect(() => fx.hub.reissueLicense('ab'.repeat(32))).toThrow(expect.objectContaining({ code: 'UNKNOWN_WALLET' }));
    expect(() => fx.hub.reissueLicense(w.id, { validityMs: 0 })).toThrow(InputError);
    expect(() => fx.hub.reissueLicense(w.id, { offlineLimitMinor: 1.5 })).toThrow(expect.objectContaining({ field: 'offlineLimitMinor' }));
    expect(() => fx.hub.reissueLicense(w.id, { groups: ['Not A Name!'] })).toThrow(InputError);
    expect(fx.hub.registry.wallet(w.id)?.serial).toBe(w.license.body.serial);
    fx.hub.revokeWallet(w.id);
    expect(() => fx.hub.reissueLicense(w.id)).toThrow(OperationRefused);
    expect(() => fx.hub.reissueLicense(w.id)).toThrow(expect.objectContaining({ code: 'REVOKED' }));
  });
});
