// Vending machine end to end: the real terminal runtime on the PN532 emulator (real driver on a
// pty) and the virtual johnny-five board, against a real hub (aedes + SQLite ledger).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, generateKeyPair, signMessage, toHex, type Envelope } from '../../protocol/index.ts';
import { loadOrCreateEd25519Key } from '../../hub/registry/keys.ts';
import { startSimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import { HUB_BUSY_TEXT, type Command } from '../../terminal/machines/types.ts';
import type { SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import type { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { runKeypadLine } from '../../terminal/keypad.ts';
import { badSignatureCard, eventually, Site, tapAfresh } from './harness.ts';

function record(t: SimulatedTerminal): { commands: Command[]; displays: string[] } {
  const log = { commands: [] as Command[], displays: [] as string[] };
  t.runtime.on('command', (c) => log.commands.push(c));
  t.runtime.on('display', (text) => log.displays.push(text));
  return log;
}
const idle = (t: SimulatedTerminal) => t.runtime.machineState.s === 'idle';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The completion receipt a terminal stored for a request (outcome, reason). */
function storedReceipt(t: SimulatedTerminal, requestId: string): Envelope<'completion.receipt'>['body'] | undefined {
  const r = t.started.store.getReceipt(requestId);
  const d = r ? decodeMessage(r.envelope, 'completion.receipt') : undefined;
  return d?.ok ? d.value.body : undefined;
}

/** Sells `wallet` a cola at `t` (online or off) and waits for its completion receipt; the request's id. */
async function sellCola(t: SimulatedTerminal, wallet: SimulatedWallet, log: ReturnType<typeof record>): Promise<string> {
  const receipts = () => log.commands.filter((c) => c.c === 'receipt').length;
  const before = receipts();
  await t.runtime.select('cola');
  t.tap(wallet);
  await eventually(() => receipts() > before, 15_000, 'receipt');
  t.remove();
  return (log.commands.filter((c) => c.c === 'hub.request').at(-1) as Extract<Command, { c: 'hub.request' }>).requestId;
}

describe('vending terminal end to end', () => {
  let site: Site;
  let vm: SimulatedTerminal;

  beforeAll(async () => {
    site = await Site.start();
    vm = await site.terminal({ kind: 'vending', config: { vending: { dropTimeoutMs: 800 } } });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('success: dispenses only after the verified hub approval, sends the dispensed receipt, stores the statement', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    await vm.runtime.select('cola');
    vm.tap(wallet);
    await eventually(() => log.commands.some((c) => c.c === 'receipt'), 8000, 'receipt');
    vm.remove();
    const order = log.commands.map((c) => c.c);
    expect(order.indexOf('hub.request')).toBeLessThan(order.indexOf('vend'));
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'dispensed' });
    expect(await site.balance(wallet)).toBe(750);
    expect(wallet.applet.records.list(0x03)).toHaveLength(1); // the hub statement on the wallet
    await eventually(() => idle(vm));
  });

  it('insufficient funds: declined by the hub, nothing dispensed', async () => {
    const wallet = await site.wallet({ balanceMinor: 100 });
    const log = record(vm);
    await vm.runtime.select('cola');
    vm.tap(wallet);
    await eventually(() => log.displays.find((d) => d.startsWith('declined')), 8000, 'decline');
    vm.remove();
    expect(log.displays.find((d) => d.startsWith('declined'))).toContain('INSUFFICIENT_FUNDS');
    expect(log.commands.map((c) => c.c)).not.toContain('vend');
    expect(await site.balance(wallet)).toBe(100);
  });

  it('restricted customer: the hub refuses beer to a minor', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, ageOver: 16 });
    const log = record(vm);
    await vm.runtime.select('beer');
    vm.tap(wallet);
    await eventually(() => log.displays.find((d) => d.startsWith('declined')), 8000, 'decline');
    vm.remove();
    expect(log.displays.find((d) => d.startsWith('declined'))).toContain('RESTRICTED');
    expect(log.commands.map((c) => c.c)).not.toContain('vend');
  });

  it('dispense failure: no drop → failure receipt → the hub refunds', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    vm.setSlot(1, { kind: 'jammed' });
    await vm.runtime.select('cola');
    vm.tap(wallet);
    await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
    vm.remove();
    vm.setSlot(1, { kind: 'drops', afterMs: 40 });
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'failed' });
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'refund');
    await eventually(() => idle(vm));
    expect(vm.runtime.resetSlot(1)).toBe(1); // the jam cleared: the operator puts the slot back in service
  });

  it('an article on a slot the machine does not have (the hub allows 0..255) is refused at selection: nothing charged, nothing half-done', async () => {
    const small = await site.terminal({ kind: 'vending', config: { vending: { slotCount: 2, dropTimeoutMs: 800 } } }); // slots 0, 1: beer is on 2
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(small);
    await small.runtime.select('beer');
    expect(small.runtime.lastDisplay).toBe('Beer: not available at this machine — choose another');
    expect(small.runtime.machineState.s).toBe('idle');
    small.tap(wallet);
    await sleep(300);
    small.remove();
    expect(log.commands.map((c) => c.c)).not.toContain('nfc.authorize');
    expect(log.commands.map((c) => c.c)).not.toContain('hub.request');
    expect(small.started.store.openVends()).toEqual([]);
    expect(await site.balance(wallet)).toBe(1000);
    // Its own slots sell (once the reader has seen the card leave: a new tap, a new session).
    await sleep(300);
    await sellCola(small, wallet, log);
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'dispensed' });
  });

  it('a jammed slot is out of order after its failed vend: the next customer is refused before any charge, across a restart, until the operator resets it', async () => {
    const name = 'vm-slot-out';
    const dataDir = mkdtempSync(join(tmpdir(), `tapsettle-${name}-`));
    const first = await site.terminal({ kind: 'vending', terminalId: name, dataDir, config: { vending: { dropTimeoutMs: 800 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(first);
    first.setSlot(1, { kind: 'jammed' });
    await sellCola(first, wallet, log);
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'failed' });
    expect(log.commands.find((c) => c.c === 'slot.failed')).toMatchObject({ slot: 1, reason: 'no-drop' });
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'refund');
    await eventually(() => idle(first));
    // The next customer: refused at the choice, nothing asked of the wallet, nothing charged.
    await first.runtime.select('cola');
    expect(first.runtime.lastDisplay).toBe('Cola: out of order — choose another');
    expect(first.runtime.machineState.s).toBe('idle');
    expect(await runKeypadLine(first.runtime, 'status')).toMatch(/out-of-order=1$/);
    await first.runtime.select('beer'); // slot 2 sells on
    expect(first.runtime.machineState.s).toBe('selected');
    await first.runtime.cancelSelection();
    expect(log.commands.filter((c) => c.c === 'hub.request')).toHaveLength(1);
    await first.close({ keepData: true });
    const second = await startSimulatedTerminal({ kind: 'vending', hubUrl: site.url, hub: site.hub, terminalId: name, merchantId: 'merchant-vending', dataDir, config: { vending: { dropTimeoutMs: 800 } } });
    try {
      await eventually(() => second.runtime.isOnline && second.runtime.articles.length > 0, 8000, 'restarted machine online');
      await second.runtime.select('cola');
      expect(second.runtime.lastDisplay).toBe('Cola: out of order — choose another');
      // The operator cleared the jam and puts the slot back in service from the keypad.
      expect(await runKeypadLine(second.runtime, 'slot-reset 1')).toBe('slot 1 back in service (1 failed vend cleared)');
      expect(await runKeypadLine(second.runtime, 'slot-reset 1')).toBe('slot 1 was in service');
      const after = record(second);
      await sellCola(second, wallet, after);
      expect(after.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'dispensed' });
      expect(await site.balance(wallet)).toBe(750);
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a failure receipt the hub loses after its PUBACK is re-sent until the hub acknowledges it: refunded once', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    const acks: Array<[string, string]> = [];
    const onAck = (requestId: string, status: string) => acks.push([requestId, status]);
    vm.runtime.on('receipt', onAck);
    site.faults.lostReceipts = 2;
    const lostBefore = site.lostReceipts;
    vm.setSlot(1, { kind: 'jammed' });
    try {
      await vm.runtime.select('cola');
      vm.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
      vm.remove();
      vm.setSlot(1, { kind: 'drops', afterMs: 40 });
      const requestId = (log.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>).requestId;
      await eventually(() => acks.find(([id]) => id === requestId), 15_000, 'receipt acknowledged');
      // Lost twice (a PUBACK each time), then delivered again and answered.
      expect(site.lostReceipts - lostBefore).toBe(2);
      expect(acks.filter(([id]) => id === requestId)).toEqual([[requestId, 'refunded']]);
      expect(vm.started.store.getReceipt(requestId)?.acknowledged).toBe(true);
      expect(await site.balance(wallet)).toBe(1000);
    } finally {
      site.faults.lostReceipts = 0;
      vm.runtime.off('receipt', onAck);
      vm.setSlot(1, { kind: 'drops', afterMs: 40 });
    }
    await eventually(() => idle(vm));
    vm.runtime.resetSlot(1);
  });

  it("the hub's approval and the machine's deadline cross: nothing dispensed, the approval undone by a failure receipt", async () => {
    let skewMs = 0;
    const crossing = await site.terminal({ kind: 'vending', clock: () => Date.now() + skewMs, config: { vending: { dropTimeoutMs: 800 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(crossing);
    // The result is recorded; before the machine takes it, its deadline tick is already queued
    // (as when the event queue was busy with a slow display while the deadline passed).
    crossing.runtime.once('settled', () => {
      skewMs = 60_000;
      void (crossing.runtime as unknown as { post(event: { e: 'tick' }): Promise<void> }).post({ e: 'tick' });
    });
    await crossing.runtime.select('cola');
    crossing.tap(wallet);
    await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
    crossing.remove();
    expect(log.displays.some((d) => d.startsWith('no answer from the hub'))).toBe(true);
    expect(log.commands.map((c) => c.c)).not.toContain('vend');
    expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'failed', reason: 'abandoned after hub timeout' });
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'refunded');
  });

  it('card pulled mid-tap (during AUTHORIZE): nothing is sent, nothing charged', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    await vm.runtime.select('cola');
    const pull = (c: Command) => {
      if (c.c === 'nfc.authorize') vm.pullOnNextExchange();
    };
    vm.runtime.on('command', pull);
    vm.tap(wallet);
    await eventually(() => log.displays.find((d) => d.includes('tap again')), 8000, 'card lost');
    vm.runtime.off('command', pull);
    vm.remove();
    await new Promise((r) => setTimeout(r, 200));
    expect(log.commands.map((c) => c.c)).not.toContain('hub.request');
    expect(await site.balance(wallet)).toBe(1000);
    await vm.runtime.cancelSelection();
  });

  it('bad wallet signature: the terminal refuses it before anything reaches the hub', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    await vm.runtime.select('cola');
    vm.tap(badSignatureCard(wallet));
    await eventually(() => log.displays.find((d) => d.startsWith('wallet declined')), 8000, 'decline');
    vm.remove();
    expect(log.displays.find((d) => d.startsWith('wallet declined'))).toContain('BAD_SIGNATURE');
    expect(log.commands.map((c) => c.c)).not.toContain('hub.request');
    await vm.runtime.cancelSelection();
  });

  it('bad hub signature on the result: never dispenses, gives up at the deadline', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    site.faults.corruptReplies = true;
    try {
      await vm.runtime.select('cola');
      vm.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.abandon'), 8000, 'abandon');
      vm.remove();
      expect(log.displays.some((d) => d.includes('BAD_SIGNATURE'))).toBe(true);
      expect(log.commands.map((c) => c.c)).not.toContain('vend');
    } finally {
      site.faults.corruptReplies = false;
    }
    // Good replies again: the outbox retry (same id) gets the original result; the late approval is reversed.
    await eventually(async () => (await site.balance(wallet)) === 1000 && vm.started.store.openCount() === 0, 8000, 'reconciled');
  });

  it('hub answers after the terminal timed out: same request id, charged once, then refunded', async () => {
    const slow = await site.terminal({ kind: 'vending', config: { hub: { timeoutMs: 600, retryMs: 200 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(slow);
    site.faults.delayMs = 1200;
    try {
      await slow.runtime.select('cola');
      slow.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'hub.abandon'), 8000, 'abandon');
      slow.remove();
      expect(log.commands.map((c) => c.c)).not.toContain('vend');
      // The late approval arrives and is answered with a failure receipt: the hub refunds.
      await eventually(() => log.commands.find((c) => c.c === 'receipt' && c.outcome === 'failed'), 8000, 'failure receipt');
    } finally {
      site.faults.delayMs = 0;
    }
    const requests = log.commands.filter((c) => c.c === 'hub.request');
    expect(requests).toHaveLength(1);
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'refund');
  });

  it('hub down: sells offline within the license limit, forwards the authorization when the hub is back', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 300 });
    const log = record(vm);
    const url = await site.stopServer();
    try {
      await eventually(() => !vm.runtime.isOnline, 5000, 'offline');
      await vm.runtime.select('cola');
      vm.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
      vm.remove();
      expect(log.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: true });
      expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'dispensed' });
      await eventually(() => idle(vm));
      // Beyond the license's offline limit (250 used of 300): refused.
      await vm.runtime.select('cola');
      await tapAfresh(vm, wallet);
      await eventually(() => log.displays.find((d) => d.includes('OFFLINE_LIMIT')), 8000, 'offline limit');
      vm.remove();
      await vm.runtime.cancelSelection();
      expect(vm.started.store.openCount()).toBe(1);
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => vm.runtime.isOnline, 15_000, 'online again');
    await eventually(() => vm.started.store.openCount() === 0, 15_000, 'outbox forwarded');
    await eventually(async () => (await site.balance(wallet)) === 750, 8000, 'settled');
  });

  it('a price change while the machine is offline: its sale at the price it had settles at that price', async () => {
    const vm = await site.terminal({ kind: 'vending' });
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 300 });
    const log = record(vm);
    const articles = vm.runtime.articles;
    const cola = articles.find((a) => a.sku === 'cola')!;
    const url = await site.stopServer();
    let requestId: string;
    try {
      await eventually(() => !vm.runtime.isOnline, 5000, 'offline');
      // The operator raises the price; the announcement can't reach the machine.
      site.hub.importCatalog({ merchantId: 'merchant-vending', articles: articles.map((a) => (a.sku === 'cola' ? { ...a, priceMinor: a.priceMinor + 20 } : a)) });
      requestId = await sellCola(vm, wallet, log);
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => vm.started.store.openCount() === 0, 15_000, 'forwarded');
    expect(JSON.parse(vm.started.store.get(requestId)!.result!)).toMatchObject({ body: { status: 'approved', amountMinor: cola.priceMinor } });
    expect(await site.balance(wallet)).toBe(1000 - cola.priceMinor);
    // The old prices again, for the tests after this one (every machine hears of it).
    site.hub.importCatalog({ merchantId: 'merchant-vending', articles });
    await eventually(() => vm.runtime.articles.find((a) => a.sku === 'cola')?.priceMinor === cola.priceMinor, 8000, 'old prices announced');
  });

  it('power cycle while offline: the offline authorization survives a restart and is forwarded with its original id', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-vm-restart-'));
    try {
      const first = await site.terminal({ kind: 'vending', terminalId: 'vm-restart', dataDir });
      const wallet = await site.wallet({ balanceMinor: 1000 });
      const log = record(first);
      const url = await site.stopServer();
      try {
        await eventually(() => !first.runtime.isOnline, 5000, 'offline');
        await first.runtime.select('cola');
        first.tap(wallet);
        await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
        first.remove();
        const queued = log.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
        await first.close({ keepData: true });
        // Back up with the same data dir, hub still down: the request is still in the outbox.
        const second = await startSimulatedTerminal({ kind: 'vending', hubUrl: url, hub: site.hub, terminalId: 'vm-restart', merchantId: 'merchant-vending', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
        try {
          expect(second.started.store.open().map((e) => e.requestId)).toEqual([queued.requestId]);
          await site.restartServer(url);
          await eventually(() => second.started.store.openCount() === 0 && second.started.store.pendingReceipts().length === 0, 15_000, 'forwarded after restart');
          expect(await site.balance(wallet)).toBe(750);
        } finally {
          await second.close({ keepData: true });
        }
      } finally {
        if (!site.server) await site.restartServer(url);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('power cycle while an online purchase waits for the hub: the restarted machine gives it up, and its late approval is refunded', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-vm-waiting-'));
    try {
      const first = await site.terminal({ kind: 'vending', terminalId: 'vm-waiting', dataDir });
      const wallet = await site.wallet({ balanceMinor: 1000 });
      const commands = record(first).commands;
      site.faults.delayMs = 1500; // the hub answers after the machine went down
      await first.runtime.select('cola');
      first.tap(wallet);
      await eventually(() => commands.find((c) => c.c === 'hub.request'), 8000, 'request sent');
      first.remove();
      const { requestId } = commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
      await first.close({ keepData: true });
      site.faults.delayMs = 0;
      const second = await startSimulatedTerminal({ kind: 'vending', hubUrl: site.url, hub: site.hub, terminalId: 'vm-waiting', merchantId: 'merchant-vending', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
      try {
        const after = record(second).commands;
        expect(second.started.store.get(requestId)?.state).toBe('abandoned');
        // Its resend is approved (charged once); nothing was dispensed, so a failure receipt refunds it.
        await eventually(async () => second.started.store.get(requestId)?.state === 'done' && (await site.balance(wallet)) === 1000, 15_000, 'late approval refunded');
        await eventually(() => after.find((c) => c.c === 'receipt' && c.outcome === 'failed'), 5000, 'failure receipt');
        expect([...commands, ...after].map((c) => c.c)).not.toContain('vend');
      } finally {
        await second.close({ keepData: true });
      }
    } finally {
      site.faults.delayMs = 0;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  /**
   * A power cut at a vending machine `name` while a cola is sold to a fresh wallet: `cut` runs once
   * the sale has reached `until` (the motor started, or the vend command issued), then the machine
   * is switched off and on again (same data dir), the hub up or down as `offline` says.
   */
  async function powerCutDuringVend(name: string, opts: { offline: boolean; beforeMotor?: boolean }): Promise<{ wallet: SimulatedWallet; requestId: string; second: SimulatedTerminal; dataDir: string; url: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), `tapsettle-${name}-`));
    const first = await site.terminal({ kind: 'vending', terminalId: name, dataDir, config: { vending: { dropTimeoutMs: 3000 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const commands = record(first).commands;
    first.setSlot(1, { kind: 'jammed' }); // the motor runs, nothing has dropped yet when the power goes
    const motor: number[] = [];
    if (opts.beforeMotor) {
      // The power goes after the approval was stored, before the vend was recorded and the motor driven.
      first.started.store.markVendStarted = () => {
        throw new Error('power cut (test)');
      };
    } else {
      const mark = first.started.store.markVendStarted.bind(first.started.store);
      first.started.store.markVendStarted = (...args) => (mark(...args), void motor.push(Date.now()));
    }
    const url = site.url;
    if (opts.offline) {
      await site.stopServer();
      await eventually(() => !first.runtime.isOnline, 5000, 'offline');
    }
    await first.runtime.select('cola');
    first.tap(wallet);
    await eventually(() => commands.find((c) => c.c === 'vend'), 8000, 'vend command');
    first.remove();
    if (!opts.beforeMotor) expect(motor).toHaveLength(1);
    const { requestId } = commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    first.runtime.simulatePowerCut(); // nothing more runs
    await first.close({ keepData: true });
    expect(commands.map((c) => c.c)).not.toContain('receipt');
    const second = await startSimulatedTerminal({ kind: 'vending', hubUrl: url, hub: site.hub, terminalId: name, merchantId: 'merchant-vending', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
    return { wallet, requestId, second, dataDir, url };
  }

  it('a restart (systemctl) while an article drops waits for the drop: dispensed, not refunded', async () => {
    const name = 'vm-graceful';
    const dataDir = mkdtempSync(join(tmpdir(), `tapsettle-${name}-`));
    const first = await site.terminal({ kind: 'vending', terminalId: name, dataDir, config: { vending: { dropTimeoutMs: 3000 } } });
    first.setSlot(1, { kind: 'drops', afterMs: 150 });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const commands = record(first).commands;
    await first.runtime.select('cola');
    first.tap(wallet);
    await eventually(() => commands.find((c) => c.c === 'vend'), 8000, 'vend command');
    first.remove();
    const { requestId } = commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    await first.close({ keepData: true }); // SIGTERM right after the motor started
    const second = await startSimulatedTerminal({ kind: 'vending', hubUrl: site.url, hub: site.hub, terminalId: name, merchantId: 'merchant-vending', dataDir, config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } } });
    try {
      expect(storedReceipt(second, requestId)).toMatchObject({ outcome: 'dispensed' });
      expect(second.started.store.openVends()).toEqual([]);
      await eventually(() => second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'receipt acknowledged');
      expect(await site.balance(wallet)).toBe(750);
    } finally {
      await second.close({ keepData: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('power cut while the motor runs (approved online, no drop yet): the restarted machine reports the vend failed, refunded once', async () => {
    const { wallet, requestId, second, dataDir } = await powerCutDuringVend('vm-cut-online', { offline: false });
    try {
      expect(storedReceipt(second, requestId)).toMatchObject({ outcome: 'failed', reason: 'power lost during dispense' });
      await eventually(() => second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'failure receipt acknowledged');
      expect(await site.balance(wallet)).toBe(1000);
      expect(second.started.store.openVends()).toEqual([]);
      await sleep(700); // the hub's refund is at most once: nothing more comes back
      expect(await site.balance(wallet)).toBe(1000);
    } finally {
      await second.close({ keepData: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('power cut between the stored approval and the motor: the restarted machine reports the vend failed, refunded', async () => {
    const { wallet, requestId, second, dataDir } = await powerCutDuringVend('vm-cut-before', { offline: false, beforeMotor: true });
    try {
      expect(storedReceipt(second, requestId)).toMatchObject({ outcome: 'failed', reason: 'power lost before dispense' });
      await eventually(() => second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'failure receipt acknowledged');
      expect(await site.balance(wallet)).toBe(1000);
    } finally {
      await second.close({ keepData: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('power cut while an offline sale dispenses: after the restart the sale is forwarded, then its failure receipt, refunded once', async () => {
    const { wallet, requestId, second, dataDir, url } = await powerCutDuringVend('vm-cut-offline', { offline: true });
    try {
      expect(second.started.store.get(requestId)?.state).toBe('pending');
      expect(storedReceipt(second, requestId)).toMatchObject({ outcome: 'failed', reason: 'power lost during dispense' });
      await site.restartServer(url);
      await eventually(() => second.started.store.get(requestId)?.state === 'done' && second.started.store.getReceipt(requestId)?.acknowledged, 15_000, 'sale and receipt forwarded');
      expect(await site.balance(wallet)).toBe(1000);
      await sleep(700);
      expect(await site.balance(wallet)).toBe(1000);
    } finally {
      if (!site.server) await site.restartServer(url);
      await second.close({ keepData: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('an older announcement arriving late changes nothing, in memory or in the store (an offline restart keeps the newer one)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-vm-announce-'));
    try {
      const t = await site.terminal({ kind: 'vending', terminalId: 'vm-announce', dataDir });
      const hub = loadOrCreateEd25519Key(join(site.dir, 'hub'), 'hub-signing');
      const hubKey = toHex(hub.publicKey);
      const victim = await site.wallet({ balanceMinor: 0 });
      const extraKey = toHex(generateKeyPair().publicKey);
      const deliver = (m: Envelope<'announce.blocklist'> | Envelope<'announce.keys'>) => (t.runtime as unknown as { onAnnouncement(m: unknown): void }).onAnnouncement(m);
      const v = 2 ** 40;
      // An older one is older by version and by time (a restored hub's is older by version only).
      const base = Date.now();
      const at = (version: number): number => base + version - v;
      const blocklist = (version: number, wallets: string[]) => signMessage('announce.blocklist', { version, wallets, time: at(version), hubKey }, hub.secretKey);
      const keys = (version: number, ring: string[]) =>
        signMessage('announce.keys', { version, hubKeys: ring.map((publicKey) => ({ publicKey, notBefore: 0, notAfter: Date.now() + 3600_000 })), issuerKeys: [], revokedTerminals: [], time: at(version), hubKey }, hub.secretKey);
      const newer = blocklist(v + 1, [victim.publicKeyHex]);
      deliver(newer);
      // Re-delivered on every reconnect: the same bytes are not written again.
      t.started.store.db.exec("CREATE TEMP TABLE kv_writes (key TEXT); CREATE TEMP TRIGGER kv_written AFTER UPDATE ON main.kv BEGIN INSERT INTO kv_writes VALUES (new.key); END");
      deliver(newer);
      expect(t.started.store.db.prepare('SELECT count(*) FROM kv_writes').pluck().get()).toBe(0);
      deliver(blocklist(v, [])); // an older one delivered late
      deliver(keys(v + 1, [hubKey, extraKey]));
      deliver(keys(v, [hubKey]));
      expect(t.runtime.isBlocklisted(victim.publicKeyHex)).toBe(true);
      expect(t.runtime.trustedHubKeys).toContain(extraKey);
      await t.close({ keepData: true });
      const url = await site.stopServer(); // the machine restarts with the hub away: only its store
      try {
        const again = await startSimulatedTerminal({ kind: 'vending', hubUrl: url, hub: site.hub, terminalId: 'vm-announce', merchantId: 'merchant-vending', dataDir });
        try {
          expect(again.runtime.isBlocklisted(victim.publicKeyHex)).toBe(true);
          expect(again.runtime.trustedHubKeys).toContain(extraKey);
        } finally {
          await again.close({ keepData: true });
        }
      } finally {
        await site.restartServer(url);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('hub busy (signed UNAVAILABLE): an online attempt waits on, never "declined", and the retry settles it; an offline authorization keeps being forwarded', async () => {
    // Its own machine, retrying slowly: the busy reply must come back before any retry goes out.
    const vm = await site.terminal({ kind: 'vending', config: { hub: { retryMs: 1500 } } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    // Online: the customer is told the hub is busy; the retry (same id) within the machine's
    // deadline is approved and dispensed. Only this machine's requests: an earlier test's terminal
    // may still be retrying its own.
    site.faults.unavailableTerminal = vm.terminalId;
    site.faults.unavailable = 1;
    await vm.runtime.select('cola');
    vm.tap(wallet);
    await eventually(() => log.displays.includes(HUB_BUSY_TEXT), 15_000, 'busy');
    await eventually(() => log.commands.find((c) => c.c === 'receipt' && c.outcome === 'dispensed'), 15_000, 'dispensed on the retry');
    vm.remove();
    expect(log.displays.filter((d) => d.includes('declined'))).toEqual([]);
    await eventually(async () => (await site.balance(wallet)) === 750 && vm.started.store.openCount() === 0, 15_000, 'charged once');
    await new Promise((r) => setTimeout(r, 150));
    // Offline sale, then the hub comes back busy twice: the authorization stays queued until it settles.
    const url = await site.stopServer();
    try {
      await eventually(() => !vm.runtime.isOnline, 15_000, 'offline');
      await sellCola(vm, wallet, log);
      site.faults.unavailable = 2;
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => vm.started.store.openCount() === 0, 15_000, 'forwarded despite busy replies');
    expect(site.faults.unavailable).toBe(0);
    site.faults.unavailableTerminal = '';
    expect(await site.balance(wallet)).toBe(500);
  });

  it("hub fault (its signed error INTERNAL, 'retry with the same request id'): a forwarded offline sale stays queued until it settles", async () => {
    const vm = await site.terminal({ kind: 'vending', config: { vending: { dropTimeoutMs: 800 } } });
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 300 });
    const log = record(vm);
    const registry = site.hub.registry;
    const result = registry.result;
    const url = await site.stopServer();
    let requestId: string;
    let faults = 0;
    try {
      await eventually(() => !vm.runtime.isOnline, 15_000, 'offline');
      requestId = await sellCola(vm, wallet, log);
      // One transient fault inside the real hub while it handles this request: it answers with its signed error.
      registry.result = (id: string) => {
        if (id === requestId && faults++ === 0) throw new Error('SQLITE_IOERR (injected, transient)');
        return result.call(registry, id);
      };
    } finally {
      await site.restartServer(url);
    }
    try {
      await eventually(() => vm.started.store.get(requestId)?.state === 'done', 15_000, 'settled');
    } finally {
      registry.result = result;
    }
    expect(faults).toBeGreaterThan(1); // answered once with the error, then forwarded again
    expect(JSON.parse(vm.started.store.get(requestId)!.result!)).toMatchObject({ type: 'settlement.result', body: { status: 'approved' } });
    expect(await site.balance(wallet)).toBe(750);
  });

  it('a hub that keeps answering "retry later" gets the request ever more slowly, then settles it', async () => {
    const vm = await site.terminal({ kind: 'vending', config: { hub: { retryMs: 300 } } });
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 300 });
    const log = record(vm);
    const url = await site.stopServer();
    try {
      await eventually(() => !vm.runtime.isOnline, 15_000, 'offline');
      await sellCola(vm, wallet, log);
      site.faults.unavailableTerminal = vm.terminalId;
      site.faults.unavailable = 1000;
    } finally {
      await site.restartServer(url);
    }
    try {
      // At a steady 300 ms that is ~13 sends in 4 s; backing off after three, about 6.
      await new Promise((r) => setTimeout(r, 4000));
      const sends = 1000 - site.faults.unavailable;
      expect(sends).toBeGreaterThanOrEqual(3);
      expect(sends).toBeLessThanOrEqual(8);
    } finally {
      site.faults.unavailable = 0;
      site.faults.unavailableTerminal = '';
    }
    await eventually(() => vm.started.store.openCount() === 0, 30_000, 'settled once the hub answers');
    expect(await site.balance(wallet)).toBe(750);
  });

  it('offline sale whose dispense fails: the failure receipt follows the forwarded sale, the hub refunds', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(vm);
    vm.setSlot(1, { kind: 'jammed' });
    const url = await site.stopServer();
    try {
      await eventually(() => !vm.runtime.isOnline, 5000, 'offline');
      await vm.runtime.select('cola');
      vm.tap(wallet);
      await eventually(() => log.commands.find((c) => c.c === 'receipt'), 8000, 'failure receipt');
      vm.remove();
      expect(log.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'failed' });
    } finally {
      vm.setSlot(1, { kind: 'drops', afterMs: 40 });
      await site.restartServer(url);
    }
    await eventually(() => vm.started.store.openCount() === 0 && vm.started.store.pendingReceipts().length === 0, 15_000, 'sale and receipt forwarded');
    await eventually(async () => (await site.balance(wallet)) === 1000, 8000, 'refunded');
    vm.runtime.resetSlot(1);
  });
});
