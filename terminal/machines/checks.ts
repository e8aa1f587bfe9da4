// Pure checks a machine runs on hub-signed things before it acts on them (seed 003: the terminal
// verifies the hub's signature on the result before it dispenses, opens or prints).
import { TICKET_HORIZON_MS, verifyMessage, type Body, type Envelope, type ErrorCode, type RestrictionT } from '../../protocol/index.ts';

export type Checked<B> = { ok: true; body: B } | { ok: false; code: ErrorCode };

/**
 * A hub-signed answer (result, error, receipt acknowledgement) meant for this terminal: addressed
 * to it (the hub names the sender it authenticated, so an answer to another terminal about our
 * request id is refused), under a hub key it trusts, with a valid signature.
 */
export function checkHubAnswer<M extends { type: string; body: { terminalId: string; hubKey: string }; sig: string }>(
  answer: M,
  terminalId: string,
  hubKeys: readonly string[],
): Checked<M['body']> {
  const b = answer.body;
  if (b.terminalId !== terminalId) return { ok: false, code: 'TERMINAL_MISMATCH' };
  if (!hubKeys.includes(b.hubKey)) return { ok: false, code: 'UNKNOWN_ISSUER' };
  if (!verifyMessage(answer, b.hubKey)) return { ok: false, code: 'BAD_SIGNATURE' };
  return { ok: true, body: b };
}

/**
 * A hub answer that means "retry later with the same request id" (protocol/errors.ts: the hub's
 * own fault or load): not a decision. The request stays in the outbox and is re-sent, so it may
 * still be approved; each machine says whether it waits on or gives up (`hub.abandon`).
 */
export const RETRY_LATER_CODES: ReadonlySet<string> = new Set<ErrorCode>(['UNAVAILABLE', 'INTERNAL', 'TIMEOUT']);

export function isRetryLater(code: string | undefined): boolean {
  return code !== undefined && RETRY_LATER_CODES.has(code);
}

/**
 * What a machine is told of a verified hub error: the hub's own code. One this version does not
 * know (a newer hub) is a final refusal — the runtime stores it as one — never turned into a
 * retry-later code: the customer would watch "hub busy" for the whole deadline and a POS cashier
 * would be told to keep cash for a top-up the hub has refused for good.
 */
export function hubErrorEvent(requestId: string, code: string): { e: 'hub.error'; requestId: string; code: string } {
  return { e: 'hub.error', requestId, code };
}

export function checkHubResult(
  result: Envelope<'settlement.result'>,
  expected: { requestId: string; terminalId: string },
  hubKeys: readonly string[],
): Checked<Body<'settlement.result'>> {
  if (result.body.requestId !== expected.requestId) return { ok: false, code: 'NOT_FOUND' };
  return checkHubAnswer(result, expected.terminalId, hubKeys);
}

/** A ticket is usable at this station now: hub-signed, for this wallet, in its validity window. */
export function checkTicket(
  ticket: Envelope<'ticket'>,
  input: { wallet: string; station: string; ticketKeysAt: (issuedAt: number) => readonly string[]; nowMs: number; used: (ticketId: string) => boolean },
): Checked<Body<'ticket'>> {
  const b = ticket.body;
  if (b.wallet !== input.wallet) return { ok: false, code: 'TICKET_INVALID' };
  if (!input.ticketKeysAt(b.issuedAt).includes(b.hubKey)) return { ok: false, code: 'UNKNOWN_ISSUER' };
  if (input.nowMs < b.validFrom || input.nowMs > b.validUntil || b.validUntil - b.validFrom > TICKET_HORIZON_MS) return { ok: false, code: 'TICKET_INVALID' };
  if (b.stations.length > 0 && !b.stations.includes(input.station)) return { ok: false, code: 'TICKET_INVALID' };
  if (input.used(b.ticketId)) return { ok: false, code: 'TICKET_USED' };
  if (!verifyMessage(ticket, b.hubKey)) return { ok: false, code: 'BAD_SIGNATURE' };
  return { ok: true, body: b };
}

/**
 * Article restriction against the license (seed 004 claim 14). The hub decides online; a
 * terminal applies the same rule before accepting offline.
 */
export function restrictionAllows(restriction: RestrictionT | undefined, license: Body<'wallet.license'>): boolean {
  if (!restriction) return true;
  if (restriction.minAge !== undefined && license.ageOver < restriction.minAge) return false;
  if (restriction.groupsAny && restriction.groupsAny.length > 0 && !restriction.groupsAny.some((g) => license.groups.includes(g))) return false;
  if (restriction.groupsNone?.some((g) => license.groups.includes(g))) return false;
  return true;
}
