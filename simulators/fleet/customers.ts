/**
 * Simulated customers for the demo site: they top up at the POS, buy at the café and the
 * vending machine, travel through the gates (entry, then exit at another station), cancel a
 * purchase inside its window, and sometimes fail: not enough money, a restricted article (age,
 * staff only), a jammed dispenser (refunded), an exit without an entry record (maximum fare).
 */
import type { LineItemT } from '../../protocol/index.ts';
import { DEMO_CATALOGS, DEMO_PRODUCTS } from './demo-data.ts';
import type { SiteOutcome, SiteTerminal } from './site-terminal.ts';
import type { SimWallet } from './wallets.ts';

export type CustomerAction = 'topup' | 'pos' | 'ticket' | 'vending' | 'vending-jam' | 'enter' | 'exit' | 'exit-no-entry' | 'cancel';

export interface CustomerEvent {
  readonly wallet: string;
  readonly action: CustomerAction;
  readonly terminalId: string;
  readonly outcome?: SiteOutcome;
  readonly error?: string;
}

export interface CustomerSimOptions {
  readonly terminals: readonly SiteTerminal[];
  readonly wallets: readonly SimWallet[];
  /** Customer actions started per second across the site. */
  readonly actionsPerS: number;
  readonly operatorId?: string;
  readonly random?: () => number;
  readonly onEvent?: (e: CustomerEvent) => void;
  /** Refreshes `wallet.balanceMinor` after each action (the demo asks the hub). */
  readonly refreshBalance?: (w: SimWallet) => Promise<void>;
}

export interface CustomerSim {
  counts(): Readonly<Record<string, number>>;
  stop(): Promise<void>;
}

const LOW_BALANCE_MINOR = 800;

function articlesOf(merchantId: string): ReadonlyArray<{ sku: string; priceMinor: number }> {
  return DEMO_CATALOGS.find((c) => c.merchantId === merchantId)?.articles ?? [];
}

export function startCustomers(o: CustomerSimOptions): CustomerSim {
  if (!(o.actionsPerS > 0)) throw new Error(`actionsPerS must be > 0, got ${o.actionsPerS}`);
  const random = o.random ?? Math.random;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const byKind = (k: string) => o.terminals.filter((t) => t.kind === k);
  const gates = byKind('gate');
  const pos = byKind('pos');
  const vending = byKind('vending');
  const busy = new Set<string>();
  const inflight = new Set<Promise<void>>();
  const counts: Record<string, number> = {};
  const bump = (key: string) => (counts[key] = (counts[key] ?? 0) + 1);

  const line = (t: SiteTerminal, sku?: string): LineItemT[] => {
    const articles = articlesOf(t.merchantId);
    let a = sku ? (articles.find((x) => x.sku === sku) ?? pick(articles)) : pick(articles);
    // Restricted articles (beer, the staff meal) are tried now and then, not a quarter of the time.
    if (!sku && 'restriction' in a && random() < 0.6) a = pick(articles.filter((x) => !('restriction' in x)));
    return [{ sku: a.sku, qty: 1, unitMinor: a.priceMinor }];
  };

  const entryGates = gates.filter((g) => g.gateMode !== 'exit');
  const exitGates = gates.filter((g) => g.gateMode !== 'entry');

  const choose = (w: SimWallet): { action: CustomerAction; terminal: SiteTerminal } | undefined => {
    const now = Date.now();
    for (const [rid, until] of w.cancellable) if (until <= now) w.cancellable.delete(rid);
    const low = w.balanceMinor !== null && w.balanceMinor < LOW_BALANCE_MINOR;
    // Frank rarely tops up: he is the one who keeps running out of money.
    if (pos.length > 0 && low && random() < (w.name === 'frank' ? 0.2 : 0.8)) return { action: 'topup', terminal: pick(pos) };
    if (w.admission && exitGates.length > 0) {
      const elsewhere = exitGates.filter((g) => g.station !== w.admission!.station);
      return { action: 'exit', terminal: elsewhere.length > 0 ? pick(elsewhere) : pick(exitGates) };
    }
    if (pos.length > 0 && w.cancellable.size > 0 && random() < 0.35) return { action: 'cancel', terminal: pick(pos) };
    // Now and then a day pass: the next entry uses it (single use) and that trip costs no fare.
    const ticketSellers = pos.filter((t) => t.sellTicket !== undefined);
    if (ticketSellers.length > 0 && random() < 0.04) return { action: 'ticket', terminal: pick(ticketSellers) };
    const r = random();
    if (r < 0.3 && entryGates.length > 0 && exitGates.length > 0) {
      return random() < 0.06 ? { action: 'exit-no-entry', terminal: pick(exitGates) } : { action: 'enter', terminal: pick(entryGates) };
    }
    if (r < 0.6 && vending.length > 0) return { action: random() < 0.08 ? 'vending-jam' : 'vending', terminal: pick(vending) };
    if (r < 0.95 && pos.length > 0) return { action: 'pos', terminal: pick(pos) };
    if (pos.length > 0) return { action: 'topup', terminal: pick(pos) };
    return undefined;
  };

  const act = async (w: SimWallet, action: CustomerAction, t: SiteTerminal): Promise<SiteOutcome | undefined> => {
    switch (action) {
      case 'topup':
        return t.topupCash(w, 1_000 + Math.floor(random() * 4) * 1_000, o.operatorId ?? 'staff-1');
      case 'pos':
        return t.purchase(w, line(t));
      case 'ticket':
        return t.sellTicket!(w, DEMO_PRODUCTS.products[0]!.name);
      case 'vending':
        return t.purchase(w, line(t));
      case 'vending-jam':
        return t.purchase(w, line(t, 'cola'), { dispenseFails: true });
      case 'cancel':
        return t.cancel(w, [...w.cancellable.keys()][0]!);
      case 'enter':
        return t.enter(w);
      case 'exit':
        return t.exit(w);
      case 'exit-no-entry':
        w.admission = null;
        return t.exit(w);
    }
  };

  const tick = () => {
    const idle = o.wallets.filter((w) => !busy.has(w.publicKey));
    if (idle.length === 0) return;
    const w = pick(idle);
    const choice = choose(w);
    if (!choice) return;
    busy.add(w.publicKey);
    const run = act(w, choice.action, choice.terminal)
      .then((outcome) => {
        bump(outcome ? (outcome.status === 'approved' ? `${choice.action}:approved` : `${choice.action}:${outcome.code ?? 'declined'}`) : `${choice.action}:ok`);
        o.onEvent?.({ wallet: w.name, action: choice.action, terminalId: choice.terminal.terminalId, ...(outcome ? { outcome } : {}) });
      })
      .catch((err: unknown) => {
        bump(`${choice.action}:error`);
        o.onEvent?.({ wallet: w.name, action: choice.action, terminalId: choice.terminal.terminalId, error: err instanceof Error ? err.message : String(err) });
      })
      .then(() => o.refreshBalance?.(w))
      .catch(() => undefined)
      .finally(() => {
        busy.delete(w.publicKey);
        inflight.delete(run);
      });
    inflight.add(run);
  };

  const timer = setInterval(tick, Math.max(5, Math.round(1000 / o.actionsPerS)));
  return {
    counts: () => ({ ...counts }),
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...inflight]);
    },
  };
}
