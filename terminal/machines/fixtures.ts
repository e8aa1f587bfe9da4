// Test fixtures for the pure machines: real keys, licenses, hub-signed results and statements.
// Used by the unit tests beside the machines; no I/O.
import {
  authorizeOffer, createOffer, generateKeyPair, issueTerminalCertificate, issueWalletLicense, signMessage, toHex,
  type Body, type Envelope, type FareTable, type KeyPair,
} from '../../protocol/index.ts';
import { DEFAULT_RISK_LIMITS, type UsageView } from '../policy/risk.ts';
import type { CardInfo, Command, EntryRetap, OfferSpec, TerminalContext } from './types.ts';

export const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

export const FARES: FareTable = {
  currency: 'EUR',
  stations: { A: 1, B: 2, C: 4 },
  baseFareMinor: 150,
  perZoneMinor: 50,
  maxFareMinor: 600,
  maxTripMs: 3 * 3600_000,
  utcOffsetMinutes: 0,
  timeBands: [],
};

export class Fixture {
  readonly hub: KeyPair = generateKeyPair();
  readonly issuer: KeyPair = generateKeyPair();
  readonly terminal: KeyPair = generateKeyPair();
  readonly usedTickets = new Set<string>();
  walletLocal = new Map<string, number>();
  periodMinor = 0;
  /** Wallets with an unsigned passage on file (policy/unsigned.ts). */
  readonly unsignedWallets = new Set<string>();
  /** Admission records this (exit) gate already let a wallet out on. */
  readonly usedAdmissions = new Set<string>();
  /** What an entry gate remembers of records whose holder did not go in (by wallet), as the runtime keeps it. */
  readonly entryRetaps = new Map<string, EntryRetap>();
  private n = 0;

  constructor(readonly terminalId = 'term-1', readonly merchantId = 'shop-1') {}

  get hubKey(): string {
    return toHex(this.hub.publicKey);
  }

  usage(): UsageView {
    return {
      walletLocalMinor: (w) => this.walletLocal.get(w) ?? 0,
      terminalPeriodMinor: () => this.periodMinor,
      ticketUsed: (id) => this.usedTickets.has(id),
      unsignedPassage: (w) => this.unsignedWallets.has(w),
      admissionUsed: (recordId) => this.usedAdmissions.has(recordId),
    };
  }

  /** Carries out what the runtime keeps for the gate's `entry.remember` / `entry.forget` commands. */
  keep(commands: readonly Command[]): void {
    for (const c of commands) {
      if (c.c === 'entry.remember') this.entryRetaps.set(c.wallet, { wallet: c.wallet, recordId: c.recordId, kind: c.kind, untilMs: c.untilMs });
      if (c.c === 'entry.forget') this.entryRetaps.delete(c.wallet);
    }
  }

  /** An entry gate at `station` whose memory of records not gone in with is this fixture's. */
  entryGate(station = 'A'): NonNullable<TerminalContext['gate']> {
    return { station, mode: 'entry', entryRetap: (wallet) => this.entryRetaps.get(wallet) };
  }

  ctx(over: Partial<TerminalContext> = {}): TerminalContext {
    return {
      terminalId: this.terminalId,
      merchantId: this.merchantId,
      currency: 'EUR',
      hubKeys: [this.hubKey],
      ticketKeysAt: () => [this.hubKey],
      issuerKeys: [toHex(this.issuer.publicKey)],
      blocklist: new Set(),
      online: true,
      catalog: [
        { sku: 'cola', name: 'Cola', priceMinor: 250, currency: 'EUR', slot: 3 },
        { sku: 'beer', name: 'Beer', priceMinor: 400, currency: 'EUR', slot: 4, restriction: { minAge: 18 } },
        { sku: 'bread', name: 'Bread', priceMinor: 120, currency: 'EUR' },
      ],
      catalogVersion: 7,
      ticketProducts: [{ name: 'day', priceMinor: 500, currency: 'EUR', validityMs: 24 * 3600_000, stations: [] }],
      faresVersion: 4,
      fares: FARES,
      limits: DEFAULT_RISK_LIMITS,
      usage: this.usage(),
      timeouts: { hubMs: 3000, dropMs: 2000, tapMs: 5000 },
      // admission(): records of the enrolled entry gate 'gate-in' (signed with the terminal key).
      gateKeys: new Map([['gate-in', toHex(this.terminal.publicKey)]]),
      ...over,
    };
  }

  wallet(opts: { ageOver?: number; offlineLimitMinor?: number; notAfter?: number } = {}): { keys: KeyPair; license: Envelope<'wallet.license'>; hex: string } {
    const keys = generateKeyPair();
    const license = issueWalletLicense(this.issuer, {
      wallet: toHex(keys.publicKey),
      notBefore: T0 - 3600_000,
      notAfter: opts.notAfter ?? T0 + 365 * 24 * 3600_000,
      ageOver: opts.ageOver ?? 0,
      groups: [],
      offlineLimitMinor: opts.offlineLimitMinor ?? 1000,
      currency: 'EUR',
    });
    return { keys, license, hex: toHex(keys.publicKey) };
  }

  card(w: { license: Envelope<'wallet.license'> }, over: Partial<CardInfo> = {}): CardInfo {
    return { license: w.license, admission: null, tickets: [], statement: null, ...over };
  }

  id(): string {
    this.n += 1;
    return this.n.toString(16).padStart(32, '0');
  }

  authorize(w: { keys: KeyPair }, spec: OfferSpec, nowMs = T0): Envelope<'wallet.authorization'> {
    const cert = issueTerminalCertificate(this.hub, {
      terminalId: this.terminalId, kind: 'vending', merchantId: this.merchantId, publicKey: toHex(this.terminal.publicKey), notBefore: T0 - 1, notAfter: T0 + 1e10,
    });
    const offer = createOffer(this.terminal, { terminalId: this.terminalId, merchantId: this.merchantId, ...spec, nowMs, terminalCert: cert });
    return authorizeOffer(w.keys, offer, 1, nowMs);
  }

  statement(wallet: string, balanceMinor: number, asOf = T0, signer: KeyPair = this.hub): Envelope<'balance.statement'> {
    return signMessage('balance.statement', { wallet, balanceMinor, currency: 'EUR', asOf, entries: [], hubKey: toHex(signer.publicKey) }, signer.secretKey);
  }

  result(requestId: string, over: Partial<Body<'settlement.result'>> = {}, signer: KeyPair = this.hub): Envelope<'settlement.result'> {
    return signMessage(
      'settlement.result',
      { requestId, terminalId: this.terminalId, status: 'approved', withdrawal: 'complete', amountMinor: 250, currency: 'EUR', time: T0, hubKey: this.hubKey, ...over },
      signer.secretKey,
    );
  }

  admission(wallet: string, station: string, time: number, ticketId?: string): Envelope<'gate.admission'> {
    return signMessage('gate.admission', { recordId: this.id(), wallet, terminalId: 'gate-in', station, time, ...(ticketId ? { ticketId } : {}) }, this.terminal.secretKey);
  }

  ticket(wallet: string, over: Partial<Body<'ticket'>> = {}): Envelope<'ticket'> {
    return signMessage(
      'ticket',
      { ticketId: this.id(), wallet, product: 'day', stations: [], validFrom: T0 - 1000, validUntil: T0 + 3600_000, issuedAt: T0 - 1000, hubKey: this.hubKey, ...over },
      this.hub.secretKey,
    );
  }
}
