/**
 * Merchant payout (seed 001 fig. 11): first recorded in the ledger (merchant → clearing account,
 * durable, idempotent by payout id), then sent through the clearing adapter. A failed send stays
 * `failed` in the registry and is retried with the same id, so the bank never pays twice.
 */
import { newRequestId, type ErrorCode } from '../../protocol/index.ts';
import type { Engine } from '../ledger/engine.ts';
import type { Registry, PayoutRecord } from '../registry/registry.ts';
import { mapDecline } from '../service/decline-codes.ts';
import type { ClearingAdapter } from './clearing-adapter.ts';

export interface PayoutDeps {
  readonly engine: Engine;
  readonly registry: Registry;
  readonly clearing: ClearingAdapter;
  readonly clock: () => number;
}

export type PayoutOutcome = { ok: true; payout: PayoutRecord } | { ok: false; code: ErrorCode; detail: string };

export async function payoutMerchant(
  deps: PayoutDeps,
  input: { merchantId: string; amountMinor?: number; payoutId?: string },
): Promise<PayoutOutcome> {
  const payoutId = input.payoutId ?? newRequestId();
  const known = deps.registry.payout(payoutId);
  if (known?.state === 'sent') return { ok: true, payout: known };
  await deps.engine.flush(); // deposits of earlier turns count toward the balance
  const account = await deps.engine.getAccount(input.merchantId);
  if (!account || account.kind !== 'merchant') return { ok: false, code: 'NOT_FOUND', detail: `no merchant ${input.merchantId}` };
  const amountMinor = known?.amountMinor ?? input.amountMinor ?? account.balanceMinor;
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0) return { ok: false, code: 'AMOUNT_INVALID', detail: `amount ${amountMinor}` };
  const outcome = await deps.engine.submit({ kind: 'payout', requestId: payoutId, merchantId: input.merchantId, amountMinor, currency: account.currency });
  if (outcome.status === 'declined') return { ok: false, code: mapDecline(outcome.code), detail: outcome.code };
  const recorded: PayoutRecord = {
    payoutId,
    merchantId: input.merchantId,
    amountMinor,
    currency: account.currency,
    state: 'recorded',
    reference: null,
    timeMs: known?.timeMs ?? deps.clock(),
  };
  deps.registry.putPayout(recorded);
  const sent = await deps.clearing.transfer({ payoutId, merchantId: input.merchantId, amountMinor, currency: account.currency });
  const final: PayoutRecord = sent.ok ? { ...recorded, state: 'sent', reference: sent.reference } : { ...recorded, state: 'failed' };
  deps.registry.putPayout(final);
  return { ok: true, payout: final };
}

/** Sends every recorded-but-unsent payout again, with its original id. */
export async function retryPayouts(deps: PayoutDeps): Promise<PayoutRecord[]> {
  const out: PayoutRecord[] = [];
  for (const p of deps.registry.payouts(1000)) {
    if (p.state === 'sent') continue;
    const r = await payoutMerchant(deps, { merchantId: p.merchantId, payoutId: p.payoutId });
    if (r.ok) out.push(r.payout);
  }
  return out;
}
