// Point of sale (seed 004 claims 8, 9, 12, 13, 34): the cashier enters items → the wallet signs
// the offer → terminal-signed request → on the VERIFIED hub result: receipt + the hub statement
// stored on the wallet. Also: cancellation inside the window (wallet-signed cancellation) and a
// staff-authorized cash top-up.
import { sha256, toHex, utf8, linesTotalMinor, type Body, type Envelope, type LineItemT } from '../../protocol/index.ts';
import { checkLicense, decideOffline } from '../policy/risk.ts';
import { checkHubResult, isRetryLater, restrictionAllows } from './checks.ts';
import { CHARGED_AT_MOST_ONCE_TEXT, FOREIGN_SIGNATURE_TEXT, HUB_BUSY_TEXT, NOT_CHARGED_TEXT, PAYMENT_PENDING_TEXT, TOPUP_PENDING_TEXT, catalogVersionOf, display, price, type CommonEvent, type Command, type Step, type TerminalContext } from './types.ts';

export interface PosOperator {
  id: string;
  /** sha256(PIN) as hex: the PIN itself is never stored. */
  pinSha256: string;
}

type SettleKind = 'purchase' | 'topup' | 'cancel' | 'ticket';

export type PosState =
  | { s: 'idle' }
  | { s: 'cart'; lines: LineItemT[] }
  | { s: 'awaiting.tap'; mode: 'purchase'; lines: LineItemT[]; totalMinor: number; untilMs: number }
  | { s: 'awaiting.tap'; mode: 'topup'; amountMinor: number; operatorId: string; untilMs: number }
  /** Ticket vending (seed 004 claims 15–16): the hub signs the ticket, the wallet stores it. */
  | { s: 'awaiting.tap'; mode: 'ticket'; product: string; priceMinor: number; untilMs: number }
  | { s: 'authorizing'; lines: LineItemT[]; totalMinor: number; requestId: string; license: Envelope<'wallet.license'>; untilMs: number; product?: string }
  | { s: 'settling'; kind: SettleKind; requestId: string; lines: LineItemT[]; untilMs: number }
  /**
   * Writing hub-signed tickets (held durably in the terminal store, `ticket.hold`) to the wallet in
   * the field: waits for each `ticket.stored`. `lines`: the cart to go back to (a collecting tap).
   */
  | { s: 'delivering'; ticketIds: string[]; failed: boolean; lines: LineItemT[]; untilMs: number }
  /**
   * A wallet with held tickets tapped: its license is public (any reader can copy it), so the
   * tickets go only to the wallet that signs a fresh zero-amount offer with the license's key.
   */
  | { s: 'collecting'; wallet: string; lines: LineItemT[]; untilMs: number };

export type PosEvent =
  | CommonEvent
  | { e: 'item.add'; sku: string; qty: number }
  | { e: 'clear' }
  | { e: 'checkout' }
  | { e: 'topup'; amountMinor: number; operatorId: string; pin: string }
  | { e: 'ticket.sell'; product: string }
  /** A wallet-signed cancellation (from the wallet app) of a purchase made here. */
  | { e: 'cancel'; cancellation: Envelope<'cancellation'>; requestId: string }
  /** The outcome of an `nfc.store` of a ticket: `ok` = the wallet holds it now. */
  | { e: 'ticket.stored'; ticketId: string; ok: boolean };

export const POS_IDLE: PosState = { s: 'idle' };

const TAP_MS = 60_000;
const AUTHORIZE_MS = 10_000;
const MAX_TOPUP_MINOR = 100_000;
/** Writing a ticket to the wallet: a few APDUs; the runtime's exchange timeout answers sooner. */
const DELIVER_MS = 5_000;
/** The ticket is paid for and kept here; the wallet did not take it (left the field, full). */
export const COLLECT_TICKET_TEXT = 'paid — tap your wallet again to collect your ticket';
/** A wallet with held tickets tapped: it signs a zero-amount offer to prove it holds the license's key. */
export const COLLECTING_TEXT = 'your ticket is here — confirm on your wallet to collect it';

function step(state: PosState, commands: Command[] = []): Step<PosState> {
  return { state, commands };
}

/** Write these hub-signed tickets to the wallet in the field, then go back to `lines`. */
function deliver(tickets: readonly Envelope<'ticket'>[], lines: LineItemT[], nowMs: number, before: Command[] = []): Step<PosState> {
  return step({ s: 'delivering', ticketIds: tickets.map((t) => t.body.ticketId), failed: false, lines, untilMs: nowMs + DELIVER_MS }, [
    ...before,
    ...tickets.map((t): Command => ({ c: 'nfc.store', kind: 'Ticket', message: t, replace: false, ticketId: t.body.ticketId })),
    display('storing the ticket on your wallet — keep it on the reader'),
  ]);
}

/**
 * The wallet signed the collection offer (the runtime has checked the signature and that it
 * answers this very offer): its tickets are written only if it signed with the key of the
 * license it showed.
 */
function collect(state: Extract<PosState, { s: 'collecting' }>, authorization: Envelope<'wallet.authorization'>, ctx: TerminalContext, nowMs: number): Step<PosState> {
  const a = authorization.body;
  if (a.wallet !== state.wallet || a.purpose !== 'ticket' || a.amountMinor !== 0) {
    return step(backTo(state.lines), [display('wallet refused: not the license holder', 'error'), { c: 'nfc.release' }]);
  }
  const held = ctx.heldTickets?.(state.wallet) ?? [];
  if (held.length === 0) return step(backTo(state.lines), [{ c: 'nfc.release' }]);
  return deliver(held, state.lines, nowMs);
}

/**
 * The wallet did not sign (declined, or left the field): the same sale waits for the next tap. A
 * ticket sale stays a ticket sale — as a purchase it would be an offer for an empty cart, which
 * offline is even accepted (paid, and no ticket).
 */
function tapAgain(state: Extract<PosState, { s: 'authorizing' }>, nowMs: number): PosState {
  const untilMs = nowMs + TAP_MS;
  if (state.product !== undefined) return { s: 'awaiting.tap', mode: 'ticket', product: state.product, priceMinor: state.totalMinor, untilMs };
  return { s: 'awaiting.tap', mode: 'purchase', lines: state.lines, totalMinor: state.totalMinor, untilMs };
}

function backTo(lines: LineItemT[]): PosState {
  return lines.length > 0 ? { s: 'cart', lines } : POS_IDLE;
}

function cartOf(state: PosState): LineItemT[] | null {
  if (state.s === 'idle') return [];
  if (state.s === 'cart') return state.lines;
  return null;
}

export function pinMatches(operators: readonly PosOperator[], operatorId: string, pin: string): boolean {
  const op = operators.find((o) => o.id === operatorId);
  return op !== undefined && op.pinSha256 === toHex(sha256(utf8(pin)));
}

/** A slip's line item: `2 x bread @ 1.20 EUR`. */
function lineItemText(l: LineItemT, currency: string): string {
  return `${l.qty} x ${l.sku} @ ${price(l.unitMinor, currency)}`;
}

function receiptLines(ctx: TerminalContext, kind: SettleKind, lines: LineItemT[], r: Body<'settlement.result'>): string[] {
  const out = [`${ctx.merchantId} — terminal ${ctx.terminalId}`];
  for (const l of lines) out.push(lineItemText(l, r.currency));
  const label = { purchase: 'TOTAL', topup: 'TOP-UP', cancel: 'REFUND', ticket: 'TICKET' }[kind];
  out.push(`${label} ${price(r.amountMinor, r.currency)}`);
  if (r.ticket) out.push(`ticket ${r.ticket.body.product} valid until ${new Date(r.ticket.body.validUntil).toISOString()}`);
  if (r.holdUntil !== undefined) out.push(`cancellable until ${new Date(r.holdUntil).toISOString()}`);
  if (r.statement) out.push(`balance ${price(r.statement.body.balanceMinor, r.statement.body.currency)}`);
  out.push(`ref ${r.requestId}`);
  return out;
}

export function posStep(state: PosState, event: PosEvent, ctx: TerminalContext, nowMs: number, operators: readonly PosOperator[] = []): Step<PosState> {
  switch (event.e) {
    case 'item.add': {
      const lines = cartOf(state);
      if (!lines) return step(state);
      const article = ctx.catalog.find((a) => a.sku === event.sku);
      if (!article || article.currency !== ctx.currency) return step(state, [display(`unknown article ${event.sku}`, 'error')]);
      if (!Number.isInteger(event.qty) || event.qty < 1 || event.qty > 1000 || lines.length >= 64) return step(state, [display('invalid quantity', 'error')]);
      const next = [...lines, { sku: article.sku, qty: event.qty, unitMinor: article.priceMinor }];
      return step({ s: 'cart', lines: next }, [display(`${next.length} items, ${price(linesTotalMinor(next), ctx.currency)}`)]);
    }
    case 'clear':
      if (state.s === 'settling') return step(state);
      return step(POS_IDLE, [display('cleared'), { c: 'nfc.release' }]);
    case 'checkout': {
      if (state.s !== 'cart' || state.lines.length === 0) return step(state);
      const totalMinor = linesTotalMinor(state.lines);
      return step({ s: 'awaiting.tap', mode: 'purchase', lines: state.lines, totalMinor, untilMs: nowMs + TAP_MS }, [display(`pay ${price(totalMinor, ctx.currency)} — tap your wallet`)]);
    }
    case 'topup': {
      if (state.s !== 'idle') return step(state);
      if (!pinMatches(operators, event.operatorId, event.pin)) return step(state, [display('staff PIN refused', 'error')]);
      if (!Number.isSafeInteger(event.amountMinor) || event.amountMinor < 1 || event.amountMinor > MAX_TOPUP_MINOR) return step(state, [display('invalid amount', 'error')]);
      // Issuing money needs the hub's ledger: never offline (seed 004 claim 34).
      if (!ctx.online) return step(state, [display('top-up needs the hub', 'error')]);
      return step({ s: 'awaiting.tap', mode: 'topup', amountMinor: event.amountMinor, operatorId: event.operatorId, untilMs: nowMs + TAP_MS }, [
        display(`top-up ${price(event.amountMinor, ctx.currency)} — tap the wallet`),
      ]);
    }
    case 'ticket.sell': {
      if (state.s !== 'idle') return step(state);
      if (!ctx.online) return step(state, [display('tickets need the hub', 'error')]);
      // Priced by the hub's announced products, as articles by the catalog: the hub declines another price.
      const product = ctx.ticketProducts.find((p) => p.name === event.product);
      if (!product || product.currency !== ctx.currency) return step(state, [display(`unknown ticket ${event.product}`, 'error')]);
      return step({ s: 'awaiting.tap', mode: 'ticket', product: product.name, priceMinor: product.priceMinor, untilMs: nowMs + TAP_MS }, [
        display(`${product.name}: ${price(product.priceMinor, ctx.currency)} — tap your wallet`),
      ]);
    }
    case 'cancel': {
      if (state.s !== 'idle') return step(state);
      if (!ctx.online) return step(state, [display('cancellation needs the hub', 'error')]);
      return step({ s: 'settling', kind: 'cancel', requestId: event.requestId, lines: [], untilMs: nowMs + ctx.timeouts.hubMs }, [
        { c: 'hub.request', requestId: event.requestId, op: { type: 'cancel', cancellation: event.cancellation }, offline: false, wallet: event.cancellation.body.wallet, amountMinor: 0 },
        display('cancelling…'),
      ]);
    }
    case 'tap': {
      if (state.s === 'idle' || state.s === 'cart') {
        // A wallet whose ticket sold here could not be written to it comes to collect it.
        const lic = checkLicense(event.card.license, ctx, nowMs);
        const held = lic.ok ? (ctx.heldTickets?.(lic.body.wallet) ?? []) : [];
        if (lic.ok && held.length > 0) {
          return step({ s: 'collecting', wallet: lic.body.wallet, lines: state.s === 'cart' ? state.lines : [], untilMs: nowMs + AUTHORIZE_MS }, [
            { c: 'nfc.authorize', offer: { purpose: 'ticket', amountMinor: 0, currency: ctx.currency, lines: [] } },
            display(COLLECTING_TEXT),
          ]);
        }
      }
      if (state.s !== 'awaiting.tap') return step(state, [{ c: 'nfc.release' }]);
      const lic = checkLicense(event.card.license, ctx, nowMs);
      if (!lic.ok) return step(state, [display(`wallet refused: ${lic.code}`, 'error'), { c: 'nfc.release' }]);
      // An earlier charge or top-up of this wallet went unanswered (timeout, "retry later") and is
      // still being re-sent: taking it again could charge (or credit) twice when the first is
      // approved late. Wait for the hub's answer, as the exit gate does; the cart stays.
      if (ctx.usage.abandonedFor?.(lic.body.wallet)) return step(state, [display(PAYMENT_PENDING_TEXT, 'error'), { c: 'nfc.release' }]);
      if (state.mode === 'topup') {
        if (!ctx.online) return step(POS_IDLE, [display('top-up needs the hub', 'error'), { c: 'nfc.release' }]);
        const op = { type: 'topup' as const, wallet: lic.body.wallet, amountMinor: state.amountMinor, currency: ctx.currency, method: 'cash' as const, operatorId: state.operatorId };
        return step({ s: 'settling', kind: 'topup', requestId: event.requestId, lines: [], untilMs: nowMs + ctx.timeouts.hubMs }, [
          { c: 'hub.request', requestId: event.requestId, op, offline: false, wallet: lic.body.wallet, amountMinor: state.amountMinor },
          display('topping up…'),
        ]);
      }
      if (state.mode === 'ticket') {
        return step({ s: 'authorizing', lines: [], totalMinor: state.priceMinor, requestId: event.requestId, license: lic.license, untilMs: nowMs + AUTHORIZE_MS, product: state.product }, [
          { c: 'nfc.authorize', offer: { purpose: 'ticket', amountMinor: state.priceMinor, currency: ctx.currency, lines: [] } },
        ]);
      }
      return step({ s: 'authorizing', lines: state.lines, totalMinor: state.totalMinor, requestId: event.requestId, license: lic.license, untilMs: nowMs + AUTHORIZE_MS }, [
        { c: 'nfc.authorize', offer: { purpose: 'purchase', amountMinor: state.totalMinor, currency: ctx.currency, lines: state.lines } },
      ]);
    }
    case 'wallet.authorized': {
      if (state.s === 'collecting') return collect(state, event.authorization, ctx, nowMs);
      if (state.s !== 'authorizing') return step(state);
      // As at the vending machine: offline only this ties the signing key to the license shown.
      if (event.authorization.body.wallet !== state.license.body.wallet) {
        return step(tapAgain(state, nowMs), [display(FOREIGN_SIGNATURE_TEXT, 'error'), { c: 'nfc.release' }]);
      }
      if (state.product !== undefined) {
        const op = { type: 'ticket.sale' as const, authorization: event.authorization, license: state.license, product: state.product };
        return step({ s: 'settling', kind: 'ticket', requestId: state.requestId, lines: [], untilMs: nowMs + ctx.timeouts.hubMs }, [
          { c: 'hub.request', requestId: state.requestId, op, offline: false, wallet: state.license.body.wallet, amountMinor: state.totalMinor },
          display('issuing ticket…'),
        ]);
      }
      const op = { type: 'purchase' as const, authorization: event.authorization, license: state.license, lines: state.lines, ...catalogVersionOf(ctx) };
      const request = { c: 'hub.request' as const, requestId: state.requestId, op, wallet: state.license.body.wallet, amountMinor: state.totalMinor };
      if (ctx.online) {
        return step({ s: 'settling', kind: 'purchase', requestId: state.requestId, lines: state.lines, untilMs: nowMs + ctx.timeouts.hubMs }, [{ ...request, offline: false }, display('settling…')]);
      }
      const risk = decideOffline(state.license.body, state.totalMinor, ctx.currency, ctx.usage, ctx.limits, nowMs);
      const back = { s: 'awaiting.tap' as const, mode: 'purchase' as const, lines: state.lines, totalMinor: state.totalMinor, untilMs: nowMs + TAP_MS };
      // Offline the terminal applies every line's article restriction itself (online the hub does).
      for (const l of state.lines) {
        const article = ctx.catalog.find((a) => a.sku === l.sku);
        if (!article) return step(back, [display(`offline: unknown article ${l.sku}`, 'error'), { c: 'nfc.release' }]);
        if (!restrictionAllows(article.restriction, state.license.body)) return step(back, [display(`${article.name}: not available for this customer`, 'error'), { c: 'nfc.release' }]);
      }
      if (!risk.ok) return step(back, [display(`offline: ${risk.code}`, 'error'), { c: 'nfc.release' }]);
      return step(POS_IDLE, [
        { ...request, offline: true },
        { c: 'nfc.release' },
        { c: 'print', lines: [`${ctx.merchantId} — terminal ${ctx.terminalId}`, ...state.lines.map((l) => lineItemText(l, ctx.currency)), `TOTAL ${price(state.totalMinor, ctx.currency)}`, 'OFFLINE — settles when the hub is back', `ref ${state.requestId}`] },
        display('paid (offline)', 'ok'),
      ]);
    }
    case 'wallet.declined':
      if (state.s === 'collecting') return step(backTo(state.lines), [display(`wallet declined: ${event.code}`, 'error'), { c: 'nfc.release' }]);
      if (state.s !== 'authorizing') return step(state);
      return step(tapAgain(state, nowMs), [display(`wallet declined: ${event.code}`, 'error'), { c: 'nfc.release' }]);
    case 'card.lost':
      if (state.s === 'collecting') return step(backTo(state.lines), [display(COLLECT_TICKET_TEXT, 'error')]);
      if (state.s !== 'authorizing') return step(state);
      return step(tapAgain(state, nowMs), [display('card removed — tap again', 'error')]);
    case 'hub.result': {
      if (state.s !== 'settling' || event.result.body.requestId !== state.requestId) return step(state);
      const r = checkHubResult(event.result, { requestId: state.requestId, terminalId: ctx.terminalId }, ctx.hubKeys);
      if (!r.ok) return step(state, [display(`ignored hub reply: ${r.code}`, 'error')]);
      // "Retry later" is no answer: the request is re-sent and may still be approved, so the POS
      // never says "declined" for it (the cashier would hand the cash back, the customer would
      // leave and be charged). It waits on; its deadline gives up as when the hub is silent.
      if (r.body.status === 'declined' && isRetryLater(r.body.code)) return step(state, [display(HUB_BUSY_TEXT)]);
      const statement: Command[] = r.body.statement ? [{ c: 'nfc.store', kind: 'BalanceStatement', message: r.body.statement, replace: true }] : [];
      if (r.body.status !== 'approved') return step(POS_IDLE, [...statement, { c: 'nfc.release' }, display(`declined: ${r.body.code ?? 'unknown'}`, 'error')]);
      const printed: Command = { c: 'print', lines: receiptLines(ctx, state.kind, state.lines, r.body) };
      // The ticket is kept durably first; the wallet in the field gets it, or a later tap collects it.
      if (r.body.ticket) return deliver([r.body.ticket], [], nowMs, [printed, { c: 'ticket.hold', ticket: r.body.ticket, requestId: state.requestId }, ...statement]);
      if (state.kind === 'ticket') return step(POS_IDLE, [printed, ...statement, { c: 'nfc.release' }, display('paid, but the hub sent no ticket — ask staff', 'error')]);
      // The sale is shown once its slip is printed: its `delivered` receipt (which closes the open
      // sale, the runtime's start-up recovery) is recorded right then, before the statement goes to
      // the wallet — several NFC exchanges, up to the exchange timeout each if the card leaves. A
      // power cut during that write must not reverse a sale whose slip and goods the customer has.
      return step(POS_IDLE, [
        printed,
        ...(state.kind === 'purchase' ? [{ c: 'receipt' as const, requestId: state.requestId, outcome: 'delivered' as const }] : []),
        ...statement,
        { c: 'nfc.release' },
        display({ purchase: 'paid', topup: 'topped up', cancel: 'refunded', ticket: 'ticket stored on your wallet' }[state.kind], 'ok'),
      ]);
    }
    case 'hub.error':
      if (state.s !== 'settling' || event.requestId !== state.requestId) return step(state);
      if (isRetryLater(event.code)) return step(state, [display(HUB_BUSY_TEXT)]);
      return step(POS_IDLE, [{ c: 'nfc.release' }, display(`declined: ${event.code}`, 'error')]);
    case 'ticket.stored': {
      const collected: Command[] = event.ok ? [{ c: 'ticket.collected', ticketId: event.ticketId }] : [];
      if (state.s !== 'delivering' || !state.ticketIds.includes(event.ticketId)) return step(state, collected);
      const ticketIds = state.ticketIds.filter((id) => id !== event.ticketId);
      const failed = state.failed || !event.ok;
      if (ticketIds.length > 0) return step({ ...state, ticketIds, failed }, collected);
      return step(backTo(state.lines), [...collected, { c: 'nfc.release' }, failed ? display(COLLECT_TICKET_TEXT, 'error') : display('ticket stored on your wallet', 'ok')]);
    }
    case 'tick':
      if (!('untilMs' in state) || nowMs < state.untilMs) return step(state);
      if (state.s === 'delivering' || state.s === 'collecting') return step(backTo(state.lines), [{ c: 'nfc.release' }, display(COLLECT_TICKET_TEXT, 'error')]);
      if (state.s === 'settling') {
        // A sale's late approval is reversed (nothing was handed over); a ticket's is held here for
        // the wallet to collect (refunded if it never is); a top-up cannot be undone: the cashier
        // keeps the cash until the late slip says whether it was made.
        const text = state.kind === 'purchase' ? NOT_CHARGED_TEXT : state.kind === 'topup' ? TOPUP_PENDING_TEXT : CHARGED_AT_MOST_ONCE_TEXT;
        return step(POS_IDLE, [{ c: 'hub.abandon', requestId: state.requestId }, { c: 'nfc.release' }, display(text, 'error')]);
      }
      return step(POS_IDLE, [{ c: 'nfc.release' }, display('timed out')]);
    case 'wallet.stored':
    case 'card.statement':
      return step(state);
  }
}
