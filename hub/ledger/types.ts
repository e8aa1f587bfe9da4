// Public types of the ledger and settlement engine. Domain-neutral: the rules layer decides
// prices and permissions; the engine only moves money, durably and exactly once.

/** 32 lowercase hex chars = 128 bits, made by the sender and reused on every retry. */
export type RequestId = string;

interface CommandBase {
  readonly requestId: RequestId;
  /** Optional opaque note from the rules layer (article id, terminal id…); part of the content hash. */
  readonly memo?: string;
}

/**
 * A cancellation window (seed 004 claim 13): the money waits in holds until it ends, then goes to
 * the merchant. At most one of the two fields.
 */
interface HoldFields {
  /** The window's end, absolute (a time the sender knows, e.g. an offline sale's signed time + window). */
  readonly holdUntilMs?: number;
  /**
   * The window's length: it ends holdMs after the ledger logs the command (the engine's clock, the
   * row's time; kept as that absolute time in the row, so recovery and duplicates get the same).
   * Unlike holdUntilMs it is the same on every retry, so the content hash is too.
   */
  readonly holdMs?: number;
}

/** wallet → merchant. With a hold the money waits in holds (seed 004 claim 13). */
export interface PurchaseCommand extends CommandBase, HoldFields {
  readonly kind: 'purchase';
  readonly walletId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  /** Part of amountMinor the merchant pays to the fees account on deposit. */
  readonly feeMinor?: number;
}

/** wallet → transit merchant (gate exit fare, seed 004 claim 11). */
export interface FareCommand extends CommandBase {
  readonly kind: 'fare';
  readonly walletId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly feeMinor?: number;
}

/**
 * Uploaded offline authorization (seed 002): may overdraw; then the wallet is flagged. With a
 * hold the money waits in holds as a purchase's does (an offline sale whose cancellation window
 * is still open when it is uploaded).
 */
export interface OfflinePurchaseCommand extends CommandBase, HoldFields {
  readonly kind: 'offline_purchase';
  readonly walletId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly feeMinor?: number;
}

/** Full reversal of a purchase/fare/offline_purchase by its request id, at most once. */
export interface RefundCommand extends CommandBase {
  readonly kind: 'refund';
  readonly originalRequestId: RequestId;
}

/** issuer float → wallet (seed 004 claims 34–35). */
export interface TopupCommand extends CommandBase {
  readonly kind: 'topup';
  readonly walletId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly source: 'cash' | 'card';
}

/** wallet → wallet (seed 001 figs. 8–9). */
export interface TransferCommand extends CommandBase {
  readonly kind: 'transfer';
  readonly fromWalletId: string;
  readonly toWalletId: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/** merchant → clearing (seed 001 fig. 11). */
export interface PayoutCommand extends CommandBase {
  readonly kind: 'payout';
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
}

export type Command =
  | PurchaseCommand
  | FareCommand
  | OfflinePurchaseCommand
  | RefundCommand
  | TopupCommand
  | TransferCommand
  | PayoutCommand;

export type CommandKind = Command['kind'];

export const DECLINE_CODES = [
  'insufficient_funds',
  'unknown_account',
  'currency_mismatch',
  'duplicate_mismatch',
  // No longer decided by the ledger (the window is the service's rule); kept for the declined
  // refunds older ledgers logged with it, which a retry is answered from.
  'cancel_window_closed',
  'already_refunded',
  'not_found',
  'not_refundable',
  'same_account',
  'balance_limit',
] as const;
export type DeclineCode = (typeof DECLINE_CODES)[number];

export interface ApprovedOutcome {
  readonly status: 'approved';
  readonly requestId: RequestId;
  readonly kind: CommandKind;
  /** Log sequence number of the request (the settlement log's order). */
  readonly seq: number;
  /** Journal entry of the withdrawal (or the single entry for topup/payout/refund). */
  readonly entryId: number;
  readonly amountMinor: number;
  readonly currency: string;
  /** Balance of the paying side after the withdrawal (the wallet's, for topup and refund). */
  readonly balanceAfterMinor: number;
  readonly atMs: number;
  /** Set when the money waits in holds until this time (cancellation window; a holdMs made absolute at logging). */
  readonly holdUntilMs?: number;
  /** Set on offline_purchase that overdrew: the caller should blocklist the wallet (seed 002). */
  readonly overspent?: true;
}

export interface DeclinedOutcome {
  readonly status: 'declined';
  readonly requestId: RequestId;
  readonly kind: CommandKind;
  readonly code: DeclineCode;
  /** 0 for duplicate_mismatch (never logged). */
  readonly seq: number;
  readonly atMs: number;
}

export type Outcome = ApprovedOutcome | DeclinedOutcome;

export type AccountKind = 'wallet' | 'merchant' | 'float' | 'clearing' | 'in_transit' | 'holds' | 'fees';
export const SYSTEM_KINDS = ['float', 'clearing', 'in_transit', 'holds', 'fees'] as const;
export type SystemKind = (typeof SYSTEM_KINDS)[number];

export const ACCOUNT_FLAG_OVERSPENT = 1;

export interface Account {
  /** Internal account number (journal postings refer to it). */
  readonly num: number;
  /** Wallet public key hex, merchant id, or `@kind:CUR` for system accounts. */
  readonly id: string;
  readonly kind: AccountKind;
  readonly currency: string;
  readonly balanceMinor: number;
  readonly parentNum: number | null;
  readonly shareBps: number;
  readonly flags: number;
  readonly createdMs: number;
}

export interface HistoryItem {
  readonly entryId: number;
  readonly seq: number;
  readonly entryKind: EntryKind;
  readonly amountMinor: number;
  readonly currency: string;
  readonly atMs: number;
  readonly requestId: RequestId | null;
}

export type EntryKind = 'withdraw' | 'deposit' | 'hold' | 'release' | 'refund' | 'topup' | 'payout';

export interface HoldInfo {
  readonly seq: number;
  readonly requestId: RequestId;
  readonly walletId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly releaseAtMs: number;
}

export interface SettlementSummary {
  readonly seq: number;
  readonly requestId: RequestId;
  readonly kind: CommandKind;
  readonly state: LogState;
  readonly status: 'approved' | 'declined' | 'pending';
  readonly code: DeclineCode | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly atMs: number;
}

/** logged → withdrawn → done; or logged → held → done (released) / refunded; or declined. */
export type LogState = 'logged' | 'withdrawn' | 'held' | 'done' | 'declined';
