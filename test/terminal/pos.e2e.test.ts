// POS end to end: the cashier's items, the wallet's signature over them, the hub's verified
// result, receipt + statement, cancellation inside the window, offline and a slow hub.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, generateKeyPair, newChallenge, newRequestId, signMessage, TICKET_NEVER_COLLECTED, toHex } from '../../protocol/index.ts';
import { RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import { COLLECT_TICKET_TEXT } from '../../terminal/machines/pos.ts';
import { HUB_BUSY_TEXT, NOT_CHARGED_TEXT, TOPUP_PENDING_TEXT, type Command } from '../../terminal/machines/types.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { attachKeypad, runKeypadLine } from '../../terminal/keypad.ts';
import { startTerminal } from '../../terminal/start-terminal.ts';
import { POWER_LOST_BEFORE_SHOWN } from '../../terminal/runtime.ts';
import { PIN_MAX_FAILURES } from '../../terminal/policy/pin-attempts.ts';
import { badSignatureCard, eventually, OPERATORS, Site, tapAfresh } from './harness.ts';

type Log = { commands: Command[]; displays: string[]; prints: string[][]; stop(): void };
/** What a sale needs of a terminal (a simulated one, or a runtime started here on its reader). */
type Till = Pick<SimulatedTerminal, 'runtime' | 'tap' | 'remove'>;
function record(t: Till): Log {
  const log: Log = { commands: [], displays: [], prints: [], stop: () => undefined };
  const onC = (c: Command) => log.commands.push(c);
  const onD = (text: string) => log.displays.push(text);
  const onP = (lines: string[]) => log.prints.push(lines);
  t.runtime.on('command', onC);
  t.runtime.on('display', onD);
  t.runtime.on('print', onP);
  log.stop = () => (t.runtime.off('command', onC), t.runtime.off('display', onD), t.runtime.off('print', onP));
  return log;
}
/** The POS while an earlier charge or top-up of the wallet is unanswered (terminal/machines/pos.ts). */
const PENDING_TEXT = 'previous payment still pending — please wait';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ring up bread ×2 and cola, take payment from `card`, wait until the POS is idle again. */
async function sale(pos: Till, card: Parameters<SimulatedTerminal['tap']>[0], items: Array<[string, number]> = [['bread', 2], ['cola', 1]]): Promise<Log> {
  const log = record(pos);
  for (const [sku, qty] of items) await pos.runtime.addItem(sku, qty);
  await pos.runtime.checkout();
  pos.tap(card);
  await eventually(() => log.commands.some((c) => c.c === 'nfc.release' || c.c === 'hub.abandon') && pos.runtime.machineState.s !== 'authorizing' && pos.runtime.machineState.s !== 'settling', 10_000, 'sale done');
  pos.remove();
  await pos.runtime.clear();
  log.stop();
  await sleep(60);
  return log;
}

describe('POS end to end', () => {
  let site: Site;
  let pos: SimulatedTerminal;

  beforeAll(async () => {
    site = await Site.start();
    pos = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { pos: { operators: OPERATORS } } });
  });
  afterAll(async () => {
    await site?.close();
  });

  const statements = (w: SimulatedWallet) => w.applet.records.list(RecordKind.BalanceStatement);

  it('success: the wallet signs the lines, the verified result prints the receipt and leaves the statement on the wallet', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = await sale(pos, wallet);
    expect(log.prints).toHaveLength(1);
    // The slip's amounts as the display shows them (decimal, with the currency), never minor units.
    expect(log.prints[0]!).toEqual(expect.arrayContaining(['2 x bread @ 1.20 EUR', '1 x cola @ 2.50 EUR', 'TOTAL 4.90 EUR', 'balance 5.10 EUR']));
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'delivered' });
    expect(statements(wallet)).toHaveLength(1);
    expect(await site.balance(wallet)).toBe(510);
  });

  it('insufficient funds: declined, no receipt printed', async () => {
    const wallet = await site.wallet({ balanceMinor: 100 });
    const log = await sale(pos, wallet);
    expect(log.prints).toHaveLength(0);
    expect(log.displays.some((d) => d.includes('INSUFFICIENT_FUNDS'))).toBe(true);
  });

  it('restricted customer: beer refused to a minor', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, ageOver: 16 });
    const log = await sale(pos, wallet, [['beer', 1]]);
    expect(log.prints).toHaveLength(0);
    expect(log.displays.some((d) => d.includes('RESTRICTED'))).toBe(true);
    expect(await site.balance(wallet)).toBe(1000);
  });

  it('bad wallet signature: refused at the terminal', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = await sale(pos, badSignatureCard(wallet));
    expect(log.commands.map((c) => c.c)).not.toContain('hub.request');
    expect(log.displays.some((d) => d.includes('BAD_SIGNATURE'))).toBe(true);
  });

  it('card pulled mid-tap: nothing sent, nothing charged', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const pull = (c: Command) => {
      if (c.c === 'nfc.authorize') pos.pullOnNextExchange();
    };
    pos.runtime.on('command', pull);
    const log = record(pos);
    await pos.runtime.addItem('cola', 1);
    await pos.runtime.checkout();
    pos.tap(wallet);
    await eventually(() => log.displays.find((d) => d.includes('tap again')), 8000, 'card lost');
    pos.runtime.off('command', pull);
    pos.remove();
    await pos.runtime.clear();
    log.stop();
    await sleep(60);
    expect(log.commands.map((c) => c.c)).not.toContain('hub.request');
    expect(await site.balance(wallet)).toBe(1000);
  });

  it('cancellation inside the window: the wallet-signed cancellation is relayed and refunded', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = await sale(pos, wallet, [['bread', 1]]);
    const purchase = log.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    expect(log.prints[0]!.join('\n')).toContain('cancellable until');
    expect(await site.balance(wallet)).toBe(880);
    const cancellation = signMessage('cancellation', { originalRequestId: purchase.requestId, wallet: wallet.publicKeyHex, time: Date.now(), challenge: newChallenge() }, wallet.keys.secretKey);
    const c = record(pos);
    await pos.runtime.cancelPurchase(cancellation);
    await eventually(() => c.prints.length > 0 || c.displays.some((d) => d.startsWith('declined')), 8000, 'cancel result');
    c.stop();
    expect(c.prints[0]!.join('\n')).toContain('REFUND 1.20 EUR');
    expect(await site.balance(wallet)).toBe(1000);
  });

  it(`staff PIN: after ${PIN_MAX_FAILURES} wrong PINs in a row the operator is locked, the right PIN too, also across a restart`, async () => {
    const till = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { pos: { operators: OPERATORS } } });
    const log = record(till);
    for (let i = 0; i < PIN_MAX_FAILURES; i++) await till.runtime.topUp(700, 'alice', '0000');
    expect(log.displays.filter((d) => d === 'staff PIN refused')).toHaveLength(PIN_MAX_FAILURES);
    await till.runtime.topUp(700, 'alice', '4711');
    expect(log.displays.at(-1)).toMatch(/^staff PIN locked — try again in 5 min$/);
    expect(till.runtime.machineState.s).toBe('idle');
    log.stop();
    await till.close({ keepData: true });
    const again = await startTerminal(till.config, { log: pino({ level: 'silent' }) });
    try {
      const shown: string[] = [];
      again.runtime.on('display', (t) => shown.push(t));
      await again.runtime.topUp(700, 'alice', '4711');
      expect(shown).toEqual(['staff PIN locked — try again in 5 min']);
    } finally {
      await again.close();
      rmSync(till.dataDir, { recursive: true, force: true });
    }
  });

  it('staff top-up: wrong PIN refused; right PIN credits the wallet', async () => {
    const wallet = await site.wallet({ balanceMinor: 0 });
    const log = record(pos);
    await pos.runtime.topUp(700, 'alice', '0000');
    expect(log.displays).toContain('staff PIN refused');
    await pos.runtime.topUp(700, 'alice', '4711');
    pos.tap(wallet);
    await eventually(() => log.prints.length > 0, 8000, 'top-up receipt');
    await eventually(() => pos.runtime.machineState.s === 'idle');
    pos.remove();
    log.stop();
    await sleep(60);
    expect(await site.balance(wallet)).toBe(700);
  });

  it('hub down: offline sale within the license limit, forwarded and settled when the hub is back', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 500 });
    const url = await site.stopServer();
    let log: Log;
    try {
      await eventually(() => !pos.runtime.isOnline, 5000, 'offline');
      log = await sale(pos, wallet);
      expect(log.prints[0]!.join('\n')).toContain('OFFLINE');
      expect(pos.started.store.openCount()).toBe(1);
      // Beyond the limit (490 of 500 used): refused.
      const second = await sale(pos, wallet, [['bread', 1]]);
      expect(second.prints).toHaveLength(0);
      expect(second.displays.some((d) => d.includes('OFFLINE_LIMIT'))).toBe(true);
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => pos.started.store.openCount() === 0, 15_000, 'outbox forwarded');
    expect(await site.balance(wallet)).toBe(510);
  });

  it('hub answers after the POS timed out: the retry reuses the request id, and the late approval is reversed (nothing was handed over)', async () => {
    const slow = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { timeoutMs: 500, retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    site.faults.delayMs = 1000;
    let log: Log;
    try {
      log = record(slow);
      await slow.runtime.addItem('cola', 1);
      await slow.runtime.checkout();
      slow.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.abandon'), 8000, 'abandon');
      slow.remove();
      await eventually(() => log.prints.length > 0, 8000, 'late receipt');
    } finally {
      site.faults.delayMs = 0;
    }
    log.stop();
    const requestId = (log.commands.find((c) => c.c === 'hub.request') as { requestId: string }).requestId;
    expect(log.prints[0]!.slice(0, 3)).toEqual(['LATE APPROVAL REVERSED', `ref ${requestId}`, 'REFUND 2.50 EUR']);
    expect(log.commands.filter((c) => c.c === 'hub.request')).toHaveLength(1);
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'failed' });
    // The failure receipt refunds the charge once; retries with the same id charge nothing again.
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'late approval refunded');
    await sleep(500);
    expect(await site.balance(wallet)).toBe(1000);
  });

  it('ticket sale whose wallet left before the ticket was stored: no success shown, the ticket is kept and the next tap collects it', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const tickets = () => wallet.applet.records.list(RecordKind.Ticket);
    const log = record(pos);
    site.faults.delayMs = 400; // an ordinary slow answer, well inside the deadline
    try {
      await pos.runtime.sellTicket('day');
      pos.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.request'), 8000, 'request');
      pos.remove(); // the customer lifts the wallet after it beeped
      await eventually(() => log.displays.includes(COLLECT_TICKET_TEXT), 8000, 'collect message');
    } finally {
      site.faults.delayMs = 0;
    }
    expect(log.displays).not.toContain('ticket stored on your wallet');
    expect(tickets()).toHaveLength(0);
    expect(pos.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(1);
    expect(await site.balance(wallet)).toBe(500);
    await eventually(() => pos.runtime.machineState.s === 'idle', 5000, 'idle');
    // A copy of its license (any reader can read one) on another device: it cannot sign with the
    // license's key, and collects nothing.
    const copy = new SimulatedWallet({ keys: generateKeyPair(), license: wallet.license, trustedHubKeys: [site.hub.trustAnchorKey] });
    const shown = log.displays.length;
    pos.tap(copy);
    await eventually(() => log.displays.slice(shown).some((d) => d.startsWith('wallet ')), 8000, 'copy refused');
    pos.remove();
    await eventually(() => pos.runtime.machineState.s === 'idle', 5000, 'idle');
    expect(copy.applet.records.list(RecordKind.Ticket)).toHaveLength(0);
    expect(pos.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(1);
    // The customer taps again: the ticket is written, and no longer held.
    pos.tap(wallet);
    await eventually(() => log.displays.at(-1) === 'ticket stored on your wallet', 8000, 'ticket collected');
    pos.remove();
    log.stop();
    expect(tickets()).toHaveLength(1);
    expect(pos.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(0);
    expect(log.commands.filter((c) => c.c === 'hub.request')).toHaveLength(1);
    expect(await site.balance(wallet)).toBe(500);
  });

  it('a ticket sale approved after the POS gave up: the late receipt says to collect it, and the next tap does', async () => {
    const slow = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { timeoutMs: 500, retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(slow);
    site.faults.delayMs = 1000;
    try {
      await slow.runtime.sellTicket('day');
      slow.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.abandon'), 8000, 'abandon');
      slow.remove();
      await eventually(() => log.prints.length > 0, 8000, 'late receipt');
    } finally {
      site.faults.delayMs = 0;
    }
    expect(log.prints[0]).toContain('tap your wallet at this POS to collect it');
    expect(slow.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(1);
    await eventually(() => slow.runtime.machineState.s === 'idle', 5000, 'idle');
    slow.tap(wallet);
    await eventually(() => wallet.applet.records.list(RecordKind.Ticket).length === 1, 8000, 'ticket collected');
    // The card stays until the POS has the wallet's answer to the write (taken away at once, the
    // answer can be lost with the record written: the ticket then stays held for the next tap).
    await eventually(() => slow.started.store.heldTickets(wallet.publicKeyHex).length === 0, 5000, 'no longer held');
    slow.remove();
    log.stop();
    expect(await site.balance(wallet)).toBe(500);
  });

  it('after a timeout the same wallet cannot pay again until the hub has answered: the late approval is reversed, then it pays as usual', async () => {
    const slow = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { timeoutMs: 500, retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    site.faults.delayMs = 3000;
    const first = record(slow);
    let again: Log;
    try {
      await slow.runtime.addItem('cola', 1);
      await slow.runtime.checkout();
      slow.tap(wallet);
      await eventually(() => first.commands.find((c) => c.c === 'hub.abandon'), 8000, 'abandon');
      expect(first.displays).toContain(NOT_CHARGED_TEXT);
      slow.remove();
      await sleep(60); // the reader sees the field empty before the next tap
      // The cashier rings the cola up again and the customer taps again, while the hub still works on the first.
      again = await sale(slow, wallet, [['cola', 1]]);
    } finally {
      site.faults.delayMs = 0;
    }
    expect(again.displays).toContain(PENDING_TEXT);
    expect(again.commands.map((c) => c.c)).not.toContain('nfc.authorize');
    await eventually(() => first.prints.find((p) => p[0] === 'LATE APPROVAL REVERSED'), 8000, 'reversal slip');
    first.stop();
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'late approval refunded');
    await sleep(500); // retries of the first still arrive with its id: they must not charge again
    expect(await site.balance(wallet)).toBe(1000);
    // Answered: the next purchase goes through.
    const next = await sale(slow, wallet, [['cola', 1]]);
    expect(next.prints[0]!.join('\n')).toContain('TOTAL 2.50 EUR');
    expect(await site.balance(wallet)).toBe(750);
  });

  it('a busy hub ("retry later") on a ticket sale is never shown as declined: the POS waits, and the retry\'s approval hands the ticket over (charged once)', async () => {
    const busy = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(busy);
    site.faults.unavailableTerminal = busy.terminalId;
    site.faults.unavailable = 1;
    try {
      await busy.runtime.sellTicket('day');
      busy.tap(wallet);
      await eventually(() => log.displays.includes('ticket stored on your wallet'), 8000, 'ticket stored');
      await eventually(() => busy.runtime.machineState.s === 'idle', 5000, 'idle');
      busy.remove();
    } finally {
      site.faults.unavailable = 0;
      site.faults.unavailableTerminal = '';
    }
    await sleep(1000); // the request's retries (same id) must charge nothing more
    log.stop();
    expect(log.displays).toContain(HUB_BUSY_TEXT);
    expect(log.displays.filter((d) => d.includes('declined'))).toEqual([]);
    expect(log.prints.filter((p) => p[0]!.startsWith('LATE'))).toEqual([]);
    expect(wallet.applet.records.list(RecordKind.Ticket)).toHaveLength(1);
    expect(busy.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(0);
    expect(await site.balance(wallet)).toBe(500);
  });

  it('busy hub ("retry later") on a cash top-up: never "declined"; past the deadline the cashier keeps the cash, a second top-up of the wallet is refused, the late slip says it was made', async () => {
    const busy = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { timeoutMs: 800, retryMs: 150 }, pos: { operators: OPERATORS } } });
    const wallet = await site.wallet({ balanceMinor: 0 });
    const log = record(busy);
    site.faults.unavailableTerminal = busy.terminalId;
    site.faults.unavailable = 1_000_000;
    try {
      await busy.runtime.topUp(700, 'alice', '4711');
      busy.tap(wallet);
      await eventually(() => log.displays.includes(HUB_BUSY_TEXT), 8000, 'busy shown');
      await eventually(() => log.displays.includes(TOPUP_PENDING_TEXT), 8000, 'given up at the deadline');
      await eventually(() => busy.runtime.machineState.s === 'idle');
      busy.remove();
      await sleep(60);
      // Another try for the same wallet while the first is re-sent: refused (it may yet be made).
      // A new tap once the reader has seen the card leave (a loaded machine polls late).
      await busy.runtime.topUp(700, 'alice', '4711');
      await tapAfresh(busy, wallet);
      await eventually(() => log.displays.includes(PENDING_TEXT), 8000, 'refused while pending');
      busy.remove();
      await busy.runtime.clear();
      expect(log.commands.filter((c) => c.c === 'hub.request')).toHaveLength(1);
    } finally {
      site.faults.unavailable = 0;
      site.faults.unavailableTerminal = '';
    }
    await eventually(() => log.prints.find((p) => p[0] === 'LATE APPROVAL'), 8000, 'late top-up receipt');
    log.stop();
    expect(log.displays.filter((d) => d.includes('declined'))).toEqual([]);
    expect(log.prints.find((p) => p[0] === 'LATE APPROVAL')).toContain('TOP-UP 7.00 EUR');
    await sleep(300);
    expect(await site.balance(wallet)).toBe(700);
  });

  it('a cash top-up given up on and then refused by the hub prints a slip: not made, give the cash back', async () => {
    const busy = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { hub: { timeoutMs: 800, retryMs: 150 }, pos: { operators: OPERATORS } } });
    const wallet = await site.wallet({ balanceMinor: 0 });
    const log = record(busy);
    site.faults.unavailableTerminal = busy.terminalId;
    site.faults.unavailable = 1_000_000;
    try {
      await busy.runtime.topUp(700, 'alice', '4711');
      busy.tap(wallet);
      await eventually(() => log.displays.includes(TOPUP_PENDING_TEXT), 8000, 'given up at the deadline');
      busy.remove();
      site.hub.revokeWallet(wallet.publicKeyHex);
    } finally {
      site.faults.unavailable = 0;
      site.faults.unavailableTerminal = '';
    }
    const slip = await eventually(() => log.prints.find((p) => p[0] === 'LATE DECLINE'), 8000, 'late decline slip');
    log.stop();
    expect(slip).toContain('TOP-UP 7.00 EUR NOT MADE (REVOKED)');
    expect(await site.balance(wallet)).toBe(0);
  });

  it('offline budget: a forward clock step (NTP correcting a Pi without RTC) does not free the per-period budget', async () => {
    // Started once online (enrolled, catalog announced and kept), then again offline on a clock we step.
    const first = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { limits: { terminalPeriodMinor: 1000 } } });
    await first.close({ keepData: true });
    let nowMs = Date.now();
    const clock = () => nowMs;
    const wallet = async () => {
      const reg = await site.hub.registerWallet({ ageOver: 30, offlineLimitMinor: 1000 });
      return new SimulatedWallet({ keys: reg.keyPair!, license: reg.license, trustedHubKeys: [site.hub.trustAnchorKey], now: clock });
    };
    const wallets = [await wallet(), await wallet(), await wallet(), await wallet()];
    const url = await site.stopServer();
    const started = await startTerminal(first.config, { log: pino({ level: 'silent' }), clock });
    const emulator = started.hardware.sim.emulator!.emulator;
    const till: Till = { runtime: started.runtime, tap: (card) => emulator.present(card), remove: () => emulator.remove() };
    try {
      expect(started.runtime.isOnline).toBe(false);
      const offline = async (w: SimulatedWallet) => (await sale(till, w)).prints.some((p) => p.join('\n').includes('OFFLINE'));
      // 490 each against a budget of 1000 per day.
      expect([await offline(wallets[0]!), await offline(wallets[1]!), await offline(wallets[2]!)]).toEqual([true, true, false]);
      nowMs += 2 * 24 * 3600_000; // the clock is stepped two days forward: only seconds have passed
      const log = record(till);
      expect(await offline(wallets[3]!)).toBe(false);
      log.stop();
      expect(log.displays).toContain('offline: OFFLINE_LIMIT');
      expect(started.store.openCount()).toBe(2);
    } finally {
      await started.close();
      rmSync(first.dataDir, { recursive: true, force: true });
      await site.restartServer(url);
    }
  });

  it('a restart prunes what no limit reads any more: settled sales past both windows, expired held tickets, old incidents', async () => {
    const DAY = 24 * 3600_000;
    // A statement is trusted for a day, the period budget is a minute: the longer one decides.
    const first = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { limits: { periodMs: 60_000, maxStatementAgeMs: DAY } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = await sale(first, wallet);
    const requestId = log.commands.find((c) => c.c === 'hub.request')!.requestId;
    const store = first.started.store;
    await eventually(() => store.getReceipt(requestId)?.acknowledged, 8000, 'receipt acknowledged');
    // Staged as a terminal's history: two held tickets (one expired), an incident of last week.
    const issuer = generateKeyPair();
    const ticket = (validUntil: number) =>
      signMessage('ticket', { ticketId: newRequestId(), wallet: wallet.publicKeyHex, product: 'day', stations: [], validFrom: 0, validUntil, issuedAt: 0, hubKey: toHex(issuer.publicKey) }, issuer.secretKey);
    const expired = ticket(Date.now() - DAY);
    const valid = ticket(Date.now() + 30 * DAY);
    for (const t of [expired, valid]) store.holdTicket(t.body.ticketId, wallet.publicKeyHex, JSON.stringify(t), Date.now());
    store.setKv(`incident.${newRequestId()}`, JSON.stringify({ timeMs: Date.now() - 7 * DAY }));
    const incidents = (db: Database.Database) => (db.prepare("SELECT count(*) AS n FROM kv WHERE key LIKE 'incident.%'").get() as { n: number }).n;
    expect(incidents(store.db)).toBe(1);
    await first.close({ keepData: true });
    /** Restarted three days later by the wall clock, after `ranMs` more of running time (the counter the store keeps). */
    const restart = async (ranMs: number) => {
      const db = new Database(join(first.config.dataDir, 'terminal.sqlite'));
      db.prepare("UPDATE kv SET value = CAST(value AS INTEGER) + ? WHERE key = 'uptime.ms'").run(ranMs);
      db.close();
      return await startTerminal(first.config, { log: pino({ level: 'silent' }), clock: () => Date.now() + 3 * DAY });
    };
    // Only a day and a half of running time (a wall clock that ran ahead, say): the sale stays,
    // for a statement's exits look back a day (plus a day's margin) whatever the wall clock says.
    const early = await restart(1.5 * DAY);
    expect(early.store.get(requestId)?.state).toBe('done');
    await early.close();
    const started = await restart(1.5 * DAY);
    try {
      expect(started.store.get(requestId)).toBeUndefined();
      expect(started.store.getReceipt(requestId)).toBeUndefined();
      expect(started.store.heldTickets(wallet.publicKeyHex)).toEqual([JSON.stringify(valid)]);
      expect(incidents(started.store.db)).toBe(0);
    } finally {
      await started.close();
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });

  it('a sold ticket never collected: when it expires in the POS store, its sale gets a failure receipt, sent to the hub, which refunds it', async () => {
    const DAY = 24 * 3600_000;
    const till = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos' });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(till);
    site.faults.delayMs = 400;
    try {
      await till.runtime.sellTicket('day');
      till.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.request'), 8000, 'request');
      till.remove(); // gone before the ticket could be written, and never back
      await eventually(() => log.displays.includes(COLLECT_TICKET_TEXT), 8000, 'collect message');
    } finally {
      site.faults.delayMs = 0;
    }
    log.stop();
    const saleId = log.commands.find((c) => c.c === 'hub.request')!.requestId;
    expect(till.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(1);
    await till.close({ keepData: true });
    // Two days later the day ticket has expired, uncollected: the customer paid for nothing.
    const later = await startTerminal(till.config, { log: pino({ level: 'silent' }), clock: () => Date.now() + 2 * DAY });
    try {
      expect(later.store.heldTickets(wallet.publicKeyHex)).toHaveLength(0);
      const receipt = decodeMessage(later.store.getReceipt(saleId)?.envelope ?? '', 'completion.receipt');
      expect(receipt.ok && receipt.value.body).toMatchObject({ requestId: saleId, outcome: 'failed', reason: TICKET_NEVER_COLLECTED });
    } finally {
      await later.close();
    }
    // Re-sent until the hub acknowledges it (here after a restart on the right clock).
    const again = await startTerminal(till.config, { log: pino({ level: 'silent' }) });
    try {
      await eventually(() => again.store.getReceipt(saleId)?.acknowledged, 8000, 'receipt acknowledged');
    } finally {
      await again.close();
      rmSync(till.dataDir, { recursive: true, force: true });
    }
    // The hub refunded the sale (and voided its ticket: test/hub/settlement-service.test.ts).
    expect(await site.balance(wallet)).toBe(1000);
  });

  /**
   * A power cut at POS `name` right after the hub's approval of what `ring` starts was stored, before
   * the POS acted on it (printed, showed, held a ticket); then switched on again (same data dir).
   */
  async function powerCutAfterApproval(name: string, ring: (t: SimulatedTerminal) => Promise<void>, wallet: SimulatedWallet): Promise<{ requestId: string; log: Log; second: SimulatedTerminal; dataDir: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), `tapsettle-${name}-`));
    const first = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', terminalId: name, dataDir });
    const log = record(first);
    const store = first.started.store;
    const complete = store.complete.bind(store);
    store.complete = (...args) => {
      const first_ = complete(...args);
      first.runtime.simulatePowerCut(); // the result is on disk; nothing more runs
      return first_;
    };
    await ring(first);
    first.tap(wallet);
    const requestId = (await eventually(() => log.commands.find((c) => c.c === 'hub.request'), 8000, 'request')).requestId;
    await eventually(() => store.get(requestId)?.state === 'done', 8000, 'approval stored');
    first.remove();
    log.stop();
    await first.close({ keepData: true });
    expect(log.prints).toEqual([]);
    expect(log.displays.filter((d) => /paid|stored/.test(d))).toEqual([]);
    const second = await startSimulatedTerminal({ kind: 'pos', hubUrl: site.url, hub: site.hub, terminalId: name, merchantId: 'merchant-pos', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
    return { requestId, log, second, dataDir };
  }

  it('a power cut after the hub approved a sale, before the POS showed it: at start-up the sale is reversed (failure receipt, the hub refunds) — the cashier rings it again, charged once', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const { requestId, second, dataDir } = await powerCutAfterApproval('pos-cut-sale', async (t) => (await t.runtime.addItem('cola', 1), await t.runtime.checkout()), wallet);
    try {
      // The cashier's console attaches after the start (as main.ts --keypad does): recovery ran in
      // the constructor, and its slip still reaches the console, once.
      const input = new PassThrough();
      const output = new PassThrough();
      let consoleText = '';
      output.on('data', (chunk: Buffer) => (consoleText += chunk.toString('utf8')));
      const detach = attachKeypad(second.runtime, input, output);
      await eventually(() => consoleText.includes('| POWER LOST — SALE REVERSED'), 8000, 'reversal slip on the console');
      expect(consoleText).toContain(`| ref ${requestId}\n| REFUND 2.50 EUR`);
      expect(second.started.store.keptSlips()).toEqual([]);
      const later = record(second);
      await sleep(50);
      later.stop();
      detach();
      expect(later.prints).toEqual([]);
      const receipt = decodeMessage(second.started.store.getReceipt(requestId)?.envelope ?? '', 'completion.receipt');
      expect(receipt.ok && receipt.value.body).toMatchObject({ requestId, outcome: 'failed', reason: POWER_LOST_BEFORE_SHOWN });
      await eventually(() => second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'receipt acknowledged');
      expect(await site.balance(wallet)).toBe(1000);
      expect(second.started.store.openVends()).toEqual([]);
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a power cut while the hub statement is written to the wallet, after the slip printed: the sale stands (delivered), start-up recovery does not reverse it', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const name = 'pos-cut-statement';
    const dataDir = mkdtempSync(join(tmpdir(), `tapsettle-${name}-`));
    const first = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', terminalId: name, dataDir });
    const log = record(first);
    // The cut comes as the wallet write starts (several NFC exchanges, seconds if the card leaves).
    const cut = (c: Command) => {
      if (c.c === 'nfc.store' && c.kind === 'BalanceStatement') first.runtime.simulatePowerCut();
    };
    first.runtime.on('command', cut);
    await first.runtime.addItem('cola', 1);
    await first.runtime.checkout();
    first.tap(wallet);
    await eventually(() => log.commands.some((c) => c.c === 'nfc.store'), 8000, 'statement write begun');
    const { requestId } = log.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    first.runtime.off('command', cut);
    first.remove();
    log.stop();
    await first.close({ keepData: true });
    expect(log.prints).toHaveLength(1); // the customer has the slip (and the goods)
    const second = await startSimulatedTerminal({ kind: 'pos', hubUrl: site.url, hub: site.hub, terminalId: name, merchantId: 'merchant-pos', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
    try {
      const receipt = decodeMessage(second.started.store.getReceipt(requestId)?.envelope ?? '', 'completion.receipt');
      expect(receipt.ok && receipt.value.body).toMatchObject({ requestId, outcome: 'delivered' });
      expect(second.started.store.openVends()).toEqual([]);
      await eventually(() => second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'receipt acknowledged');
      expect(await site.balance(wallet)).toBe(750);
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a power cut after the hub approved a ticket sale, before the POS kept the ticket: at start-up the ticket is held for the wallet to collect', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const { second, dataDir } = await powerCutAfterApproval('pos-cut-ticket', (t) => t.runtime.sellTicket('day'), wallet);
    try {
      expect(second.started.store.heldTickets(wallet.publicKeyHex)).toHaveLength(1);
      expect(second.started.store.openVends()).toEqual([]);
      await eventually(() => second.runtime.isOnline, 8000, 'online');
      second.tap(wallet);
      await eventually(() => wallet.applet.records.list(RecordKind.Ticket).length === 1, 8000, 'ticket collected');
      second.remove();
      expect(await site.balance(wallet)).toBe(500);
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('the console keypad drives a sale', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    await eventually(() => pos.runtime.isOnline, 15_000, 'online');
    await pos.runtime.clear();
    const log = record(pos);
    expect(await runKeypadLine(pos.runtime, 'add bread 3')).toBe('1 items, 3.60 EUR');
    expect(await runKeypadLine(pos.runtime, 'add bread x')).toBe('usage: add <sku> [qty]');
    expect(await runKeypadLine(pos.runtime, 'checkout')).toContain('pay 3.60 EUR');
    pos.tap(wallet);
    await eventually(() => log.prints.length > 0, 8000, 'receipt');
    await eventually(() => pos.runtime.machineState.s === 'idle');
    pos.remove();
    log.stop();
    await sleep(60);
    expect(await runKeypadLine(pos.runtime, 'status')).toMatch(/state=idle hub=online/);
    expect(await site.balance(wallet)).toBe(640);
  });

  it('ticket prices are the hub\'s: a new products import reaches the POS at once, and a restart without the hub keeps it', async () => {
    const product = (priceMinor: number) => ({ products: [{ name: 'day', priceMinor, currency: 'EUR', validityMs: 24 * 3600_000, stations: [] }] });
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-pos-products-'));
    const till = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', terminalId: 'pos-products', dataDir });
    let offline: SimulatedTerminal | undefined;
    try {
      await eventually(() => till.runtime.products.length === 1, 15_000, 'products announced');
      expect(await runKeypadLine(till.runtime, 'ticket')).toBe('usage: ticket <product> (products: day)');
      expect(await runKeypadLine(till.runtime, 'ticket week')).toBe('unknown ticket week');
      site.hub.importProducts(product(650));
      await eventually(() => till.runtime.products[0]?.priceMinor === 650, 8000, 'new price announced');
      const wallet = await site.wallet({ balanceMinor: 1000 });
      const log = record(till);
      expect(await runKeypadLine(till.runtime, 'ticket day')).toBe('day: 6.50 EUR — tap your wallet');
      till.tap(wallet);
      await eventually(() => log.displays.at(-1) === 'ticket stored on your wallet', 8000, 'ticket stored');
      till.remove();
      log.stop();
      expect(await site.balance(wallet)).toBe(350);
      await till.close({ keepData: true });
      // Started again with no hub to reach: the price in force is the stored announcement's.
      offline = await startSimulatedTerminal({ kind: 'pos', hubUrl: 'mqtt://127.0.0.1:1', hub: site.hub, terminalId: 'pos-products', merchantId: 'merchant-pos', dataDir });
      expect(offline.runtime.products).toEqual(product(650).products);
    } finally {
      site.hub.importProducts(product(500));
      await offline?.close();
      await till.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a slip the receipt printer could not print is kept in the store and printed at the next start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-pos-printer-'));
    const wallet = await site.wallet({ balanceMinor: 1000 });
    try {
      // /dev/full: every write fails (ENOSPC), as a printer out of paper or unplugged does.
      const jammed = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', terminalId: 'pos-paper', dataDir, config: { printer: { path: '/dev/full', kind: 'device' } } });
      const log = await sale(jammed, wallet, [['cola', 1]]);
      expect(log.prints.at(-1)).toContain('TOTAL 2.50 EUR');
      await eventually(() => jammed.started.store.keptSlips().length === 1, 8000, 'slip kept unprinted');
      expect(jammed.started.store.keptSlips()[0]?.lines).toContain('TOTAL 2.50 EUR');
      await jammed.close({ keepData: true });
      // Back with a printer that takes it (/dev/null: every write succeeds).
      const again = await startSimulatedTerminal({ kind: 'pos', hubUrl: site.url, hub: site.hub, terminalId: 'pos-paper', merchantId: 'merchant-pos', dataDir, config: { printer: { path: '/dev/null', kind: 'device' } } });
      try {
        await eventually(() => again.started.store.keptSlips().length === 0, 8000, 'kept slip printed at start');
      } finally {
        await again.close({ keepData: true });
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
