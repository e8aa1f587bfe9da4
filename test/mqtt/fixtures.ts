/**
 * Real parts for the MQTT tests: Ed25519 keys, an in-memory terminal directory, and a small but
 * real settlement handler (decodes, verifies the terminal's signature through a SignatureVerifier,
 * answers duplicates with the original reply, signs every reply with the hub key). It stands in
 * for hub/service so the transport can be tested on its own.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { MqttClient } from 'mqtt';
import pino, { type Logger } from 'pino';
import {
  decodeMessage,
  encodeMessage,
  fromHex,
  generateKeyPair,
  issueWalletLicense,
  signMessage,
  signingBytes,
  toHex,
  type Envelope,
  type KeyPair,
} from '../../protocol/index.ts';
import type { SignatureVerifier } from '../../hub/verify/verifier.ts';
import { noDelayStreamBuilder } from '../../hub/mqtt/no-delay-stream.ts';
import type { BrokerPasswordScheme, BrokerPasswordSubject } from '../../hub/mqtt/mosquitto-config.ts';
import type { Announcement, SettlementHandler, TerminalListing } from '../../hub/mqtt/types.ts';
import { makePurchaseRequest, nodeSigningKey, type PurchaseParty } from '../../simulators/load/purchase-request.ts';

export interface TestTerminal {
  readonly terminalId: string;
  readonly keys: KeyPair;
}

export class MemoryDirectory implements TerminalListing {
  /**
   * `serial` stands for the terminal's current certificate (a scheme 2 broker password is bound to
   * it); scheme 1 is the legacy id-only password of terminals enrolled before 2026-12-02.
   */
  private readonly terminals = new Map<string, { publicKey: string; serial: string; brokerPasswordScheme: BrokerPasswordScheme; revoked: boolean }>();
  add(t: TestTerminal, brokerPasswordScheme: BrokerPasswordScheme = 2): void {
    this.terminals.set(t.terminalId, { publicKey: toHex(t.keys.publicKey), serial: randomBytes(16).toString('hex'), brokerPasswordScheme, revoked: false });
  }
  /** A new certificate for the terminal (reissued, same key): a new serial, and scheme 2 (as the registry does). */
  reissue(terminalId: string): void {
    const t = this.terminals.get(terminalId);
    if (t) {
      t.serial = randomBytes(16).toString('hex');
      t.brokerPasswordScheme = 2;
    }
  }
  /** What its broker password derives from (hub/mqtt/mosquitto-config.ts brokerPasswordFor). */
  subject(terminalId: string): BrokerPasswordSubject {
    const t = this.terminals.get(terminalId);
    if (!t) throw new Error(`no terminal ${terminalId}`);
    return { terminalId, publicKey: t.publicKey, serial: t.serial, brokerPasswordScheme: t.brokerPasswordScheme };
  }
  revoke(terminalId: string): void {
    const t = this.terminals.get(terminalId);
    if (t) t.revoked = true;
  }
  lookupTerminal(terminalId: string) {
    return this.terminals.get(terminalId);
  }
  *listTerminals() {
    for (const [terminalId, t] of this.terminals) yield { terminalId, ...t };
  }
}

export function makeTerminal(terminalId: string): TestTerminal {
  return { terminalId, keys: generateKeyPair() };
}

/** A real handler: the hub decides, signs, and answers a duplicate with the original bytes. */
export class TestSettlementHandler implements SettlementHandler {
  readonly hub = generateKeyPair();
  readonly hubKeyHex = toHex(this.hub.publicKey);
  readonly seen: { terminalId: string; payload: Uint8Array }[] = [];
  readonly receipts: { terminalId: string; payload: Uint8Array }[] = [];
  private readonly replies = new Map<string, { digest: string; reply: Uint8Array }>();
  private readonly listeners: ((a: Announcement) => void)[] = [];
  private current = 0;
  maxConcurrent = 0;

  constructor(
    private readonly directory: TerminalListing,
    private readonly verifier: SignatureVerifier,
    private readonly retained: Announcement[] = [],
  ) {}

  private error(terminalId: string, code: 'MALFORMED' | 'TOO_LARGE' | 'WRONG_TYPE' | 'UNSUPPORTED_VERSION' | 'BAD_SIGNATURE', message: string, requestId?: string): Uint8Array {
    return encodeMessage(signMessage('error', { requestId, terminalId, code, message: message.slice(0, 200), time: Date.now(), hubKey: this.hubKeyHex }, this.hub.secretKey));
  }

  async handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    this.seen.push({ terminalId, payload });
    this.current++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.current);
    try {
      const decoded = decodeMessage(payload, 'settlement.request');
      if (!decoded.ok) return this.error(terminalId, decoded.code as 'MALFORMED', decoded.detail);
      const request = decoded.value;
      const body = request.body;
      const op = body.op;
      const amountMinor = op.type === 'purchase' ? op.authorization.body.amountMinor : 0;
      const currency = op.type === 'purchase' ? op.authorization.body.currency : 'EUR';
      const decline = (code: 'UNKNOWN_TERMINAL' | 'BAD_SIGNATURE' | 'TERMINAL_MISMATCH' | 'INSUFFICIENT_FUNDS' | 'DUPLICATE_MISMATCH') =>
        encodeMessage(
          signMessage(
            'settlement.result',
            { requestId: body.requestId, terminalId, status: 'declined', code, withdrawal: 'none', amountMinor, currency, time: Date.now(), hubKey: this.hubKeyHex },
            this.hub.secretKey,
          ),
        );
      const digest = request.sig;
      const previous = this.replies.get(body.requestId);
      if (previous) return previous.digest === digest ? previous.reply : decline('DUPLICATE_MISMATCH');
      const terminal = this.directory.lookupTerminal(terminalId);
      if (!terminal) return decline('UNKNOWN_TERMINAL');
      if (body.terminalId !== terminalId) return decline('TERMINAL_MISMATCH');
      const [ok] = await this.verifier.verifyMany([{ signature: fromHex(request.sig), message: signingBytes(request), publicKey: fromHex(terminal.publicKey) }]);
      if (!ok) return decline('BAD_SIGNATURE');
      const reply =
        amountMinor > 100_000
          ? decline('INSUFFICIENT_FUNDS')
          : encodeMessage(
              signMessage(
                'settlement.result',
                { requestId: body.requestId, terminalId, status: 'approved', withdrawal: 'complete', amountMinor, currency, time: Date.now(), hubKey: this.hubKeyHex },
                this.hub.secretKey,
              ),
            );
      this.replies.set(body.requestId, { digest, reply });
      return reply;
    } finally {
      this.current--;
    }
  }

  /** Records the receipt and acknowledges it, signed (what the contract needs of the service). */
  async answerReceipt(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    this.receipts.push({ terminalId, payload });
    const decoded = decodeMessage(payload, 'completion.receipt');
    if (!decoded.ok) return this.error(terminalId, decoded.code as 'MALFORMED', decoded.detail);
    const body = { requestId: decoded.value.body.requestId, terminalId, status: 'recorded' as const, time: Date.now(), hubKey: this.hubKeyHex };
    return encodeMessage(signMessage('receipt.ack', body, this.hub.secretKey));
  }

  announcements(): readonly Announcement[] {
    return this.retained;
  }

  onAnnouncement(cb: (a: Announcement) => void): () => void {
    this.listeners.push(cb);
    return () => this.listeners.splice(this.listeners.indexOf(cb), 1);
  }

  announce(a: Announcement): void {
    this.retained.push(a);
    for (const l of this.listeners) l(a);
  }
}

/** A wallet with an issuer-signed license, ready to authorize purchases at `terminal`. */
export function purchaseParty(terminal: TestTerminal, merchantId = 'canteen'): PurchaseParty {
  const issuer = generateKeyPair();
  const wallet = generateKeyPair();
  const license: Envelope<'wallet.license'> = issueWalletLicense(issuer, {
    wallet: toHex(wallet.publicKey),
    notBefore: 0,
    notAfter: Date.now() + 3600_000,
    ageOver: 18,
    groups: [],
    offlineLimitMinor: 0,
    currency: 'EUR',
  });
  return {
    terminalId: terminal.terminalId,
    merchantId,
    terminalKey: nodeSigningKey(terminal.keys.secretKey),
    walletPublicKeyHex: toHex(wallet.publicKey),
    walletKey: nodeSigningKey(wallet.secretKey),
    license,
  };
}

let counter = 0;
export function purchase(party: PurchaseParty, unitMinor = 250) {
  return makePurchaseRequest(party, { lines: [{ sku: 'coffee', qty: 1, unitMinor }], currency: 'EUR', counter: ++counter, nowMs: Date.now() });
}

/** A pino logger whose records tests can read. */
export function captureLogger(): { logger: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), records };
}

export async function eventually<T>(probe: () => T | undefined | false, timeoutMs = 3000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error('eventually: condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The SUBACK return codes for these filters (128 = refused); MQTT.js rejects when any is 128. */
export async function grantedQos(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: (number | { qos: number })[] } }).packet?.granted;
    if (!granted) throw err;
    return granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }
}

export interface TryConnectOptions {
  readonly clientId?: string;
  readonly keepalive?: number;
  /** Connect from this local address (plain TCP only), e.g. another loopback address. */
  readonly localAddress?: string;
}

/** A raw CONNECT to `url` with the given credentials: resolves 'accepted' or the CONNACK refusal code. */
export function tryConnect(url: string, username: string, password: string, options: TryConnectOptions = {}): Promise<'accepted' | number> {
  const { clientId = username, keepalive = 60, localAddress } = options;
  const { hostname, port } = new URL(url);
  const stream = localAddress === undefined ? noDelayStreamBuilder(url) : () => net.connect({ host: hostname, port: Number(port), localAddress, noDelay: true });
  return new Promise((resolve) => {
    const client = new MqttClient(stream, { protocolVersion: 4, clientId, username, password, clean: false, reconnectPeriod: 0, keepalive });
    client.once('connect', () => {
      client.end(true);
      resolve('accepted');
    });
    client.once('error', (err: Error & { code?: number }) => {
      client.end(true);
      resolve(err.code ?? -1);
    });
  });
}
