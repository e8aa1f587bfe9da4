/**
 * An in-memory DashboardSource: for the dashboard's own tests and for previewing the page
 * without a hub (`npx tsx hub/dashboard/preview.ts`). The real one is `hub-source.ts`.
 */
import { LiveMeter } from './live-meter.ts';
import type { DashboardAccount, DashboardHold, DashboardIncident, DashboardMerchant, DashboardSnapshot, DashboardSource, DashboardTerminal } from './types.ts';

export class FixtureSource implements DashboardSource {
  readonly meter = new LiveMeter({ windowMs: 10_000 });
  terminals: DashboardTerminal[] = [];
  holds: DashboardHold[] = [];
  merchants: DashboardMerchant[] = [];
  blocklist: string[] = [];
  incidents: DashboardIncident[] = [];
  accounts = new Map<string, DashboardAccount>();
  private readonly listeners = new Set<() => void>();
  private readonly startedAtMs = Date.now();

  /** Records one settlement as the hub would and notifies the page. */
  settle(row: { requestId: string; terminalId: string; status: 'approved' | 'declined'; code?: string; amountMinor: number; currency?: string; kind?: string; latencyMs?: number }): void {
    const now = Date.now();
    this.meter.record(now, row.latencyMs ?? 1, row.status, row.code ?? null);
    this.meter.remember({ requestId: row.requestId, terminalId: row.terminalId, status: row.status, code: row.code ?? null, amountMinor: row.amountMinor, currency: row.currency ?? 'EUR', kind: row.kind ?? 'purchase', atMs: now });
    for (const l of this.listeners) l();
  }

  async snapshot(): Promise<DashboardSnapshot> {
    const now = Date.now();
    return {
      hub: { name: 'fixture hub', mqttUrl: 'mqtt://127.0.0.1:0', startedAtMs: this.startedAtMs, nowMs: now },
      terminals: this.terminals,
      settlements: this.meter.recent(),
      holds: this.holds,
      merchants: this.merchants,
      flagged: [...this.accounts.values()].filter((a) => a.flagged).map((a) => ({ id: a.id, balanceMinor: a.balanceMinor, currency: a.currency })),
      blocklist: { version: this.blocklist.length > 0 ? 1 : null, count: this.blocklist.length, wallets: this.blocklist },
      incidents: { count: this.incidents.length, latest: this.incidents },
      verify: { ok: true, checkedAtMs: now, detail: 'fixture: conservation holds' },
      throughput: this.meter.snapshot(now),
    };
  }

  async account(id: string): Promise<DashboardAccount | null> {
    return this.accounts.get(id) ?? null;
  }

  subscribe(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }
}
