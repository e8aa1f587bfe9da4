import { describe, expect, it } from 'vitest';
import { issueTerminalCertificate, issueWalletLicense, verifyTerminalCertificate, verifyWalletLicense } from './certificates.ts';
import { checkConnectToken, makeConnectToken } from './connect-token.ts';
import { generateKeyPair } from './crypto.ts';
import { toHex } from './hex.ts';

const hub = generateKeyPair();
const issuer = generateKeyPair();
const terminal = generateKeyPair();
const wallet = generateKeyPair();
const T = 1_767_225_600_000;

const cert = issueTerminalCertificate(hub, {
  terminalId: 'gate-1',
  kind: 'gate',
  merchantId: 'metro',
  publicKey: toHex(terminal.publicKey),
  notBefore: T,
  notAfter: T + 1000,
});
const license = issueWalletLicense(issuer, {
  wallet: toHex(wallet.publicKey),
  notBefore: T,
  notAfter: T + 1000,
  ageOver: 18,
  groups: [],
  offlineLimitMinor: 1000,
  currency: 'EUR',
});

describe('terminal certificates and wallet licenses', () => {
  const hubKeys = [toHex(hub.publicKey)];
  it('verify with a typed result for every failure', () => {
    expect(verifyTerminalCertificate(cert, { trustedIssuers: hubKeys, nowMs: T + 1 })).toEqual({ ok: true, body: cert.body });
    expect(verifyTerminalCertificate(cert, { trustedIssuers: [], nowMs: T + 1 })).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
    expect(verifyTerminalCertificate(cert, { trustedIssuers: hubKeys, nowMs: T - 1 })).toEqual({ ok: false, code: 'CERT_NOT_YET_VALID' });
    expect(verifyTerminalCertificate(cert, { trustedIssuers: hubKeys, nowMs: T + 1001 })).toEqual({ ok: false, code: 'CERT_EXPIRED' });
    expect(
      verifyTerminalCertificate(cert, { trustedIssuers: hubKeys, nowMs: T + 1, isRevoked: (_serial, id) => id === 'gate-1' }),
    ).toEqual({ ok: false, code: 'REVOKED' });
    const forged = { ...cert, body: { ...cert.body, kind: 'pos' as const } };
    expect(verifyTerminalCertificate(forged, { trustedIssuers: hubKeys, nowMs: T + 1 })).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('licenses are checked against the issuer key, not the hub key', () => {
    expect(verifyWalletLicense(license, { trustedIssuers: new Set([toHex(issuer.publicKey)]), nowMs: T + 5 }).ok).toBe(true);
    expect(verifyWalletLicense(license, { trustedIssuers: new Set(hubKeys), nowMs: T + 5 })).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
  });
});

describe('MQTT connect token', () => {
  it('accepts a fresh token from the enrolled key only', () => {
    const token = makeConnectToken('gate-1', terminal.secretKey, T);
    expect(checkConnectToken('gate-1', token, terminal.publicKey, T + 1000).ok).toBe(true);
    expect(checkConnectToken('gate-2', token, terminal.publicKey, T + 1000)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    expect(checkConnectToken('gate-1', token, wallet.publicKey, T + 1000)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
    expect(checkConnectToken('gate-1', token, terminal.publicKey, T + 10 * 60_000)).toEqual({ ok: false, code: 'STALE_TIMESTAMP' });
    expect(checkConnectToken('gate-1', 'password', terminal.publicKey, T)).toEqual({ ok: false, code: 'MALFORMED' });
  });
});
