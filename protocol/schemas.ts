/**
 * Runtime schemas (zod) for every message body, and the static types derived from them.
 * Objects are strict: an unknown field is MALFORMED, because signed bytes must be exactly what
 * the signer meant. Every string, array and number has a bound (TIGER_STYLE: limits on everything).
 */
import { z } from 'zod';
import { ERROR_CODE_LIST } from './errors.ts';
import { TICKET_HORIZON_MS } from './hub-keys.ts';

export const Hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes as 64 lowercase hex chars');
export const PublicKeyHex = Hex32;
export const SignatureHex = z.string().regex(/^[0-9a-f]{128}$/, 'expected 64 bytes as 128 lowercase hex chars');
/** Request ids and challenges: 128 to 256 bits of hex; challenges all random, request ids at least 80 random bits (newRequestId). */
export const Nonce128 = z.string().regex(/^[0-9a-f]{32,64}$/, 'expected 16..32 bytes as lowercase hex');
export const RequestId = Nonce128;
export const Challenge = Nonce128;
export const Name = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1..64 chars of [A-Za-z0-9._-]');
export const TimeMs = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
export const AmountMinor = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
export const SignedAmountMinor = z.int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER);
export const Currency = z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code');
export const Counter = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
export const ErrorCodeSchema = z.enum(ERROR_CODE_LIST as [string, ...string[]]);
export const TerminalKind = z.enum(['vending', 'gate', 'pos']);
export const Text = z.string().max(200);

/**
 * `z.strictObject` with its shape in canonical (JCS) key order. zod builds what it parses in shape
 * order, so everything decoded comes out with its keys sorted, and canonicalJson can hand it to
 * the native JSON.stringify instead of rendering it piece by piece (protocol/canonical.ts).
 */
function strictObject<S extends z.core.$ZodLooseShape>(shape: S): z.ZodObject<S, z.core.$strict> {
  const sorted = Object.keys(shape).sort().map((key) => [key, shape[key]] as const);
  return z.strictObject(Object.fromEntries(sorted) as S);
}

/** The wire envelope around every signed body. */
export function signedEnvelope<T extends string, B extends z.ZodType>(type: T, body: B) {
  return strictObject({ v: z.literal(1), type: z.literal(type), body, sig: SignatureHex });
}

// ---------- identities (seed 001 certificate authority, seed 002 licenses) ----------

export const TerminalCertificateBody = strictObject({
  serial: Nonce128,
  terminalId: Name,
  kind: TerminalKind,
  merchantId: Name,
  publicKey: PublicKeyHex,
  notBefore: TimeMs,
  notAfter: TimeMs,
  issuerKey: PublicKeyHex,
});

export const WalletLicenseBody = strictObject({
  serial: Nonce128,
  wallet: PublicKeyHex,
  issuerKey: PublicKeyHex,
  notBefore: TimeMs,
  notAfter: TimeMs,
  /** The holder is at least this old (0 = not attested). */
  ageOver: z.int().min(0).max(150),
  groups: z.array(Name).max(16),
  offlineLimitMinor: AmountMinor,
  currency: Currency,
});

export const TerminalCertificate = signedEnvelope('terminal.certificate', TerminalCertificateBody);
export const WalletLicense = signedEnvelope('wallet.license', WalletLicenseBody);

// ---------- purchase: offer → wallet authorization → settlement request → result ----------

export const LineItem = strictObject({
  sku: Name,
  qty: z.int().min(1).max(1000),
  unitMinor: AmountMinor,
});
export const LineItems = z.array(LineItem).max(64);

export const OfferPurpose = z.enum(['purchase', 'fare', 'ticket', 'topup', 'transfer', 'entry']);

/** Terminal → wallet over NFC, with a fresh challenge (seed 004 claim 8). */
export const PurchaseOfferBody = strictObject({
  terminalId: Name,
  merchantId: Name,
  purpose: OfferPurpose,
  challenge: Challenge,
  amountMinor: AmountMinor,
  currency: Currency,
  lines: LineItems,
  linesDigest: Hex32,
  time: TimeMs,
  /**
   * Lets the wallet authenticate the terminal against the hub key. Required for every purpose but
   * `fare` and `entry`: a gate has ~0.2 s per passage (~0.16 ms per byte over NFC), and a fare is
   * only ever settled for an enrolled gate, so a transit wallet signs without it (as Suica's do).
   */
  terminalCert: TerminalCertificate.optional(),
});
export const PurchaseOffer = signedEnvelope('purchase.offer', PurchaseOfferBody);

/** Wallet → terminal: seed 002's SKU(y, IdS, Rs, Ts) plus a per-wallet counter. */
export const WalletAuthorizationBody = strictObject({
  wallet: PublicKeyHex,
  terminalId: Name,
  merchantId: Name,
  purpose: OfferPurpose,
  challenge: Challenge,
  amountMinor: AmountMinor,
  currency: Currency,
  linesDigest: Hex32,
  time: TimeMs,
  counter: Counter,
});
export const WalletAuthorization = signedEnvelope('wallet.authorization', WalletAuthorizationBody);

/** Gate-signed entry record written to the wallet (seed 004 claim 11). */
export const GateAdmissionBody = strictObject({
  recordId: Nonce128,
  wallet: PublicKeyHex,
  terminalId: Name,
  station: Name,
  time: TimeMs,
  /** Set when the entry was made with a ticket instead of pay-as-you-go. */
  ticketId: Nonce128.optional(),
});
export const GateAdmission = signedEnvelope('gate.admission', GateAdmissionBody);

/** Hub-signed ticket stored in the wallet (seed 004 claims 15–18). */
export const TicketBody = strictObject({
  ticketId: Nonce128,
  wallet: PublicKeyHex,
  product: Name,
  stations: z.array(Name).max(64),
  validFrom: TimeMs,
  validUntil: TimeMs,
  issuedAt: TimeMs,
  hubKey: PublicKeyHex,
});
export const Ticket = signedEnvelope('ticket', TicketBody);

/** Wallet-signed cancellation inside a cancellation window (seed 004 claim 13). */
export const CancellationBody = strictObject({
  originalRequestId: RequestId,
  wallet: PublicKeyHex,
  time: TimeMs,
  challenge: Challenge,
});
export const Cancellation = signedEnvelope('cancellation', CancellationBody);

/** Wallet-signed transfer to another wallet (seed 001 figs. 8–9). */
export const TransferBody = strictObject({
  from: PublicKeyHex,
  to: PublicKeyHex,
  amountMinor: AmountMinor,
  currency: Currency,
  time: TimeMs,
  counter: Counter,
  challenge: Challenge,
});
export const Transfer = signedEnvelope('transfer', TransferBody);

/** Wallet-signed history/balance query (seed 004 claims 3, 5). */
export const HistoryQueryBody = strictObject({
  wallet: PublicKeyHex,
  time: TimeMs,
  challenge: Challenge,
  limit: z.int().min(0).max(100),
});
export const HistoryQuery = signedEnvelope('history.query', HistoryQueryBody);

/** Card number sealed to the card authorizer's X25519 key; hub and terminals never see it. */
export const SealedCard = strictObject({
  ephemeralPublicKey: Hex32,
  nonce: z.string().regex(/^[0-9a-f]{24}$/),
  ciphertext: z.string().regex(/^(?:[0-9a-f]{2}){17,256}$/),
});

const WalletOpFields = {
  authorization: WalletAuthorization,
  license: WalletLicense,
};

export const SettlementOp = z.discriminatedUnion('type', [
  strictObject({
    type: z.literal('purchase'),
    ...WalletOpFields,
    lines: LineItems,
    /**
     * The catalog version the terminal priced the lines by (its latest announcement). An offline
     * sale is priced by it at the hub: a machine offline through a price change sold at the price
     * it had. Optional: without it, the version in force at the authorization's time.
     */
    catalogVersion: Counter.optional(),
  }),
  strictObject({
    type: z.literal('fare'),
    ...WalletOpFields,
    /** Null when the wallet carries no entry record: the maximum fare applies. */
    entry: GateAdmission.nullable(),
    exitStation: Name,
    exitTime: TimeMs,
    /**
     * The fare table version the gate priced by (its latest announcement). A fare decided without
     * the hub (offline, or the gate's local decision) is priced by it at the hub: a gate that had
     * not heard of a fare change let the passage through at the fare it had. Optional: without
     * it, the version in force at the exit time.
     */
    fareTableVersion: Counter.optional(),
  }),
  strictObject({ type: z.literal('ticket.sale'), ...WalletOpFields, product: Name }),
  strictObject({ type: z.literal('ticket.use'), ticket: Ticket, station: Name, usedAt: TimeMs }),
  strictObject({ type: z.literal('cancel'), cancellation: Cancellation }),
  strictObject({
    type: z.literal('topup'),
    wallet: PublicKeyHex,
    amountMinor: AmountMinor,
    currency: Currency,
    method: z.enum(['cash', 'card']),
    operatorId: Name.optional(),
    sealedCard: SealedCard.optional(),
  }),
  strictObject({ type: z.literal('transfer'), transfer: Transfer }),
  strictObject({ type: z.literal('history'), query: HistoryQuery }),
  /**
   * An exit gate let a wallet out on a ticket trip's admission record (`entry`, signed by the
   * entrance, carrying its `ticketId`): no fare, but the record is consumed, and the hub records it
   * as the record's claim (a second exit on it is a REPLAY and the operator's incident). Reported
   * through the outbox like a fare decided without the hub; answered `approved` for 0.
   */
  strictObject({ type: z.literal('ticket.exit'), entry: GateAdmission, exitStation: Name, exitTime: TimeMs }),
  /**
   * An entrance's question on its "already inside" path: was this admission record (found fresh
   * on the wallet) consumed by an exit the hub knows (a fare it claimed it for, a ticket exit)?
   * Online only, never queued; no money. Answered `approved` for 0 (consumed) or declined
   * `NOT_CONSUMED` (not consumed, or unknown); the result names the record (`recordId`).
   */
  strictObject({ type: z.literal('admission.check'), entry: GateAdmission }),
  /**
   * Terminal-signed report of what could not be settled: a gate opened on its local decision and
   * the wallet never signed (pulled away). Nothing moves without the wallet's signature; the hub
   * records it for the operator. `amountMinor` is the fare left open (the trip stays open on the
   * wallet: its next exit charges it).
   */
  strictObject({
    type: z.literal('incident'),
    kind: z.enum(['unsigned-passage']),
    wallet: PublicKeyHex,
    amountMinor: AmountMinor,
    currency: Currency,
    detail: Text,
  }),
]);

/** Terminal-signed request to the hub (seed 003 first signature). */
export const SettlementRequestBody = strictObject({
  requestId: RequestId,
  terminalId: Name,
  time: TimeMs,
  /** Decided by the terminal without the hub (offline or a gate's local decision). */
  offline: z.boolean(),
  op: SettlementOp,
});
export const SettlementRequest = signedEnvelope('settlement.request', SettlementRequestBody);

/** Hub-signed balance statement; a gate trusts it for its local risk decision. */
export const StatementEntry = strictObject({
  requestId: RequestId,
  kind: Name,
  amountMinor: SignedAmountMinor,
  time: TimeMs,
  counterparty: Name.optional(),
});
export const BalanceStatementBody = strictObject({
  wallet: PublicKeyHex,
  balanceMinor: SignedAmountMinor,
  currency: Currency,
  asOf: TimeMs,
  entries: z.array(StatementEntry).max(100),
  hubKey: PublicKeyHex,
});
export const BalanceStatement = signedEnvelope('balance.statement', BalanceStatementBody);

/** Hub-signed answer to a settlement request (seed 003 second/third signatures). */
export const SettlementResultBody = strictObject({
  requestId: RequestId,
  terminalId: Name,
  status: z.enum(['approved', 'declined']),
  /** Present iff declined. */
  code: ErrorCodeSchema.optional(),
  /** seed 004 claim 24: approval is sent only once the payer's withdrawal is durable. */
  withdrawal: z.enum(['complete', 'none']),
  amountMinor: AmountMinor,
  currency: Currency,
  time: TimeMs,
  /** End of the cancellation window when the money is held (seed 004 claim 13). */
  holdUntil: TimeMs.optional(),
  statement: BalanceStatement.optional(),
  ticket: Ticket.optional(),
  /** The admission record an `admission.check` asked about (only in its answer). */
  recordId: Nonce128.optional(),
  hubKey: PublicKeyHex,
});
export const SettlementResult = signedEnvelope('settlement.result', SettlementResultBody);

/** Terminal-signed completion receipt (seed 003 fourth signature). */
export const CompletionReceiptBody = strictObject({
  requestId: RequestId,
  terminalId: Name,
  outcome: z.enum(['dispensed', 'passed', 'delivered', 'failed']),
  time: TimeMs,
  reason: Text.optional(),
});
export const CompletionReceipt = signedEnvelope('completion.receipt', CompletionReceiptBody);
/**
 * The `reason` of an exit gate's failure receipt for a fare whose paid exit expired unused: the
 * only gate failure the hub refunds. Gates before paid exits were refundable sent `failed` ("no
 * passage") for every paid exit nobody went through AND let the wallet out free later: refunding
 * those would give both.
 */
export const PAID_EXIT_UNUSED = 'paid exit unused';
/**
 * The `reason` of a POS's failure receipt for a ticket sale whose ticket expired in its store,
 * never written to the wallet: the hub voids the ticket and refunds the sale (not if it was used).
 */
export const TICKET_NEVER_COLLECTED = 'ticket never collected';

/**
 * Hub-signed answer to a completion receipt, sent once what it did is durable (a failed
 * dispense's refund included). The terminal re-sends the receipt until one arrives: the broker's
 * PUBACK is delivery, never this answer.
 */
export const ReceiptAckBody = strictObject({
  requestId: RequestId,
  /** The terminal the hub authenticated as the receipt's sender. */
  terminalId: Name,
  status: z.enum(['recorded', 'refunded', 'duplicate', 'rejected']),
  /** Present iff rejected. */
  code: ErrorCodeSchema.optional(),
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const ReceiptAck = signedEnvelope('receipt.ack', ReceiptAckBody);

/** Hub-signed error for a request that could not be read far enough to answer with a result. */
export const ErrorMessageBody = strictObject({
  requestId: RequestId.optional(),
  /** The terminal the hub authenticated as the sender (not what the unread bytes claim). */
  terminalId: Name,
  code: ErrorCodeSchema,
  message: Text,
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const ErrorMessage = signedEnvelope('error', ErrorMessageBody);

// ---------- retained hub announcements ----------

/** Most wallets a blocklist announcement lists (≈ 67 bytes each: inside its MAX_BYTES). */
export const MAX_ANNOUNCED_BLOCKLIST = 100_000;
/** Most voided tickets it lists (≈ 35 bytes each). */
export const MAX_ANNOUNCED_VOID_TICKETS = 20_000;
/** The deny list: wallets no terminal accepts, and tickets voided by a refund while still valid. */
export const BlocklistBody = strictObject({
  version: Counter,
  wallets: z.array(PublicKeyHex).max(MAX_ANNOUNCED_BLOCKLIST),
  /** Optional for announcements of older hubs. */
  tickets: z.array(Nonce128).max(MAX_ANNOUNCED_VOID_TICKETS).optional(),
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const Blocklist = signedEnvelope('announce.blocklist', BlocklistBody);

export const Restriction = strictObject({
  minAge: z.int().min(0).max(150).optional(),
  groupsAny: z.array(Name).max(16).optional(),
  groupsNone: z.array(Name).max(16).optional(),
});
export const Article = strictObject({
  sku: Name,
  name: Text,
  priceMinor: AmountMinor,
  currency: Currency,
  cancelWindowMs: z.int().min(0).max(30 * 24 * 3600_000).optional(),
  restriction: Restriction.optional(),
  slot: z.int().min(0).max(255).optional(),
});
export const CatalogBody = strictObject({
  merchantId: Name,
  version: Counter,
  articles: z.array(Article).max(1000),
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const Catalog = signedEnvelope('announce.catalog', CatalogBody);

/**
 * An IANA time zone name ("Europe/Berlin") this runtime's Intl knows (Node ships full ICU): a gate
 * that does not know the zone refuses the table rather than fail to price every exit with it.
 */
export const TimeZoneName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/, 'expected an IANA time zone name like Europe/Berlin')
  .max(64)
  .refine(isKnownTimeZone, 'unknown time zone (not in this runtime\'s IANA database)');

function isKnownTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export const FareTableSchema = strictObject({
  currency: Currency,
  /** station id → zone number */
  stations: z.record(Name, z.int().min(0).max(99)),
  baseFareMinor: AmountMinor,
  perZoneMinor: AmountMinor,
  maxFareMinor: AmountMinor,
  /** An entry older than this is stale: the maximum fare applies. */
  maxTripMs: z.int().min(60_000).max(48 * 3600_000),
  /** Local time = UTC + offset, for time-of-day bands: a table without a timeZone. */
  utcOffsetMinutes: z.int().min(-14 * 60).max(14 * 60).optional(),
  /** Local time in this IANA zone (daylight saving included): a table without a utcOffsetMinutes. */
  timeZone: TimeZoneName.optional(),
  /** [fromMinute, toMinute) of the local day; fromMinute > toMinute spans midnight (fares.ts). */
  timeBands: z
    .array(strictObject({ fromMinute: z.int().min(0).max(1439), toMinute: z.int().min(1).max(1440), percent: z.int().min(0).max(1000) }))
    .max(24),
}).superRefine((t, ctx) => {
  // Exactly one clock for the bands: with both, which one a reader honours would be a guess.
  if (t.timeZone !== undefined && t.utcOffsetMinutes !== undefined) ctx.addIssue({ code: 'custom', path: ['utcOffsetMinutes'], message: 'give timeZone or utcOffsetMinutes, not both' });
  if (t.timeZone === undefined && t.utcOffsetMinutes === undefined) ctx.addIssue({ code: 'custom', path: ['utcOffsetMinutes'], message: 'required without timeZone' });
});
export const FaresBody = strictObject({
  version: Counter,
  table: FareTableSchema,
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const Fares = signedEnvelope('announce.fares', FaresBody);

/** A ticket product (seed 004 claims 15–16): what a POS sells, at the hub's price. */
export const TicketProduct = strictObject({
  name: Name,
  priceMinor: AmountMinor,
  currency: Currency,
  /** How long a sold ticket is valid, from the sale. */
  validityMs: z.int().min(60_000).max(TICKET_HORIZON_MS),
  /** Stations where it admits; empty = every station. */
  stations: z.array(Name).max(64),
});
export const MAX_TICKET_PRODUCTS = 200;
export const ProductsBody = strictObject({
  version: Counter,
  products: z.array(TicketProduct).max(MAX_TICKET_PRODUCTS),
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const Products = signedEnvelope('announce.products', ProductsBody);

/** Most gates a keys announcement lists (≈ 150 bytes each: well inside its MAX_BYTES). */
export const MAX_ANNOUNCED_GATES = 2_000;

/** The hub's signing keys with their validity windows (rotation: protocol/hub-keys.ts). */
export const HubKeyRing = z.array(strictObject({ publicKey: PublicKeyHex, notBefore: TimeMs, notAfter: TimeMs })).min(1).max(8);

export const KeysBody = strictObject({
  version: Counter,
  hubKeys: HubKeyRing,
  issuerKeys: z.array(PublicKeyHex).max(8),
  revokedTerminals: z.array(Name).max(10_000),
  /**
   * The enrolled, unrevoked gates and their keys: an exit gate verifies a wallet's admission record
   * against them (a record it cannot verify is no record: the maximum fare). Optional for
   * announcements of older hubs; without it no record verifies.
   */
  gates: z.array(strictObject({ terminalId: Name, publicKey: PublicKeyHex })).max(MAX_ANNOUNCED_GATES).optional(),
  time: TimeMs,
  hubKey: PublicKeyHex,
});
export const Keys = signedEnvelope('announce.keys', KeysBody);

/** Terminal presence (Sparkplug-style): `seq` grows per connection so a late will can't mark a live terminal dead. */
export const Presence = strictObject({
  v: z.literal(1),
  terminalId: Name,
  state: z.enum(['online', 'offline']),
  seq: Counter,
  time: TimeMs,
});

// ---------- registry ----------

export const MESSAGE_SCHEMAS = {
  'terminal.certificate': TerminalCertificate,
  'wallet.license': WalletLicense,
  'purchase.offer': PurchaseOffer,
  'wallet.authorization': WalletAuthorization,
  'gate.admission': GateAdmission,
  ticket: Ticket,
  cancellation: Cancellation,
  transfer: Transfer,
  'history.query': HistoryQuery,
  'settlement.request': SettlementRequest,
  'settlement.result': SettlementResult,
  'balance.statement': BalanceStatement,
  'completion.receipt': CompletionReceipt,
  'receipt.ack': ReceiptAck,
  error: ErrorMessage,
  'announce.blocklist': Blocklist,
  'announce.catalog': Catalog,
  'announce.fares': Fares,
  'announce.keys': Keys,
  'announce.products': Products,
} as const;

export type MessageType = keyof typeof MESSAGE_SCHEMAS;
export const MESSAGE_TYPES = Object.keys(MESSAGE_SCHEMAS) as MessageType[];
export type Envelope<T extends MessageType> = z.infer<(typeof MESSAGE_SCHEMAS)[T]>;
export type Body<T extends MessageType> = Envelope<T>['body'];

/** Upper bound on the encoded size of each message type, checked before parsing. */
export const MAX_BYTES: Record<MessageType, number> = {
  'terminal.certificate': 1024,
  'wallet.license': 2048,
  'purchase.offer': 8 * 1024,
  'wallet.authorization': 1024,
  'gate.admission': 1024,
  ticket: 8 * 1024,
  cancellation: 1024,
  transfer: 1024,
  'history.query': 1024,
  'settlement.request': 16 * 1024,
  'settlement.result': 32 * 1024,
  'balance.statement': 24 * 1024,
  'completion.receipt': 1024,
  'receipt.ack': 1024,
  error: 1024,
  'announce.blocklist': 8 * 1024 * 1024,
  'announce.catalog': 512 * 1024,
  'announce.fares': 64 * 1024,
  'announce.keys': 512 * 1024,
  'announce.products': 64 * 1024,
};
export const MAX_MESSAGE_BYTES = Math.max(...Object.values(MAX_BYTES));

export type LineItemT = z.infer<typeof LineItem>;
export type ArticleT = z.infer<typeof Article>;
export type TicketProductT = z.infer<typeof TicketProduct>;
export type FareTable = z.infer<typeof FareTableSchema>;
export type SettlementOpT = z.infer<typeof SettlementOp>;
export type PresenceT = z.infer<typeof Presence>;
export type RestrictionT = z.infer<typeof Restriction>;
