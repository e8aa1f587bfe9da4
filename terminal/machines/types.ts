// Shared vocabulary of the three terminal state machines (vending, gate, POS). A machine is a pure
// function: (state, event, context, nowMs) → next state + commands. Commands are carried out by
// the runtime (terminal/runtime.ts), which turns their outcomes into new events.
import type { ArticleT, Body, Envelope, ErrorCode, FareTable, LineItemT, SettlementOpT, TicketProductT } from '../../protocol/index.ts';
import type { RecordKindName } from '../../hardware/wallet-apdu/apdu.ts';
import type { RiskLimits, UsageView } from '../policy/risk.ts';

export type TerminalKindT = 'vending' | 'gate' | 'pos';

/** What the runtime read from a tapped wallet (already decoded; signatures not yet checked). */
export interface CardInfo {
  /** Null when the wallet sent no parseable license. */
  license: Envelope<'wallet.license'> | null;
  admission: { recordId: number; message: Envelope<'gate.admission'> } | null;
  tickets: { recordId: number; message: Envelope<'ticket'> }[];
  /** `undefined`: not read (a gate reads it only when its decision needs it). */
  statement: Envelope<'balance.statement'> | null | undefined;
}

/** Currencies whose decimal places were looked up (bounded: a terminal sees one or two). */
const minorDigitsCache = new Map<string, number>();
const MINOR_DIGITS_CACHE_MAX = 64;

/**
 * The currency's decimal places, its ISO 4217 minor unit (JPY 0, EUR 2, KWD and BHD 3), from
 * Node's ICU (full ICU ships with Node). A code ICU does not know gets ICU's default, 2.
 */
export function minorDigits(currency: string): number {
  const cached = minorDigitsCache.get(currency);
  if (cached !== undefined) return cached;
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // Not a well-formed currency code (RangeError): the schemas allow none, so the default stands.
  }
  if (minorDigitsCache.size >= MINOR_DIGITS_CACHE_MAX) minorDigitsCache.clear();
  minorDigitsCache.set(currency, digits);
  return digits;
}

/**
 * A customer-facing amount — on the display and on every slip line: `4.90 EUR`, `500 JPY`,
 * `1.250 KWD`, never the raw minor units. Integer arithmetic only (money is integer minor units).
 */
export function price(amountMinor: number, currency: string): string {
  if (!Number.isSafeInteger(amountMinor)) throw new TypeError(`price: amountMinor must be a safe integer, got ${amountMinor}`);
  const digits = minorDigits(currency);
  const sign = amountMinor < 0 ? '-' : '';
  const abs = BigInt(Math.abs(amountMinor));
  if (digits === 0) return `${sign}${abs} ${currency}`;
  const unit = 10n ** BigInt(digits);
  return `${sign}${abs / unit}.${String(abs % unit).padStart(digits, '0')} ${currency}`;
}

/** Read-only view of the terminal's world handed to every step. */

export interface TerminalContext {
  terminalId: string;
  merchantId: string;
  currency: string;
  /** Hub keys (hex) trusted now: for results, statements and announcements. */
  hubKeys: readonly string[];
  /** Hub keys (hex) that may have signed a ticket issued at that time (protocol `ticketKeysAt`). */
  ticketKeysAt: (issuedAt: number) => readonly string[];
  /** Issuer keys (hex) trusted for wallet licenses. */
  issuerKeys: readonly string[];
  blocklist: ReadonlySet<string>;
  /** True while the hub connection is up; decides online vs offline authorization. */
  online: boolean;
  catalog: readonly ArticleT[];
  /** The announced catalog's version (null before any): purchases carry it. */
  catalogVersion: number | null;
  /** The hub's announced ticket products: a POS sells them at the hub's price. */
  ticketProducts: readonly TicketProductT[];
  fares: FareTable | null;
  /** The announced fare table's version (null before any): fares carry it. */
  faresVersion: number | null;
  limits: RiskLimits;
  usage: UsageView;
  timeouts: { hubMs: number; dropMs: number; tapMs: number };
  /** passageTimeoutMs: how long the barrier stays open for the passage (the hardware's window). */
  gate?: {
    station: string;
    mode: 'entry' | 'exit';
    passageTimeoutMs?: number;
    closeDelayMs?: number;
    inPassageMaxMs?: number;
    /** The barrier is still open from the last decision (someone in the beam, its close delay). */
    barrierBusy?: () => boolean;
    /**
     * Entry gate: what this gate remembers of the wallet's last admission record whose holder did
     * not go in (`entry.remember`, kept durably by the runtime); the machine checks `untilMs`.
     */
    entryRetap?: (wallet: string) => EntryRetap | undefined;
  };
  /**
   * Exit gate: the enrolled gates' keys (terminal id → public key hex) from the hub's keys
   * announcement; an admission record verifies against them or counts as no record.
   */
  gateKeys?: ReadonlyMap<string, string>;
  /**
   * Vending: the machine has slots 0..slotCount-1 (config `vending.slotCount`, and no more than
   * its dispenser has). A hub catalog may name any slot 0..255: an article on a slot beyond these
   * is refused at selection, before anything is charged. `slotFailures`: the slot's failed vends
   * since an operator last reset it (kept durably by the runtime, `slot.failed`). `ready`: whether
   * the dispenser could see a drop now (drop sensor clear, board link up): no sale starts while not.
   */
  vending?: { slotCount: number; slotFailures?: (slot: number) => number; ready?: () => boolean };
  /** POS: hub-signed tickets sold here and held for this wallet until its next tap collects them. */
  heldTickets?: (wallet: string) => readonly Envelope<'ticket'>[];
}

/** What the wallet is asked to sign (the runtime builds and signs the offer around it). */
export interface OfferSpec {
  purpose: Body<'purchase.offer'>['purpose'];
  amountMinor: number;
  currency: string;
  lines: LineItemT[];
}

export type Tone = 'info' | 'ok' | 'error';

export type Command =
  | { c: 'display'; text: string; tone: Tone }
  /** Ask the wallet in the field to sign an offer; answered by wallet.authorized / wallet.declined / card.lost. */
  /**
   * `consumeRecordId`: the wallet deletes that record in the same step as it signs (applet v2; a
   * gate exit consumes the admission record so it cannot be shown twice). Older wallets: nfc.delete.
   */
  | { c: 'nfc.authorize'; offer: OfferSpec; consumeRecordId?: number }
  /**
   * Store a hub-signed record (statement, ticket) on the wallet; best effort, except with
   * `ticketId`: then answered by `ticket.stored` (POS) with whether the wallet holds it now.
   */
  | { c: 'nfc.store'; kind: RecordKindName; message: Envelope<'balance.statement'> | Envelope<'ticket'>; replace: boolean; ticketId?: string }
  /** POS: keep a sold ticket durably for its wallet until it is stored on it; `requestId`: its sale (refunded if never collected). */
  | { c: 'ticket.hold'; ticket: Envelope<'ticket'>; requestId: string }
  /** POS: the held ticket is on its wallet now. */
  | { c: 'ticket.collected'; ticketId: string }
  /** Sign and store a gate admission record; answered by wallet.stored / card.lost. */
  | { c: 'nfc.storeAdmission'; body: Body<'gate.admission'> }
  | { c: 'nfc.delete'; recordId: number }
  /** Read the wallet's stored hub statement; answered by card.statement / card.lost. */
  | { c: 'nfc.readStatement' }
  /** The machine no longer needs the card in the field. */
  | { c: 'nfc.release' }
  /** Sign, persist in the outbox, then send (a request id is persisted BEFORE it is sent). */
  | { c: 'hub.request'; requestId: string; op: SettlementOpT; offline: boolean; wallet: string | null; amountMinor: number }
  /**
   * Entry gate: ask the hub a question for the customer at the barrier (whether an admission
   * record was consumed). Signed and published once, never stored in the outbox nor re-sent: it
   * matters only within the machine's deadline. Answered by hub.result / hub.error (the machine
   * verifies the result); when it cannot be sent, at once by hub.error UNAVAILABLE.
   */
  | { c: 'hub.ask'; requestId: string; op: Extract<SettlementOpT, { type: 'admission.check' }> }
  /** The customer gave up waiting (timeout, or a "retry later" the machine does not wait through): a late approval is undone. */
  | { c: 'hub.abandon'; requestId: string }
  | { c: 'receipt'; requestId: string; outcome: Body<'completion.receipt'>['outcome']; reason?: string }
  | { c: 'gate.open' }
  | { c: 'gate.deny' }
  /** Drive the slot's motor; the runtime first records durably that this request's vend started. */
  | { c: 'vend'; slot: number; requestId: string }
  /** Vending: this vend failed (no drop, or the dispense failed): counted durably against the slot (vending.ts SLOT_OUT_OF_ORDER_AFTER). */
  | { c: 'slot.failed'; slot: number; requestId: string; reason: string }
  | { c: 'print'; lines: string[] }
  | { c: 'ticket.markUsed'; ticketId: string }
  /** The late-approved exit fare of this wallet has been used to let it out. */
  /** The wallet's grant for `requestId` is used up (a newer grant of the wallet stays). */
  | { c: 'paidExit.consume'; wallet: string; requestId: string }
  /** Exit gate: the wallet left on this admission record; a copy of it proves no entry here again. */
  | { c: 'admission.used'; recordId: string }
  /** This wallet's exit was paid (or its trip settled) but it did not pass: its next exit is paid. */
  | ({ c: 'paidExit.grant' } & PaidExit)
  /** Entry gate: remember (durably, one per wallet, bounded) an admission record whose holder did not go in. */
  | ({ c: 'entry.remember' } & EntryRetap)
  /** Entry gate: the wallet went in; what was remembered for it is over. */
  | { c: 'entry.forget'; wallet: string }
  /** Something the operator must look at (kept durably, logged). */
  | { c: 'incident'; kind: 'unsigned-passage'; requestId: string; wallet: string; amountMinor: number; detail: string };

/**
 * An exit gate's grant: `wallet` paid (`requestId`: the fare, or the ticket the trip was on) and
 * did not pass, or was turned away before the hub approved. Its next exit here opens for free,
 * and a fare's is reported `passed`.
 * `refundable`: the fare's charge stands on nothing else — no admission record left on the wallet
 * that the hub has claimed for it — so a grant that expires unused (the customer left through
 * another gate, and paid there) is given back with a failure receipt, never charged twice. A
 * ticket's grant never is (no fare was paid).
 * `onRecord`: the admission record (its `recordId`) a fare that is not refundable rests on. The
 * grant opens only while the wallet still carries it: once another exit has consumed it, or a new
 * trip replaced it, the grant would be a free exit on a fare already used.
 */
export interface PaidExit {
  wallet: string;
  requestId: string;
  kind: 'fare' | 'ticket';
  refundable: boolean;
  onRecord?: string;
}

/**
 * An entry gate's memory of an admission record it wrote to `wallet` whose holder did not go in
 * (gate.ts entryTap). `unopened`: the write's answer was lost (card pulled, RF error), so the
 * barrier never opened, but the record may be on the wallet: a retap carrying it is that entry's
 * retry. `unpassed`: the barrier opened and nobody passed (the customer turned back): a retap
 * carrying it is admitted again on the same record, nothing written or used again. Until
 * `untilMs` (this gate's clock).
 */
export interface EntryRetap {
  wallet: string;
  recordId: string;
  kind: 'unopened' | 'unpassed';
  untilMs: number;
}

/** Events every machine understands; kind-specific ones are added by each machine. */
export type CommonEvent =
  /**
   * A wallet entered the field; ids are minted by the runtime so the machine stays deterministic.
   * `checkId`: the request id an entrance asks the hub under about the admission record found on
   * the wallet (gate.ts, "already inside"); without it the entrance does not ask.
   */
  | { e: 'tap'; card: CardInfo; requestId: string; recordId: string; checkId?: string }
  | { e: 'wallet.authorized'; authorization: Envelope<'wallet.authorization'> }
  | { e: 'wallet.declined'; code: string }
  | { e: 'wallet.stored' }
  | { e: 'card.lost' }
  | { e: 'card.statement'; statement: Envelope<'balance.statement'> | null }
  /** Raw hub reply for a request; the machine verifies it itself before acting. */
  | { e: 'hub.result'; result: Envelope<'settlement.result'> }
  /**
   * A hub-signed error: `code` as the hub sent it, which may be one this version does not know
   * (a newer hub) — a final refusal then, as every code but the retry-later ones (checks.ts).
   */
  | { e: 'hub.error'; requestId: string; code: ErrorCode | (string & {}) }
  | { e: 'tick' };

export interface Step<S> {
  state: S;
  commands: Command[];
}

/** Shown when a wallet's earlier payment went unanswered and is still being re-sent (gate and POS). */
export const PAYMENT_PENDING_TEXT = 'previous payment still pending — please wait';
/** A sale given up on after the hub's timeout: a late approval is reversed (failure receipt, the hub refunds). */
export const NOT_CHARGED_TEXT = 'no answer from the hub — not charged';
/** "Retry later" from the hub: the request is re-sent and may still be approved — never shown as declined. */
export const HUB_BUSY_TEXT = 'hub busy — waiting for its answer…';
/**
 * A cash top-up given up on: it cannot be undone once the hub approves it, so the cash stays with
 * the cashier until the late slip (made, or not made: give it back) arrives.
 */
export const TOPUP_PENDING_TEXT = 'no answer from the hub — keep the cash: a slip prints when the hub answers';
/** The wallet signed with another key than its license's (a copied license): nothing sold. */
export const FOREIGN_SIGNATURE_TEXT = 'wallet signature does not match its license — not accepted';
/** An attempt given up on whose late approval stands once (a top-up, a ticket, a fare): no second one meanwhile. */
export const CHARGED_AT_MOST_ONCE_TEXT = 'no answer from the hub — you will not be charged twice';

/** A purchase's `catalogVersion`: the announced catalog it was priced by, when there is one. */
export function catalogVersionOf(ctx: TerminalContext): { catalogVersion?: number } {
  return ctx.catalogVersion === null ? {} : { catalogVersion: ctx.catalogVersion };
}

export function display(text: string, tone: Tone = 'info'): Command {
  return { c: 'display', text, tone };
}
