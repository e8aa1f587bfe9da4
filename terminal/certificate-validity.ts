// Whether wallets will accept this terminal's certificate now, told to the operator at --check and
// at start. Only ever a warning, never a refusal to start: a Raspberry Pi has no real-time clock
// and can boot with a wrong time until NTP has synced, and wallets judge by their own clocks.
import type { Body } from '../protocol/index.ts';

/** From this long before the certificate's notAfter, the terminal warns that it needs reissuing. */
export const CERTIFICATE_RENEWAL_WARNING_MS = 30 * 24 * 3600_000;

export interface CertificateWarning {
  readonly code: 'CERT_EXPIRED' | 'CERT_NOT_YET_VALID' | 'CERT_EXPIRING';
  readonly notBefore: string;
  readonly notAfter: string;
  readonly message: string;
}

const REISSUE = 'reissue it on the hub (`reissue-certificate <terminal id>`) and install it as certificateFile';

/** Undefined while the certificate is valid for longer than CERTIFICATE_RENEWAL_WARNING_MS. */
export function certificateWarning(cert: Body<'terminal.certificate'>, nowMs: number): CertificateWarning | undefined {
  const notBefore = new Date(cert.notBefore).toISOString();
  const notAfter = new Date(cert.notAfter).toISOString();
  const warn = (code: CertificateWarning['code'], message: string): CertificateWarning => ({ code, notBefore, notAfter, message });
  if (nowMs < cert.notBefore) return warn('CERT_NOT_YET_VALID', `the certificate is valid only from ${notBefore}: wallets refuse this terminal until then (is the clock right?)`);
  if (nowMs > cert.notAfter) return warn('CERT_EXPIRED', `the certificate expired at ${notAfter}: wallets refuse this terminal; ${REISSUE}`);
  if (cert.notAfter - nowMs < CERTIFICATE_RENEWAL_WARNING_MS) {
    const days = Math.floor((cert.notAfter - nowMs) / (24 * 3600_000));
    return warn('CERT_EXPIRING', `the certificate expires at ${notAfter} (in ${days} days): ${REISSUE}`);
  }
  return undefined;
}
