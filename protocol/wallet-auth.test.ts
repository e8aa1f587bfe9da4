import { describe, expect, it } from 'vitest';
import { issueTerminalCertificate } from './certificates.ts';
import { generateKeyPair } from './crypto.ts';
import { toHex } from './hex.ts';
import { authorizeOffer, checkAuthorization, checkOffer, createOffer, linesDigest, linesTotalMinor } from './wallet-auth.ts';

const hub = generateKeyPair();
const terminal = generateKeyPair();
const wallet = generateKeyPair();
const T = 1_767_225_600_000;
const cert = issueTerminalCertificate(hub, {
  terminalId: 'vend-1',
  kind: 'vending',
  merchantId: 'snacks',
  publicKey: toHex(terminal.publicKey),
  notBefore: T - 1,
  notAfter: T + 86_400_000,
});
const lines = [{ sku: 'cola', qty: 2, unitMinor: 150 }];
const offer = createOffer(terminal, { terminalId: 'vend-1', merchantId: 'snacks', purpose: 'purchase', amountMinor: 300, currency: 'EUR', lines, nowMs: T, terminalCert: cert });

describe('offer → authorization handshake', () => {
  it('the wallet accepts a genuine offer and its authorization binds to it', () => {
    expect(checkOffer(offer, [toHex(hub.publicKey)], T + 10)).toEqual({ ok: true });
    const auth = authorizeOffer(wallet, offer, 1, T + 20);
    expect(auth.body.challenge).toBe(offer.body.challenge);
    expect(auth.body.challenge).toMatch(/^[0-9a-f]{32}$/);
    expect(checkAuthorization(auth, offer.body)).toEqual({ ok: true });
  });

  it('the wallet refuses offers from untrusted, forged, stale or inconsistent terminals', () => {
    expect(checkOffer(offer, [toHex(wallet.publicKey)], T)).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
    expect(checkOffer(offer, [toHex(hub.publicKey)], T + 60 * 60_000)).toEqual({ ok: false, code: 'STALE_TIMESTAMP' });
    const inflated = { ...offer, body: { ...offer.body, amountMinor: 30 } };
    expect(checkOffer(inflated, [toHex(hub.publicKey)], T)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    const impostor = generateKeyPair();
    const fake = createOffer(impostor, { ...offer.body, nowMs: T, terminalCert: cert });
    expect(checkOffer(fake, [toHex(hub.publicKey)], T)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    const wrongTotal = createOffer(terminal, { ...offer.body, amountMinor: 299, nowMs: T, terminalCert: cert });
    expect(checkOffer(wrongTotal, [toHex(hub.publicKey)], T)).toEqual({ ok: false, code: 'AMOUNT_MISMATCH' });
  });

  it('an offer without a terminal certificate is accepted for transit purposes only', () => {
    const fare = createOffer(terminal, { terminalId: 'vend-1', merchantId: 'snacks', purpose: 'fare', amountMinor: 300, currency: 'EUR', lines: [], nowMs: T });
    expect(fare.body.terminalCert).toBeUndefined();
    expect(checkOffer(fare, [toHex(hub.publicKey)], T)).toEqual({ ok: true });
    const sale = createOffer(terminal, { terminalId: 'vend-1', merchantId: 'snacks', purpose: 'purchase', amountMinor: 300, currency: 'EUR', lines, nowMs: T });
    expect(checkOffer(sale, [toHex(hub.publicKey)], T)).toEqual({ ok: false, code: 'UNKNOWN_TERMINAL' });
  });

  it('an authorization for another offer does not pass', () => {
    const { challenge: _used, ...rest } = offer.body;
    const other = createOffer(terminal, { ...rest, nowMs: T, terminalCert: cert });
    const auth = authorizeOffer(wallet, other, 2, T);
    expect(checkAuthorization(auth, offer.body)).toEqual({ ok: false, code: 'REPLAY' });
    const forged = { ...auth, body: { ...auth.body, amountMinor: 1 } };
    expect(checkAuthorization(forged, other.body)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('line digests are order-sensitive and totals exact', () => {
    const a = [{ sku: 'a', qty: 1, unitMinor: 1 }, { sku: 'b', qty: 3, unitMinor: 7 }];
    expect(linesDigest(a)).not.toBe(linesDigest([...a].reverse()));
    expect(linesTotalMinor(a)).toBe(22);
    expect(() => linesTotalMinor([{ sku: 'x', qty: 2, unitMinor: Number.MAX_SAFE_INTEGER }])).toThrow(RangeError);
  });
});
