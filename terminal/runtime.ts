// The terminal runtime: one process, one kind (vending, gate, POS) chosen by config. It feeds
// events into the kind's pure state machine, one at a time, and carries out the commands the
// machine returns through the adapters: the NFC reader (wallet APDUs), the actuators, the durable
// store and the hub client. Nothing here decides a business outcome.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  checkAuthorization, createOffer, decodeAnyForm, decodeMessage, DEFAULT_MAX_SKEW_MS, encodeCompact, HubKeyRing, hubKeysTrustedAt, PublicKeyHex, ticketKeysAt, encodeMessage, newChallenge, newRequestId,
  PAID_EXIT_UNUSED, signMessage, TICKET_NEVER_COLLECTED, toHex, verifyMessage, type ArticleT, type TicketProductT, type Envelope, type FareTable, type HubKeyWindow, type KeyPair,
} from '../protocol/index.ts';
import { isHardwareError } from '../hardware/errors.ts';
import { onTap, type NfcReader, type NfcSession } from '../hardware/nfc/nfc-reader.ts';
import { WalletCard, type WalletRecord } from '../hardware/wallet-apdu/wallet-card.ts';
import type { RecordKindName } from '../hardware/wallet-apdu/apdu.ts';
import type { Gate } from '../hardware/actuators/gate.ts';
import type { Vending } from '../hardware/actuators/vending.ts';
import type { Pos } from '../hardware/actuators/pos.ts';
import { certificateWarning } from './certificate-validity.ts';
import { readCaFile, type TerminalConfig } from './config.ts';
import { ANNOUNCEMENT_TYPES, HubClient, type AnnouncementMessage, type ReplyMessage } from './hub/hub-client.ts';
import { checkHubAnswer, checkHubResult, hubErrorEvent, isRetryLater } from './machines/checks.ts';
import { DEFAULT_MAX_TRIP_MS, GATE_IDLE, gateStep, parseEntryRetaps, rememberEntryRetap, type GateEvent, type GateState } from './machines/gate.ts';
import { POS_IDLE, pinMatches, posStep, type PosEvent, type PosState } from './machines/pos.ts';
import { pinLockedUntil, recordPinAttempt, type PinAttempts } from './policy/pin-attempts.ts';
import { price, type CardInfo, type Command, type EntryRetap, type PaidExit, type Step, type TerminalContext } from './machines/types.ts';
import { SLOT_OUT_OF_ORDER_AFTER, VENDING_IDLE, vendingStep, type VendingEvent, type VendingState } from './machines/vending.ts';
import { MAX_OPEN_OUTBOX, type OutboxEntry, type SlotFault, type TerminalStore } from './store/terminal-store.ts';
import {
  addUnsignedPassage, hasUnsignedPassage, parseUnsignedPassages, unsignedPeriodMinor, unsignedWalletMinor, UNSIGNED_PASSAGES_KEY, type UnsignedPassage,
} from './policy/unsigned.ts';

export type RuntimeEvent = VendingEvent | GateEvent | PosEvent;
export type RuntimeState = VendingState | GateState | PosState;

export interface TerminalDevices {
  gate?: Gate;
  vending?: Vending;
  pos?: Pos;
  /**
   * Receipt printer; default: the log. Resolves once the slip is printed, rejects when it will not
   * be: the runtime keeps each slip in its store until then (printed at the next start otherwise).
   */
  print?: (lines: string[]) => Promise<void>;
}

export interface TerminalRuntimeDeps {
  config: TerminalConfig;
  keys: KeyPair;
  certificate: Envelope<'terminal.certificate'>;
  reader: NfcReader;
  devices: TerminalDevices;
  store: TerminalStore;
  log: Logger;
  clock?: () => number;
}

const TICK_MS = 100;
/** How often the store's running-time counter is saved (what a power cut may lose of it). */
const SAVE_UPTIME_TICKS = 600;
const LICENSE_CACHE_MAX = 10_000;
/** Store key of the staff PIN attempts (policy/pin-attempts.ts). */
const PIN_ATTEMPTS_KEY = 'pos.pin-attempts';
/** Longest one tap may hold the reader, reading the wallet included. */
const TAP_SESSION_MS = 15_000;
/** How long a paid exit (a late-approved fare, paid but not passed) lets its wallet out without a new charge; a fare's left unused is then refunded. */
const PAID_EXIT_VALID_MS = 3 * 3600_000;
const PAID_EXIT_PREFIX = 'paid-exit.';
/** Entry gate: the admission records whose holder did not go in (gate.ts `entry.remember`), one JSON list. */
const ENTRY_RETAPS_KEY = 'entry-retaps';
/**
 * Questions asked of the hub (`hub.ask`) whose answer has not come, at most: an entrance asks one
 * at a time and waits under a second, so a few cover answers that never come (the oldest go).
 */
const MAX_OPEN_QUESTIONS = 16;

type ReceiptOutcome = 'dispensed' | 'passed' | 'delivered' | 'failed';
interface StoredReceipt {
  readonly requestId: string;
  readonly envelope: string;
}

/** A gate's paid exit as kept in the store (kv `paid-exit.<wallet>`), made at `timeMs`. */
type StoredPaidExit = Omit<PaidExit, 'wallet'> & { readonly timeMs: number };

/** A stored grant; an unreadable one is no grant (the wallet pays as usual). */
function parseStoredPaidExit(raw: string): StoredPaidExit | undefined {
  try {
    const v = JSON.parse(raw) as Partial<StoredPaidExit>;
    if (typeof v.requestId !== 'string' || typeof v.timeMs !== 'number') return undefined;
    const refundable = v.refundable === true;
    // Kept before grants had a kind: only a fare's were refundable (and reported).
    const kind = v.kind === 'fare' || v.kind === 'ticket' ? v.kind : refundable ? 'fare' : 'ticket';
    return { requestId: v.requestId, timeMs: v.timeMs, kind, refundable, ...(typeof v.onRecord === 'string' ? { onRecord: v.onRecord } : {}) };
  } catch {
    return undefined;
  }
}
/** Store key of the last announced hub key ring (kept apart from the announcement: see applyAnnouncement). */
const HUB_KEY_RING = 'hub-key-ring';
/** The ring as stored: with the key pinned when it was accepted, so re-pinning the config drops it. */
const StoredRing = z.object({ pinned: PublicKeyHex, ring: HubKeyRing });

function parseJsonOrUndefined(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Observable happenings, for the UI, the tests and the benchmark. */
export interface RuntimeEvents {
  display: [text: string, tone: string];
  command: [command: Command, atMs: number];
  state: [state: RuntimeState];
  /** A hub-signed result (verified) was stored for a request. */
  settled: [requestId: string, status: string];
  /** The hub acknowledged a completion receipt (verified): recorded, refunded, duplicate or rejected. */
  receipt: [requestId: string, status: string];
  print: [lines: string[]];
  tap: [atMs: number];
}

/** A stored (verified) hub result that moved money: approved, for more than nothing. */
function approvalIn(encoded: string | null): Envelope<'settlement.result'> | undefined {
  const r = decodeMessage(encoded ?? '', 'settlement.result');
  return r.ok && r.value.body.status === 'approved' && r.value.body.amountMinor > 0 ? r.value : undefined;
}

/** A POS's failure receipt for a sale the hub approved while the power went, before the POS showed it. */
export const POWER_LOST_BEFORE_SHOWN = 'power lost before the sale was shown';

/** Ticks between two prunings of the store's history (hourly). */
const PRUNE_TICKS = Math.round(3600_000 / TICK_MS);
/** Most settled requests dropped per pruning (one bounded transaction on the terminal's thread). */
const PRUNE_MAX_ROWS = 5_000;
/** Kept past what the limits read: a clock stepped back, a late duplicate answer, an operator's look. */
const HISTORY_MARGIN_MS = 24 * 3600_000;
/** An admission record's id among the used ticket ids (ids of both are hex; the prefix keeps them apart). */
const admissionKey = (recordId: string): string => `admission:${recordId}`;

export class TerminalRuntime extends EventEmitter<RuntimeEvents> {
  readonly config: TerminalConfig;
  private readonly d: TerminalRuntimeDeps;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly hub: HubClient;
  private state: RuntimeState;
  private queue: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private readonly tapLoop: Promise<void>;
  private readonly ticker: NodeJS.Timeout;
  /** The dispense in progress (drop or timeout, then its event handled); close() waits for it. */
  private dispensing: Promise<void> | undefined;
  private closing = false;
  private current: { card: WalletCard; session: NfcSession; done: () => void; v2: boolean; walletKeyHex: string | undefined; consumed: Set<number> } | undefined;
  // Hub announcements (verified), persisted so an offline restart still has them.
  /** Hub key windows from the last keys announcement; until one arrives, only the pinned key. */
  private hubKeyRing: readonly HubKeyWindow[] | null = null;
  private issuerKeys: string[];
  /** The deny list in force: wallets, and tickets voided by a refund. */
  private blocklist = { version: -1, time: -1, wallets: new Set<string>(), tickets: new Set<string>() };
  private fares: { version: number; time: number; table: FareTable } | null = null;
  private catalog: { version: number; time: number; articles: ArticleT[] } | null = null;
  private ticketProducts: { version: number; time: number; products: TicketProductT[] } | null = null;
  private keys = { version: -1, time: -1 };
  /** Exit gates: the enrolled gates' keys from the keys announcement (admission records). */
  private gateKeys: ReadonlyMap<string, string> | undefined;
  /** Gate: unsigned passages (policy/unsigned.ts), loaded from the store on first use. */
  private unsignedPassages: UnsignedPassage[] | undefined;
  /** Entry gate: ids of questions asked of the hub (`hub.ask`), awaiting their answer; bounded. */
  private readonly questions = new Set<string>();
  /** Entry gate: records whose holder did not go in (kv `entry-retaps`, bounded), loaded on first use. */
  private entryRetaps: EntryRetap[] | undefined;
  private online = false;
  private closed = false;
  /** simulatePowerCut: not even the commands of the event in hand run on. */
  private poweredOff = false;
  /** Gate: licenses by card UID (bounded), so a returning card skips ≈480 bytes of NFC. */
  private readonly licenseByUid = new Map<string, Uint8Array>();
  lastDisplay = '';

  private constructor(deps: TerminalRuntimeDeps) {
    super();
    this.d = deps;
    this.config = deps.config;
    this.clock = deps.clock ?? Date.now;
    this.log = deps.log.child({ terminalId: deps.config.terminalId, kind: deps.config.kind });
    this.state = deps.config.kind === 'vending' ? VENDING_IDLE : deps.config.kind === 'gate' ? GATE_IDLE : POS_IDLE;
    this.issuerKeys = [...deps.config.hub.issuerKeys];
    // mqtts: the broker's CA, read (a ConfigError if unreadable) before anything is touched.
    const hubCa = deps.config.hub.caFile !== undefined ? readCaFile(deps.config.hub.caFile) : undefined;
    const c = deps.certificate.body;
    if (c.terminalId !== deps.config.terminalId || c.merchantId !== deps.config.merchantId || c.kind !== deps.config.kind) {
      throw new TypeError('TerminalRuntime: the certificate names another terminal, merchant or kind than the config');
    }
    if (c.publicKey !== toHex(deps.keys.publicKey)) throw new TypeError('TerminalRuntime: keyFile does not match the certificate');
    this.restoreAnnouncements();
    // A restart ends whatever the customer was waiting for: an online request still without its
    // result was given up on, as after a timeout, so a late approval is undone (lateApproval).
    const givenUp = deps.store.abandonOnline();
    if (givenUp > 0) this.log.warn({ requests: givenUp }, 'restart: unanswered online requests given up; a late approval is undone');
    this.hub = new HubClient({
      url: deps.config.hub.url,
      terminalId: deps.config.terminalId,
      secretKey: deps.keys.secretKey,
      ...(deps.config.hub.password !== undefined ? { password: deps.config.hub.password } : {}),
      ...(hubCa !== undefined ? { tls: { ca: hubCa } } : {}),
      store: deps.store,
      log: this.log.child({ part: 'hub' }),
      clock: this.clock,
      retryMs: deps.config.hub.retryMs,
      reconnectPeriodMs: deps.config.hub.reconnectPeriodMs,
      onReply: (reply, raw) => this.onReply(reply, raw),
      onAnnouncement: (m) => this.onAnnouncement(m),
      onOnlineChange: (online) => {
        if (online !== this.online) this.log.info({ online }, online ? 'hub reachable' : 'hub unreachable: offline mode within limits');
        this.online = online;
      },
    });
    this.recoverSales();
    this.printKeptSlipsWhenHeard();
    this.pruneHistory();
    this.warnCertificate();
    let ticks = 0;
    this.ticker = setInterval(() => {
      if (this.state.s !== 'idle') this.post({ e: 'tick' });
      if (++ticks % SAVE_UPTIME_TICKS === 0) deps.store.saveUptime();
      if (ticks % PRUNE_TICKS === 0) {
        this.pruneHistory();
        this.warnCertificate();
      }
    }, TICK_MS);
    this.tapLoop = onTap(deps.reader, (session) => this.onCard(session), {
      signal: this.abort.signal,
      onError: (err) => this.log.warn({ err: (err as Error).message }, 'tap failed'),
    }).catch((err: unknown) => {
      if (!this.closed) this.log.error({ err }, 'NFC reader loop stopped');
    });
  }

  static start(deps: TerminalRuntimeDeps): TerminalRuntime {
    return new TerminalRuntime(deps);
  }

  get machineState(): RuntimeState {
    return this.state;
  }

  get isOnline(): boolean {
    return this.online;
  }

  get trustedHubKeys(): readonly string[] {
    return this.hubKeys;
  }

  /**
   * Rotation: the announced keys whose window contains now, with the protocol's clock-skew
   * allowance (the hub switches by its own clock); the pinned key until a ring is announced.
   */
  private get hubKeys(): string[] {
    return this.hubKeyRing ? hubKeysTrustedAt(this.hubKeyRing, this.clock(), DEFAULT_MAX_SKEW_MS) : [this.config.hub.hubKey];
  }

  private ticketKeysAt(issuedAt: number): string[] {
    return this.hubKeyRing ? ticketKeysAt(this.hubKeyRing, issuedAt, this.clock(), DEFAULT_MAX_SKEW_MS) : [this.config.hub.hubKey];
  }

  get fareTable(): FareTable | null {
    return this.fares?.table ?? null;
  }

  isBlocklisted(wallet: string): boolean {
    return this.blocklist.wallets.has(wallet);
  }

  get articles(): readonly ArticleT[] {
    return this.catalog?.articles ?? [];
  }

  // ---------- inputs from the keypad / cashier ----------

  select(sku: string): Promise<void> {
    return this.post({ e: 'select', sku });
  }

  addItem(sku: string, qty = 1): Promise<void> {
    return this.post({ e: 'item.add', sku, qty });
  }

  checkout(): Promise<void> {
    return this.post({ e: 'checkout' });
  }

  clear(): Promise<void> {
    return this.post({ e: 'clear' });
  }

  cancelSelection(): Promise<void> {
    return this.post({ e: 'cancel' });
  }

  /** Staff-authorized cash top-up: the operator's id and PIN, then the customer taps. */
  topUp(amountMinor: number, operatorId: string, pin: string): Promise<void> {
    // Counted here, where the store keeps it: the machine only says whether the PIN matched.
    const uptimeMs = this.d.store.uptimeMs();
    const attempts = JSON.parse(this.d.store.getKv(PIN_ATTEMPTS_KEY) ?? '{}') as PinAttempts;
    const lockedUntil = pinLockedUntil(attempts, operatorId, uptimeMs);
    if (lockedUntil !== undefined) {
      this.log.warn({ operatorId }, 'staff PIN locked after repeated wrong PINs');
      return this.execute({ c: 'display', text: `staff PIN locked — try again in ${Math.ceil((lockedUntil - uptimeMs) / 60_000)} min`, tone: 'error' }, this.clock());
    }
    const ok = pinMatches(this.config.pos?.operators ?? [], operatorId, pin);
    this.d.store.setKv(PIN_ATTEMPTS_KEY, JSON.stringify(recordPinAttempt(attempts, operatorId, ok, uptimeMs)));
    if (!ok) this.log.warn({ operatorId }, 'wrong staff PIN');
    return this.post({ e: 'topup', amountMinor, operatorId, pin });
  }

  /**
   * Vending, the operator: puts a slot taken out of order by a failed vend back in service (the
   * jam cleared, the slot refilled). Returns the failures it had (0: it was in service).
   */
  resetSlot(slot: number): number {
    if (this.config.kind !== 'vending') throw new TypeError(`resetSlot: a ${this.config.kind} has no slots`);
    if (!Number.isInteger(slot) || slot < 0) throw new RangeError(`resetSlot: slot must be an integer ≥ 0, got ${slot}`);
    const failures = this.d.store.resetSlot(slot);
    if (failures > 0) this.log.info({ code: 'VENDING_SLOT_RESET', slot, failures }, `slot ${slot} back in service (operator reset)`);
    return failures;
  }

  /** Vending: the slots out of order (failed vends since their last reset), by slot number. */
  get slotsOutOfOrder(): readonly SlotFault[] {
    return this.config.kind === 'vending' ? this.d.store.slotFaults().filter((f) => f.failures >= SLOT_OUT_OF_ORDER_AFTER) : [];
  }

  /** Ticket vending: sell a hub product at its announced price; the hub signs the ticket, the wallet keeps it. */
  sellTicket(product: string): Promise<void> {
    return this.post({ e: 'ticket.sell', product });
  }

  /** The hub's ticket products as announced (empty before the first announcement). */
  get products(): readonly TicketProductT[] {
    return this.ticketProducts?.products ?? [];
  }

  /** Relay a wallet-signed cancellation of a purchase made here; returns the new request id. */
  async cancelPurchase(cancellation: Envelope<'cancellation'>): Promise<string> {
    const requestId = newRequestId();
    await this.post({ e: 'cancel', cancellation, requestId });
    return requestId;
  }

  // ---------- the machine loop ----------

  private context(): TerminalContext {
    const c = this.config;
    const store = this.d.store;
    return {
      terminalId: c.terminalId,
      merchantId: c.merchantId,
      currency: c.currency,
      hubKeys: this.hubKeys,
      ticketKeysAt: (issuedAt) => this.ticketKeysAt(issuedAt),
      issuerKeys: this.issuerKeys,
      blocklist: this.blocklist.wallets,
      online: this.online,
      catalog: this.catalog?.articles ?? [],
      catalogVersion: this.catalog?.version ?? null,
      ticketProducts: this.ticketProducts?.products ?? [],
      fares: this.fares?.table ?? null,
      faresVersion: this.fares?.version ?? null,
      limits: c.limits,
      usage: {
        // Unsigned passages (a gate opened, the wallet never signed) count as unsettled exposure.
        walletLocalMinor: (w, since) => store.walletLocalMinor(w, since) + unsignedWalletMinor(this.unsigned(), w, store.uptimeMs()),
        // On the terminal's running time, not the wall clock: a clock step frees no budget (store).
        terminalPeriodMinor: () => store.terminalPeriodMinor(c.limits.periodMs) + unsignedPeriodMinor(this.unsigned(), store.uptimeMs(), c.limits.periodMs),
        unsignedPassage: (wallet) => hasUnsignedPassage(this.unsigned(), wallet, store.uptimeMs()),
        ticketUsed: (id) => store.ticketUsed(id) || this.blocklist.tickets.has(id),
        outboxRoom: () => MAX_OPEN_OUTBOX - store.openCount(),
        admissionUsed: (recordId) => store.ticketUsed(admissionKey(recordId)),
        abandonedFor: (wallet) => store.hasAbandoned(wallet),
        paidExit: (wallet, nowMs) => {
          const grant = this.paidExitGrant(wallet);
          if (!grant || nowMs - grant.timeMs > PAID_EXIT_VALID_MS) return undefined;
          const { timeMs: _timeMs, ...paid } = grant;
          return paid;
        },
      },
      timeouts: { hubMs: c.hub.timeoutMs, dropMs: c.vending?.dropTimeoutMs ?? 4000, tapMs: 10_000 },
      ...(c.kind === 'pos' ? { heldTickets: (wallet: string) => this.heldTickets(wallet) } : {}),
      ...(c.kind === 'vending' ? { vending: { slotCount: this.slotCount(), slotFailures: (slot: number) => store.slotFailures(slot), ready: () => this.d.devices.vending?.ready() ?? true } } : {}),
      ...(c.gate
        ? {
            gate: {
              station: c.gate.station,
              mode: c.gate.mode,
              passageTimeoutMs: c.gate.passageTimeoutMs,
              closeDelayMs: c.gate.closeDelayMs,
              inPassageMaxMs: c.gate.inPassageMaxMs,
              barrierBusy: () => this.d.devices.gate?.isOpen === true,
              entryRetap: (wallet: string) => this.retaps().find((r) => r.wallet === wallet),
            },
          }
        : {}),
      ...(this.gateKeys ? { gateKeys: this.gateKeys } : {}),
    };
  }

  /** Vending: the slots this machine has — the config's, and no more than its dispenser has. */
  private slotCount(): number {
    return Math.min(this.config.vending?.slotCount ?? 8, this.d.devices.vending?.slotCount ?? Number.POSITIVE_INFINITY);
  }

  private retaps(): EntryRetap[] {
    return (this.entryRetaps ??= parseEntryRetaps(this.d.store.getKv(ENTRY_RETAPS_KEY)));
  }

  private unsigned(): UnsignedPassage[] {
    return (this.unsignedPassages ??= parseUnsignedPassages(this.d.store.getKv(UNSIGNED_PASSAGES_KEY)));
  }

  private stepMachine(event: RuntimeEvent, nowMs: number): Step<RuntimeState> {
    const ctx = this.context();
    switch (this.config.kind) {
      case 'vending':
        return vendingStep(this.state as VendingState, event as VendingEvent, ctx, nowMs);
      case 'gate':
        return gateStep(this.state as GateState, event as GateEvent, ctx, nowMs);
      case 'pos':
        return posStep(this.state as PosState, event as PosEvent, ctx, nowMs, this.config.pos?.operators ?? []);
    }
  }

  /** Events are handled one at a time, in order; a command's outcome is posted as a new event. */
  post(event: RuntimeEvent): Promise<void> {
    const run = this.queue.then(() => this.handle(event));
    this.queue = run.catch((err: unknown) => this.log.error({ err, event: event.e }, 'event handling failed'));
    return this.queue;
  }

  private async handle(event: RuntimeEvent): Promise<void> {
    if (this.closed) return;
    const nowMs = this.clock();
    const before = this.state;
    const { state, commands } = this.stepMachine(event, nowMs);
    this.state = state;
    if (state !== before) this.emit('state', state);
    for (const command of commands) {
      // A power cut stops everything, the rest of this event's commands included.
      if (this.poweredOff) return;
      await this.execute(command, nowMs);
    }
  }

  private async execute(cmd: Command, nowMs: number): Promise<void> {
    this.emit('command', cmd, nowMs);
    switch (cmd.c) {
      case 'display':
        this.lastDisplay = cmd.text;
        this.emit('display', cmd.text, cmd.tone);
        this.log.debug({ text: cmd.text, tone: cmd.tone }, 'display');
        if (this.d.devices.pos) {
          await this.d.devices.pos.show(cmd.text);
          await this.d.devices.pos.setStatus(cmd.tone === 'ok' ? 'approved' : cmd.tone === 'error' ? 'declined' : 'busy');
        }
        return;
      case 'nfc.authorize':
        return this.nfcAuthorize(cmd.offer, nowMs, cmd.consumeRecordId);
      case 'nfc.store': {
        const card = this.current?.card;
        let stored = false;
        if (card) {
          try {
            stored = (await card.storeRecord(cmd.kind, this.walletBytes(cmd.message), { replace: cmd.replace })) !== 'full';
            if (!stored) this.log.info({ kind: cmd.kind }, 'wallet full: record not stored');
          } catch (err) {
            this.log.info({ err: (err as Error).message, kind: cmd.kind }, 'could not store record on the wallet');
          }
        }
        // A ticket's outcome goes back to the machine: kept in the store until the wallet has it.
        if (cmd.ticketId !== undefined) void this.post({ e: 'ticket.stored', ticketId: cmd.ticketId, ok: stored });
        return;
      }
      case 'nfc.storeAdmission': {
        const card = this.current?.card;
        if (!card) return void this.post({ e: 'card.lost' });
        const record = signMessage('gate.admission', cmd.body, this.d.keys.secretKey);
        try {
          const id = await card.storeRecord('Admission', this.walletBytes(record), { replace: true });
          void this.post(id === 'full' ? { e: 'card.lost' } : { e: 'wallet.stored' });
        } catch (err) {
          this.cardLost(err);
        }
        return;
      }
      case 'nfc.readStatement': {
        const card = this.current?.card;
        if (!card) return void this.post({ e: 'card.lost' });
        try {
          const statement = decodeCard(new Uint8Array(0), await card.readRecords('BalanceStatement', { compact: this.current?.v2 === true })).statement ?? null;
          void this.post({ e: 'card.statement', statement });
        } catch (err) {
          this.cardLost(err);
        }
        return;
      }
      case 'nfc.delete': {
        const card = this.current?.card;
        // Already consumed by the wallet's signature (AUTHORIZE with a record id): no extra APDU.
        if (card && !this.current?.consumed.has(cmd.recordId)) {
          await card.deleteRecord(cmd.recordId).catch((err: unknown) => {
            // The record stays on the wallet: an admission record an exit let the wallet out on then
            // reads as "already inside" at the next entry, which asks the hub online (README).
            this.log.warn({ recordId: cmd.recordId, err: (err as Error).message }, 'record not deleted from the wallet (card gone?)');
          });
        }
        return;
      }
      case 'nfc.release':
        this.current?.done();
        return;
      case 'hub.request':
        this.queueRequest(cmd, nowMs, this.opensSale(cmd));
        return;
      case 'hub.ask': {
        // Terminal-signed like every request, but for the customer at the barrier only: not in the
        // outbox, sent once; the machine's deadline stands for an answer that does not come.
        const request = signMessage('settlement.request', { requestId: cmd.requestId, terminalId: this.config.terminalId, time: nowMs, offline: false, op: cmd.op }, this.d.keys.secretKey);
        if (this.questions.size >= MAX_OPEN_QUESTIONS) this.questions.delete(this.questions.values().next().value as string);
        this.questions.add(cmd.requestId);
        const sent = this.hub.ask(cmd.requestId, Buffer.from(encodeMessage(request)).toString('utf8'));
        this.log.info({ requestId: cmd.requestId, op: cmd.op.type, recordId: cmd.op.entry.body.recordId, sent }, 'question to the hub');
        if (!sent) {
          this.questions.delete(cmd.requestId);
          void this.post(hubErrorEvent(cmd.requestId, 'UNAVAILABLE'));
        }
        return;
      }
      case 'hub.abandon': {
        // The machine's deadline and the hub's result can cross: the result was recorded while
        // the deadline waited in the event queue, and the machine has now given up on it anyway.
        const entry = this.d.store.get(cmd.requestId);
        if (entry?.state === 'done') return this.resultCrossedDeadline(cmd.requestId, entry.result);
        this.d.store.abandon(cmd.requestId);
        this.log.child({ requestId: cmd.requestId }).warn('hub did not answer in time; request stays in the outbox');
        return;
      }
      case 'receipt':
        return this.sendReceipt(cmd.requestId, cmd.outcome, cmd.reason, nowMs);
      case 'gate.open': {
        const gate = this.d.devices.gate;
        if (!gate) return;
        gate
          .admit({
            direction: this.config.gate?.mode ?? 'entry',
            passageTimeoutMs: this.config.gate?.passageTimeoutMs ?? 8000,
            // Told at once: the machine must not conclude "nobody passed" while someone is in the beam.
            onEntered: () => void this.post({ e: 'passage.entered' }),
          })
          .then((r) => {
            if (r.kind === 'passed') void this.post({ e: 'passage' });
          })
          .catch((err: unknown) => this.log.error({ err }, 'gate failed'));
        return;
      }
      case 'gate.deny':
        void this.d.devices.gate?.deny().catch(() => undefined);
        return;
      case 'vend': {
        const vending = this.d.devices.vending;
        if (!vending) return void this.post({ e: 'dispense.failed' });
        // Durably BEFORE the motor runs (MDB "vend started"): a power cut from here on is a
        // failed dispense at start-up (recoverSales), refunded by the hub.
        this.d.store.markVendStarted(cmd.requestId, cmd.slot, nowMs);
        const dispensing = vending
          .dispense(cmd.slot, { timeoutMs: this.config.vending?.dropTimeoutMs ?? 4000 })
          .then((r) => {
            if (r.kind === 'failed' && 'code' in r) this.log.error({ code: r.code, slot: cmd.slot, requestId: cmd.requestId }, 'drop sensor blocked: nothing vended, refunded; no sale starts until it reads clear');
            return this.post(r.kind === 'dispensed' ? { e: 'drop' } : { e: 'dispense.failed', reason: r.reason });
          })
          .catch((err: unknown) => {
            this.log.error({ err, slot: cmd.slot, requestId: cmd.requestId }, 'dispense failed');
            return this.post({ e: 'dispense.failed', reason: isHardwareError(err) ? err.code : 'dispense error' });
          });
        this.dispensing = dispensing;
        void dispensing.finally(() => {
          if (this.dispensing === dispensing) this.dispensing = undefined;
        });
        return;
      }
      case 'print':
        return this.printSlip(cmd.lines);
      case 'slot.failed': {
        const failures = this.d.store.recordSlotFailure(cmd.slot, nowMs, cmd.reason, cmd.requestId);
        const fields = { code: 'VENDING_SLOT_FAILED', slot: cmd.slot, failures, reason: cmd.reason, requestId: cmd.requestId };
        if (failures >= SLOT_OUT_OF_ORDER_AFTER) this.log.error({ ...fields, outOfOrder: true }, `vend failed: slot ${cmd.slot} out of order until an operator resets it (keypad: slot-reset ${cmd.slot})`);
        else this.log.warn({ ...fields, outOfOrder: false }, 'vend failed');
        return;
      }
      case 'ticket.hold':
        this.d.store.holdTicket(cmd.ticket.body.ticketId, cmd.ticket.body.wallet, Buffer.from(encodeMessage(cmd.ticket)).toString('utf8'), nowMs, cmd.requestId);
        return;
      case 'ticket.collected':
        this.d.store.releaseTicket(cmd.ticketId);
        this.log.info({ ticketId: cmd.ticketId }, 'ticket stored on its wallet');
        return;
      case 'ticket.markUsed':
        this.d.store.markTicketUsed(cmd.ticketId, nowMs);
        return;
      case 'paidExit.consume':
        if (this.paidExitGrant(cmd.wallet)?.requestId === cmd.requestId) this.d.store.deleteKv(`${PAID_EXIT_PREFIX}${cmd.wallet}`);
        return;
      case 'entry.remember': {
        // Durable before the next tap is decided (events are handled one at a time): another
        // wallet's tap, a deny or a restart in between does not lose it.
        const { c: _c, ...retap } = cmd;
        this.entryRetaps = rememberEntryRetap(this.retaps(), retap, nowMs);
        this.d.store.setKv(ENTRY_RETAPS_KEY, JSON.stringify(this.entryRetaps));
        this.log.info({ recordId: cmd.recordId, kind: cmd.kind }, 'entry remembered: its holder did not go in');
        return;
      }
      case 'entry.forget': {
        const kept = this.retaps().filter((r) => r.wallet !== cmd.wallet);
        if (kept.length === this.retaps().length) return;
        this.entryRetaps = kept;
        this.d.store.setKv(ENTRY_RETAPS_KEY, JSON.stringify(kept));
        return;
      }
      case 'admission.used':
        // Kept with the used tickets (the same durable set of ids, anti-reuse while the hub is away).
        this.d.store.markTicketUsed(admissionKey(cmd.recordId), nowMs);
        return;
      case 'paidExit.grant':
        // Kept before the barrier opens for a paid exit, and again when nobody passed: until used
        // up at the passage, the next exit of this wallet here opens for free (a power cut included).
        this.grantPaidExit(cmd, nowMs);
        this.log.debug({ requestId: cmd.requestId, refundable: cmd.refundable }, 'paid exit granted');
        return;
      case 'incident':
        // A UID that led to an unsigned passage is not trusted for the license cache any more.
        if (this.current) this.licenseByUid.delete(toHex(this.current.session.uid));
        this.d.store.setKv(`incident.${cmd.requestId}`, JSON.stringify({ ...cmd, timeMs: nowMs }));
        // Exposure that no outbox row carries: counted toward the wallet's and this terminal's
        // limits, and the wallet gets no more local decisions here (policy/unsigned.ts).
        this.countUnpaid({ requestId: cmd.requestId, wallet: cmd.wallet, amountMinor: cmd.amountMinor, timeMs: nowMs });
        this.log.warn({ requestId: cmd.requestId, kind: cmd.kind, wallet: `${cmd.wallet.slice(0, 12)}…`, amountMinor: cmd.amountMinor, detail: cmd.detail }, 'incident');
        // Reported to the hub for the operator, through the outbox like any request (re-sent until
        // answered, kept across restarts), under the id of the passage that went unpaid: its
        // request was never made. Amount 0 here: the exposure is counted as an unsigned passage.
        this.queueRequest(
          { requestId: cmd.requestId, op: { type: 'incident', kind: cmd.kind, wallet: cmd.wallet, amountMinor: cmd.amountMinor, currency: this.config.currency, detail: cmd.detail.slice(0, 200) }, offline: true, wallet: cmd.wallet, amountMinor: 0 },
          nowMs,
          false,
        );
        return;
    }
  }

  /** To the 'print' listeners (keypad console, UI) and the printer device; without one, to the log. */
  private printSlip(lines: string[]): void {
    this.emit('print', lines);
    const print = this.d.devices.print;
    if (!print) return void this.log.info({ receipt: lines }, 'receipt');
    // Kept until the printer has it: a slip that fails (paper out, unplugged) is re-printed by
    // the printer once it takes slips, and by the next start if this process ends first.
    this.toPrinter(print, lines, this.d.store.keepSlip(lines, this.clock()));
  }

  private toPrinter(print: (lines: string[]) => Promise<void>, lines: string[], slipId: number): void {
    print(lines).then(
      () => {
        // The printer finishes its queue after the runtime closed, the store still open.
        if (this.d.store.db.open) this.d.store.slipPrinted(slipId);
      },
      (err: unknown) => this.log.warn({ err, slipId }, 'slip not printed: kept in the store, printed at the next start'),
    );
  }

  /**
   * Slips kept in the store because nothing could print them when they were made (start-up
   * recovery runs in the constructor, before anyone can listen): printed now, oldest first, each
   * deleted once printed (a crash in between prints it twice rather than never).
   */
  private flushSlips(): void {
    if (this.closed) return;
    const print = this.d.devices.print;
    for (const slip of this.d.store.keptSlips()) {
      this.emit('command', { c: 'print', lines: slip.lines }, this.clock());
      this.emit('print', slip.lines);
      if (print) this.toPrinter(print, slip.lines, slip.id);
      else {
        this.log.info({ receipt: slip.lines }, 'receipt');
        this.d.store.slipPrinted(slip.id);
      }
    }
  }

  /**
   * Kept slips go to the printer device at once when there is one; otherwise to the first 'print'
   * listener to attach (the keypad console, a UI), right after it has attached.
   */
  private printKeptSlipsWhenHeard(): void {
    if (this.d.devices.print) return this.flushSlips();
    const kept = this.d.store.keptSlips().length;
    if (kept > 0) this.log.warn({ slips: kept }, 'slips kept until something prints them (a print listener: the keypad console, a UI)');
    // Node's own event (emitted before the listener is added): untyped in RuntimeEvents.
    const emitter = this as EventEmitter;
    const onListener = (name: string | symbol): void => {
      if (name !== 'print') return;
      emitter.off('newListener', onListener);
      queueMicrotask(() => this.flushSlips());
    };
    emitter.on('newListener', onListener);
  }

  // ---------- NFC ----------

  private async onCard(session: NfcSession): Promise<void> {
    const tapMs = this.clock();
    this.emit('tap', tapMs);
    // One tap's whole time on the reader, its reading included: past it the wallet gets no more
    // APDUs and the machine's decision is over (the next tap can come).
    const expiry = new AbortController();
    let done: () => void = () => {};
    const timer = setTimeout(() => {
      expiry.abort();
      done();
    }, TAP_SESSION_MS);
    const card = new WalletCard(session, { signal: expiry.signal });
    const gate = this.config.kind === 'gate';
    let info: CardInfo;
    let v2 = false;
    try {
      // One APDU at a time on the session. Every NFC byte costs ≈0.09 ms of UART plus air time,
      // so a gate reads only what its decision needs: the license (cached by UID: a card's UID is
      // stable, and the wallet's signature must later match the cached license's key) and the
      // records of the kinds it needs. An applet of version 2 answers in the compact form and
      // gives license + records in one TAP INFO command (hardware/README.md).
      v2 = (await card.select()).appletVersion >= 2;
      const uid = toHex(session.uid);
      const cached = gate ? this.licenseByUid.get(uid) : undefined;
      // Entry: the admission record (anti-passback) and tickets; exit: the admission record.
      const kinds: RecordKindName[] = this.config.gate?.mode === 'entry' ? ['Admission', 'Ticket'] : ['Admission'];
      let licenseBytes = cached;
      let records: WalletRecord[] = [];
      if (gate && v2) {
        const tap = await card.tapInfo({ license: cached === undefined, kinds, compact: true });
        licenseBytes ??= tap.license;
        records = tap.records;
      } else if (gate) {
        licenseBytes ??= await card.getLicense();
        for (const kind of kinds) records.push(...(await card.readRecords(kind)));
      } else {
        licenseBytes = await card.getLicense(v2 ? { compact: true } : {});
      }
      info = decodeCard(licenseBytes ?? new Uint8Array(0), records);
      // A gate reads the statement only when its exit decision needs it (nfc.readStatement).
      if (gate) info.statement = undefined;
      if (gate && cached === undefined && info.license && licenseBytes) this.cacheLicense(uid, licenseBytes);
    } catch (err) {
      clearTimeout(timer);
      this.log.info({ err: (err as Error).message }, 'tap aborted before the wallet was read');
      return;
    }
    if (expiry.signal.aborted) return void this.log.info('tap aborted: the wallet took the whole session to read');
    const finished = new Promise<void>((resolve) => (done = resolve));
    this.current = { card, session, done, v2, walletKeyHex: info.license?.body.wallet, consumed: new Set() };
    try {
      // An entrance may ask the hub about the record on the wallet ("already inside"): under an id of its own.
      const checkId = this.config.gate?.mode === 'entry' ? { checkId: newRequestId() } : {};
      await this.post({ e: 'tap', card: info, requestId: newRequestId(), recordId: newChallenge(), ...checkId });
      await finished;
    } finally {
      clearTimeout(timer);
      this.current = undefined;
    }
  }

  /** What goes onto the wallet: the compact form to a version 2 applet (fewer bytes to read back). */
  private walletBytes(message: Envelope<'gate.admission' | 'balance.statement' | 'ticket'>): Uint8Array {
    return this.current?.v2 ? encodeCompact(message) : encodeMessage(message);
  }

  private cacheLicense(uid: string, bytes: Uint8Array): void {
    if (this.licenseByUid.size >= LICENSE_CACHE_MAX) this.licenseByUid.delete(this.licenseByUid.keys().next().value as string);
    this.licenseByUid.set(uid, bytes);
  }

  private async nfcAuthorize(spec: Extract<Command, { c: 'nfc.authorize' }>['offer'], nowMs: number, consumeRecordId?: number): Promise<void> {
    const current = this.current;
    if (!current) return void this.post({ e: 'card.lost' });
    // A gate's fare offer may omit the terminal certificate (protocol/README.md): ≈500 bytes less.
    const offer = createOffer(this.d.keys, {
      terminalId: this.config.terminalId,
      merchantId: this.config.merchantId,
      ...spec,
      nowMs,
      ...(spec.purpose === 'fare' ? {} : { terminalCert: this.d.certificate }),
    });
    try {
      // Version 2: compact offer, and AUTHORIZE SHORT (time, counter, signature back; the envelope is
      // rebuilt with the license's key and verified below like any other).
      const answer = current.v2
        ? await current.card.authorize(encodeCompact(offer), {
            ...(current.walletKeyHex !== undefined ? { walletKeyHex: current.walletKeyHex } : {}),
            ...(consumeRecordId !== undefined ? { deleteRecordId: consumeRecordId } : {}),
          })
        : await current.card.authorize(encodeMessage(offer));
      if (answer.kind === 'authorized' && current.v2 && consumeRecordId !== undefined) current.consumed.add(consumeRecordId);
      if (answer.kind === 'declined') return void this.post({ e: 'wallet.declined', code: answer.code.slice(0, 40) });
      const decoded = decodeAnyForm(answer.authorizationBytes, 'wallet.authorization');
      if (!decoded.ok) return void this.post({ e: 'wallet.declined', code: decoded.code });
      // Bound to exactly this offer and signed by the wallet key (the hub checks it again).
      const check = checkAuthorization(decoded.value, offer.body);
      if (!check.ok) return void this.post({ e: 'wallet.declined', code: check.code });
      void this.post({ e: 'wallet.authorized', authorization: decoded.value });
    } catch (err) {
      this.cardLost(err);
    }
  }

  private cardLost(err: unknown): void {
    this.log.info({ err: (err as Error).message, code: isHardwareError(err) ? err.code : undefined }, 'card lost mid-tap');
    this.current?.done();
    void this.post({ e: 'card.lost' });
  }

  // ---------- hub ----------

  private sendReceipt(requestId: string, outcome: ReceiptOutcome, reason: string | undefined, nowMs: number): void {
    this.deliverReceipt(this.recordReceipt(requestId, outcome, reason, nowMs));
  }

  /** Signs and stores a receipt (inside a caller's transaction, if any); deliverReceipt sends it once committed. */
  private recordReceipt(requestId: string, outcome: ReceiptOutcome, reason: string | undefined, nowMs: number): StoredReceipt {
    const receipt = signMessage(
      'completion.receipt',
      { requestId, terminalId: this.config.terminalId, outcome, time: nowMs, ...(reason !== undefined ? { reason } : {}) },
      this.d.keys.secretKey,
    );
    this.d.store.addReceipt(requestId, Buffer.from(encodeMessage(receipt)).toString('utf8'));
    this.log.info({ requestId, outcome, reason }, 'completion receipt');
    // The first receipt of a request stands (the store keeps it): the hub gets what a restart re-sends.
    return { requestId, envelope: this.d.store.getReceipt(requestId)!.envelope };
  }

  private deliverReceipt({ requestId, envelope }: StoredReceipt): void {
    // Else it waits for its request's result (runtime.onReply).
    if (this.d.store.receiptDeliverable(requestId)) this.hub.publishReceipt(requestId, envelope);
  }

  private onReply(reply: ReplyMessage, raw: string): void {
    if (reply.type === 'receipt.ack') return this.onReceiptAck(reply);
    if (reply.type === 'error') {
      const checked = checkHubAnswer(reply, this.config.terminalId, this.hubKeys);
      // An error about another terminal's bytes (one that claimed our request id) is not ours either.
      if (!checked.ok) return void this.log.warn({ code: checked.code, errorCode: reply.body.code }, 'hub error reply not verified; ignored');
      const { requestId, code } = checked.body;
      // A question's (an older hub cannot read it: MALFORMED): the machine refuses as without the hub.
      if (requestId !== undefined && this.questions.delete(requestId)) {
        this.log.warn({ requestId, code }, 'hub could not answer the question');
        return void this.post(hubErrorEvent(requestId, code));
      }
      const entry = requestId === undefined ? undefined : this.d.store.get(requestId);
      if (requestId === undefined || !entry) return void this.log.warn({ code }, 'hub error');
      // The code as the hub sent it: one this version does not know is a final refusal, as stored below.
      const tell = () => void this.post(hubErrorEvent(requestId, code));
      // The hub's own fault ("internal error; retry with the same request id"), not a refusal.
      if (isRetryLater(code)) return this.retryLater(requestId, entry.local, code, tell);
      const first = this.completeRefused(entry, raw, code);
      this.hub.forget(requestId);
      this.log.warn({ requestId, code }, 'hub refused the request');
      this.emit('settled', requestId, 'error');
      if (first && entry.state === 'abandoned') this.lateDecline(requestId, code);
      tell();
      return;
    }
    const requestId = reply.body.requestId;
    const log = this.log.child({ requestId });
    if (this.questions.has(requestId)) {
      // A question's answer: nothing stored; the machine verifies it too and acts only within its
      // deadline. One that does not verify (corrupted, another's) leaves the question open for the real answer.
      const answer = checkHubResult(reply, { requestId, terminalId: this.config.terminalId }, this.hubKeys);
      if (!answer.ok) return void log.warn({ code: answer.code }, 'answer to the question not verified; ignored');
      this.questions.delete(requestId);
      log.info({ status: reply.body.status, code: reply.body.code, recordId: reply.body.recordId }, 'hub answered the question');
      return void this.post({ e: 'hub.result', result: reply });
    }
    const entry = this.d.store.get(requestId);
    const check = checkHubResult(reply, { requestId, terminalId: this.config.terminalId }, this.hubKeys);
    if (!check.ok || !entry) {
      log.warn({ code: check.ok ? 'NOT_FOUND' : check.code }, 'hub reply ignored (not verified or unknown request)');
      void this.post({ e: 'hub.result', result: reply });
      return;
    }
    const code = check.body.code;
    if (check.body.status === 'declined' && code !== undefined && isRetryLater(code)) {
      return this.retryLater(requestId, entry.local, code, () => void this.post({ e: 'hub.result', result: reply }));
    }
    const first = check.body.status === 'approved' ? this.d.store.complete(requestId, raw) : this.completeRefused(entry, raw, code ?? 'unknown');
    this.hub.forget(requestId);
    if (!first) return void log.debug('duplicate hub reply');
    log.info({ status: check.body.status, code: check.body.code, amountMinor: check.body.amountMinor, local: entry.local }, 'hub result');
    const receipt = this.d.store.getReceipt(requestId);
    if (receipt && !receipt.acknowledged) this.hub.publishReceipt(requestId, receipt.envelope);
    this.emit('settled', requestId, check.body.status);
    if (entry.state === 'abandoned' && check.body.status === 'approved' && check.body.amountMinor > 0) this.lateApproval(requestId, reply);
    else if (entry.state === 'abandoned' && check.body.status !== 'approved') this.lateDecline(requestId, check.body.code ?? 'unknown');
    void this.post({ e: 'hub.result', result: reply });
  }

  /**
   * Stores the hub's final refusal of a request. A local decision (offline, or a gate's own) was
   * acted on already: the goods or the passage went unpaid. Its outbox row no longer counts once
   * answered, so the amount is kept as an unpaid passage in the same transaction: it still counts
   * toward the wallet's offline credit, and the wallet gets no more local decisions here.
   */
  private completeRefused(entry: OutboxEntry, raw: string, code: string): boolean {
    return this.d.store.atomically(() => {
      const first = this.d.store.complete(entry.requestId, raw);
      if (first && entry.local && entry.wallet !== null && entry.amountMinor > 0) {
        this.countUnpaid({ requestId: entry.requestId, wallet: entry.wallet, amountMinor: entry.amountMinor, timeMs: this.clock(), inOutbox: true });
        this.log.error({ requestId: entry.requestId, code, wallet: `${entry.wallet.slice(0, 12)}…`, amountMinor: entry.amountMinor }, 'the hub refused what this terminal accepted locally: unpaid, counted against the wallet');
      }
      return first;
    });
  }

  /** Exposure no open outbox row carries (policy/unsigned.ts), kept in the store. */
  private countUnpaid(passage: Omit<UnsignedPassage, 'uptimeMs'>): void {
    this.unsignedPassages = addUnsignedPassage(this.unsigned(), { ...passage, uptimeMs: this.d.store.uptimeMs() });
    this.d.store.setKv(UNSIGNED_PASSAGES_KEY, JSON.stringify(this.unsignedPassages));
  }

  /** The hub's signed answer to a completion receipt: verified, it ends the receipt's re-sends. */
  private onReceiptAck(ack: Envelope<'receipt.ack'>): void {
    const checked = checkHubAnswer(ack, this.config.terminalId, this.hubKeys);
    if (!checked.ok) return void this.log.warn({ code: checked.code, requestId: ack.body.requestId }, 'receipt acknowledgement not verified; ignored');
    const b = checked.body;
    if (!this.d.store.getReceipt(b.requestId)) return void this.log.warn({ requestId: b.requestId }, 'receipt acknowledgement for no receipt of ours ignored');
    // The hub's own fault: the receipt keeps being re-sent until it is recorded.
    if (b.status === 'rejected' && isRetryLater(b.code)) return void this.log.warn({ requestId: b.requestId, code: b.code }, 'hub could not take the receipt yet; it is re-sent');
    this.hub.receiptAcknowledged(b.requestId);
    if (b.status === 'rejected') this.log.error({ requestId: b.requestId, code: b.code }, 'hub refused the completion receipt');
    else this.log.info({ requestId: b.requestId, status: b.status }, 'completion receipt acknowledged');
    this.emit('receipt', b.requestId, b.status);
  }

  /**
   * "Retry later with the same request id" (a busy or failing hub): not an answer, the request
   * stays pending in the outbox and is re-sent. A local decision has nothing to tell; for a
   * customer-facing attempt the machine decides (`tell`): a POS and a vending machine show "hub
   * busy" and wait on, their deadline giving up as on a silent hub; a gate, its customer in a
   * 0.2 s passage, gives up at once (`hub.abandon`: a later approval is undone).
   */
  private retryLater(requestId: string, local: boolean, code: string, tell: () => void): void {
    this.log.warn({ requestId, code, local }, 'hub busy: the request stays in the outbox');
    if (!local) tell();
  }

  /**
   * The machine gave up on a request whose result had arrived just before (it did not act on it):
   * an approval is undone as a late one (a vending machine's failure receipt refunds it).
   */
  private resultCrossedDeadline(requestId: string, resultEncoded: string | null): void {
    const approval = approvalIn(resultEncoded);
    this.log.warn({ requestId, approved: approval !== undefined }, 'hub answered as the machine gave up; undone as a late answer');
    if (approval) return this.lateApproval(requestId, approval);
    // A refusal the machine did not show (a cash top-up's cashier was told to keep the cash).
    const result = decodeMessage(resultEncoded ?? '', 'settlement.result');
    if (!result.ok) this.lateDecline(requestId, 'refused');
    else if (result.value.body.status !== 'approved') this.lateDecline(requestId, result.value.body.code ?? 'unknown');
  }

  /**
   * Keeps the store bounded (a Pi's SD card): drops what no decision reads any more. Settled
   * requests (and their acknowledged receipts) once past the windows the limits look back over
   * (`limits.maxStatementAgeMs` for a statement's exits, `limits.periodMs` for the terminal's
   * budget) by the wall clock AND by running time: a wall clock that ran ahead (an RTC gone wrong)
   * must not make last week's exits look old, and running time never runs ahead. Incidents after
   * the same; unused paid exits once expired; used admission records after a trip's longest
   * time; held tickets once expired. A failure is logged, never fatal: the terminal sells on.
   */
  /**
   * At start and hourly: a terminal that runs for months must say so before and after its
   * certificate expires, when wallets start refusing it.
   */
  private warnCertificate(): void {
    const warning = certificateWarning(this.d.certificate.body, this.clock());
    if (warning) this.log.warn({ code: warning.code, notBefore: warning.notBefore, notAfter: warning.notAfter }, warning.message);
  }

  private pruneHistory(): void {
    try {
      this.pruneHistoryOnce();
    } catch (err) {
      this.log.error({ err }, 'store: pruning history failed; will try again in an hour');
    }
  }

  private pruneHistoryOnce(): void {
    const nowMs = this.clock();
    const { periodMs, maxStatementAgeMs } = this.config.limits;
    const windowMs = Math.max(periodMs, maxStatementAgeMs) + DEFAULT_MAX_SKEW_MS + HISTORY_MARGIN_MS;
    const beforeUptimeMs = this.d.store.uptimeMs() - windowMs;
    const pruned = {
      settled: this.d.store.pruneSettled(nowMs - windowMs, beforeUptimeMs, PRUNE_MAX_ROWS),
      incidents: this.d.store.pruneKv('incident.', nowMs - windowMs),
      paidExits: this.expirePaidExits(nowMs - PAID_EXIT_VALID_MS - DEFAULT_MAX_SKEW_MS),
      admissions: 0,
      heldTickets: 0,
    };
    if (this.config.kind === 'gate') {
      // Used admission records matter for a trip's longest time; beyond it a copy is stale anyway.
      const maxTripMs = this.fareTable?.maxTripMs ?? DEFAULT_MAX_TRIP_MS;
      pruned.admissions = this.d.store.pruneUsed(admissionKey(''), nowMs - maxTripMs - DEFAULT_MAX_SKEW_MS);
    }
    if (this.config.kind === 'pos') {
      for (const held of this.d.store.allHeldTickets(PRUNE_MAX_ROWS)) {
        const ticket = decodeMessage(held.envelope, 'ticket');
        if (ticket.ok && ticket.value.body.validUntil + DEFAULT_MAX_SKEW_MS >= nowMs) continue;
        // Expired (or unreadable: never deliverable), so never collected: the customer paid for
        // nothing — a failure receipt for its sale, as for a vend that never dropped (re-sent
        // until acknowledged). Stored before the ticket goes: a crash in between sends it again,
        // and the store keeps the first.
        const log = { ticketId: held.ticketId, requestId: held.requestId, validUntil: ticket.ok ? ticket.value.body.validUntil : null };
        if (held.requestId !== null) {
          this.log.warn(log, 'store: held ticket expired, never collected: failure receipt for its sale (refund)');
          this.sendReceipt(held.requestId, 'failed', TICKET_NEVER_COLLECTED, nowMs);
        } else {
          this.log.error(log, 'store: held ticket expired, never collected, held without its sale: refund it by hand');
        }
        this.d.store.releaseTicket(held.ticketId);
        pruned.heldTickets++;
      }
    }
    if (Object.values(pruned).some((n) => n > 0)) this.log.info(pruned, 'store: pruned history no limit reads any more');
  }

  /** Signs a request, persists it (fsync'd) BEFORE it is sent, and sends it; every retry sends these same bytes. */
  private queueRequest(r: Omit<Extract<Command, { c: 'hub.request' }>, 'c'>, nowMs: number, vend: boolean): void {
    const request = signMessage('settlement.request', { requestId: r.requestId, terminalId: this.config.terminalId, time: nowMs, offline: r.offline, op: r.op }, this.d.keys.secretKey);
    const envelope = Buffer.from(encodeMessage(request)).toString('utf8');
    this.d.store.enqueue({ requestId: r.requestId, envelope, wallet: r.wallet, amountMinor: r.amountMinor, local: r.offline, createdMs: nowMs, vend });
    this.log.child({ requestId: r.requestId }).info({ op: r.op.type, offline: r.offline, amountMinor: r.amountMinor }, 'request queued');
    this.hub.send(r.requestId, envelope);
  }

  /**
   * Requests kept as open sales (the store's vends) from their queueing until their outcome is
   * recorded: every vending request (closed by its receipt), and a POS's online purchase (its
   * `delivered` receipt, written after the receipt is printed) or ticket sale (its ticket held).
   * What is still open at start-up was cut short by a power loss (recoverSales).
   */
  private opensSale(cmd: Extract<Command, { c: 'hub.request' }>): boolean {
    if (this.config.kind === 'vending') return true;
    return this.config.kind === 'pos' && !cmd.offline && (cmd.op.type === 'purchase' || cmd.op.type === 'ticket.sale');
  }

  /**
   * Start-up (MDB: a vend that never reported success or failure): every sale left open was cut
   * short by a power loss. A vend whose motor ran, or whose sale stood (approved by the hub, or
   * accepted offline) with nothing dispensed yet: a `failed` receipt, so the hub refunds (at most
   * once; re-sent until its receipt.ack, after the sale's result for an offline one). A POS sale
   * the hub approved that the POS never showed: the cashier saw no "paid" and rings it up again,
   * so it is reversed the same way (a slip tells the cashier) — unless it sold a ticket, which is
   * held for its wallet to collect, as after the wallet left. A request still waiting for the hub
   * is left to lateApproval; one the hub declined or refused needs nothing.
   */
  private recoverSales(): void {
    if (this.config.kind === 'gate') return;
    const pos = this.config.kind === 'pos';
    const nowMs = this.clock();
    for (const v of this.d.store.openVends()) {
      const entry = this.d.store.get(v.requestId);
      const approval = entry?.state === 'done' ? approvalIn(entry.result) : undefined;
      if (v.started) {
        this.log.error({ requestId: v.requestId, slot: v.slot }, 'restart: power lost during dispense; failure receipt (refund)');
        this.sendReceipt(v.requestId, 'failed', 'power lost during dispense', nowMs);
      } else if (pos && approval?.body.ticket) {
        this.log.error({ requestId: v.requestId, ticketId: approval.body.ticket.body.ticketId }, 'restart: ticket sale approved as the power went; ticket held for its wallet');
        this.d.store.holdTicket(approval.body.ticket.body.ticketId, approval.body.ticket.body.wallet, Buffer.from(encodeMessage(approval.body.ticket)).toString('utf8'), nowMs, v.requestId);
      } else if (pos && approval) {
        // The cashier's slip is kept with the receipt (one transaction): nothing can print it yet
        // (the constructor runs before any listener attaches), so it waits in the store (flushSlips).
        const slip = ['POWER LOST — SALE REVERSED', `ref ${v.requestId}`, `REFUND ${price(approval.body.amountMinor, approval.body.currency)}`];
        this.log.error({ requestId: v.requestId, amountMinor: approval.body.amountMinor, slip }, 'restart: sale approved as the power went, never shown; failure receipt (refund)');
        const receipt = this.d.store.atomically(() => {
          this.d.store.keepSlip(slip, nowMs);
          return this.recordReceipt(v.requestId, 'failed', POWER_LOST_BEFORE_SHOWN, nowMs);
        });
        this.deliverReceipt(receipt);
      } else if (entry?.state === 'done' ? approval !== undefined : entry?.local === true) {
        this.log.error({ requestId: v.requestId }, 'restart: sale stood but nothing was dispensed; failure receipt (refund)');
        this.sendReceipt(v.requestId, 'failed', 'power lost before dispense', nowMs);
      } else if (!entry || entry.state === 'done') {
        this.d.store.clearVend(v.requestId);
      }
    }
  }

  /** POS: the tickets held for a wallet (sold here, not yet on it), as the machine sees them. */
  private heldTickets(wallet: string): Envelope<'ticket'>[] {
    const out: Envelope<'ticket'>[] = [];
    for (const raw of this.d.store.heldTickets(wallet)) {
      const d = decodeMessage(raw, 'ticket');
      if (d.ok && d.value.body.wallet === wallet) out.push(d.value);
    }
    return out;
  }

  private grantPaidExit(grant: PaidExit, nowMs: number): void {
    const { wallet: _wallet, ...kept } = grant;
    const stored: StoredPaidExit = { ...kept, timeMs: nowMs };
    // One transaction: a crash must not keep the old grant's end and lose the new grant. The
    // refund's receipt goes to the hub once both are committed.
    const ended = this.d.store.atomically(() => {
      // One grant per wallet: an older one (expired, not yet pruned) that this one replaces ends now.
      const prior = this.paidExitGrant(grant.wallet);
      const receipt = prior && prior.requestId !== grant.requestId ? this.endUnusedGrant(prior) : undefined;
      this.d.store.setKv(`${PAID_EXIT_PREFIX}${grant.wallet}`, JSON.stringify(stored));
      return receipt;
    });
    if (ended) this.deliverReceipt(ended);
  }

  /**
   * A refundable grant that ends unused is given back: the customer left through another gate and
   * paid there, or is still inside and will. Returns its failure receipt, stored, to deliver.
   */
  private endUnusedGrant(grant: StoredPaidExit): StoredReceipt | undefined {
    if (!grant.refundable) return undefined;
    this.log.warn({ requestId: grant.requestId }, 'paid exit never used: failure receipt (refund)');
    return this.recordReceipt(grant.requestId, 'failed', PAID_EXIT_UNUSED, this.clock());
  }

  private paidExitGrant(wallet: string): StoredPaidExit | undefined {
    const raw = this.d.store.getKv(`${PAID_EXIT_PREFIX}${wallet}`);
    return raw === undefined ? undefined : parseStoredPaidExit(raw);
  }

  /** Grants made before `beforeMs` and never used end (endUnusedGrant); how many. */
  private expirePaidExits(beforeMs: number): number {
    const expired = this.d.store.kvBefore(PAID_EXIT_PREFIX, beforeMs);
    for (const { key, value } of expired) {
      const grant = parseStoredPaidExit(value);
      const receipt = grant && this.endUnusedGrant(grant);
      if (receipt) this.deliverReceipt(receipt);
      // After the receipt is in the store: a crash in between ends the grant again (one refund).
      this.d.store.deleteKv(key);
    }
    return expired.length;
  }

  /** The customer was told "no answer"; the hub approved afterwards. Undo, never charge twice. */
  private lateApproval(requestId: string, result: Envelope<'settlement.result'>): void {
    const entry = this.d.store.get(requestId);
    const request = decodeMessage(entry?.envelope ?? '', 'settlement.request');
    const op = request.ok ? request.value.body.op : undefined;
    if (this.config.kind === 'pos') {
      const type = op?.type;
      if (type === 'purchase') {
        // Nothing was handed over and the customer may have paid elsewhere: a timeout reversal,
        // as a failed vend (the hub refunds). The slip is the cashier's record of it.
        this.log.warn({ requestId, amountMinor: result.body.amountMinor }, 'late approval at the POS: reversed');
        void this.execute({ c: 'receipt', requestId, outcome: 'failed', reason: 'abandoned after hub timeout' }, this.clock());
        void this.execute({ c: 'print', lines: ['LATE APPROVAL REVERSED', `ref ${requestId}`, `REFUND ${price(result.body.amountMinor, result.body.currency)}`] }, this.clock());
        return;
      }
      // A top-up or a ticket stands once: the POS refused new ones for this wallet while this
      // one was unanswered (usage.abandonedFor), so print the receipt late; the wallet may pay again.
      const label = type === 'topup' ? 'TOP-UP' : type === 'ticket.sale' ? 'TICKET' : 'TOTAL';
      const ticket = result.body.ticket;
      const lines = ['LATE APPROVAL', `ref ${requestId}`, `${label} ${price(result.body.amountMinor, result.body.currency)}`];
      if (ticket) {
        // A paid ticket is never thrown away: kept here until the wallet's next tap at this POS collects it.
        void this.execute({ c: 'ticket.hold', ticket, requestId }, this.clock());
        lines.push(`ticket ${ticket.body.product} valid until ${new Date(ticket.body.validUntil).toISOString()}`, 'tap your wallet at this POS to collect it');
      }
      this.log.warn({ requestId, amountMinor: result.body.amountMinor, ticket: ticket?.body.ticketId }, 'late approval at the POS: late receipt printed');
      void this.execute({ c: 'print', lines }, this.clock());
      return;
    }
    if (this.config.kind === 'gate' && entry?.wallet) {
      // The customer was turned away but has paid: the next tap of this wallet opens for free.
      // Without an admission record the fare is refunded if that grant expires unused (the
      // customer left through another gate, and paid there). With one, the hub has claimed the
      // record, still on the wallet, for this fare: no other exit can charge it again, and the
      // grant holds only while the wallet carries it (another exit that consumes it ends it).
      const onRecord = op?.type === 'fare' ? op.entry?.body.recordId : undefined;
      const refundable = op?.type === 'fare' && op.entry === null;
      this.grantPaidExit({ wallet: entry.wallet, requestId, kind: 'fare', refundable, ...(onRecord === undefined ? {} : { onRecord }) }, this.clock());
      this.log.warn({ requestId, refundable, onRecord }, 'late fare approval: the next exit of this wallet is paid');
      return;
    }
    // Vending: nothing was delivered — a failure receipt, and the hub refunds.
    void this.execute({ c: 'receipt', requestId, outcome: 'failed', reason: 'abandoned after hub timeout' }, this.clock());
  }

  /**
   * The hub refused a request after the terminal gave up on it: nothing moved. Only a POS cash
   * top-up needs telling — its cashier kept the cash until this slip (TOPUP_PENDING_TEXT).
   */
  private lateDecline(requestId: string, code: string): void {
    if (this.config.kind !== 'pos') return;
    const entry = this.d.store.get(requestId);
    const request = decodeMessage(entry?.envelope ?? '', 'settlement.request');
    if (!request.ok || request.value.body.op.type !== 'topup') return;
    const op = request.value.body.op;
    this.log.warn({ requestId, code, amountMinor: op.amountMinor }, 'late decline of a cash top-up at the POS: slip printed');
    void this.execute({ c: 'print', lines: ['LATE DECLINE', `ref ${requestId}`, `TOP-UP ${price(op.amountMinor, op.currency)} NOT MADE (${code})`, 'give the cash back'] }, this.clock());
  }

  private onAnnouncement(m: AnnouncementMessage): void {
    const hubKey = m.body.hubKey;
    if (!this.hubKeys.includes(hubKey) || !verifyMessage(m, hubKey)) return void this.log.warn({ type: m.type }, 'announcement with an untrusted signature ignored');
    // Only what is in force is kept: an older announcement delivered late (ignored here) must not
    // replace the stored copy, or an offline restart would go back to it (an unblocked wallet).
    // The version in force, re-signed (the hub re-signs under its new key when the old one retires), is.
    // One transaction: the key ring kept on its own (applyAnnouncement) and the announcement that
    // carried it never disagree after a power cut. The same bytes again (every reconnect
    // re-delivers the retained ones, the blocklist up to 8 MB) are not written again.
    this.d.store.atomically(() => {
      if (this.applyAnnouncement(m) === 'stale') return void this.log.debug({ type: m.type, version: m.body.version }, 'older announcement ignored');
      const key = m.type === 'announce.catalog' ? `announce.catalog.${m.body.merchantId}` : m.type;
      const raw = JSON.stringify(m);
      if (this.d.store.getKv(key) !== raw) this.d.store.setKv(key, raw);
    });
  }

  /**
   * Applies a verified announcement when it is newer than the one in force: `applied`; the one in
   * force again: `current` (nothing to apply); an older one, or not for this terminal: `stale`.
   * Newer is a higher version or a later time: a hub whose registry was restored from a backup
   * announces versions this terminal has passed already, and only their time tells them apart
   * (a hub clock set back is the other way round). Only a replay of a message signed before the
   * restore could win against this; announcement topics are the hub's alone to publish.
   */
  private applyAnnouncement(m: AnnouncementMessage): 'applied' | 'current' | 'stale' {
    const { version, time } = m.body;
    const versus = (inForce: { version: number; time: number } | null): 'current' | 'stale' | undefined =>
      inForce === null || version > inForce.version || time > inForce.time ? undefined : version === inForce.version && time === inForce.time ? 'current' : 'stale';
    switch (m.type) {
      case 'announce.keys': {
        const old = versus(this.keys);
        if (old) return old;
        this.keys = { version, time };
        // Rotation: the ring was announced under a key we already trust. It is kept on its own
        // too, so a restart after that key retired still trusts its successor.
        this.hubKeyRing = m.body.hubKeys;
        this.d.store.setKv(HUB_KEY_RING, JSON.stringify({ pinned: this.config.hub.hubKey, ring: m.body.hubKeys }));
        this.issuerKeys = [...new Set([...this.config.hub.issuerKeys, ...m.body.issuerKeys])];
        this.gateKeys = new Map((m.body.gates ?? []).map((g) => [g.terminalId, g.publicKey]));
        return 'applied';
      }
      case 'announce.blocklist': {
        const old = versus(this.blocklist);
        if (old) return old;
        this.blocklist = { version, time, wallets: new Set(m.body.wallets), tickets: new Set(m.body.tickets) };
        this.log.info({ version, size: m.body.wallets.length, voidedTickets: m.body.tickets?.length ?? 0 }, 'blocklist updated');
        return 'applied';
      }
      case 'announce.fares': {
        const old = versus(this.fares);
        if (old) return old;
        this.fares = { version, time, table: m.body.table };
        return 'applied';
      }
      case 'announce.products': {
        const old = versus(this.ticketProducts);
        if (old) return old;
        this.ticketProducts = { version, time, products: m.body.products };
        return 'applied';
      }
      case 'announce.catalog': {
        if (m.body.merchantId !== this.config.merchantId) return 'stale';
        const old = versus(this.catalog);
        if (old) return old;
        this.catalog = { version, time, articles: m.body.articles };
        if (this.config.kind === 'vending') {
          const slotCount = this.slotCount();
          const unfitted = m.body.articles.filter((a) => a.slot !== undefined && a.slot >= slotCount).map((a) => ({ sku: a.sku, slot: a.slot }));
          if (unfitted.length > 0) this.log.warn({ slotCount, articles: unfitted.slice(0, 32) }, 'catalog names slots this machine does not have: those articles are refused at selection');
        }
        return 'applied';
      }
    }
  }

  private restoreAnnouncements(): void {
    // An operator who re-pins the hub key (a terminal stranded through a whole rotation, or a
    // compromised key) starts over from the new pin; otherwise the learned ring carries on.
    const stored = StoredRing.safeParse(parseJsonOrUndefined(this.d.store.getKv(HUB_KEY_RING)));
    if (stored.success && stored.data.pinned === this.config.hub.hubKey) this.hubKeyRing = stored.data.ring;
    // Kept announcements were verified on arrival: one signed by a key that has retired since
    // (a terminal offline through a rotation) still stands until a newer one replaces it.
    const known = this.hubKeyRing ? this.hubKeyRing.map((k) => k.publicKey) : [this.config.hub.hubKey];
    for (const key of ['announce.keys', 'announce.blocklist', 'announce.fares', 'announce.products', `announce.catalog.${this.config.merchantId}`]) {
      const raw = this.d.store.getKv(key);
      if (!raw) continue;
      const d = decodeMessage(raw, ANNOUNCEMENT_TYPES);
      if (d.ok && known.includes(d.value.body.hubKey) && verifyMessage(d.value, d.value.body.hubKey)) this.applyAnnouncement(d.value);
    }
  }

  /** Resolves once the machine is idle and every queued event has been handled. */
  async settle(): Promise<void> {
    await this.queue;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // A dispense under way is seen to its end first (its drop sensor decides the receipt), bounded:
    // a restart must not turn a delivered article into a "power lost" refund at the next start.
    const dispensing = this.closed ? undefined : this.dispensing;
    if (dispensing) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, (this.config.vending?.dropTimeoutMs ?? 4000) + 1000)));
      await Promise.race([dispensing, bound]);
      clearTimeout(timer);
    }
    this.closed = true;
    clearInterval(this.ticker);
    this.abort.abort();
    this.current?.done();
    await this.hub.close();
    await this.tapLoop;
    await this.queue.catch(() => undefined);
  }

  /**
   * Test hook: from now on nothing is handled, as after a power cut — not even the rest of the
   * commands of the event being handled; close() then waits for nothing.
   */
  simulatePowerCut(): void {
    this.poweredOff = true;
    this.closed = true;
    clearInterval(this.ticker);
  }

  /** Test hook: drop the MQTT socket without DISCONNECT. */
  dropHubConnection(): void {
    this.hub.dropConnection();
  }
}

/** Decode what the wallet returned; unparseable records are skipped (the machine sees no record). */
export function decodeCard(licenseBytes: Uint8Array, records: { kind: string; id: number; bytes: Uint8Array }[]): CardInfo {
  const license = decodeAnyForm(licenseBytes, 'wallet.license');
  const info: CardInfo = { license: license.ok ? license.value : null, admission: null, tickets: [], statement: null };
  for (const r of records) {
    if (r.kind === 'Admission') {
      const d = decodeAnyForm(r.bytes, 'gate.admission');
      if (d.ok && (!info.admission || d.value.body.time > info.admission.message.body.time)) info.admission = { recordId: r.id, message: d.value };
    } else if (r.kind === 'Ticket') {
      const d = decodeAnyForm(r.bytes, 'ticket');
      if (d.ok && info.tickets.length < 16) info.tickets.push({ recordId: r.id, message: d.value });
    } else if (r.kind === 'BalanceStatement') {
      const d = decodeAnyForm(r.bytes, 'balance.statement');
      if (d.ok && (!info.statement || d.value.body.asOf > info.statement.body.asOf)) info.statement = d.value;
    }
  }
  return info;
}
