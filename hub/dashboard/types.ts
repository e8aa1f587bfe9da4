/**
 * What the operator dashboard shows, as plain data. The dashboard depends only on this
 * `DashboardSource`; `hub-source.ts` adapts the real hub (service status, MQTT presence, live
 * meter) to it. Read-only by construction: there is no method that changes anything.
 */

export interface DashboardTerminal {
  readonly terminalId: string;
  /** vending | gate | pos, when the registry knows it. */
  readonly kind?: string;
  readonly merchantId?: string;
  readonly state: 'online' | 'offline' | 'unknown';
  readonly lastSeenMs: number | null;
  readonly sinceMs: number | null;
}

export interface DashboardSettlement {
  readonly requestId: string;
  /** purchase, fare, topup, refund, … */
  readonly kind: string;
  readonly status: 'approved' | 'declined' | 'pending';
  /** Wire error code (INSUFFICIENT_FUNDS…) or ledger decline code, when declined. */
  readonly code?: string | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly atMs: number;
  readonly terminalId?: string;
}

export interface DashboardHold {
  readonly requestId: string;
  readonly walletId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly releaseAtMs: number;
}

export interface DashboardMerchant {
  readonly id: string;
  readonly balanceMinor: number;
  readonly currency: string;
  /** Enrolled terminals selling for this merchant. */
  readonly terminals: number;
}

export interface DashboardFlagged {
  readonly id: string;
  readonly balanceMinor: number;
  readonly currency: string;
}

export interface DashboardVerify {
  readonly ok: boolean;
  readonly checkedAtMs: number;
  /** One line: what was checked, or the first discrepancy. */
  readonly detail: string;
}

export interface DashboardThroughput {
  readonly windowMs: number;
  readonly settledPerS: number;
  readonly declinedPerS: number;
  /** null when nothing happened in the window. */
  readonly latencyMsP50: number | null;
  readonly latencyMsP99: number | null;
  readonly totalSettled: number;
  readonly totalDeclined: number;
  readonly declinedByCode: Readonly<Record<string, number>>;
}

export interface DashboardIncident {
  readonly requestId: string;
  readonly terminalId: string;
  readonly wallet: string;
  readonly kind: string;
  /** The fare left open at that passage (the next exit charges the trip). */
  readonly amountMinor: number;
  readonly currency: string;
  readonly detail: string;
  readonly timeMs: number;
}

export interface DashboardSnapshot {
  readonly hub: {
    readonly name: string;
    readonly mqttUrl: string | null;
    readonly startedAtMs: number;
    readonly nowMs: number;
  };
  readonly terminals: readonly DashboardTerminal[];
  readonly settlements: readonly DashboardSettlement[];
  readonly holds: readonly DashboardHold[];
  /** Merchants with terminals at this hub, and their balances. */
  readonly merchants: readonly DashboardMerchant[];
  readonly flagged: readonly DashboardFlagged[];
  /** `wallets` is the first few hundred; `count` is how many there are. */
  readonly blocklist: { readonly version: number | null; readonly count: number; readonly wallets: readonly string[] };
  /** Incidents terminals reported (what they could not settle): `latest` newest first; `count` how many are kept. */
  readonly incidents: { readonly count: number; readonly latest: readonly DashboardIncident[] };
  readonly verify: DashboardVerify | null;
  readonly throughput: DashboardThroughput;
}

export interface DashboardHistoryItem {
  readonly requestId: string | null;
  readonly entryKind: string;
  /** Signed, from the account's point of view. */
  readonly amountMinor: number;
  readonly currency: string;
  readonly atMs: number;
}

export interface DashboardAccount {
  readonly id: string;
  readonly kind: string;
  readonly balanceMinor: number;
  readonly currency: string;
  readonly flagged: boolean;
  readonly blocklisted: boolean;
  readonly history: readonly DashboardHistoryItem[];
}

export interface DashboardSource {
  snapshot(): Promise<DashboardSnapshot>;
  /** A wallet public key or merchant id; null when no such account. */
  account(id: string): Promise<DashboardAccount | null>;
  /** Called when something changed, so the page updates at once instead of on the next tick. */
  subscribe?(onChange: () => void): () => void;
}
