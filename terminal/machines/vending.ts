// Vending machine (seed 004 claim 10; MDB 4.2 vend request → approved → vend success/failure):
// choose an article → wallet signs → settle → dispense ONLY after a verified hub-signed approval
// (or, with the hub unreachable, an offline acceptance within the risk policy) → the drop sensor
// confirms → signed completion receipt; no drop in time → failure receipt, the hub refunds.
import type { ArticleT, Envelope } from '../../protocol/index.ts';
import { checkLicense, decideOffline } from '../policy/risk.ts';
import { checkHubResult, isRetryLater, restrictionAllows } from './checks.ts';
import { FOREIGN_SIGNATURE_TEXT, HUB_BUSY_TEXT, NOT_CHARGED_TEXT, catalogVersionOf, display, price, type CommonEvent, type Command, type Step, type TerminalContext } from './types.ts';

export type VendingState =
  | { s: 'idle' }
  | { s: 'selected'; article: ArticleT; untilMs: number }
  | { s: 'authorizing'; article: ArticleT; requestId: string; license: Envelope<'wallet.license'>; untilMs: number }
  | { s: 'settling'; article: ArticleT; requestId: string; untilMs: number }
  | { s: 'dispensing'; article: ArticleT; requestId: string; untilMs: number };

/** `dispense.failed`: `reason`, the dispenser's (its result's reason, or its error's code). */
export type VendingEvent = CommonEvent | { e: 'select'; sku: string } | { e: 'cancel' } | { e: 'drop' } | { e: 'dispense.failed'; reason?: string };

export const VENDING_IDLE: VendingState = { s: 'idle' };

/** The dispenser's reason when the motor ran its window and no article crossed the drop beam (hardware DispenseResult). */
const NO_DROP_REASON = 'no-drop';

const SELECTION_MS = 60_000;
const AUTHORIZE_MS = 10_000;

function step(state: VendingState, commands: Command[] = []): Step<VendingState> {
  return { state, commands };
}

/**
 * The dispenser decides (a drop, or `dispense.failed` after its own dropMs from the motor's
 * start); this deadline is only the backstop for a device that never answers. It starts earlier
 * (before the durable "vend started" write and the motor), so without the grace an article
 * dropping late in the device's window was reported failed, refunded, and delivered.
 */
export const DEVICE_VERDICT_GRACE_MS = 5000;

/**
 * A slot is out of order — its articles refused at selection ("out of order") until an operator
 * resets it (keypad `slot-reset <n>`) — after this many failed vends since its last reset: one.
 * A failed vend is not a glitch to wait out: the dispenser ran the motor for its whole window (a
 * full turn of the spiral) and the drop sensor saw nothing, or the dispense could not run at all,
 * so the slot is empty, jammed or broken far more often than the beam missed a falling article.
 * Every further customer on it would be charged, wait ≈9 s and be refunded — offline, only once
 * the hub is back, hours later perhaps. A false "out of order" costs one idle slot until the
 * operator comes, told by an error log; guaranteed-vend systems likewise disable a selection
 * after an undetected vend. (Two in a row would only charge and refund one more customer.)
 */
export const SLOT_OUT_OF_ORDER_AFTER = 1;

/** Shown while the dispenser could not see a drop (its drop sensor blocked, its board gone). */
export const DISPENSER_NOT_READY_TEXT = 'out of order — dispenser not ready, please call staff';

/** Whether the dispenser could vend now (VendingContext.ready); true where nothing says otherwise. */
function dispenserReady(ctx: TerminalContext): boolean {
  return ctx.vending?.ready?.() ?? true;
}

/** Whether the slot is out of order (SLOT_OUT_OF_ORDER_AFTER). */
export function slotOutOfOrder(ctx: TerminalContext, slot: number): boolean {
  return (ctx.vending?.slotFailures?.(slot) ?? 0) >= SLOT_OUT_OF_ORDER_AFTER;
}

export function vendingStep(state: VendingState, event: VendingEvent, ctx: TerminalContext, nowMs: number): Step<VendingState> {
  switch (event.e) {
    case 'select': {
      if (state.s !== 'idle' && state.s !== 'selected') return step(state);
      const article = ctx.catalog.find((a) => a.sku === event.sku);
      if (!article || article.slot === undefined) return step(state, [display(`unknown article ${event.sku}`, 'error')]);
      if (article.currency !== ctx.currency) return step(state, [display('article priced in another currency', 'error')]);
      // A slot this machine does not have: refused now, not after the charge (the dispense would fail).
      if (ctx.vending && article.slot >= ctx.vending.slotCount) return step(state, [display(`${article.name}: not available at this machine — choose another`, 'error')]);
      // A slot whose vend failed: no one else is charged for it until an operator has seen to it.
      if (slotOutOfOrder(ctx, article.slot)) return step(state, [display(`${article.name}: out of order — choose another`, 'error')]);
      // A blocked drop sensor fails every slot's vend alike: no sale is charged while it lasts.
      if (!dispenserReady(ctx)) return step(state, [display(DISPENSER_NOT_READY_TEXT, 'error')]);
      return step({ s: 'selected', article, untilMs: nowMs + SELECTION_MS }, [display(`${article.name}: ${price(article.priceMinor, article.currency)} — tap your wallet`)]);
    }
    case 'cancel':
      if (state.s === 'selected' || state.s === 'authorizing') return step(VENDING_IDLE, [display('cancelled'), { c: 'nfc.release' }]);
      return step(state);
    case 'tap': {
      if (state.s !== 'selected') return step(state, [{ c: 'nfc.release' }]);
      if (!dispenserReady(ctx)) return step(VENDING_IDLE, [display(DISPENSER_NOT_READY_TEXT, 'error'), { c: 'nfc.release' }]);
      const lic = checkLicense(event.card.license, ctx, nowMs);
      if (!lic.ok) return step(state, [display(`wallet refused: ${lic.code}`, 'error'), { c: 'nfc.release' }]);
      const a = state.article;
      // Offline, the terminal applies the article restriction itself; online the hub decides.
      if (!ctx.online && !restrictionAllows(a.restriction, lic.body)) {
        return step(state, [display('not available for this customer', 'error'), { c: 'nfc.release' }]);
      }
      return step({ s: 'authorizing', article: a, requestId: event.requestId, license: lic.license, untilMs: nowMs + AUTHORIZE_MS }, [
        { c: 'nfc.authorize', offer: { purpose: 'purchase', amountMinor: a.priceMinor, currency: a.currency, lines: [{ sku: a.sku, qty: 1, unitMinor: a.priceMinor }] } },
      ]);
    }
    case 'wallet.authorized': {
      if (state.s !== 'authorizing') return step(state);
      const a = state.article;
      const license = state.license;
      // The signature checks out against the key the authorization names; offline nothing else
      // ties that key to the license shown (its age, its limit), so a copied license would buy.
      if (event.authorization.body.wallet !== license.body.wallet) {
        return step({ s: 'selected', article: a, untilMs: nowMs + SELECTION_MS }, [display(FOREIGN_SIGNATURE_TEXT, 'error'), { c: 'nfc.release' }]);
      }
      const op = { type: 'purchase' as const, authorization: event.authorization, license, lines: [{ sku: a.sku, qty: 1, unitMinor: a.priceMinor }], ...catalogVersionOf(ctx) };
      const request = { c: 'hub.request' as const, requestId: state.requestId, op, wallet: license.body.wallet, amountMinor: a.priceMinor };
      if (ctx.online) {
        return step({ s: 'settling', article: a, requestId: state.requestId, untilMs: nowMs + ctx.timeouts.hubMs }, [
          { ...request, offline: false },
          display('settling…'),
        ]);
      }
      // seed 002: hub unreachable — accept on license + signature alone, within limits. The
      // article restriction is checked here, at the offline decision (the link may have dropped
      // since the tap, when the hub was still expected to decide it).
      if (!restrictionAllows(a.restriction, license.body)) {
        return step({ s: 'selected', article: a, untilMs: nowMs + SELECTION_MS }, [display('not available for this customer', 'error'), { c: 'nfc.release' }]);
      }
      const risk = decideOffline(license.body, a.priceMinor, a.currency, ctx.usage, ctx.limits, nowMs);
      if (!risk.ok) return step({ s: 'selected', article: a, untilMs: nowMs + SELECTION_MS }, [display(`offline: ${risk.code}`, 'error'), { c: 'nfc.release' }]);
      return step({ s: 'dispensing', article: a, requestId: state.requestId, untilMs: nowMs + ctx.timeouts.dropMs + DEVICE_VERDICT_GRACE_MS }, [
        { ...request, offline: true },
        { c: 'nfc.release' },
        { c: 'vend', slot: a.slot ?? 0, requestId: state.requestId },
        display('dispensing (offline)…'),
      ]);
    }
    case 'wallet.declined':
      if (state.s !== 'authorizing') return step(state);
      return step({ s: 'selected', article: state.article, untilMs: nowMs + SELECTION_MS }, [display(`wallet declined: ${event.code}`, 'error'), { c: 'nfc.release' }]);
    case 'card.lost':
      // Before the wallet signed nothing happened: tap again. After, the request runs on.
      if (state.s !== 'authorizing') return step(state);
      return step({ s: 'selected', article: state.article, untilMs: nowMs + SELECTION_MS }, [display('card removed — tap again', 'error')]);
    case 'hub.result': {
      if (state.s !== 'settling' || event.result.body.requestId !== state.requestId) return step(state);
      const r = checkHubResult(event.result, { requestId: state.requestId, terminalId: ctx.terminalId }, ctx.hubKeys);
      // A reply that does not verify is not an answer: keep waiting (the retry may bring a good one).
      if (!r.ok) return step(state, [display(`ignored hub reply: ${r.code}`, 'error')]);
      // "Retry later" is no answer: the request is re-sent and may still be approved, so the machine
      // never says "declined" for it; it waits on until its deadline, which gives up as on a silent
      // hub (a late approval is refunded).
      if (r.body.status === 'declined' && isRetryLater(r.body.code)) return step(state, [display(HUB_BUSY_TEXT)]);
      const statement: Command[] = r.body.statement ? [{ c: 'nfc.store', kind: 'BalanceStatement', message: r.body.statement, replace: true }] : [];
      if (r.body.status !== 'approved') return step(VENDING_IDLE, [...statement, { c: 'nfc.release' }, display(`declined: ${r.body.code ?? 'unknown'}`, 'error')]);
      return step({ s: 'dispensing', article: state.article, requestId: state.requestId, untilMs: nowMs + ctx.timeouts.dropMs + DEVICE_VERDICT_GRACE_MS }, [
        { c: 'vend', slot: state.article.slot ?? 0, requestId: state.requestId },
        ...statement,
        { c: 'nfc.release' },
        display('dispensing…'),
      ]);
    }
    case 'hub.error': {
      if (state.s !== 'settling' || event.requestId !== state.requestId) return step(state);
      if (isRetryLater(event.code)) return step(state, [display(HUB_BUSY_TEXT)]);
      return step(VENDING_IDLE, [{ c: 'nfc.release' }, display(`declined: ${event.code}`, 'error')]);
    }
    case 'drop':
      if (state.s !== 'dispensing') return step(state);
      return step(VENDING_IDLE, [{ c: 'receipt', requestId: state.requestId, outcome: 'dispensed' }, display('enjoy!', 'ok')]);
    case 'dispense.failed':
    case 'tick':
      if (state.s === 'idle' || (event.e === 'tick' && nowMs < state.untilMs) || (event.e === 'dispense.failed' && state.s !== 'dispensing')) return step(state);
      if (state.s === 'dispensing') {
        // No drop within the timeout: a failed dispense, reported so the hub refunds (seed 003 fourth
        // signature); the slot is counted out of order (SLOT_OUT_OF_ORDER_AFTER).
        const reason = event.e === 'dispense.failed' ? (event.reason ?? 'no-drop') : 'no answer from the dispenser';
        // A motor that ran its window with no drop seen (or a dispenser that never said how its
        // vend went) leaves the slot suspect: empty or jammed. Not a sensor stuck before the motor
        // (nothing ran), a board lost mid-dispense (the terminal restarts on it) or an unknown slot.
        const slotAtFault = event.e === 'tick' || reason === NO_DROP_REASON;
        return step(VENDING_IDLE, [
          { c: 'receipt', requestId: state.requestId, outcome: 'failed', reason: reason === 'drop-sensor-blocked' ? 'drop sensor blocked' : 'no drop detected' },
          ...(slotAtFault ? [{ c: 'slot.failed' as const, slot: state.article.slot ?? 0, requestId: state.requestId, reason }] : []),
          display('dispense failed — refunded', 'error'),
        ]);
      }
      if (state.s === 'settling') {
        // A late approval is reversed by a failure receipt (the hub refunds), so: not charged.
        return step(VENDING_IDLE, [{ c: 'hub.abandon', requestId: state.requestId }, { c: 'nfc.release' }, display(NOT_CHARGED_TEXT, 'error')]);
      }
      return step(VENDING_IDLE, [{ c: 'nfc.release' }, display('timed out')]);
    case 'wallet.stored':
    case 'card.statement':
      return step(state);
  }
}
