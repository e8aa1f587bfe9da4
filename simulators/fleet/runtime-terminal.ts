/**
 * A demo-site terminal that is the REAL terminal runtime (terminal/, via simulators/site): its
 * PN532 is the emulator on a pseudo-terminal read through the real driver, its actuators and
 * sensors are the virtual johnny-five board. A simulated customer uses it the way a person would:
 * choose an article or let the cashier ring it up, tap the wallet, take it away.
 */
import { sha256, signMessage, newChallenge, toHex, utf8, type Envelope, type LineItemT, publicKeyOf, fromHex } from '../../protocol/index.ts';
import type { Command } from '../../terminal/machines/types.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../site/start-simulated-terminal.ts';
import { SimulatedWallet } from '../wallet/simulated-wallet.ts';
import type { Logger } from 'pino';
import type { SiteOutcome, SiteTerminal, TerminalKind } from './site-terminal.ts';
import type { SimWallet } from './wallets.ts';

/** The demo POS's staff: operator `staff-1`, PIN 2468 (only its SHA-256 is in the terminal config). */
export const DEMO_OPERATOR = { id: 'staff-1', pin: '2468' } as const;

export interface RuntimeTerminalOptions {
  readonly hubUrl: string;
  readonly terminalId: string;
  readonly kind: TerminalKind;
  readonly merchantId: string;
  readonly station?: string;
  readonly gateMode?: 'entry' | 'exit';
  readonly secretKey: Uint8Array;
  readonly certificate: Envelope<'terminal.certificate'>;
  readonly hubKey: string;
  readonly issuerKey: string;
  /** The terminal's own state (durable outbox, announcements): reused across runs. */
  readonly dataDir: string;
  readonly log?: Logger;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BUSY_STATES = new Set(['authorizing', 'settling', 'dispensing', 'admitting', 'exit.authorizing', 'exit.settling', 'passing']);
const TRANSACTION_TIMEOUT_MS = 15_000;

/** One simulated card per wallet, shared by every terminal (it carries the admission records). */
const cards = new WeakMap<SimWallet, SimulatedWallet>();
function cardOf(w: SimWallet, hubKey: string): SimulatedWallet {
  let card = cards.get(w);
  if (!card) {
    card = new SimulatedWallet({ keys: { secretKey: w.secretKey, publicKey: publicKeyOf(w.secretKey) }, license: w.license, trustedHubKeys: [hubKey] });
    cards.set(w, card);
  }
  return card;
}

export async function startRuntimeTerminal(o: RuntimeTerminalOptions): Promise<SiteTerminal> {
  const sim: SimulatedTerminal = await startSimulatedTerminal({
    kind: o.kind,
    hubUrl: o.hubUrl,
    terminalId: o.terminalId,
    merchantId: o.merchantId,
    dataDir: o.dataDir,
    credentials: { keys: { secretKey: o.secretKey, publicKey: fromHex(o.certificate.body.publicKey) }, certificate: o.certificate, hubKey: o.hubKey, issuerKeys: [o.issuerKey] },
    ...(o.kind === 'gate' ? { gate: { station: o.station ?? 'unknown', mode: o.gateMode ?? 'entry' } } : {}),
    config: {
      hub: { timeoutMs: 5000, retryMs: 1000, reconnectPeriodMs: 500 },
      ...(o.kind === 'pos' ? { pos: { operators: [{ id: DEMO_OPERATOR.id, pinSha256: toHex(sha256(utf8(DEMO_OPERATOR.pin))) }] } } : {}),
    },
    ...(o.log ? { log: o.log } : {}),
  });
  const rt = sim.runtime;

  // One customer at a time at a terminal: there is one reader.
  let lock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lock.then(fn, fn);
    lock = run.catch(() => undefined);
    return run;
  };

  /** Runs one customer interaction: `begin` (keypad/cashier), tap, wait for the outcome, take the card away. */
  const transact = (wallet: SimWallet, begin: () => Promise<void>): Promise<SiteOutcome & { prints: string[][]; opened: boolean }> =>
    exclusive(async () => {
      const commands: Command[] = [];
      const displays: string[] = [];
      const prints: string[][] = [];
      const settled = new Map<string, string>();
      const onC = (c: Command) => commands.push(c);
      const onD = (text: string) => displays.push(text);
      const onP = (lines: string[]) => prints.push(lines);
      const onS = (requestId: string, status: string) => settled.set(requestId, status);
      rt.on('command', onC);
      rt.on('display', onD);
      rt.on('print', onP);
      rt.on('settled', onS);
      try {
        await begin();
        sim.tap(cardOf(wallet, o.hubKey));
        const deadline = Date.now() + TRANSACTION_TIMEOUT_MS;
        // A gate is done when its barrier opened or stayed shut and it is idle again (the person passed).
        const decided = () =>
          o.kind === 'gate'
            ? commands.some((c) => c.c === 'gate.open' || c.c === 'gate.deny') && rt.machineState.s === 'idle'
            : commands.some((c) => c.c === 'nfc.release' || c.c === 'hub.abandon' || c.c === 'receipt') && !BUSY_STATES.has(rt.machineState.s);
        while (Date.now() < deadline && !decided()) await sleep(20);
        const request = commands.find((c): c is Extract<Command, { c: 'hub.request' }> => c.c === 'hub.request');
        // A gate opens on its local decision; wait briefly for the hub's settlement behind it.
        if (request) while (Date.now() < deadline && !settled.has(request.requestId) && !commands.some((c) => c.c === 'hub.abandon')) await sleep(20);
        const status = request ? settled.get(request.requestId) : undefined;
        const declinedText = displays.find((d) => /declined|refused|not enough|insufficient|denied/i.test(d));
        const code = declinedText?.match(/[A-Z][A-Z_]{3,}/)?.[0];
        const opened = commands.some((c) => c.c === 'gate.open');
        const approved = status === 'approved' || (o.kind === 'gate' && opened && status === undefined && !request);
        return {
          requestId: request?.requestId ?? '',
          status: approved ? 'approved' : 'declined',
          ...(approved ? {} : { code: code ?? (status === undefined ? 'TIMEOUT' : 'DECLINED') }),
          amountMinor: request?.amountMinor ?? 0,
          prints,
          opened,
        };
      } finally {
        sim.remove();
        rt.off('command', onC);
        rt.off('display', onD);
        rt.off('print', onP);
        rt.off('settled', onS);
        if (o.kind === 'pos') await rt.clear();
        if (o.kind === 'vending' && rt.machineState.s !== 'idle') await rt.cancelSelection();
        await sleep(60); // the reader must see the card leave before the next tap
      }
    });

  const requireKind = (kinds: TerminalKind[], what: string) => {
    if (!kinds.includes(o.kind)) throw new Error(`${o.terminalId} is a ${o.kind}: cannot ${what}`);
  };

  return {
    terminalId: o.terminalId,
    kind: o.kind,
    merchantId: o.merchantId,
    ...(o.station !== undefined ? { station: o.station } : {}),
    ...(o.kind === 'gate' ? { gateMode: o.gateMode ?? 'entry' } : {}),
    async purchase(wallet, lines: LineItemT[], options = {}) {
      requireKind(['pos', 'vending'], 'sell');
      const slot = rt.articles.find((a) => a.sku === lines[0]?.sku)?.slot;
      if (options.dispenseFails && slot !== undefined) sim.setSlot(slot, { kind: 'jammed' });
      try {
        const r = await transact(wallet, async () => {
          if (o.kind === 'vending') await rt.select(lines[0]!.sku);
          else {
            for (const l of lines) await rt.addItem(l.sku, l.qty);
            await rt.checkout();
          }
        });
        // seed 004 claim 13: the receipt says how long the purchase can be cancelled.
        if (r.status === 'approved' && r.prints.some((p) => p.join('\n').includes('cancellable until'))) wallet.cancellable.set(r.requestId, Date.now() + 80_000);
        return r;
      } finally {
        if (options.dispenseFails && slot !== undefined) {
          sim.setSlot(slot, { kind: 'drops', afterMs: 40 });
          // The failed vend took the slot out of order: the operator clears the jam and resets it.
          if (o.kind === 'vending') {
            await rt.settle(); // the failure counted first
            rt.resetSlot(slot);
          }
        }
      }
    },
    async topupCash(wallet, amountMinor) {
      requireKind(['pos'], 'take cash');
      return transact(wallet, () => rt.topUp(amountMinor, DEMO_OPERATOR.id, DEMO_OPERATOR.pin));
    },
    async sellTicket(wallet, product) {
      requireKind(['pos'], 'sell tickets');
      return transact(wallet, () => rt.sellTicket(product));
    },
    async cancel(wallet, originalRequestId) {
      requireKind(['pos'], 'cancel');
      wallet.cancellable.delete(originalRequestId);
      return exclusive(async () => {
        const cancellation = signMessage('cancellation', { originalRequestId, wallet: wallet.publicKey, time: Date.now(), challenge: newChallenge() }, wallet.secretKey);
        const settled = new Map<string, string>();
        const onS = (id: string, status: string) => settled.set(id, status);
        rt.on('settled', onS);
        try {
          const requestId = await rt.cancelPurchase(cancellation);
          const deadline = Date.now() + 8000;
          while (!settled.has(requestId) && Date.now() < deadline) await sleep(20);
          const status = settled.get(requestId);
          return {
            requestId,
            status: status === 'approved' ? ('approved' as const) : ('declined' as const),
            ...(status === 'approved' ? {} : { code: status === undefined ? 'TIMEOUT' : 'DECLINED' }),
            amountMinor: 0,
          };
        } finally {
          rt.off('settled', onS);
          await rt.clear();
        }
      });
    },
    async enter(wallet) {
      requireKind(['gate'], 'admit');
      const r = await transact(wallet, async () => {});
      if (r.opened) wallet.admission = { station: o.station ?? 'unknown' };
      return r;
    },
    async exit(wallet) {
      requireKind(['gate'], 'let out');
      const r = await transact(wallet, async () => {});
      // Through the barrier: the gate took the admission record off the wallet.
      if (r.opened) wallet.admission = null;
      return r;
    },
    close: () => sim.close({ keepData: true }),
  };
}
