/**
 * The purchase handshake over NFC (seed 004 claim 8, seed 002's SKU(y, IdS, Rs, Ts)):
 * the terminal makes a signed offer with a fresh challenge; the wallet checks it and signs an
 * authorization binding amount, currency, terminal, merchant, challenge, time and line items.
 */
import { canonicalJson } from './canonical.ts';
import { signMessage, verifyMessage } from './codec.ts';
import { sha256, type KeyPair } from './crypto.ts';
import type { ErrorCode } from './errors.ts';
import { toHex, utf8 } from './hex.ts';
import { newChallenge, withinSkew } from './replay.ts';
import type { Body, Envelope, LineItemT } from './schemas.ts';
import { verifyTerminalCertificate } from './certificates.ts';

export function linesDigest(lines: readonly LineItemT[]): string {
  return toHex(sha256(utf8(canonicalJson(lines))));
}

export function linesTotalMinor(lines: readonly LineItemT[]): number {
  let total = 0;
  for (const l of lines) {
    total += l.unitMinor * l.qty;
    if (!Number.isSafeInteger(total)) throw new RangeError('linesTotalMinor: overflow');
  }
  return total;
}

export interface OfferInput {
  terminalId: string;
  merchantId: string;
  purpose: Body<'purchase.offer'>['purpose'];
  amountMinor: number;
  currency: string;
  lines: LineItemT[];
  nowMs: number;
  /** Omit only for `fare`/`entry` offers at a gate (see PurchaseOffer.terminalCert). */
  terminalCert?: Envelope<'terminal.certificate'>;
  challenge?: string;
}

export function createOffer(terminal: KeyPair, input: OfferInput): Envelope<'purchase.offer'> {
  const { nowMs, challenge, terminalCert, ...rest } = input;
  return signMessage(
    'purchase.offer',
    { ...rest, ...(terminalCert ? { terminalCert } : {}), challenge: challenge ?? newChallenge(), linesDigest: linesDigest(input.lines), time: nowMs },
    terminal.secretKey,
  );
}

export type OfferCheck = { ok: true } | { ok: false; code: ErrorCode };

/**
 * What a wallet checks before it signs: the terminal's certificate chains to a hub key it trusts,
 * the offer is signed by that terminal, the lines add up, and the time is fresh.
 */
export function checkOffer(offer: Envelope<'purchase.offer'>, trustedHubKeys: readonly string[], nowMs: number, maxSkewMs?: number): OfferCheck {
  const b = offer.body;
  if (!b.terminalCert) {
    // Transit only (see PurchaseOffer.terminalCert): the hub settles fares for enrolled gates alone.
    if (b.purpose !== 'fare' && b.purpose !== 'entry') return { ok: false, code: 'UNKNOWN_TERMINAL' };
    return checkOfferContent(b, nowMs, maxSkewMs);
  }
  const cert = verifyTerminalCertificate(b.terminalCert, { trustedIssuers: trustedHubKeys, nowMs });
  if (!cert.ok) return { ok: false, code: cert.code };
  if (cert.body.terminalId !== b.terminalId || cert.body.merchantId !== b.merchantId) return { ok: false, code: 'TERMINAL_MISMATCH' };
  if (!verifyMessage(offer, cert.body.publicKey)) return { ok: false, code: 'BAD_SIGNATURE' };
  return checkOfferContent(b, nowMs, maxSkewMs);
}

function checkOfferContent(b: Body<'purchase.offer'>, nowMs: number, maxSkewMs?: number): OfferCheck {
  if (linesDigest(b.lines) !== b.linesDigest) return { ok: false, code: 'MALFORMED' };
  if (b.lines.length > 0 && linesTotalMinor(b.lines) !== b.amountMinor) return { ok: false, code: 'AMOUNT_MISMATCH' };
  if (!withinSkew(b.time, nowMs, maxSkewMs)) return { ok: false, code: 'STALE_TIMESTAMP' };
  return { ok: true };
}

/** The wallet's signature over the offer's essentials. */
export function authorizeOffer(
  wallet: KeyPair,
  offer: Envelope<'purchase.offer'>,
  counter: number,
  nowMs: number,
): Envelope<'wallet.authorization'> {
  const b = offer.body;
  return signMessage(
    'wallet.authorization',
    {
      wallet: toHex(wallet.publicKey),
      terminalId: b.terminalId,
      merchantId: b.merchantId,
      purpose: b.purpose,
      challenge: b.challenge,
      amountMinor: b.amountMinor,
      currency: b.currency,
      linesDigest: b.linesDigest,
      time: nowMs,
      counter,
    },
    wallet.secretKey,
  );
}

/**
 * What a terminal (and again the hub) checks on the wallet's answer: signed by the wallet key,
 * and bound to exactly this offer.
 */
export function checkAuthorization(auth: Envelope<'wallet.authorization'>, offer: Body<'purchase.offer'>): OfferCheck {
  const a = auth.body;
  if (!verifyMessage(auth, a.wallet)) return { ok: false, code: 'BAD_SIGNATURE' };
  if (a.challenge !== offer.challenge) return { ok: false, code: 'REPLAY' };
  if (a.terminalId !== offer.terminalId || a.merchantId !== offer.merchantId) return { ok: false, code: 'TERMINAL_MISMATCH' };
  if (a.amountMinor !== offer.amountMinor || a.currency !== offer.currency || a.linesDigest !== offer.linesDigest || a.purpose !== offer.purpose) {
    return { ok: false, code: 'AMOUNT_MISMATCH' };
  }
  return { ok: true };
}
