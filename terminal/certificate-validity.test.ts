import { describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, toHex } from '../protocol/index.ts';
import { CERTIFICATE_RENEWAL_WARNING_MS, certificateWarning } from './certificate-validity.ts';

const DAY = 24 * 3600_000;
const t0 = Date.parse('2026-06-01T00:00:00Z');
const cert = issueTerminalCertificate(generateKeyPair(), {
  terminalId: 'gate-3',
  merchantId: 'transit',
  kind: 'gate',
  publicKey: toHex(generateKeyPair().publicKey),
  notBefore: t0,
  notAfter: t0 + 365 * DAY,
}).body;

describe('certificateWarning', () => {
  it('says nothing while the certificate has more than the renewal margin left, inclusive of its first instant', () => {
    expect(certificateWarning(cert, t0)).toBeUndefined();
    expect(certificateWarning(cert, cert.notAfter - CERTIFICATE_RENEWAL_WARNING_MS)).toBeUndefined();
  });

  it('warns within the renewal margin, naming the days left and the reissue command', () => {
    const w = certificateWarning(cert, cert.notAfter - 10 * DAY - 1);
    expect(w).toMatchObject({ code: 'CERT_EXPIRING', notAfter: '2027-06-01T00:00:00.000Z' });
    expect(w?.message).toMatch(/in 10 days.*reissue-certificate/);
    expect(certificateWarning(cert, cert.notAfter)?.code).toBe('CERT_EXPIRING');
  });

  it('tells an expired certificate and one not valid yet (a clock before its start) apart', () => {
    expect(certificateWarning(cert, cert.notAfter + 1)).toMatchObject({ code: 'CERT_EXPIRED', message: expect.stringContaining('wallets refuse this terminal') });
    expect(certificateWarning(cert, t0 - 1)).toMatchObject({ code: 'CERT_NOT_YET_VALID', notBefore: '2026-06-01T00:00:00.000Z', message: expect.stringContaining('clock') });
  });
});
