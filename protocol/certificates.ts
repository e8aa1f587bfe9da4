/**
 * Terminal certificates (hub as certificate authority, seed 001) and wallet licenses (issuer,
 * seed 002). Verification returns a typed result; it never throws on bad input.
 */
import { signMessage, verifyMessage } from './codec.ts';
import type { KeyPair } from './crypto.ts';
import type { ErrorCode } from './errors.ts';
import { toHex } from './hex.ts';
import { newRequestId } from './replay.ts';
import type { Body, Envelope } from './schemas.ts';

export type CertificateCheck<B> =
  | { ok: true; body: B }
  | { ok: false; code: Extract<ErrorCode, 'UNKNOWN_ISSUER' | 'BAD_SIGNATURE' | 'CERT_EXPIRED' | 'CERT_NOT_YET_VALID' | 'REVOKED'> };

export interface TrustContext {
  /** Issuer public keys (hex) this verifier trusts. */
  trustedIssuers: ReadonlySet<string> | readonly string[];
  nowMs: number;
  /** Revoked serials (or ids) — checked last. */
  isRevoked?: (serial: string, subject: string) => boolean;
}

function trusts(ctx: TrustContext, key: string): boolean {
  return Array.isArray(ctx.trustedIssuers) ? ctx.trustedIssuers.includes(key) : (ctx.trustedIssuers as ReadonlySet<string>).has(key);
}

function check<B extends { issuerKey: string; notBefore: number; notAfter: number; serial: string }>(
  message: { type: string; body: B; sig: string },
  subject: string,
  ctx: TrustContext,
): CertificateCheck<B> {
  const body = message.body;
  if (!trusts(ctx, body.issuerKey)) return { ok: false, code: 'UNKNOWN_ISSUER' };
  if (!verifyMessage(message, body.issuerKey)) return { ok: false, code: 'BAD_SIGNATURE' };
  if (ctx.nowMs < body.notBefore) return { ok: false, code: 'CERT_NOT_YET_VALID' };
  if (ctx.nowMs > body.notAfter) return { ok: false, code: 'CERT_EXPIRED' };
  if (ctx.isRevoked?.(body.serial, subject)) return { ok: false, code: 'REVOKED' };
  return { ok: true, body };
}

export function issueTerminalCertificate(
  hub: KeyPair,
  fields: Omit<Body<'terminal.certificate'>, 'issuerKey' | 'serial'> & { serial?: string },
): Envelope<'terminal.certificate'> {
  return signMessage(
    'terminal.certificate',
    { ...fields, serial: fields.serial ?? newRequestId(), issuerKey: toHex(hub.publicKey) },
    hub.secretKey,
  );
}

export function verifyTerminalCertificate(
  cert: Envelope<'terminal.certificate'>,
  ctx: TrustContext,
): CertificateCheck<Body<'terminal.certificate'>> {
  return check(cert, cert.body.terminalId, ctx);
}

export function issueWalletLicense(
  issuer: KeyPair,
  fields: Omit<Body<'wallet.license'>, 'issuerKey' | 'serial'> & { serial?: string },
): Envelope<'wallet.license'> {
  return signMessage('wallet.license', { ...fields, serial: fields.serial ?? newRequestId(), issuerKey: toHex(issuer.publicKey) }, issuer.secretKey);
}

export function verifyWalletLicense(license: Envelope<'wallet.license'>, ctx: TrustContext): CertificateCheck<Body<'wallet.license'>> {
  return check(license, license.body.wallet, ctx);
}
