/**
 * Deterministic sample of every message type with fixed keys, times and nonces. Written to
 * messages.json (`npx tsx protocol/vectors/messages.ts --write`); the test rebuilds it and compares,
 * so another implementation (a phone wallet, C firmware) can check its canonical bytes and
 * signatures against the file.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { canonicalBytes } from '../canonical.ts';
import { issueTerminalCertificate, issueWalletLicense } from '../certificates.ts';
import { encodeMessage, signMessage } from '../codec.ts';
import { encodeCompact } from '../compact.ts';
import { generateKeyPair } from '../crypto.ts';
import { toHex } from '../hex.ts';
import type { Envelope, MessageType } from '../schemas.ts';
import { authorizeOffer, createOffer } from '../wallet-auth.ts';

const seed = (byte: number) => new Uint8Array(32).fill(byte);
export const VECTOR_KEYS = {
  hub: generateKeyPair(seed(0x01)),
  issuer: generateKeyPair(seed(0x02)),
  terminal: generateKeyPair(seed(0x03)),
  wallet: generateKeyPair(seed(0x04)),
  wallet2: generateKeyPair(seed(0x05)),
};
const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const nonce = (n: number) => n.toString(16).padStart(32, '0');

export function buildSampleMessages(): Envelope<MessageType>[] {
  const { hub, issuer, terminal, wallet, wallet2 } = VECTOR_KEYS;
  const hubKey = toHex(hub.publicKey);
  const walletHex = toHex(wallet.publicKey);
  const cert = issueTerminalCertificate(hub, {
    serial: nonce(1),
    terminalId: 'pos-1',
    kind: 'pos',
    merchantId: 'cafe',
    publicKey: toHex(terminal.publicKey),
    notBefore: T0,
    notAfter: T0 + 365 * 86_400_000,
  });
  const license = issueWalletLicense(issuer, {
    serial: nonce(2),
    wallet: walletHex,
    notBefore: T0,
    notAfter: T0 + 365 * 86_400_000,
    ageOver: 18,
    groups: ['staff'],
    offlineLimitMinor: 2000,
    currency: 'EUR',
  });
  const lines = [
    { sku: 'coffee', qty: 2, unitMinor: 250 },
    { sku: 'cake', qty: 1, unitMinor: 390 },
  ];
  const offer = createOffer(terminal, {
    terminalId: 'pos-1',
    merchantId: 'cafe',
    purpose: 'purchase',
    amountMinor: 890,
    currency: 'EUR',
    lines,
    nowMs: T0 + 1000,
    terminalCert: cert,
    challenge: nonce(3),
  });
  const authorization = authorizeOffer(wallet, offer, 7, T0 + 1100);
  const request = signMessage(
    'settlement.request',
    { requestId: nonce(4), terminalId: 'pos-1', time: T0 + 1200, offline: false, op: { type: 'purchase', authorization, license, lines } },
    terminal.secretKey,
  );
  const statement = signMessage(
    'balance.statement',
    { wallet: walletHex, balanceMinor: 4110, currency: 'EUR', asOf: T0 + 1300, entries: [{ requestId: nonce(4), kind: 'purchase', amountMinor: -890, time: T0 + 1300, counterparty: 'cafe' }], hubKey },
    hub.secretKey,
  );
  const result = signMessage(
    'settlement.result',
    { requestId: nonce(4), terminalId: 'pos-1', status: 'approved', withdrawal: 'complete', amountMinor: 890, currency: 'EUR', time: T0 + 1300, statement, hubKey },
    hub.secretKey,
  );
  const declined = signMessage(
    'settlement.result',
    { requestId: nonce(5), terminalId: 'pos-1', status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none', amountMinor: 890, currency: 'EUR', time: T0 + 1300, hubKey },
    hub.secretKey,
  );
  const receipt = signMessage('completion.receipt', { requestId: nonce(4), terminalId: 'pos-1', outcome: 'delivered', time: T0 + 1400 }, terminal.secretKey);
  const admission = signMessage('gate.admission', { recordId: nonce(6), wallet: walletHex, terminalId: 'gate-a', station: 'central', time: T0 + 2000 }, terminal.secretKey);
  const ticket = signMessage(
    'ticket',
    { ticketId: nonce(7), wallet: walletHex, product: 'day-pass', stations: ['central', 'harbour'], validFrom: T0, validUntil: T0 + 86_400_000, issuedAt: T0, hubKey },
    hub.secretKey,
  );
  const cancellation = signMessage('cancellation', { originalRequestId: nonce(4), wallet: walletHex, time: T0 + 5000, challenge: nonce(8) }, wallet.secretKey);
  const transfer = signMessage(
    'transfer',
    { from: walletHex, to: toHex(wallet2.publicKey), amountMinor: 500, currency: 'EUR', time: T0 + 6000, counter: 8, challenge: nonce(9) },
    wallet.secretKey,
  );
  const query = signMessage('history.query', { wallet: walletHex, time: T0 + 7000, challenge: nonce(10), limit: 20 }, wallet.secretKey);
  const error = signMessage('error', { requestId: nonce(11), terminalId: 'pos-1', code: 'MALFORMED', message: 'op.type: invalid', time: T0 + 8000, hubKey }, hub.secretKey);
  const receiptAck = signMessage('receipt.ack', { requestId: nonce(4), terminalId: 'pos-1', status: 'recorded', time: T0 + 2100, hubKey }, hub.secretKey);
  const blocklist = signMessage('announce.blocklist', { version: 3, wallets: [toHex(wallet2.publicKey)], time: T0, hubKey }, hub.secretKey);
  const denyList = signMessage('announce.blocklist', { version: 4, wallets: [toHex(wallet2.publicKey)], tickets: [nonce(13)], time: T0, hubKey }, hub.secretKey);
  const catalog = signMessage(
    'announce.catalog',
    {
      merchantId: 'cafe',
      version: 2,
      articles: [
        { sku: 'coffee', name: 'Coffee', priceMinor: 250, currency: 'EUR', slot: 1 },
        { sku: 'beer', name: 'Beer 0.5l', priceMinor: 450, currency: 'EUR', restriction: { minAge: 18 }, cancelWindowMs: 600_000 },
      ],
      time: T0,
      hubKey,
    },
    hub.secretKey,
  );
  const fares = signMessage(
    'announce.fares',
    {
      version: 1,
      table: {
        currency: 'EUR',
        stations: { central: 1, harbour: 2, airport: 4 },
        baseFareMinor: 150,
        perZoneMinor: 80,
        maxFareMinor: 600,
        maxTripMs: 3 * 3600_000,
        utcOffsetMinutes: 60,
        timeBands: [{ fromMinute: 420, toMinute: 540, percent: 120 }],
      },
      time: T0,
      hubKey,
    },
    hub.secretKey,
  );
  const keys = signMessage(
    'announce.keys',
    { version: 1, hubKeys: [{ publicKey: hubKey, notBefore: T0, notAfter: T0 + 365 * 86_400_000 }], issuerKeys: [toHex(issuer.publicKey)], revokedTerminals: [], time: T0, hubKey },
    hub.secretKey,
  );
  const products = signMessage(
    'announce.products',
    { version: 2, products: [{ name: 'day-pass', priceMinor: 900, currency: 'EUR', validityMs: 86_400_000, stations: ['central', 'harbour'] }], time: T0, hubKey },
    hub.secretKey,
  );
  const fareRequest = signMessage(
    'settlement.request',
    {
      requestId: nonce(12),
      terminalId: 'gate-b',
      time: T0 + 3000,
      offline: true,
      op: { type: 'fare', authorization, license, entry: admission, exitStation: 'harbour', exitTime: T0 + 3000 },
    },
    terminal.secretKey,
  );
  // Time bands on an IANA zone's wall clock (daylight saving included), one across midnight.
  const zonedFares = signMessage(
    'announce.fares',
    {
      version: 2,
      table: {
        currency: 'EUR',
        stations: { central: 1, harbour: 2, airport: 4 },
        baseFareMinor: 150,
        perZoneMinor: 80,
        maxFareMinor: 600,
        maxTripMs: 3 * 3600_000,
        timeZone: 'Europe/Berlin',
        timeBands: [
          { fromMinute: 420, toMinute: 540, percent: 120 },
          { fromMinute: 1320, toMinute: 120, percent: 80 },
        ],
      },
      time: T0 + 9000,
      hubKey,
    },
    hub.secretKey,
  );
  // A ticket trip's exit, reported by the exit gate (the record's claim at the hub), and an
  // entrance's question about a record on its "already inside" path with the hub's two answers.
  const ticketAdmission = signMessage('gate.admission', { recordId: nonce(14), wallet: walletHex, terminalId: 'gate-a', station: 'central', time: T0 + 2000, ticketId: nonce(7) }, terminal.secretKey);
  const ticketExit = signMessage(
    'settlement.request',
    { requestId: nonce(15), terminalId: 'gate-b', time: T0 + 3000, offline: true, op: { type: 'ticket.exit', entry: ticketAdmission, exitStation: 'harbour', exitTime: T0 + 3000 } },
    terminal.secretKey,
  );
  const admissionCheck = signMessage('settlement.request', { requestId: nonce(16), terminalId: 'gate-a', time: T0 + 4000, offline: false, op: { type: 'admission.check', entry: admission } }, terminal.secretKey);
  const consumed = signMessage(
    'settlement.result',
    { requestId: nonce(16), terminalId: 'gate-a', status: 'approved', withdrawal: 'none', amountMinor: 0, currency: 'EUR', time: T0 + 4000, recordId: nonce(6), hubKey },
    hub.secretKey,
  );
  const notConsumed = signMessage(
    'settlement.result',
    { requestId: nonce(17), terminalId: 'gate-a', status: 'declined', code: 'NOT_CONSUMED', withdrawal: 'none', amountMinor: 0, currency: 'EUR', time: T0 + 4000, recordId: nonce(14), hubKey },
    hub.secretKey,
  );
  // Appended only: the vectors before it stay byte for byte what other implementations check.
  return [cert, license, offer, authorization, request, fareRequest, result, declined, statement, receipt, receiptAck, admission, ticket, cancellation, transfer, query, error, blocklist, catalog, fares, keys, products, zonedFares, denyList, ticketAdmission, ticketExit, admissionCheck, consumed, notConsumed];
}

export interface MessageVector {
  type: MessageType;
  signer: string;
  canonicalHex: string;
  signature: string;
  wire: string;
  /** The compact CBOR form used on the NFC hop (compact.ts). */
  compactHex: string;
}

export function buildMessageVectors(): { keys: Record<string, { secretKey: string; publicKey: string }>; messages: MessageVector[] } {
  const keyHex = Object.fromEntries(
    Object.entries(VECTOR_KEYS).map(([name, kp]) => [name, { secretKey: toHex(kp.secretKey), publicKey: toHex(kp.publicKey) }]),
  );
  const signerOf = (type: MessageType): string =>
    ({ 'wallet.license': 'issuer', 'wallet.authorization': 'wallet', cancellation: 'wallet', transfer: 'wallet', 'history.query': 'wallet', 'purchase.offer': 'terminal', 'settlement.request': 'terminal', 'completion.receipt': 'terminal', 'gate.admission': 'terminal' })[type as string] ?? 'hub';
  const messages = buildSampleMessages().map((m) => ({
    type: m.type,
    signer: signerOf(m.type),
    canonicalHex: toHex(canonicalBytes(m.type, m.body)),
    signature: m.sig,
    wire: new TextDecoder().decode(encodeMessage(m)),
    compactHex: toHex(encodeCompact(m)),
  }));
  return { keys: keyHex, messages };
}

export const MESSAGE_VECTORS_PATH = fileURLToPath(new URL('./messages.json', import.meta.url));

if (process.argv.includes('--write')) {
  writeFileSync(MESSAGE_VECTORS_PATH, JSON.stringify(buildMessageVectors(), null, 2) + '\n');
  console.log(`wrote ${MESSAGE_VECTORS_PATH}`);
}
