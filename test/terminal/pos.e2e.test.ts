// POS end to end: the cashier's items, the wallet's signature over them, the hub's verified
// result, receipt + statement, cancellation inside the window, offline and a slow hub.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newChallenge, signMessage } from '../../protocol/index.ts';
import { RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import type { Command } from '../../terminal/machines/types.ts';
import type { SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import type { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { runKeypadLine } from '../../terminal/keypad.ts';
import { badSignatureCard, eventually, OPERATORS, Site } from './harness.ts';

type Log = { commands: Command[]; displays: string[]; prints: string[][]; stop(): void };
function record(t: SimulatedTerminal): Log {
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ring up bread ×2 and cola, take payment from `card`, wait until the POS is idle again. */
async function sale(pos: SimulatedTerminal, card: Parameters<SimulatedTerminal['tap']>[0], items: Array<[string, number]> = [['bread', 2], ['cola', 1]]): Promise<Log> {
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
    expect(log.prints[0]!.join('\n')).toContain('TOTAL 490 EUR');
    expect(log.prints[0]!.join('\n')).toContain('balance 510 EUR');
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
    expect(c.prints[0]!.join('\n')).toContain('REFUND 120');
    expect(await site.balance(wallet)).toBe(1000);
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

  it('hub answers after the POS timed out: the retry reuses the request id, charged exactly once', async () => {
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
    expect(log.prints[0]![0]).toBe('LATE APPROVAL');
    expect(log.commands.filter((c) => c.c === 'hub.request')).toHaveLength(1);
    await sleep(500); // further retries with the same id still arrive: they must not charge again
    expect(await site.balance(wallet)).toBe(750);
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
});
