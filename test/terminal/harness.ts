// A real hub (createHub: registry + SQLite ledger; createHubServer: embedded aedes on port 0) and
// simulated terminals/wallets around it, for the terminal end-to-end tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { authorizeOffer, decodeAnyForm, encodeCompact, encodeMessage, fromHex, sha256, signMessage, toHex, utf8, type Envelope, type FareTable } from '../../protocol/index.ts';
import { encodeShortAuthorization, RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import { loadOrCreateEd25519Key } from '../../hub/registry/keys.ts';
import type { ContactlessCard } from '../../simulators/wallet/contactless-card.ts';
import { WalletApplet } from '../../simulators/wallet/wallet-applet.ts';
import { createHub, type Hub } from '../../hub/service/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { startSimulatedTerminal, type SimulatedTerminal, type SimulatedTerminalOptions } from '../../simulators/site/start-simulated-terminal.ts';

export const FARES: FareTable = {
  currency: 'EUR',
  stations: { north: 1, centre: 2, south: 4 },
  baseFareMinor: 150,
  perZoneMinor: 50,
  maxFareMinor: 600,
  maxTripMs: 3 * 3600_000,
  utcOffsetMinutes: 0,
  timeBands: [],
};

/** POS staff: alice, PIN 4711 (only its SHA-256 is configured). */
export const OPERATORS = [{ id: 'alice', pinSha256: toHex(sha256(utf8('4711'))) }];

export const ARTICLES = [
  { sku: 'cola', name: 'Cola', priceMinor: 250, currency: 'EUR', slot: 1 },
  { sku: 'beer', name: 'Beer', priceMinor: 400, currency: 'EUR', slot: 2, restriction: { minAge: 18 } },
  { sku: 'bread', name: 'Bread', priceMinor: 120, currency: 'EUR', cancelWindowMs: 600_000 },
];

/**
 * Taps `card` as a new tap: the reader starts a session only once it has seen the last card gone
 * (one tap, one session), and on a loaded machine its next poll can come later than any fixed
 * wait. So the card is taken away and put back until the runtime reports the tap.
 */
export async function tapAfresh(t: Pick<SimulatedTerminal, 'runtime' | 'tap' | 'remove'>, card: ContactlessCard, attempts = 5): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    t.remove();
    await new Promise((r) => setTimeout(r, 150 * (i + 1)));
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => (t.runtime.off('tap', onTap), resolve(false)), 2000);
      const onTap = () => (clearTimeout(timer), resolve(true));
      t.runtime.once('tap', onTap);
    });
    t.tap(card);
    if (await seen) return;
  }
  throw new Error(`the reader did not see a new tap in ${attempts} attempts`);
}

export async function eventually<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 8000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

export class Site {
  private readonly terminals: SimulatedTerminal[] = [];
  server: HubServer | undefined;
  /** Fault injection in front of the real service: a slow hub, or replies with a broken signature. */
  /** `unavailable`: the next N requests (of `unavailableTerminal` only, when set) get a busy reply. */
  /** `lostReceipts`: the next N receipts are delivered (PUBACK) and lost unread, as by a hub that crashed or was closing. */
  readonly faults = { delayMs: 0, corruptReplies: false, unavailable: 0, unavailableTerminal: '', lostReceipts: 0 };
  /** Receipts the faults above lost. */
  lostReceipts = 0;
  private readonly service = {
    handleRequest: async (terminalId: string, payload: Uint8Array): Promise<Uint8Array> => {
      if (this.faults.delayMs > 0) await new Promise((r) => setTimeout(r, this.faults.delayMs));
      if (this.faults.unavailable > 0 && (this.faults.unavailableTerminal === '' || this.faults.unavailableTerminal === terminalId)) {
        // A busy hub: a hub-signed "declined, UNAVAILABLE — retry with the same id" (not cached by the hub).
        this.faults.unavailable -= 1;
        const req = JSON.parse(Buffer.from(payload).toString('utf8')) as { body: { requestId: string; terminalId: string } };
        const hubKey = loadOrCreateEd25519Key(join(this.dir, 'hub'), 'hub-signing');
        const body = { requestId: req.body.requestId, terminalId: req.body.terminalId, status: 'declined' as const, code: 'UNAVAILABLE' as const, withdrawal: 'none' as const, amountMinor: 0, currency: 'EUR', time: Date.now(), hubKey: toHex(hubKey.publicKey) };
        return encodeMessage(signMessage('settlement.result', body, hubKey.secretKey));
      }
      const reply = await this.hub.handleRequest(terminalId, payload);
      if (!this.faults.corruptReplies) return reply;
      const msg = JSON.parse(Buffer.from(reply).toString('utf8')) as { sig: string };
      msg.sig = (msg.sig[0] === '0' ? '1' : '0') + msg.sig.slice(1);
      return Buffer.from(JSON.stringify(msg));
    },
    answerReceipt: async (terminalId: string, payload: Uint8Array): Promise<Uint8Array> => {
      if (this.faults.lostReceipts > 0) {
        this.faults.lostReceipts -= 1;
        this.lostReceipts += 1;
        throw new Error('receipt lost (fault injection)');
      }
      return await this.hub.answerReceipt(terminalId, payload);
    },
    announcements: () => this.hub.announcements(),
    onAnnouncement: (cb: Parameters<Hub['onAnnouncement']>[0]) => this.hub.onAnnouncement(cb),
  };

  private constructor(
    readonly dir: string,
    public hub: Hub,
  ) {}

  static async start(): Promise<Site> {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-terminal-e2e-'));
    const hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
    const site = new Site(dir, hub);
    for (const merchantId of ['merchant-vending', 'merchant-pos']) hub.importCatalog({ merchantId, articles: ARTICLES });
    hub.importFares(FARES);
    hub.importProducts({ products: [{ name: 'day', priceMinor: 500, currency: 'EUR', validityMs: 24 * 3600_000, stations: [] }] });
    site.server = await createHubServer({ service: site.service, directory: hub, logger: pino({ level: 'silent' }) });
    return site;
  }

  get url(): string {
    if (!this.server) throw new Error('hub server is down');
    return this.server.url;
  }

  /** Hub down: the broker and the service go away (terminals see the connection drop). */
  async stopServer(): Promise<string> {
    const url = this.url;
    await this.server?.close();
    this.server = undefined;
    return url;
  }

  /** Hub back on the same port. */
  async restartServer(url: string): Promise<void> {
    this.server = await createHubServer({ service: this.service, directory: this.hub, port: Number(new URL(url).port), logger: pino({ level: 'silent' }) });
  }

  async terminal(options: Omit<SimulatedTerminalOptions, 'hubUrl' | 'hub'>): Promise<SimulatedTerminal> {
    const t = await startSimulatedTerminal({
      ...options,
      hubUrl: this.url,
      hub: this.hub,
      config: { ...options.config, hub: { timeoutMs: 3000, retryMs: 300, reconnectPeriodMs: 100, ...options.config?.hub } },
    });
    this.terminals.push(t);
    const announced = (): boolean =>
      options.kind === 'gate' ? t.runtime.fareTable !== null : t.runtime.articles.length > 0 && (options.kind !== 'pos' || t.runtime.products.length > 0);
    await eventually(() => t.runtime.isOnline && announced(), 8000, 'terminal online with announcements');
    return t;
  }

  /** A registered wallet holding `balanceMinor`, as a simulated card. */
  async wallet(opts: { balanceMinor?: number; ageOver?: number; offlineLimitMinor?: number } = {}): Promise<SimulatedWallet> {
    const reg = await this.hub.registerWallet({ ageOver: opts.ageOver ?? 30, offlineLimitMinor: opts.offlineLimitMinor ?? 1000 });
    if (!reg.keyPair) throw new Error('registerWallet returned no key pair');
    const wallet = new SimulatedWallet({ keys: reg.keyPair, license: reg.license, trustedHubKeys: [this.hub.trustAnchorKey] });
    if (opts.balanceMinor) await this.hub.topUp({ wallet: wallet.publicKeyHex, amountMinor: opts.balanceMinor, operatorId: 'setup' });
    return wallet;
  }

  async balance(wallet: SimulatedWallet): Promise<number> {
    const a = await this.hub.showAccount(wallet.publicKeyHex);
    if (!a) throw new Error('no account');
    return a.account.balanceMinor;
  }

  /** Store a hub-signed statement on the wallet (as a POS would after any settlement). */
  static giveStatement(wallet: SimulatedWallet, statement: Envelope<'balance.statement'>): void {
    wallet.applet.records.store(RecordKind.BalanceStatement, encodeMessage(statement), true);
  }

  async close(): Promise<void> {
    for (const t of this.terminals.splice(0)) await t.close().catch(() => undefined);
    await this.server?.close();
    await this.hub.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A wallet card whose authorizations carry a broken signature (a forged or corrupted wallet). */
export function badSignatureCard(wallet: SimulatedWallet): ContactlessCard {
  let counter = 1000;
  const applet = new WalletApplet({
    licenseBytes: () => encodeMessage(wallet.license),
    authorize: (offerBytes, { short }) => {
      const d = decodeAnyForm(offerBytes, 'purchase.offer');
      if (!d.ok) return { kind: 'declined', code: d.code };
      const auth = authorizeOffer(wallet.keys, d.value, ++counter, Date.now());
      const signature = fromHex(auth.sig);
      signature[0] = signature[0]! ^ 0x01; // one flipped bit
      if (short) return { kind: 'authorized', authorizationBytes: encodeShortAuthorization({ timeMs: auth.body.time, counter: auth.body.counter, signature }) };
      const broken = { ...auth, sig: toHex(signature) };
      return { kind: 'authorized', authorizationBytes: offerBytes[0] === 0x7b ? encodeMessage(broken) : encodeCompact(broken) };
    },
  });
  return { uid: wallet.uid, powerOn: () => applet.reset(), processApdu: (apdu) => applet.process(apdu) };
}
