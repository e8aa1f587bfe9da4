// Local risk policy (pure): what a terminal may accept without the hub (seed 002 offline
// acceptance on license + signature) and what a gate may open on before the hub settles
// (PRODUCT.md §3, Suica-style local decision). Limits: per wallet from its license, per terminal
// per period, the blocklist of the last announcement, and the age of the wallet's statement.
import { DEFAULT_MAX_SKEW_MS, verifyMessage, verifyWalletLicense, type Body, type Envelope, type ErrorCode } from '../../protocol/index.ts';
import type { PaidExit } from '../machines/types.ts';

export interface RiskLimits {
  /** Total a terminal may accept on its own per period (offline and local gate decisions). */
  terminalPeriodMinor: number;
  periodMs: number;
  /** A hub statement older than this no longer counts for a local decision. */
  maxStatementAgeMs: number;
  /** Largest single amount accepted without the hub. */
  maxSingleMinor: number;
}

export const DEFAULT_RISK_LIMITS: RiskLimits = {
  terminalPeriodMinor: 50_000,
  periodMs: 24 * 3600_000,
  maxStatementAgeMs: 7 * 24 * 3600_000,
  maxSingleMinor: 2_000,
};

/** Read-only usage figures from the terminal's durable store. */
export interface UsageView {
  /**
   * Amount this terminal accepted locally for the wallet and the hub has not settled; with
   * `sinceMs`, also what it settled of those decided after that time (terminal clock): what a
   * statement of then may not know about.
   */
  walletLocalMinor(wallet: string, sinceMs?: number): number;
  /**
   * Amount this terminal accepted locally in the current period (the runtime measures the period
   * on the terminal's running time, so a wall-clock step frees no budget: TerminalStore).
   */
  terminalPeriodMinor(nowMs: number): number;
  /** A ticket this terminal already accepted (anti-reuse while the hub is away). */
  ticketUsed(ticketId: string): boolean;
  /**
   * Exit gate: an admission record (by its recordId) this gate already let a wallet out on. A
   * copy written back to the wallet proves no entry: a ticket trip is never reported to the hub,
   * and a fare on a local decision is refused by the hub only after the barrier opened.
   */
  admissionUsed?(recordId: string): boolean;
  /**
   * Gate: an exit this wallet paid for and did not make (a fare the hub approved after this gate
   * had turned the customer away, or no passage after the barrier opened): the next tap of that
   * wallet opens without charging again. Its grant, while valid.
   */
  paidExit?(wallet: string, nowMs: number): Omit<PaidExit, 'wallet'> | undefined;
  /** A request for this wallet was given up on but may still settle: do not start another one. */
  abandonedFor?(wallet: string): boolean;
  /**
   * Gate: this terminal let the wallet through on a local decision and it never signed the fare
   * (policy/unsigned.ts). Such fares are also counted in walletLocalMinor / terminalPeriodMinor.
   */
  unsignedPassage?(wallet: string): boolean;
  /**
   * Rows left in the durable outbox (requests the hub has not answered). Whatever is accepted
   * without the hub needs one, and a full outbox refuses the write after the goods or the passage
   * were given: no local decision without room to queue it.
   */
  outboxRoom?(): number;
}

/** Outbox rows kept free for what is queued whatever the limits (ticket uses, incidents, online requests). */
export const OUTBOX_RESERVE = 100;

/** Room to queue one more request accepted without the hub, beyond the reserve. */
export function outboxHasRoom(usage: UsageView, reserve = OUTBOX_RESERVE): boolean {
  return (usage.outboxRoom?.() ?? Infinity) > reserve;
}

export type LicenseCheck = { ok: true; body: Body<'wallet.license'>; license: Envelope<'wallet.license'> } | { ok: false; code: ErrorCode };

/** The wallet's license chains to a trusted issuer, is valid now, and the wallet is not blocklisted. */
export function checkLicense(
  license: Envelope<'wallet.license'> | null,
  trust: { issuerKeys: readonly string[]; blocklist: ReadonlySet<string> },
  nowMs: number,
): LicenseCheck {
  if (!license) return { ok: false, code: 'MALFORMED' };
  const r = verifyWalletLicense(license, { trustedIssuers: trust.issuerKeys, nowMs });
  if (!r.ok) return r;
  if (trust.blocklist.has(r.body.wallet)) return { ok: false, code: 'BLOCKLISTED' };
  return { ok: true, body: r.body, license };
}

export type RiskDecision = { ok: true; basis: 'statement' | 'offline-limit' } | { ok: false; code: ErrorCode };

function withinTerminalLimits(amountMinor: number, usage: UsageView, limits: RiskLimits, nowMs: number): boolean {
  return amountMinor <= limits.maxSingleMinor && usage.terminalPeriodMinor(nowMs) + amountMinor <= limits.terminalPeriodMinor && outboxHasRoom(usage);
}

/** Offline acceptance (hub unreachable): only the license's own offline limit backs it. */
export function decideOffline(
  license: Body<'wallet.license'>,
  amountMinor: number,
  currency: string,
  usage: UsageView,
  limits: RiskLimits,
  nowMs: number,
): RiskDecision {
  if (currency !== license.currency) return { ok: false, code: 'CURRENCY_MISMATCH' };
  if (!withinTerminalLimits(amountMinor, usage, limits, nowMs)) return { ok: false, code: 'OFFLINE_LIMIT' };
  if (usage.walletLocalMinor(license.wallet) + amountMinor > license.offlineLimitMinor) return { ok: false, code: 'OFFLINE_LIMIT' };
  return { ok: true, basis: 'offline-limit' };
}

/** A statement the terminal may rely on: hub-signed by a trusted key, this wallet, fresh enough. */
export function trustedStatement(
  statement: Envelope<'balance.statement'> | null,
  wallet: string,
  hubKeys: readonly string[],
  limits: RiskLimits,
  nowMs: number,
): Body<'balance.statement'> | null {
  if (!statement) return null;
  const b = statement.body;
  if (b.wallet !== wallet || !hubKeys.includes(b.hubKey)) return null;
  if (nowMs - b.asOf > limits.maxStatementAgeMs || b.asOf > nowMs + DEFAULT_MAX_SKEW_MS) return null;
  return verifyMessage(statement, b.hubKey) ? b : null;
}

/**
 * A gate's local decision at exit: open now and let the hub settle behind, or wait for the hub.
 * First the license's own offline credit (what the issuer lets a wallet spend on license and
 * signature alone, seed 002) minus what this gate let through unsettled — no statement needed,
 * which keeps the NFC read short. Beyond that, a fresh hub-signed statement that covers the fare
 * (minus what this gate let through since it was issued). `statement: undefined` means "not read
 * yet": the answer is then `need-statement` instead of a refusal.
 */
export function decideGateLocal(input: {
  license: Body<'wallet.license'>;
  statement: Envelope<'balance.statement'> | null | undefined;
  fareMinor: number;
  currency: string;
  hubKeys: readonly string[];
  usage: UsageView;
  limits: RiskLimits;
  nowMs: number;
}): RiskDecision | { ok: 'need-statement' } {
  const { license, fareMinor, usage, limits, nowMs } = input;
  if (input.currency !== license.currency) return { ok: false, code: 'CURRENCY_MISMATCH' };
  // A wallet that left here once without signing gets no more credit: the hub approves first.
  if (usage.unsignedPassage?.(license.wallet)) return { ok: false, code: 'OFFLINE_LIMIT' };
  if (!withinTerminalLimits(fareMinor, usage, limits, nowMs)) return { ok: false, code: 'OFFLINE_LIMIT' };
  if (usage.walletLocalMinor(license.wallet) + fareMinor <= license.offlineLimitMinor) return { ok: true, basis: 'offline-limit' };
  if (input.statement === undefined) return { ok: 'need-statement' };
  const st = trustedStatement(input.statement, license.wallet, input.hubKeys, limits, nowMs);
  if (!st) return { ok: false, code: 'OFFLINE_LIMIT' };
  // asOf is the hub's clock, the rows' dates this terminal's: reach back by the clock skew the
  // protocol allows, so a gate running behind counts an exit it let through just after the
  // statement (counting one twice only refuses sooner). Unsettled exits count whatever their
  // date: a stale clock's rows look old, and the hub has not seen them.
  const since = usage.walletLocalMinor(license.wallet, st.asOf - DEFAULT_MAX_SKEW_MS);
  if (st.currency === input.currency && st.balanceMinor - since >= fareMinor) return { ok: true, basis: 'statement' };
  return { ok: false, code: 'INSUFFICIENT_FUNDS' };
}
