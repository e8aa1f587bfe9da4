/**
 * The ledger keys its log by 128-bit request ids (32 hex chars); the wire allows 16..32 bytes.
 * Longer ids are hashed down; commands the hub makes on a request's behalf (a refund after a
 * failed dispense, a ticket id) get ids derived from it, so a retry derives the same id again.
 */
import { sha256Hex } from '../../protocol/index.ts';
import type { Engine } from '../ledger/engine.ts';
import type { LogRow } from '../ledger/store.ts';

export function engineRequestId(requestId: string): string {
  return requestId.length === 32 ? requestId : sha256Hex(`wire:${requestId}`).slice(0, 32);
}

export function derivedId(tag: string, requestId: string): string {
  return sha256Hex(`${tag}:${requestId}`).slice(0, 32);
}

/**
 * What the ledger decided for a wire request id (undefined: never logged, or logged and not yet
 * decided), once everything submitted before the call is decided (not later traffic: under load
 * the engine is never idle). The ledger outlives the registry's stored results, which are pruned:
 * a late retry, a failure receipt's refund and an operator refund look here.
 */
export async function ledgerDecision(engine: Engine, requestId: string): Promise<LogRow | undefined> {
  const eid = engineRequestId(requestId);
  await engine.decided();
  const row = (await engine.store.logByRequestIds([eid])).get(eid);
  return row && row.state !== 'logged' ? row : undefined;
}

/**
 * The id of an attempt to refund `requestId` (`tag`: who refunds). The ledger keeps a decline
 * under its id: after one for the cause that can pass (the merchant short of funds after a payout),
 * a new attempt gets an id of its own (by `nowMs`); otherwise the first id, so a retry is the same
 * command (and a refusal for good, such as not_refundable, is answered again, not logged again). At most one refund of a sale holds whatever its id: the ledger refuses a second
 * (already_refunded).
 */
export async function refundAttemptId(engine: Engine, tag: string, requestId: string, nowMs: number): Promise<{ firstId: string; refundId: string }> {
  const firstId = derivedId(tag, requestId);
  const prior = await ledgerDecision(engine, firstId);
  const refundId = prior?.state === 'declined' && prior.code === 'insufficient_funds' ? derivedId(tag, `${requestId}:${nowMs}`) : firstId;
  return { firstId, refundId };
}
