// Licenses expire (365 days by default) and attributes change (a staff member leaves): the
// operator reissues a wallet's license without a new key, and from then on the hub judges by the
// new one for the customer's restrictions, while the old one is honoured until it expires (as
// terminals do offline). Real hub, real SQLite, requests signed as a terminal signs them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueWalletLicense, verifyWalletLicense } from '../../protocol/index.ts';
import { loadOrCreateEd25519Key } from '../../hub/registry/keys.ts';
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
  it('renews it with the attributes kept unless changed; the old one honoured until it expires, restrictions by the new one, also after a restart', async () => {
    const w = await fundedWallet(fx, pos, 2000, { groups: ['staff'], ageOver: 21, offlineLimitMinor: 500 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, meal, fx.now).bytes)).status).toBe('approved');

    fx.advance(300 * DAY);
    const renewed = fx.hub.reissueLicense(w.id, { validityMs: 400 * DAY, groups: [] }); // left the staff
    expect(renewed.body).toMatchObject({ wallet: w.id, ageOver: 21, groups: [], offlineLimitMinor: 500, notAfter: fx.now + 400 * DAY });
    expect(renewed.body.serial).not.toBe(w.license.body.serial);
    expect(verifyWalletLicense(renewed, { trustedIssuers: [renewed.body.issuerKey], nowMs: fx.now }).ok).toBe(true);

    // The old license is still honoured until it expires (the wallet may not hold the new one yet,
    // and a terminal deciding offline took it): a sale made on it offline settles...
    const offline = readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true }).bytes));
    expect(offline).toMatchObject({ status: 'approved', amountMinor: 250 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now).bytes)).status).toBe('approved');
    // ...but restrictions are judged by the license in force: the staff meal is refused on the old one too.
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, meal, fx.now).bytes))).toMatchObject({ status: 'declined', code: 'RESTRICTED' });
    const holder = { ...w, license: renewed };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes)).status).toBe('approved');
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, meal, fx.now).bytes))).toMatchObject({ status: 'declined', code: 'RESTRICTED' });
    // A license for this wallet signed by the issuer key but never registered (not this wallet's, nor superseded) is refused.
    const { serial: _serial, issuerKey: _issuer, ...fields } = renewed.body;
    const unregistered = issueWalletLicense(loadOrCreateEd25519Key(fx.dir, 'issuer'), { ...fields, notBefore: fx.now - 1000, notAfter: fx.now + DAY });
    expect(unregistered.body.serial).not.toBe(renewed.body.serial);
    const foreign = { ...holder, license: unregistered };
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, foreign, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes))).toMatchObject({ status: 'declined', code: 'REVOKED' });
    // Past its own expiry the old one is refused like any expired license.
    fx.advance(70 * DAY);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now).bytes))).toMatchObject({ status: 'declined', code: 'CERT_EXPIRED' });

    await fx.reopen();
    expect(fx.hub.registry.wallet(w.id)?.serial).toBe(renewed.body.serial);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, holder, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now).bytes)).status).toBe('approved');
  });

  it('an offline sale is judged by the license in force when the wallet signed it: before the reissue the old one, after it the new one', async () => {
    const w = await fundedWallet(fx, pos, 2000, { groups: ['staff'] });
    const signedBefore = purchase(pos, w, meal, fx.now, { offline: true }); // sold at the kiosk, staff then
    fx.advance(60_000);
    fx.hub.reissueLicense(w.id, { groups: [] });
    fx.advance(60_000);
    const signedAfter = purchase(pos, w, meal, fx.now, { offline: true }); // the old license, a staff meal it no longer allows
    for (const sale of [signedBefore, signedAfter]) expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).status).toBe('approved');
    const flagged = fx.hub.incidents({ wallet: w.id }).map((i) => [i.requestId, i.kind]);
    expect(flagged).toEqual([[signedAfter.requestId, 'restricted-offline']]);
    // A revoked wallet's replaced license is refused like its current one.
    fx.hub.revokeWallet(w.id);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, purchase(pos, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true }).bytes))).toMatchObject({ status: 'declined', code: 'REVOKED' });
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
