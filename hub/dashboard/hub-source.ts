/**
 * The real hub as a DashboardSource: ledger reads from the Hub (hub/service), terminal presence
 * from the MQTT server (hub/mqtt), live throughput/latency from a LiveMeter fed by
 * `instrumentHandler`, and the verify-ledger result recomputed in the background every
 * `verifyIntervalMs`, or less often on a ledger that takes long to verify (nextVerifyDelayMs; it
 * reads the whole journal, so never once per page refresh).
 */
import type { Hub } from '../service/hub.ts';
import type { HubServer } from '../mqtt/hub-server.ts';
import { ACCOUNT_FLAG_OVERSPENT } from '../ledger/types.ts';
import type { VerifyReport } from '../ledger/verify.ts';
import type { LiveMeter } from './live-meter.ts';
import type { DashboardAccount, DashboardSettlement, DashboardSnapshot, DashboardSource, DashboardTerminal, DashboardVerify } from './types.ts';

export interface HubSourceOptions {
  readonly hub: Hub;
  /** The MQTT side, once it runs (presence and broker URL). */
  readonly server?: () => HubServer | undefined;
  readonly meter: LiveMeter;
  readonly name?: string;
  readonly verifyIntervalMs?: number;
  readonly clock?: () => number;
  readonly onError?: (err: unknown) => void;
}

export interface HubSource extends DashboardSource {
  /** Runs verify-ledger now and keeps the result for the page. */
  verifyNow(): Promise<DashboardVerify>;
  close(): void;
}

const RECENT_LIMIT = 50;
/** Flagged accounts and blocklisted wallets listed on the page (the counts are complete). */
const MAX_LISTED = 200;
/** Incidents listed on the page, the latest (the CLI lists any: `tapsettle incidents`). */
const MAX_INCIDENTS = 20;

/**
 * Verify reads the whole ledger on the hub's own thread (in pages, yielding between them): on a
 * large ledger it takes seconds (~6-10 s of CPU per million log rows on the development VM). The
 * next run waits at least this many times the last one's duration, so verifying never takes more
 * than a twentieth of the hub's time from settling.
 */
export const VERIFY_DUTY_FACTOR = 20;

/** The wait before the next background verify: the interval, or longer after a slow run. */
export function nextVerifyDelayMs(intervalMs: number, lastDurationMs: number): number {
  return Math.max(intervalMs, Math.ceil(lastDurationMs * VERIFY_DUTY_FACTOR));
}

export function createHubSource(options: HubSourceOptions): HubSource {
  const { hub, meter } = options;
  const clock = options.clock ?? Date.now;
  const onError = options.onError ?? (() => {});
  const startedAtMs = clock();
  const listeners = new Set<() => void>();
  const recent: DashboardSettlement[] = [];
  let verify: DashboardVerify | null = null;
  let verifying: Promise<DashboardVerify> | undefined;

  const stopEvents = hub.onSettlement((e) => {
    recent.unshift({
      requestId: e.requestId,
      kind: e.op,
      status: e.status,
      code: e.code ?? null,
      amountMinor: e.amountMinor,
      currency: e.currency,
      atMs: e.timeMs,
      terminalId: e.terminalId,
    });
    if (recent.length > RECENT_LIMIT) recent.length = RECENT_LIMIT;
    for (const l of listeners) l();
  });

  let lastVerifyMs = 0;
  const verifyNow = (): Promise<DashboardVerify> => {
    const t0 = performance.now();
    verifying ??= hub
      .verifyLedger()
      .then((report): DashboardVerify => {
        verify = { ok: report.ok, checkedAtMs: clock(), detail: describeReport(report) };
        return verify;
      })
      .finally(() => {
        lastVerifyMs = performance.now() - t0;
        verifying = undefined;
      });
    return verifying;
  };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const verifyAndReschedule = (): void => {
    void verifyNow()
      .catch(onError)
      .finally(() => {
        if (closed) return;
        timer = setTimeout(verifyAndReschedule, nextVerifyDelayMs(options.verifyIntervalMs ?? 5_000, lastVerifyMs));
        timer.unref();
      });
  };
  verifyAndReschedule();

  const terminals = (): DashboardTerminal[] => {
    const presence = new Map((options.server?.()?.presence() ?? []).map((p) => [p.terminalId, p]));
    const rows: DashboardTerminal[] = hub.registry.terminals().map((t) => {
      const p = presence.get(t.terminalId);
      presence.delete(t.terminalId);
      return {
        terminalId: t.terminalId,
        kind: t.kind,
        merchantId: t.merchantId,
        state: t.revoked ? 'offline' : (p?.state ?? 'unknown'),
        lastSeenMs: p?.lastSeenMs ?? null,
        sinceMs: p?.sinceMs ?? null,
      };
    });
    for (const p of presence.values()) rows.push({ terminalId: p.terminalId, state: p.state, lastSeenMs: p.lastSeenMs, sinceMs: p.sinceMs });
    return rows.sort((a, b) => a.terminalId.localeCompare(b.terminalId));
  };

  return {
    async snapshot(): Promise<DashboardSnapshot> {
      const now = clock();
      const [holds, flagged] = await Promise.all([hub.engine.pendingHolds(100), hub.engine.flaggedAccounts()]);
      const blocked = hub.blocklist();
      const terminalsByMerchant = new Map<string, number>();
      for (const t of hub.registry.terminals()) terminalsByMerchant.set(t.merchantId, (terminalsByMerchant.get(t.merchantId) ?? 0) + 1);
      const merchantIds = [...terminalsByMerchant.keys()].sort().slice(0, MAX_LISTED);
      const merchantAccounts = await Promise.all(merchantIds.map((id) => hub.engine.getAccount(id)));
      return {
        hub: { name: options.name ?? 'tapsettle hub', mqttUrl: options.server?.()?.url ?? null, startedAtMs, nowMs: now },
        terminals: terminals(),
        settlements: recent,
        holds: holds.map((h) => ({
          requestId: h.requestId,
          walletId: h.walletId,
          merchantId: h.merchantId,
          amountMinor: h.amountMinor,
          currency: h.currency,
          releaseAtMs: h.releaseAtMs,
        })),
        merchants: merchantAccounts.flatMap((a) => (a ? [{ id: a.id, balanceMinor: a.balanceMinor, currency: a.currency, terminals: terminalsByMerchant.get(a.id) ?? 0 }] : [])),
        flagged: flagged.slice(0, MAX_LISTED).map((a) => ({ id: a.id, balanceMinor: a.balanceMinor, currency: a.currency })),
        blocklist: { version: hub.registry.blocklistVersion(), count: blocked.length, wallets: blocked.slice(0, MAX_LISTED).map((b) => b.wallet) },
        incidents: {
          count: hub.registry.incidentCount(),
          latest: hub.incidents({ limit: MAX_INCIDENTS }).map(({ recordedMs: _recorded, ...incident }) => incident),
        },
        verify,
        throughput: meter.snapshot(now),
      };
    },
    async account(id: string): Promise<DashboardAccount | null> {
      const found = await hub.showAccount(id, 50);
      if (!found) return null;
      const { account, history } = found;
      return {
        id: account.id,
        kind: account.kind,
        balanceMinor: account.balanceMinor,
        currency: account.currency,
        flagged: (account.flags & ACCOUNT_FLAG_OVERSPENT) !== 0,
        blocklisted: account.kind === 'wallet' && hub.registry.isBlocklisted(account.id),
        history: history.map((h) => ({ requestId: h.requestId, entryKind: h.entryKind, amountMinor: h.amountMinor, currency: h.currency, atMs: h.atMs })),
      };
    },
    subscribe(onChange) {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
    verifyNow,
    close() {
      closed = true;
      clearTimeout(timer);
      stopEvents();
      listeners.clear();
    },
  };
}

/** One line for the page: the conservation equation per currency, or the first discrepancy. */
export function describeReport(report: VerifyReport): string {
  if (!report.ok) {
    const d = report.firstDiscrepancy;
    return d ? `first discrepancy: ${Object.entries(d).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : 'discrepancy';
  }
  const sums = report.currencies.map(
    (c) =>
      `${c.currency}: issued ${c.issuedMinor} − paid out ${c.redeemedMinor} = wallets ${c.walletsMinor} + merchants ${c.merchantsMinor} + in transit ${c.inTransitMinor} + holds ${c.holdsMinor} + fees ${c.feesMinor}`,
  );
  return `conservation holds across ${report.accounts} accounts${sums.length > 0 ? `; ${sums.join('; ')}` : ''}`;
}
