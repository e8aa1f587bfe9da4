/**
 * Merchant payout (seed 001 fig. 11): first recorded in the ledger (merchant → clearing account,
 * durable, idempotent by payout id), then recorded in the registry, then sent through the
 * clearing adapter with the payout id as its idempotency key.
 *
 * Once the ledger has the debit the money is the clearing system's to send: a send that fails is
 * no success (the caller gets `UNAVAILABLE` with the payout held), and the desk sends it again
 * with the same id — at the hub's start, on a timer with backoff while the hub runs, and when the
 * operator asks (`payout retry`) — until the clearing confirms it. The payout id is the ledger
 * request id, so a ledger payout whose registry record a crash (or a restored registry backup)
 * lost is found again by `reconcile()` and sent; the clearing answers a repeated id with its
 * first answer, so resending a payout it already took pays nothing twice.
 */
import type { Logger } from 'pino';
import { newRequestId, type ErrorCode } from '../../protocol/index.ts';
import { systemAccountId } from '../ledger/batch.ts';
import type { Engine } from '../ledger/engine.ts';
import type { Registry, PayoutRecord } from '../registry/registry.ts';
import { mapDecline } from '../service/decline-codes.ts';
import { InputError, OperationRefused } from '../service/input-error.ts';
import type { ClearingAdapter, ClearingResult } from './clearing-adapter.ts';

export interface PayoutDeps {
  readonly engine: Engine;
  readonly registry: Registry;
  readonly clearing: ClearingAdapter;
  readonly clock: () => number;
  /** The hub's settlement currency: its clearing account holds the payouts. */
  readonly currency: string;
  readonly logger: Logger;
}

export interface PayoutRetryOptions {
  /**
   * How often the running hub looks for unsent payouts and the first delay after a failed send, in
   * ms; 0 = no timer and no send at start (the CLI opening a stopped hub's folder). Default 60 000.
   */
  readonly intervalMs?: number;
  /** The delay doubles per failing round up to this. Default 1 800 000 (30 min). */
  readonly maxIntervalMs?: number;
}

export const DEFAULT_PAYOUT_RETRY: Required<PayoutRetryOptions> = Object.freeze({ intervalMs: 60_000, maxIntervalMs: 30 * 60_000 });
const MAX_RETRY_MS = 24 * 3600_000;

/** Validates the retry options (a typed InputError naming the field), defaults filled in. */
export function payoutRetryOptions(o: PayoutRetryOptions = {}): Required<PayoutRetryOptions> {
  const intervalMs = o.intervalMs ?? DEFAULT_PAYOUT_RETRY.intervalMs;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 0 || intervalMs > MAX_RETRY_MS) {
    throw new InputError('payoutRetry.intervalMs', `expected an integer number of ms from 0 (off) to ${MAX_RETRY_MS}, got ${String(o.intervalMs)}`);
  }
  const maxIntervalMs = o.maxIntervalMs ?? Math.max(intervalMs, DEFAULT_PAYOUT_RETRY.maxIntervalMs);
  if (!Number.isSafeInteger(maxIntervalMs) || maxIntervalMs < intervalMs || maxIntervalMs > MAX_RETRY_MS) {
    throw new InputError('payoutRetry.maxIntervalMs', `expected an integer number of ms from intervalMs (${intervalMs}) to ${MAX_RETRY_MS}, got ${String(o.maxIntervalMs)}`);
  }
  return { intervalMs, maxIntervalMs };
}

/**
 * The payout is in the ledger (debited from the merchant, held in the clearing account) but the
 * clearing did not confirm it. Not a success: it stays `failed` and is sent again with its id.
 */
export interface PayoutHeld {
  readonly ok: false;
  readonly code: Extract<ErrorCode, 'UNAVAILABLE'>;
  readonly detail: string;
  readonly payout: PayoutRecord;
  /** The operator command that retries it now. */
  readonly retry: string;
}

/** Sent (`ok`), refused with nothing written (`code`, no `payout`), or held for a retry. */
export type PayoutOutcome = { ok: true; payout: PayoutRecord } | { ok: false; code: ErrorCode; detail: string } | PayoutHeld;

export function isPayoutHeld(o: PayoutOutcome): o is PayoutHeld {
  return !o.ok && 'payout' in o;
}

interface SendResult {
  readonly payout: PayoutRecord;
  /** Why the clearing did not take it (absent when sent). */
  readonly reason?: string;
}

/** One attempt of `retry()`: the record as it is now, and why it is still not sent. */
export type RetriedPayout = PayoutRecord & { readonly reason?: string };

const ALL = Number.MAX_SAFE_INTEGER;
const HISTORY_PAGE = 1000;

export class PayoutDesk {
  readonly #d: PayoutDeps;
  readonly #retry: Required<PayoutRetryOptions>;
  /** Sends in flight by payout id: a second send of the same id joins the first. */
  readonly #sending = new Map<string, Promise<SendResult>>();
  /** Payout ids between their ledger submit and their registry record (reconcile leaves them alone). */
  readonly #committing = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<RetriedPayout[]> | undefined;
  #failingRounds = 0;
  /** A registry record could not be written: the next round looks in the ledger first. */
  #reconcileDue = false;
  #closed = false;

  constructor(deps: PayoutDeps, retry: PayoutRetryOptions = {}) {
    this.#d = deps;
    this.#retry = payoutRetryOptions(retry);
  }

  /**
   * At the hub's start: records the ledger payouts the registry lost (awaited, so the first
   * operator command sees them), then — unless the interval is 0 — a first round at once and
   * the timer. A failed reconciliation is logged and tried again by the next round.
   */
  async start(): Promise<void> {
    try {
      await this.reconcile();
    } catch (err) {
      this.#reconcileDue = true;
      this.#d.logger.error({ err }, 'payouts: could not reconcile the ledger with the registry; the next retry round tries again');
    }
    if (this.#retry.intervalMs > 0) this.#arm(0);
  }

  /** Pays a merchant out: ledger first, then the clearing. */
  async pay(input: { merchantId: string; amountMinor?: number; payoutId?: string }): Promise<PayoutOutcome> {
    const d = this.#d;
    const payoutId = input.payoutId ?? newRequestId();
    let known = d.registry.payout(payoutId);
    if (!known && input.payoutId !== undefined && !this.#committing.has(payoutId)) {
      // In the ledger but not in the registry (its record was lost): adopt it, never debit again.
      known = await this.#adopt(payoutId);
    }
    if (known) {
      if (known.merchantId !== input.merchantId || (input.amountMinor !== undefined && input.amountMinor !== known.amountMinor)) {
        return { ok: false, code: 'DUPLICATE_MISMATCH', detail: `payout ${payoutId} is ${known.amountMinor} ${known.currency} to ${known.merchantId}` };
      }
      if (known.state === 'sent') return { ok: true, payout: known };
      return this.#outcome(await this.#send(known));
    }
    if (this.#committing.has(payoutId)) return { ok: false, code: 'REPLAY', detail: `payout ${payoutId} is being recorded` };
    await d.engine.settled(); // deposits of earlier turns count toward the balance (not later traffic: a busy hub is never idle)
    const account = await d.engine.getAccount(input.merchantId);
    if (!account || account.kind !== 'merchant') return { ok: false, code: 'NOT_FOUND', detail: `no merchant ${input.merchantId}` };
    const amountMinor = input.amountMinor ?? account.balanceMinor;
    if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0) {
      const heldIds = d.registry.payouts(ALL).flatMap((p) => (p.merchantId === input.merchantId && p.state !== 'sent' ? [p.payoutId] : []));
      const hint = heldIds.length > 0 ? `; ${heldIds.length} payout(s) of ${input.merchantId} held in clearing, not sent yet (${heldIds.join(', ')}): tapsettle payout retry` : '';
      return { ok: false, code: 'AMOUNT_INVALID', detail: `amount ${amountMinor}${hint}` };
    }
    this.#committing.add(payoutId);
    let recorded: PayoutRecord;
    try {
      const outcome = await d.engine.submit({ kind: 'payout', requestId: payoutId, merchantId: input.merchantId, amountMinor, currency: account.currency });
      if (outcome.status === 'declined') return { ok: false, code: mapDecline(outcome.code), detail: outcome.code };
      recorded = { payoutId, merchantId: input.merchantId, amountMinor, currency: account.currency, state: 'recorded', reference: null, timeMs: d.clock() };
      try {
        d.registry.putPayout(recorded);
      } catch (err) {
        // The debit is durable: the next retry round finds it in the ledger and sends it.
        this.#reconcileDue = true;
        throw err;
      }
    } finally {
      this.#committing.delete(payoutId);
    }
    return this.#outcome(await this.#send(recorded));
  }

  /**
   * The operator's retry: records ledger payouts the registry lacks, then sends every unsent
   * payout (or only `payoutId`) with its own id. Returns the payouts it tried, as they are now.
   */
  async retry(payoutId?: string): Promise<RetriedPayout[]> {
    await this.reconcile();
    if (payoutId === undefined) {
      // A round already running may have listed the payouts before reconcile added some.
      await this.#round?.catch(() => undefined);
      return this.#runRound();
    }
    const p = this.#d.registry.payout(payoutId);
    if (!p) throw new OperationRefused('NOT_FOUND', `no payout ${payoutId}`);
    if (p.state === 'sent') return [p];
    const r = await this.#send(p);
    return [r.reason !== undefined ? { ...r.payout, reason: r.reason } : r.payout];
  }

  /**
   * Gives every payout the ledger holds but the registry does not know a `recorded` record, so it
   * is sent. Reads the clearing account's postings (one per payout; payouts are operator actions,
   * so few). Returns the records it wrote.
   */
  async reconcile(): Promise<PayoutRecord[]> {
    const { engine, registry, currency, logger } = this.#d;
    await engine.settled();
    const clearingId = systemAccountId('clearing', currency);
    const written: PayoutRecord[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await engine.history(clearingId, { limit: HISTORY_PAGE, ...(before !== undefined ? { beforeEntryId: before } : {}) });
      const lost = page.flatMap((h) => (h.entryKind === 'payout' && h.requestId !== null && !this.#committing.has(h.requestId) && !registry.payout(h.requestId) ? [h.requestId] : []));
      if (lost.length > 0) {
        for (const record of await this.#fromLedger(lost)) {
          if (registry.payout(record.payoutId) || this.#committing.has(record.payoutId)) continue; // recorded meanwhile
          registry.putPayout(record);
          written.push(record);
        }
      }
      if (page.length < HISTORY_PAGE) break;
      before = (page[page.length - 1] as { entryId: number }).entryId;
    }
    if (written.length > 0) {
      logger.warn({ payouts: written.map((p) => ({ payoutId: p.payoutId, merchantId: p.merchantId, amountMinor: p.amountMinor })) }, 'payouts in the ledger without a registry record recorded again; they will be sent');
    }
    return written;
  }

  /** Stops the timer and waits for the round and the sends in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([this.#round, ...this.#sending.values()]);
  }

  /** The retry timer: a round, then the next one after the interval (doubled per failing round). */
  #arm(delayMs: number): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#runRound()
        .catch((err: unknown) => {
          this.#failingRounds++;
          this.#d.logger.error({ err }, 'payouts: retry round failed');
          return [];
        })
        .then(() => this.#arm(this.#nextDelay()))
        .catch(() => undefined);
    }, delayMs);
    this.#timer.unref();
  }

  #nextDelay(): number {
    const { intervalMs, maxIntervalMs } = this.#retry;
    if (this.#failingRounds === 0) return intervalMs;
    return Math.min(maxIntervalMs, intervalMs * 2 ** Math.min(this.#failingRounds - 1, 30));
  }

  /** One round over the unsent payouts, oldest first; a round already running is joined. */
  #runRound(): Promise<RetriedPayout[]> {
    this.#round ??= this.#round_().finally(() => (this.#round = undefined));
    return this.#round;
  }

  async #round_(): Promise<RetriedPayout[]> {
    if (this.#reconcileDue) {
      this.#reconcileDue = false;
      try {
        await this.reconcile();
      } catch (err) {
        this.#reconcileDue = true;
        this.#d.logger.error({ err }, 'payouts: could not reconcile the ledger with the registry');
      }
    }
    const unsent = this.#d.registry
      .payouts(ALL)
      .filter((p) => p.state !== 'sent')
      .reverse();
    const out: RetriedPayout[] = [];
    let failed = 0;
    for (const p of unsent) {
      if (this.#closed) break;
      const r = await this.#send(p);
      if (r.reason !== undefined) failed++;
      out.push(r.reason !== undefined ? { ...r.payout, reason: r.reason } : r.payout);
    }
    this.#failingRounds = failed > 0 ? this.#failingRounds + 1 : 0;
    if (failed > 0) {
      this.#d.logger.warn({ failed, retryInMs: this.#retry.intervalMs > 0 ? this.#nextDelay() : null }, 'payouts: the clearing did not take every payout; they stay held and are retried');
    }
    return out;
  }

  /** Sends one recorded payout with its id; a send of the same id in flight is joined. */
  #send(p: PayoutRecord): Promise<SendResult> {
    const inFlight = this.#sending.get(p.payoutId);
    if (inFlight) return inFlight;
    const run = this.#sendOnce(p).finally(() => this.#sending.delete(p.payoutId));
    this.#sending.set(p.payoutId, run);
    return run;
  }

  async #sendOnce(p: PayoutRecord): Promise<SendResult> {
    const { registry, clearing, logger } = this.#d;
    const now = registry.payout(p.payoutId) ?? p;
    if (now.state === 'sent') return { payout: now };
    let sent: ClearingResult;
    try {
      sent = await clearing.transfer({ payoutId: now.payoutId, merchantId: now.merchantId, amountMinor: now.amountMinor, currency: now.currency });
    } catch (err) {
      sent = { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
    const final: PayoutRecord = sent.ok ? { ...now, state: 'sent', reference: sent.reference } : { ...now, state: 'failed' };
    try {
      registry.putPayout(final);
    } catch (err) {
      // Not recorded as sent: it is sent again with the same id, and the clearing answers the same.
      logger.error({ err, payoutId: now.payoutId }, 'payouts: could not record the clearing answer');
    }
    const log = { payoutId: now.payoutId, merchantId: now.merchantId, amountMinor: now.amountMinor, currency: now.currency };
    if (sent.ok) {
      if (now.state !== 'recorded') logger.info({ ...log, reference: sent.reference }, 'payouts: held payout sent');
      return { payout: final };
    }
    logger.warn({ ...log, reason: sent.reason }, 'payouts: the clearing did not take the payout; it stays held and is retried');
    return { payout: final, reason: sent.reason };
  }

  #outcome(r: SendResult): PayoutOutcome {
    if (r.reason === undefined) return { ok: true, payout: r.payout };
    const p = r.payout;
    const when = this.#retry.intervalMs > 0 ? `the hub retries it every ${Math.round(this.#retry.intervalMs / 1000)} s (backing off)` : 'the running hub retries it at its start and on its timer';
    return {
      ok: false,
      code: 'UNAVAILABLE',
      detail: `clearing did not take the payout (${r.reason}): ${p.amountMinor} ${p.currency} is debited from ${p.merchantId} and held in clearing; ${when}`,
      payout: p,
      retry: `tapsettle payout retry --payout-id ${p.payoutId}`,
    };
  }

  /** A payout the ledger has under this id, as a `recorded` record (written to the registry). */
  async #adopt(payoutId: string): Promise<PayoutRecord | undefined> {
    await this.#d.engine.settled();
    const [record] = await this.#fromLedger([payoutId]);
    if (!record) return undefined;
    const again = this.#d.registry.payout(payoutId);
    if (again) return again;
    this.#d.registry.putPayout(record);
    this.#d.logger.warn({ payoutId, merchantId: record.merchantId, amountMinor: record.amountMinor }, 'payout in the ledger without a registry record recorded again');
    return record;
  }

  /** Approved ledger payouts among these request ids, as `recorded` records. */
  async #fromLedger(ids: readonly string[]): Promise<PayoutRecord[]> {
    const store = this.#d.engine.store;
    const rows = [...(await store.logByRequestIds(ids)).values()].filter((r) => r.kind === 'payout' && r.state === 'done' && r.payerNum !== null);
    if (rows.length === 0) return [];
    const accounts = await store.accountsByNum(rows.map((r) => r.payerNum as number));
    return rows.flatMap((r) => {
      const merchant = accounts.get(r.payerNum as number);
      if (!merchant) return [];
      return [{ payoutId: r.requestId, merchantId: merchant.id, amountMinor: r.amountMinor, currency: r.currency, state: 'recorded' as const, reference: null, timeMs: r.atMs }];
    });
  }
}
