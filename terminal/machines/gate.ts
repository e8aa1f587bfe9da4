// Ticket gate (seed 004 claims 11, 15–18; Suica-style local decision, PRODUCT.md §3).
// Entry: license + deny list (+ anti-passback) → gate-signed admission record written to the
// wallet → open. A valid hub-signed ticket admits instead and its use is reported.
// Exit: read the record → computeFare with the hub's fare table → local risk decision from the
// license, deny list and the wallet's last hub-signed statement → open and send the settlement
// request at once (the hub settles behind); a fare the policy cannot cover waits for a verified
// hub approval. The record counts only when it verifies against an enrolled gate's key (the hub's
// keys announcement): a wallet can store any record, so one that does not is no record at all.
import { computeFare, verifyMessage, type Envelope, type FareQuote } from '../../protocol/index.ts';
import { checkLicense, decideGateLocal, outboxHasRoom } from '../policy/risk.ts';
import { checkHubResult, checkTicket, isRetryLater } from './checks.ts';
import { CHARGED_AT_MOST_ONCE_TEXT, PAYMENT_PENDING_TEXT, display, price, type CardInfo, type CommonEvent, type Command, type EntryRetap, type PaidExit, type Step, type TerminalContext } from './types.ts';

export type GateState =
  | { s: 'idle' }
  /**
   * Entry: the admission record `recordId` is being written. `retap`: this entry is the retry of
   * one whose write went unanswered (ctx.gate.entryRetap): what the gate remembers of it is over
   * once the wallet is through.
   */
  | { s: 'admitting'; wallet: string; recordId: string; ticket: { recordId: number; message: Envelope<'ticket'> } | null; requestId: string; retap?: true; untilMs: number }
  /**
   * Entry, "already inside": the wallet carries a fresh admission record (`asked`) this gate cannot
   * tell from a trip still under way. The hub is asked (`requestId`) whether an exit consumed it
   * (an exit whose delete failed leaves a finished trip's record on the wallet); consumed → the tap
   * is admitted as a normal entry (a fresh record replaces the old one), else "already inside".
   */
  | { s: 'entry.checking'; tap: Extract<CommonEvent, { e: 'tap' }>; requestId: string; asked: string; untilMs: number }
  | {
      s: 'exit.authorizing';
      requestId: string;
      license: Envelope<'wallet.license'>;
      entry: CardInfo['admission'];
      fare: FareQuote;
      /**
       * The exit's time and fare table version the fare was priced by (the tap): the request carries
       * them, so the hub recomputes the fare the wallet signed — not one of a later time band, or
       * of a trip grown past maxTripMs while the wallet was signing.
       */
      exitTimeMs: number;
      fareTableVersion: number | null;
      /** True when the local policy covered the fare and the barrier opened before the signature. */
      opened: boolean;
      /** The customer already walked through while the wallet was still signing. */
      passed?: boolean;
      /** Someone is in the passage (the beam is blocked): they are going through. */
      entered?: boolean;
      untilMs: number;
    }
  /** The license's offline credit does not cover the fare: reading the wallet's statement. */
  | { s: 'exit.reading'; tap: Extract<CommonEvent, { e: 'tap' }>; exitTimeMs: number; untilMs: number }
  | { s: 'exit.settling'; requestId: string; wallet: string; entry: CardInfo['admission']; untilMs: number }
  /**
   * Barrier open: waiting for the passage sensor (one passage per decision). `paid`: an exit the
   * wallet has paid for (fare approved or submitted, ticket trip, paid exit): when nobody passes,
   * the wallet's next exit is granted as paid, and a fare's grant unused until it expires is
   * refunded (the entry record is gone from the wallet by then: only the grant stands for it).
   * `entered`: someone blocked the beam, so whoever paid passes — the barrier waits for them
   * however long they stay, and so does the machine (it must not grant, and later refund, an exit
   * that is being made). `usingGrant`: the exit is made on the wallet's paid-exit grant, which
   * stays stored until the passage (a power cut while the barrier is open must not lose it).
   * `admitted`: an entry, on that admission record of that wallet: when nobody passes, the gate
   * remembers it (`unpassed`) and the wallet's retap here is let in again on it; `retap`: the gate
   * remembered this wallet's record before this opening (forgotten once the wallet is through).
   */
  | { s: 'passing'; requestId: string | null; paid?: PaidExit; usingGrant?: boolean; entered?: boolean; admitted?: Admitted; untilMs: number };

/** An entry's admission record the barrier opened for. */
interface Admitted {
  wallet: string;
  recordId: string;
  retap?: true;
}

/** `passage.entered`: someone blocked the beam (the barrier's onEntered); `passage`: they are through and it closed. */
export type GateEvent = CommonEvent | { e: 'passage.entered' } | { e: 'passage' };

export const GATE_IDLE: GateState = { s: 'idle' };

const AUTHORIZE_MS = 5_000;
/** The barrier's passage window and close delay when the config names none (hardware DEFAULT_GATE_TIMING). */
const PASSAGE_MS = 8_000;
const CLOSE_DELAY_MS = 300;
/**
 * The machine waits this much longer than the barrier stays open (its window, then its close
 * delay, in which someone may still step in): a passage the sensor saw in time must reach it
 * before it concludes "nobody passed" (and grants the wallet's next exit as paid).
 */
const PASSAGE_MARGIN_MS = 2_000;
/**
 * Someone in the beam holds the barrier open as long as they stay. Past this (config
 * `gate.inPassageMaxMs`) the machine stops waiting for the barrier to report them through and
 * counts them as through (they entered); no new decision until the barrier has closed.
 */
const IN_PASSAGE_MAX_MS = 120_000;
/** Without a fare table an admission record counts as "inside" for this long (anti-passback). */
export const DEFAULT_MAX_TRIP_MS = 4 * 3600_000;

function step(state: GateState, commands: Command[] = []): Step<GateState> {
  return { state, commands };
}

function deny(text: string): Step<GateState> {
  return step(GATE_IDLE, [{ c: 'gate.deny' }, { c: 'nfc.release' }, display(text, 'error')]);
}

/**
 * How long an entrance waits for the hub's answer whether a record on the wallet was consumed
 * (`entry.checking`). A rare path (an exit could not delete the record), shown as "checking…":
 * the answer is a registry read and a signature at the hub, a few ms on a site's network; with the
 * runtime's 100 ms tick and the record's write after it, the customer waits under a second.
 */
export const ENTRY_CHECK_MS = 800;
/** What an entrance says when the wallet's record shows a trip still under way. */
export const ALREADY_INSIDE_TEXT = 'already inside';

/** How long an entry whose record write went unanswered may be retried by the same wallet. */
export const ENTRY_RETAP_MS = 60_000;
/**
 * How long after an opening nobody passed through the same wallet is let in again on that record
 * (ctx.gate.entryRetap `unpassed`). A customer who turned back (forgot something, the train was
 * announced late, a companion was not ready) comes back within minutes; past this the record's
 * trip, which counts from the first opening, would be too old to be worth reusing (its fare turns
 * to the maximum one once maxTripMs has passed), and "already inside" holds as for any fresh record
 * until the record goes stale.
 */
export const ENTRY_UNPASSED_MS = 30 * 60_000;
/**
 * Most records an entry gate remembers at once (the oldest go first): lost writes and openings
 * nobody passed are rare, and each is kept for minutes, so this bounds the store and a tap's
 * lookup without dropping one that matters.
 */
export const MAX_ENTRY_RETAPS = 64;

/** The remembered records with `r` in place of the wallet's earlier one, expired ones dropped, bounded. */
export function rememberEntryRetap(list: readonly EntryRetap[], r: EntryRetap, nowMs: number): EntryRetap[] {
  const kept = list.filter((x) => x.wallet !== r.wallet && x.untilMs >= nowMs);
  return [...kept, r].slice(-MAX_ENTRY_RETAPS);
}

/** The remembered records as kept (JSON); anything unreadable is no memory (anti-passback as ever). */
export function parseEntryRetaps(raw: string | undefined): EntryRetap[] {
  if (raw === undefined) return [];
  try {
    const v: unknown = JSON.parse(raw);
    if (!Array.isArray(v)) return [];
    return v
      .filter(
        (x): x is EntryRetap =>
          typeof x === 'object' &&
          x !== null &&
          typeof (x as EntryRetap).wallet === 'string' &&
          typeof (x as EntryRetap).recordId === 'string' &&
          ((x as EntryRetap).kind === 'unopened' || (x as EntryRetap).kind === 'unpassed') &&
          typeof (x as EntryRetap).untilMs === 'number',
      )
      .map(({ wallet, recordId, kind, untilMs }) => ({ wallet, recordId, kind, untilMs }))
      .slice(-MAX_ENTRY_RETAPS);
  } catch {
    return [];
  }
}

/**
 * An entry given up after its record was written, perhaps: remembered (durably, apart from the
 * machine's state, so another wallet's tap, a deny or a restart in between does not lose it), the
 * same wallet's next tap carrying that record within ENTRY_RETAP_MS retries it.
 */
function denyUnopened(state: GateState & { s: 'admitting' }, nowMs: number, text: string): Step<GateState> {
  const d = deny(text);
  return step(d.state, [{ c: 'entry.remember', wallet: state.wallet, recordId: state.recordId, kind: 'unopened', untilMs: nowMs + ENTRY_RETAP_MS }, ...d.commands]);
}

/** The hub declined the fare. "Retry later" is given up on at once (a late approval grants a paid exit). */
function declined(requestId: string, code: string): Step<GateState> {
  const d = deny(`declined: ${code}`);
  return isRetryLater(code) ? step(d.state, [{ c: 'hub.abandon', requestId }, ...d.commands]) : d;
}

function passing(
  ctx: TerminalContext,
  requestId: string | null,
  nowMs: number,
  commands: Command[],
  { paid, usingGrant = false, entered = false, admitted }: { paid?: PaidExit; usingGrant?: boolean; entered?: boolean | undefined; admitted?: Admitted } = {},
): Step<GateState> {
  const windowMs = entered ? inPassageMaxMs(ctx) : (ctx.gate?.passageTimeoutMs ?? PASSAGE_MS) + (ctx.gate?.closeDelayMs ?? CLOSE_DELAY_MS) + PASSAGE_MARGIN_MS;
  // A paid exit is kept (paidExit.grant, durable) before the barrier opens and used up at the
  // passage: a power cut while it is open must not lose it, or the customer, whose record is gone
  // from the wallet, would pay again at the next tap.
  const keep: Command[] = paid && !usingGrant ? [{ c: 'paidExit.grant', ...paid }] : [];
  const granted = usingGrant || keep.length > 0;
  return step(
    { s: 'passing', requestId, ...(paid ? { paid } : {}), ...(granted ? { usingGrant: true } : {}), ...(entered ? { entered } : {}), ...(admitted ? { admitted } : {}), untilMs: nowMs + windowMs },
    [...keep, ...commands],
  );
}

function inPassageMaxMs(ctx: TerminalContext): number {
  return ctx.gate?.inPassageMaxMs ?? IN_PASSAGE_MAX_MS;
}

/** Through: the fare's passage is reported, a grant the exit was made on is used up, a remembered entry is over. */
function passed(state: GateState & { s: 'passing' }): Step<GateState> {
  const commands: Command[] = state.requestId ? [{ c: 'receipt', requestId: state.requestId, outcome: 'passed' }] : [];
  if (state.usingGrant && state.paid) commands.push({ c: 'paidExit.consume', wallet: state.paid.wallet, requestId: state.paid.requestId });
  if (state.admitted?.retap) commands.push({ c: 'entry.forget', wallet: state.admitted.wallet });
  return step(GATE_IDLE, commands);
}

export function gateStep(state: GateState, event: GateEvent, ctx: TerminalContext, nowMs: number): Step<GateState> {
  const gate = ctx.gate;
  if (!gate) throw new TypeError('gateStep: ctx.gate is required');
  switch (event.e) {
    case 'tap':
      if (state.s !== 'idle') return step(state, [{ c: 'nfc.release' }]);
      // No new decision while the barrier is open for the last one: it could not open for this
      // one, and the last one's passage would be taken for this one's.
      if (gate.barrierBusy?.()) return deny('please wait');
      return gate.mode === 'entry' ? entryTap(event, ctx, nowMs, gate) : removeUnprovenRecord(event, ctx, exitTap(event, ctx, nowMs, gate.station));
    case 'wallet.stored': {
      if (state.s !== 'admitting') return step(state);
      const commands: Command[] = [{ c: 'gate.open' }];
      if (state.ticket) {
        const t = state.ticket.message;
        // seed 004 claim 18: a ticket is used once — remove it from the wallet, remember it, report it.
        commands.push(
          { c: 'ticket.markUsed', ticketId: t.body.ticketId },
          { c: 'hub.request', requestId: state.requestId, op: { type: 'ticket.use', ticket: t, station: gate.station, usedAt: nowMs }, offline: true, wallet: state.wallet, amountMinor: 0 },
          { c: 'nfc.delete', recordId: state.ticket.recordId },
        );
      }
      commands.push({ c: 'nfc.release' }, display(state.ticket ? 'welcome (ticket)' : 'welcome', 'ok'));
      const admitted: Admitted = { wallet: state.wallet, recordId: state.recordId, ...(state.retap ? { retap: true as const } : {}) };
      return passing(ctx, state.ticket ? state.requestId : null, nowMs, commands, { admitted });
    }
    case 'wallet.authorized': {
      if (state.s !== 'exit.authorizing') return step(state);
      const license = state.license;
      if (event.authorization.body.wallet !== license.body.wallet) return unsigned(ctx, state, nowMs, 'authorization from another wallet than the license');
      const op = {
        type: 'fare' as const,
        authorization: event.authorization,
        license,
        entry: state.entry?.message ?? null,
        exitStation: gate.station,
        exitTime: state.exitTimeMs,
        ...(state.fareTableVersion === null ? {} : { fareTableVersion: state.fareTableVersion }),
      };
      const request = { c: 'hub.request' as const, requestId: state.requestId, op, wallet: license.body.wallet, amountMinor: state.fare.fareMinor };
      if (state.opened) {
        // The local decision already opened the barrier; the hub settles right behind it.
        const commands: Command[] = [{ ...request, offline: true }, ...consumeEntry(state.entry), { c: 'nfc.release' }];
        if (state.passed) return step(GATE_IDLE, [...commands, { c: 'receipt', requestId: state.requestId, outcome: 'passed' }]);
        return passing(ctx, state.requestId, nowMs, commands, { paid: { wallet: license.body.wallet, requestId: state.requestId, kind: 'fare', refundable: true }, entered: state.entered });
      }
      return step({ s: 'exit.settling', requestId: state.requestId, wallet: license.body.wallet, entry: state.entry, untilMs: nowMs + ctx.timeouts.hubMs }, [
        { ...request, offline: false },
        display('checking…'),
      ]);
    }
    case 'wallet.declined':
      if (state.s !== 'exit.authorizing') return step(state);
      return state.opened ? unsigned(ctx, state, nowMs, `wallet declined: ${event.code}`) : deny(`wallet declined: ${event.code}`);
    case 'card.statement':
      if (state.s !== 'exit.reading') return step(state);
      // Still the exit of the tap: priced at the tap's time, however long the statement took to read.
      return removeUnprovenRecord(state.tap, ctx, exitTap({ ...state.tap, card: { ...state.tap.card, statement: event.statement } }, ctx, nowMs, gate.station, state.exitTimeMs));
    case 'card.lost':
      if (state.s === 'exit.reading') return deny('card removed — tap again');
      if (state.s === 'exit.authorizing' && state.opened) return unsigned(ctx, state, nowMs, 'card removed before signing');
      if (state.s === 'admitting') return denyUnopened(state, nowMs, 'card removed — tap again');
      if (state.s === 'exit.authorizing' || state.s === 'entry.checking') return deny('card removed — tap again');
      return step(state);
    case 'hub.result': {
      if (state.s === 'entry.checking' && event.result.body.requestId === state.requestId) return checked(state, event.result, ctx, nowMs, gate);
      if (state.s !== 'exit.settling' || event.result.body.requestId !== state.requestId) return step(state);
      const r = checkHubResult(event.result, { requestId: state.requestId, terminalId: ctx.terminalId }, ctx.hubKeys);
      if (!r.ok) return step(state, [display(`ignored hub reply: ${r.code}`, 'error')]);
      if (r.body.status !== 'approved') return declined(state.requestId, r.body.code ?? 'unknown');
      const commands: Command[] = [{ c: 'gate.open' }, ...consumeEntry(state.entry)];
      if (r.body.statement) commands.push({ c: 'nfc.store', kind: 'BalanceStatement', message: r.body.statement, replace: true });
      commands.push({ c: 'nfc.release' }, display(`fare ${price(r.body.amountMinor, r.body.currency)}`, 'ok'));
      return passing(ctx, state.requestId, nowMs, commands, { paid: { wallet: state.wallet, requestId: state.requestId, kind: 'fare', refundable: true } });
    }
    case 'hub.error':
      // No answer the entrance can use (an older hub: MALFORMED; not sent: UNAVAILABLE): as offline.
      if (state.s === 'entry.checking' && event.requestId === state.requestId) return deny(ALREADY_INSIDE_TEXT);
      if (state.s !== 'exit.settling' || event.requestId !== state.requestId) return step(state);
      return declined(state.requestId, event.code);
    case 'passage.entered':
      if (state.s === 'exit.authorizing' && state.opened) return step({ ...state, entered: true });
      if (state.s !== 'passing' || state.entered) return step(state);
      return step({ ...state, entered: true, untilMs: nowMs + inPassageMaxMs(ctx) });
    case 'passage':
      if (state.s === 'exit.authorizing' && state.opened) return step({ ...state, passed: true });
      if (state.s !== 'passing') return step(state);
      return passed(state);
    case 'tick':
      if (state.s === 'idle' || nowMs < state.untilMs) return step(state);
      if (state.s === 'exit.settling') {
        const d = deny(CHARGED_AT_MOST_ONCE_TEXT);
        return step(d.state, [{ c: 'hub.abandon', requestId: state.requestId }, ...d.commands]);
      }
      if (state.s === 'passing') {
        // In the beam all this time and never reported through: they entered, so they passed.
        if (state.entered) return passed(state);
        // Paid but not through (hesitated past the window, the beam missed): never charge twice.
        // The grant decides the fare's receipt: passed on it, or failed (refunded) once it expires.
        if (state.paid) return step(GATE_IDLE, [{ c: 'paidExit.grant', ...state.paid }]);
        // An entry nobody went through (the customer turned back): its record stays on the wallet,
        // where it reads as "already inside"; remembered, the wallet's retap here lets it in on it.
        const commands: Command[] = state.admitted
          ? [{ c: 'entry.remember', wallet: state.admitted.wallet, recordId: state.admitted.recordId, kind: 'unpassed', untilMs: nowMs + ENTRY_UNPASSED_MS }]
          : [];
        // A ticket's use stands (reported, the ticket gone from the wallet): this opening is reported failed.
        if (state.requestId) commands.push({ c: 'receipt', requestId: state.requestId, outcome: 'failed', reason: 'no passage' });
        return step(GATE_IDLE, commands);
      }
      if (state.s === 'exit.authorizing' && state.opened) return unsigned(ctx, state, nowMs, 'wallet did not sign in time');
      if (state.s === 'admitting') return denyUnopened(state, nowMs, 'timed out');
      // The hub did not answer in time: as offline, anti-passback holds (a late answer changes nothing).
      if (state.s === 'entry.checking') return deny(ALREADY_INSIDE_TEXT);
      return deny('timed out');
  }
}

/**
 * The barrier opened on the local decision but the wallet never signed (pulled away, refused):
 * nothing can be settled. The admission record stays on the wallet, so the trip stays open (the
 * next entry is refused by anti-passback, the next exit charges it); the incident is kept for
 * the operator, and the runtime counts the fare as an unsigned passage (policy/unsigned.ts):
 * exposure toward the wallet's and the terminal's limits, and no more local decisions for that wallet.
 */
function unsigned(ctx: TerminalContext, state: GateState & { s: 'exit.authorizing' }, nowMs: number, detail: string): Step<GateState> {
  const commands: Command[] = [
    { c: 'incident', kind: 'unsigned-passage', requestId: state.requestId, wallet: state.license.body.wallet, amountMinor: state.fare.fareMinor, detail },
    { c: 'nfc.release' },
    display('see staff: payment not completed', 'error'),
  ];
  return state.passed ? step(GATE_IDLE, commands) : passing(ctx, null, nowMs, commands, { entered: state.entered });
}

/**
 * The wallet's admission record if it is this wallet's and signed by an enrolled, unrevoked gate
 * (ctx.gateKeys, from the hub's keys announcement); else null — the maximum fare, no ticket exit.
 * Anyone can store a record on their own wallet: an unverified one proves no entry.
 */
function verifiedEntry(admission: CardInfo['admission'], wallet: string, ctx: TerminalContext): CardInfo['admission'] {
  if (!admission || admission.message.body.wallet !== wallet) return null;
  // A record this gate already let the wallet out on, written back to the wallet: proves nothing.
  if (ctx.usage.admissionUsed?.(admission.message.body.recordId)) return null;
  const key = ctx.gateKeys?.get(admission.message.body.terminalId);
  return key !== undefined && verifyMessage(admission.message, key) ? admission : null;
}

/**
 * An exit the barrier opens for at once (the local decision, a paid exit) without the wallet's
 * admission record counting — its gate is not among the announced ones, its signature fails, or
 * this gate let the wallet out on it before — removes it from the wallet, after the barrier is
 * told to open: left there it would keep the next entry refused as "already inside" until the
 * trip's time ran out, and price a trip again once its gate is known. An exit that waits (for the
 * hub, the statement) keeps it: a refusal must not cost the customer the record. Not before the
 * gate has a gate list at all (a fresh gate charges no one for its own ignorance).
 */
function removeUnprovenRecord(event: Extract<GateEvent, { e: 'tap' }>, ctx: TerminalContext, next: Step<GateState>): Step<GateState> {
  const record = event.card.admission;
  const wallet = event.card.license?.body.wallet;
  if (!record || ctx.gateKeys === undefined || record.message.body.wallet !== wallet) return next;
  const opens = next.commands.findIndex((c) => c.c === 'gate.open');
  // exitTap already judged it (no second signature check on the tap's path): a record that counted
  // is consumed now (admission.used) or carried to the fare's end (the state's entry).
  const counted = next.commands.some((c) => c.c === 'admission.used') || ('entry' in next.state && next.state.entry !== null);
  if (opens < 0 || counted) return next;
  const commands = [...next.commands];
  commands.splice(opens + 1, 0, { c: 'nfc.delete', recordId: record.recordId });
  return { state: next.state, commands };
}

/** Leaving on an admission record: deleted from the wallet, and remembered so a copy of it opens nothing here again. */
function consumeEntry(entry: CardInfo['admission']): Command[] {
  return entry ? [{ c: 'nfc.delete', recordId: entry.recordId }, { c: 'admission.used', recordId: entry.message.body.recordId }] : [];
}

/**
 * The hub's answer to an entrance's question (entry.checking): verified (hub key, request id, this
 * terminal) and naming the record asked about. Consumed → the tap goes on as an entry, past
 * anti-passback for that record only; anything else → "already inside", as without the hub.
 */
function checked(state: GateState & { s: 'entry.checking' }, result: Envelope<'settlement.result'>, ctx: TerminalContext, nowMs: number, gate: NonNullable<TerminalContext['gate']>): Step<GateState> {
  const r = checkHubResult(result, { requestId: state.requestId, terminalId: ctx.terminalId }, ctx.hubKeys);
  // Not verified: not an answer; the deadline still holds.
  if (!r.ok) return step(state, [display(`ignored hub reply: ${r.code}`, 'error')]);
  if (r.body.status !== 'approved' || r.body.recordId !== state.asked) return deny(ALREADY_INSIDE_TEXT);
  return entryTap(state.tap, ctx, nowMs, gate, state.asked);
}

/** `consumed`: the hub said an exit consumed this record (entry.checking): it is no trip under way. */
function entryTap(event: Extract<GateEvent, { e: 'tap' }>, ctx: TerminalContext, nowMs: number, gate: NonNullable<TerminalContext['gate']>, consumed?: string): Step<GateState> {
  const station = gate.station;
  const lic = checkLicense(event.card.license, ctx, nowMs);
  if (!lic.ok) return deny(`wallet refused: ${lic.code}`);
  const wallet = lic.body.wallet;
  const prior = event.card.admission?.message.body;
  const maxTripMs = ctx.fares?.maxTripMs ?? DEFAULT_MAX_TRIP_MS;
  // Anti-passback: a fresh admission record means this wallet is already inside…
  const inside = prior !== undefined && prior.wallet === wallet && nowMs - prior.time <= maxTripMs && prior.time <= nowMs + 60_000 && prior.recordId !== consumed;
  // …unless it is one this gate wrote and remembers its holder did not go in with (looked up only
  // then: the common tap never reads the memory).
  const memo = inside ? gate.entryRetap?.(wallet) : undefined;
  const retap = memo !== undefined && memo.recordId === prior?.recordId && prior.terminalId === ctx.terminalId && nowMs <= memo.untilMs ? memo : undefined;
  // Opened on it, nobody passed: in again on the same record. Nothing is written or used again
  // (a ticket's use stands, reported at the first opening): the record is still good for one exit
  // only (exit gates remember the records they let out on, the hub claims a fare's record once),
  // so letting in again on it admits no one a trip that is not paid for at the exit.
  if (retap?.kind === 'unpassed' && prior) {
    const commands: Command[] = [{ c: 'gate.open' }, { c: 'nfc.release' }, display(prior.ticketId === undefined ? 'welcome' : 'welcome (ticket)', 'ok')];
    return passing(ctx, null, nowMs, commands, { admitted: { wallet, recordId: prior.recordId, retap: true } });
  }
  // Any other fresh record: already inside. One remembered as written without opening (its answer
  // lost) is that entry's retry, not a passback: written again, the new record replacing it.
  // Online, the hub is asked first whether an exit consumed it (its delete failed: the card was
  // pulled during "checking…", an RF error): a finished trip's record must not lock its customer
  // out for the trip's longest time.
  if (inside && retap === undefined) {
    const record = event.card.admission?.message;
    if (!ctx.online || event.checkId === undefined || !record) return deny(ALREADY_INSIDE_TEXT);
    return step({ s: 'entry.checking', tap: event, requestId: event.checkId, asked: record.body.recordId, untilMs: nowMs + ENTRY_CHECK_MS }, [
      { c: 'hub.ask', requestId: event.checkId, op: { type: 'admission.check', entry: record } },
      display('checking…'),
    ]);
  }
  let ticket: CardInfo['tickets'][number] | null = null;
  for (const t of event.card.tickets) {
    const ok = checkTicket(t.message, { wallet, station, ticketKeysAt: ctx.ticketKeysAt, nowMs, used: (id) => ctx.usage.ticketUsed(id) });
    if (ok.ok) {
      ticket = t;
      break;
    }
  }
  // A ticket entry queues its use for the hub: with no row to queue it in, the use would go
  // unreported and the ticket stay usable at other gates.
  if (ticket && !outboxHasRoom(ctx.usage, 0)) return deny('see staff: OFFLINE_LIMIT');
  const body = {
    recordId: event.recordId,
    wallet,
    terminalId: ctx.terminalId,
    station,
    time: nowMs,
    ...(ticket ? { ticketId: ticket.message.body.ticketId } : {}),
  };
  return step({ s: 'admitting', wallet, recordId: event.recordId, ticket, requestId: event.requestId, ...(retap ? { retap: true as const } : {}), untilMs: nowMs + AUTHORIZE_MS }, [
    { c: 'nfc.storeAdmission', body },
  ]);
}

/**
 * The wallet's license at an exit. One that expired during the trip does not lock its customer in:
 * it is judged at the time of a verified entry record of this trip (the hub does the same).
 */
function exitLicense(card: CardInfo, ctx: TerminalContext, nowMs: number, exitTimeMs: number, maxTripMs: number): ReturnType<typeof checkLicense> {
  const lic = checkLicense(card.license, ctx, nowMs);
  if (lic.ok || lic.code !== 'CERT_EXPIRED' || !card.license) return lic;
  const entered = verifiedEntry(card.admission, card.license.body.wallet, ctx)?.message.body.time;
  if (entered === undefined || exitTimeMs - entered > maxTripMs || entered > exitTimeMs) return lic;
  const atEntry = checkLicense(card.license, ctx, entered);
  return atEntry.ok ? atEntry : lic;
}

/** `exitTimeMs`: when the customer tapped out (the trip's end and the fare's time band); `nowMs`: this step's time. */
function exitTap(event: Extract<GateEvent, { e: 'tap' }>, ctx: TerminalContext, nowMs: number, station: string, exitTimeMs = nowMs): Step<GateState> {
  const maxTripMs = ctx.fares?.maxTripMs ?? DEFAULT_MAX_TRIP_MS;
  const lic = exitLicense(event.card, ctx, nowMs, exitTimeMs, maxTripMs);
  if (!lic.ok) return deny(`wallet refused: ${lic.code}`);
  const wallet = lic.body.wallet;
  const entry = verifiedEntry(event.card.admission, wallet, ctx);
  const ticketId = entry?.message.body.ticketId;
  if (entry && ticketId !== undefined && exitTimeMs - entry.message.body.time <= maxTripMs) {
    // Entered on a ticket (its use was reported at the entrance): nothing to settle here. The
    // exit is reported (through the outbox, as decided here): the hub then knows the record is
    // consumed — a second exit on it is its REPLAY, and an entrance that finds it left on the
    // wallet (the delete failed) is told so instead of refusing "already inside".
    // Last, and only with a row free in the outbox (the reserve is kept for such reports): a full
    // outbox must not keep a ticket holder in, nor fail the step after the barrier opened. Left
    // unreported, the record is what it was before these reports: unknown to the hub.
    const report: Command[] = outboxHasRoom(ctx.usage, 0)
      ? [{ c: 'hub.request', requestId: event.requestId, op: { type: 'ticket.exit', entry: entry.message, exitStation: station, exitTime: exitTimeMs }, offline: true, wallet, amountMinor: 0 }]
      : [];
    return passing(ctx, null, nowMs, [{ c: 'gate.open' }, ...consumeEntry(entry), { c: 'nfc.release' }, display('goodbye (ticket)', 'ok'), ...report], { paid: { wallet, requestId: ticketId, kind: 'ticket', refundable: false } });
  }
  const granted = ctx.usage.paidExit?.(wallet, nowMs);
  // A grant resting on an admission record holds only while the wallet still carries that record.
  const paid = granted?.onRecord === undefined || granted.onRecord === entry?.message.body.recordId ? granted : undefined;
  if (paid !== undefined) {
    // The hub approved this wallet's fare after we had turned it away, or it paid and did not
    // pass: it has paid — never charge twice.
    // A fare's exit made at last is reported (`passed`) like any other; a ticket trip's grant names no request.
    const fare = paid.kind === 'fare' ? paid.requestId : null;
    // The grant is used up at the passage, not now. Its record is consumed now, so from here on a
    // fare's grant stands on nothing else and is refundable (another gate would charge the wallet,
    // record-less): stored so at once.
    const using: PaidExit = { wallet, requestId: paid.requestId, kind: paid.kind, refundable: paid.kind === 'fare' };
    const commands: Command[] = [{ c: 'gate.open' }, ...(paid.onRecord === undefined ? [] : [{ c: 'paidExit.grant' as const, ...using }]), ...consumeEntry(entry), { c: 'nfc.release' }, display('paid — goodbye', 'ok')];
    return passing(ctx, fare, nowMs, commands, { paid: using, usingGrant: true });
  }
  // An earlier fare of this wallet went unanswered and may still settle: charging again could
  // charge twice. Wait for the hub's answer (then the wallet leaves as paid, or pays anew).
  if (ctx.usage.abandonedFor?.(wallet)) return deny(PAYMENT_PENDING_TEXT);
  if (!ctx.fares) return deny('no fare table yet');
  // No entry record (or a stale one): computeFare charges the maximum fare.
  const e = entry?.message.body;
  const fare = computeFare(ctx.fares, e ? { station: e.station, time: e.time } : null, station, exitTimeMs);
  // Suica-style: decide from the license, the deny list and (when the license's offline credit
  // does not cover the fare) the wallet's last hub-signed statement, and open BEFORE the wallet signs — the signature (≈1.5 KB over NFC) does not fit a 0.1 s
  // budget; it follows while the customer walks through, and the request goes out at once.
  const risk = decideGateLocal({
    license: lic.body,
    statement: event.card.statement,
    fareMinor: fare.fareMinor,
    currency: fare.currency,
    hubKeys: ctx.hubKeys,
    usage: ctx.usage,
    limits: ctx.limits,
    nowMs,
  });
  if (risk.ok === 'need-statement') return step({ s: 'exit.reading', tap: event, exitTimeMs, untilMs: nowMs + AUTHORIZE_MS }, [{ c: 'nfc.readStatement' }]);
  if (!risk.ok && !ctx.online) return deny(`see staff: ${risk.code}`);
  // Opened on the local decision: the signature consumes the entry record. Waiting for the hub: the
  // record stays until the hub approves (a declined fare must not cost the customer the entry).
  const consume = risk.ok === true && entry ? { consumeRecordId: entry.recordId } : {};
  const authorize: Command = { c: 'nfc.authorize', offer: { purpose: 'fare', amountMinor: fare.fareMinor, currency: fare.currency, lines: [] }, ...consume };
  const next: GateState = {
    s: 'exit.authorizing',
    requestId: event.requestId,
    license: lic.license,
    entry,
    fare,
    exitTimeMs,
    fareTableVersion: ctx.faresVersion,
    opened: risk.ok === true,
    untilMs: nowMs + AUTHORIZE_MS,
  };
  // A fare the local policy cannot cover waits for a verified hub approval.
  return step(next, risk.ok === true ? [{ c: 'gate.open' }, authorize, display(`fare ${price(fare.fareMinor, fare.currency)}`, 'ok')] : [authorize]);
}
