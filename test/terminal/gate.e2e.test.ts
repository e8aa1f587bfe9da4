// Ticket gates end to end (entry at "north", exit at "south") with a POS for top-ups and ticket
// sales: real terminal runtimes on the PN532 emulator and the virtual board, a real hub.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeFare, decodeAnyForm, encodeMessage, generateKeyPair, newChallenge, signMessage } from '../../protocol/index.ts';
import { RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import type { Command } from '../../terminal/machines/types.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import type { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import { startTerminal } from '../../terminal/start-terminal.ts';
import { badSignatureCard, eventually, FARES, OPERATORS, Site } from './harness.ts';

const TRIP_MINOR = computeFare(FARES, { station: 'north', time: 0 }, 'south', 60_000).fareMinor; // 300

function record(t: SimulatedTerminal): { commands: Command[]; displays: string[]; stop(): void } {
  const commands: Command[] = [];
  const displays: string[] = [];
  const onC = (c: Command) => commands.push(c);
  const onD = (text: string) => displays.push(text);
  t.runtime.on('command', onC);
  t.runtime.on('display', onD);
  return { commands, displays, stop: () => (t.runtime.off('command', onC), t.runtime.off('display', onD)) };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Tap, wait for the gate's decision (open or deny) and for it to be idle again, take the card away. */
async function pass(t: SimulatedTerminal, card: Parameters<SimulatedTerminal['tap']>[0]): Promise<{ commands: Command[]; displays: string[]; opened: boolean }> {
  const log = record(t);
  t.tap(card);
  await eventually(() => log.commands.some((c) => c.c === 'gate.open' || c.c === 'gate.deny'), 8000, 'gate decision');
  // Idle again, and done with the card (its last NFC command is the release).
  await eventually(() => t.runtime.machineState.s === 'idle' && log.commands.some((c) => c.c === 'nfc.release'), 12_000, 'gate idle');
  await t.runtime.settle();
  t.remove();
  log.stop();
  await sleep(60); // the reader must see the card leave before the next tap
  return { ...log, opened: log.commands.some((c) => c.c === 'gate.open') };
}

const admissions = (w: SimulatedWallet) => w.applet.records.list(RecordKind.Admission);

describe('gate terminals end to end', () => {
  let site: Site;
  let gateIn: SimulatedTerminal;
  let gateOut: SimulatedTerminal;
  let pos: SimulatedTerminal;

  beforeAll(async () => {
    site = await Site.start();
    gateIn = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'north', mode: 'entry' } });
    gateOut = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit' } });
    pos = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { pos: { operators: OPERATORS } } });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('entry writes a gate-signed admission; the exit opens at once on the local policy and the hub settles the fare behind', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const entry = await pass(gateIn, wallet);
    expect(entry.opened).toBe(true);
    expect(admissions(wallet)).toHaveLength(1);
    const exit = await pass(gateOut, wallet);
    const order = exit.commands.map((c) => c.c);
    // Open on the local decision, then the wallet signs while the customer walks, then the request.
    expect(order.indexOf('gate.open')).toBeLessThan(order.indexOf('nfc.authorize'));
    expect(order.indexOf('nfc.authorize')).toBeLessThan(order.indexOf('hub.request'));
    expect(exit.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: true, amountMinor: TRIP_MINOR, op: { type: 'fare', exitStation: 'south' } });
    expect(admissions(wallet)).toHaveLength(0);
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'fare settled');
    expect(exit.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'passed' });
  });

  it('exit without an entry record: the maximum fare', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const exit = await pass(gateOut, wallet);
    expect(exit.opened).toBe(true);
    expect(exit.commands.find((c) => c.c === 'hub.request')).toMatchObject({ amountMinor: FARES.maxFareMinor, op: { entry: null } });
    await eventually(async () => (await site.balance(wallet)) === 1000 - FARES.maxFareMinor, 8000, 'max fare settled');
  });

  it('insufficient funds: a POS cash top-up leaves a hub statement of 100; without offline credit the exit waits for the hub, which declines', async () => {
    const wallet = await site.wallet({ balanceMinor: 0, offlineLimitMinor: 0 });
    const log = record(pos);
    await pos.runtime.topUp(100, 'alice', '4711');
    pos.tap(wallet);
    await eventually(() => log.commands.find((c) => c.c === 'print') && log.commands.at(-2)?.c === 'nfc.release', 8000, 'top-up receipt');
    await eventually(() => pos.runtime.machineState.s === 'idle');
    pos.remove();
    log.stop();
    expect(wallet.applet.records.list(RecordKind.BalanceStatement)).toHaveLength(1);
    expect(await site.balance(wallet)).toBe(100);
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const exit = await pass(gateOut, wallet);
    expect(exit.opened).toBe(false);
    expect(exit.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: false });
    expect(exit.displays.some((d) => d.includes('INSUFFICIENT_FUNDS'))).toBe(true);
    expect(await site.balance(wallet)).toBe(100);
  });

  it('restricted customer: a blocklisted wallet is stopped at the entry (announcement)', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    site.hub.blocklistAdd(wallet.publicKeyHex, 'stolen');
    await eventually(() => gateIn.runtime.isBlocklisted(wallet.publicKeyHex), 8000, 'blocklist announcement');
    const entry = await pass(gateIn, wallet);
    expect(entry.opened).toBe(false);
    expect(entry.displays.some((d) => d.includes('BLOCKLISTED'))).toBe(true);
    expect(admissions(wallet)).toHaveLength(0);
  });

  it('anti-passback: a wallet already inside cannot enter again', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const again = await pass(gateIn, wallet);
    expect(again.opened).toBe(false);
    expect(again.displays).toContain('already inside');
  });

  /** A day ticket sold at the POS to `wallet` (stored on it); the sale's request. */
  async function sellTicket(wallet: SimulatedWallet): Promise<Extract<Command, { c: 'hub.request' }>> {
    const log = record(pos);
    await pos.runtime.sellTicket('day');
    pos.tap(wallet);
    await eventually(() => log.commands.find((c) => c.c === 'print') && log.commands.at(-2)?.c === 'nfc.release', 8000, 'ticket receipt');
    await eventually(() => pos.runtime.machineState.s === 'idle');
    pos.remove();
    log.stop();
    return log.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
  }

  it('tickets: sold at the POS (hub-signed, stored on the wallet), accepted at the entrance once, use reported', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    await sellTicket(wallet);
    const [ticket] = wallet.applet.records.list(RecordKind.Ticket);
    expect(ticket).toBeDefined();
    const copy = ticket!.bytes.slice();
    const entry = await pass(gateIn, wallet);
    expect(entry.opened).toBe(true);
    expect(entry.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { type: 'ticket.use', station: 'north' } });
    expect(wallet.applet.records.list(RecordKind.Ticket)).toHaveLength(0);
    const exit = await pass(gateOut, wallet);
    expect(exit.opened).toBe(true);
    // The ticket covers the trip: no fare, but the exit is reported (the hub claims the record).
    expect(exit.commands.filter((c) => c.c === 'hub.request')).toEqual([expect.objectContaining({ offline: true, amountMinor: 0, op: expect.objectContaining({ type: 'ticket.exit', exitStation: 'south' }) })]);
    await eventually(() => gateIn.started.store.openCount() === 0, 8000, 'ticket use settled');
    // A copied ticket does not admit a second time: pay-as-you-go entry instead.
    wallet.applet.records.store(RecordKind.Ticket, copy, false);
    const second = await pass(gateIn, wallet);
    const admission = second.commands.find((c) => c.c === 'nfc.storeAdmission') as Extract<Command, { c: 'nfc.storeAdmission' }>;
    expect(admission.body.ticketId).toBeUndefined();
    expect(await site.balance(wallet)).toBe(500);
  });

  it('a refunded ticket is on the announced deny list: the entrance (deciding on its own) does not admit on it', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const sale = await sellTicket(wallet);
    const [ticket] = wallet.applet.records.list(RecordKind.Ticket);
    const decoded = decodeAnyForm(ticket!.bytes, 'ticket');
    if (!decoded.ok) throw new Error(decoded.code);
    const ticketId = decoded.value.body.ticketId;
    expect(await site.hub.refund(sale.requestId)).toMatchObject({ status: 'approved' });
    expect(await site.balance(wallet)).toBe(1000);
    await eventually(() => gateIn.started.store.getKv('announce.blocklist')?.includes(ticketId), 8000, 'deny list announced');
    const entry = await pass(gateIn, wallet);
    expect(entry.commands.map((c) => c.c)).not.toContain('hub.request'); // no ticket.use
    expect(entry.displays).not.toContain('welcome (ticket)');
    const admission = entry.commands.find((c) => c.c === 'nfc.storeAdmission') as Extract<Command, { c: 'nfc.storeAdmission' }>;
    expect(admission.body.ticketId).toBeUndefined(); // pay as you go
    await pass(gateOut, wallet);
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'the trip paid');
  });

  it('card pulled at the exit after the barrier opened, before the wallet signed: incident, nothing settled, the trip stays open', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const pull = (c: Command) => {
      if (c.c === 'nfc.authorize') gateOut.pullOnNextExchange();
    };
    gateOut.runtime.on('command', pull);
    const exit = await pass(gateOut, wallet);
    gateOut.runtime.off('command', pull);
    expect(exit.opened).toBe(true);
    expect(exit.commands.find((c) => c.c === 'incident')).toMatchObject({ kind: 'unsigned-passage', amountMinor: TRIP_MINOR });
    expect(exit.commands.map((c) => c.c)).not.toContain('hub.request');
    expect(admissions(wallet)).toHaveLength(1); // the next entry is refused (anti-passback), the next exit charges it
    expect((await pass(gateIn, wallet)).opened).toBe(false);
    expect(await site.balance(wallet)).toBe(1000);
  });

  it("entry: the wallet stored the admission record but its answer was lost (card pulled): the retap is that entry's retry, not 'already inside'", async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const pull = (c: Command) => {
      if (c.c === 'nfc.storeAdmission') gateIn.pullAfterNextExchange();
    };
    gateIn.runtime.on('command', pull);
    const lost = await pass(gateIn, wallet);
    gateIn.runtime.off('command', pull);
    expect(lost.opened).toBe(false);
    expect(admissions(wallet)).toHaveLength(1); // written, though the gate never heard so
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    expect(admissions(wallet)).toHaveLength(1); // replaced, not added
    // In for real now: anti-passback holds.
    expect((await pass(gateIn, wallet)).opened).toBe(false);
    expect((await pass(gateOut, wallet)).opened).toBe(true);
    expect(await site.balance(wallet)).toBe(1000 - TRIP_MINOR);
  });

  /** An entry whose write answer is lost: the wallet stored the record, the gate never heard so. */
  async function lostEntry(gate: SimulatedTerminal, wallet: SimulatedWallet): Promise<void> {
    const pull = (c: Command) => {
      if (c.c === 'nfc.storeAdmission') gate.pullAfterNextExchange();
    };
    gate.runtime.on('command', pull);
    const lost = await pass(gate, wallet);
    gate.runtime.off('command', pull);
    expect(lost.opened).toBe(false);
    expect(admissions(wallet)).toHaveLength(1);
  }

  it("entry: a lost write answer's retry survives another customer's entry, a refusal and the gate's restart (kept in its store)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-gate-retap-'));
    const options = { kind: 'gate', merchantId: 'transit', terminalId: 'gate-retap', gate: { station: 'north', mode: 'entry' }, dataDir } as const;
    let entry = await site.terminal(options);
    try {
      const [a, b, c] = [await site.wallet({ balanceMinor: 1000 }), await site.wallet({ balanceMinor: 1000 }), await site.wallet({ balanceMinor: 1000 })];
      await lostEntry(entry, a);
      // B goes in, C (inside already) is refused, in between.
      expect((await pass(entry, b)).opened).toBe(true);
      expect((await pass(gateIn, c)).opened).toBe(true);
      expect((await pass(entry, c)).displays).toContain('already inside');
      const retried = await pass(entry, a);
      expect(retried.opened).toBe(true);
      expect(retried.commands.map((x) => x.c)).toContain('entry.forget');
      expect((await pass(entry, a)).displays).toContain('already inside'); // in for real now
      // Lost again for another wallet, and the gate restarts before it retaps.
      const d = await site.wallet({ balanceMinor: 1000 });
      await lostEntry(entry, d);
      await entry.close({ keepData: true });
      entry = await startSimulatedTerminal({ ...options, hubUrl: site.url, hub: site.hub });
      await eventually(() => entry.runtime.isOnline, 8000, 'restarted gate online');
      expect((await pass(entry, d)).opened).toBe(true);
      expect(admissions(d)).toHaveLength(1);
      expect((await pass(gateOut, d)).opened).toBe(true);
      await eventually(async () => (await site.balance(d)) === 1000 - TRIP_MINOR, 8000, 'the trip paid once');
    } finally {
      await entry.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('entry: the barrier opened and nobody passed (turned back): the retap there lets the customer in on the same record; the trip is paid once at the exit', async () => {
    // The machine's window: 0.5 s + 0.3 s close delay + 2 s.
    const entry = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'north', mode: 'entry', passageTimeoutMs: 500 } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    entry.nextVisitor({ kind: 'nobody' });
    const turnedBack = await pass(entry, wallet);
    expect(turnedBack.opened).toBe(true);
    const [record] = admissions(wallet);
    expect(record).toBeDefined();
    // Elsewhere (another entry gate) the record still reads "already inside": this gate remembers.
    expect((await pass(gateIn, wallet)).displays).toContain('already inside');
    const again = await pass(entry, wallet);
    expect(again.opened).toBe(true);
    expect(again.commands.map((c) => c.c)).not.toContain('nfc.storeAdmission'); // nothing written again
    expect(admissions(wallet).map((r) => Buffer.from(r.bytes).toString('hex'))).toEqual([Buffer.from(record!.bytes).toString('hex')]);
    expect((await pass(entry, wallet)).displays).toContain('already inside'); // through this time
    expect((await pass(gateOut, wallet)).opened).toBe(true);
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'the trip paid');
    // The record was good for one exit: a copy written back opens nothing for free (maximum fare).
    wallet.applet.records.store(RecordKind.Admission, record!.bytes, true);
    const copy = await pass(gateOut, wallet);
    expect(copy.commands.find((c) => c.c === 'hub.request')).toMatchObject({ amountMinor: FARES.maxFareMinor, op: { entry: null } });
  });

  it('entry on a ticket, nobody passed: the ticket stays used (no refund), the retap lets the customer in on its record, the exit is free', async () => {
    const entry = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'north', mode: 'entry', passageTimeoutMs: 500 } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    await sellTicket(wallet);
    entry.nextVisitor({ kind: 'nobody' });
    const turnedBack = await pass(entry, wallet);
    expect(turnedBack.opened).toBe(true);
    expect(turnedBack.commands.find((c) => c.c === 'hub.request')).toMatchObject({ op: { type: 'ticket.use' } });
    expect(turnedBack.commands).toContainEqual(expect.objectContaining({ c: 'receipt', outcome: 'failed', reason: 'no passage' }));
    expect(wallet.applet.records.list(RecordKind.Ticket)).toHaveLength(0);
    const again = await pass(entry, wallet);
    expect(again.opened).toBe(true);
    expect(again.displays).toContain('welcome (ticket)');
    expect(again.commands.map((c) => c.c)).not.toContain('hub.request'); // the ticket is not used again
    const exit = await pass(gateOut, wallet);
    expect(exit.opened).toBe(true);
    expect(exit.displays).toContain('goodbye (ticket)');
    await eventually(() => entry.started.store.openCount() === 0, 8000, 'ticket use settled');
    expect(await site.balance(wallet)).toBe(500); // the ticket, nothing more, nothing back
  });

  it('after an unsigned passage the wallet exposure is counted in the store and its next exit waits for the hub (no local decision)', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 5000 });
    const store = gateOut.started.store;
    const pull = (c: Command) => {
      if (c.c === 'nfc.authorize') gateOut.pullOnNextExchange();
    };
    gateOut.runtime.on('command', pull);
    const unsigned = await pass(gateOut, wallet);
    gateOut.runtime.off('command', pull);
    expect(unsigned.opened).toBe(true);
    const incident = unsigned.commands.find((c) => c.c === 'incident') as Extract<Command, { c: 'incident' }>;
    expect(incident).toMatchObject({ kind: 'unsigned-passage', amountMinor: FARES.maxFareMinor });
    // Reported to the hub through the outbox under the passage's id, for nothing (no money moves
    // without the wallet's signature); the hub records it for the operator.
    expect(JSON.parse(store.get(incident.requestId)!.envelope)).toMatchObject({ body: { offline: true, op: { type: 'incident', kind: 'unsigned-passage', wallet: wallet.publicKeyHex, amountMinor: FARES.maxFareMinor } } });
    expect(store.get(incident.requestId)!.amountMinor).toBe(0);
    const reported = await eventually(() => site.hub.incidents({ wallet: wallet.publicKeyHex })[0], 8000, 'incident at the hub');
    expect(reported).toMatchObject({ requestId: incident.requestId, terminalId: gateOut.terminalId, kind: 'unsigned-passage', amountMinor: FARES.maxFareMinor, currency: 'EUR' });
    await eventually(() => store.get(incident.requestId)?.state === 'done', 8000, 'report answered');
    // The exposure is counted durably in the terminal store, apart from the outbox.
    expect(JSON.parse(store.getKv('unsigned-passages') ?? '[]')).toContainEqual(expect.objectContaining({ wallet: wallet.publicKeyHex, amountMinor: FARES.maxFareMinor }));
    // The runtime's limits count it: the same wallet's next exit is not decided locally.
    const next = await pass(gateOut, wallet);
    const order = next.commands.map((c) => c.c);
    expect(next.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: false, amountMinor: FARES.maxFareMinor });
    expect(order.indexOf('gate.open')).toBeGreaterThan(order.indexOf('hub.request')); // opened on the hub's approval
    expect(order).not.toContain('incident');
    await eventually(async () => (await site.balance(wallet)) === 1000 - FARES.maxFareMinor, 8000, 'fare settled');
  });

  it('a fare the hub refuses after the gate opened on its own decision (a replayed entry record) stays counted against the wallet: its next exit waits for the hub', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 5000 });
    // Another exit of the same station: the gate that took the record remembers it, this one cannot.
    const otherExit = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit' } });
    const store = otherExit.started.store;
    await pass(gateIn, wallet);
    const entry = admissions(wallet)[0]!.bytes;
    await pass(gateOut, wallet);
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'first trip settled');
    wallet.applet.records.store(RecordKind.Admission, entry, true); // a modified wallet keeps a copy
    const replay = await pass(otherExit, wallet);
    expect(replay.opened).toBe(true);
    const request = replay.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    expect(request).toMatchObject({ offline: true, amountMinor: TRIP_MINOR });
    await eventually(() => store.get(request.requestId)?.state === 'done', 8000, 'refusal stored');
    expect(JSON.parse(store.getKv('unsigned-passages') ?? '[]')).toContainEqual(expect.objectContaining({ requestId: request.requestId, wallet: wallet.publicKeyHex, amountMinor: TRIP_MINOR, inOutbox: true }));
    expect(await site.balance(wallet)).toBe(1000 - TRIP_MINOR);
    const next = await pass(otherExit, wallet);
    const order = next.commands.map((c) => c.c);
    expect(next.commands.find((c) => c.c === 'hub.request')).toMatchObject({ offline: false });
    expect(order.indexOf('gate.open')).toBeGreaterThan(order.indexOf('hub.request'));
  });

  it('a forged admission record (signed by the customer, even claiming a ticket) is no record: no free exit, the maximum fare is settled', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const forger = generateKeyPair();
    for (const terminalId of [gateIn.terminalId, 'no-such-gate']) {
      const forged = signMessage('gate.admission', { recordId: newChallenge(), wallet: wallet.publicKeyHex, terminalId, station: 'north', time: Date.now() - 60_000, ticketId: newChallenge() }, forger.secretKey);
      wallet.applet.records.store(RecordKind.Admission, encodeMessage(forged), true);
      const before = await site.balance(wallet);
      const exit = await pass(gateOut, wallet);
      expect(exit.displays).not.toContain('goodbye (ticket)');
      expect(exit.commands.find((c) => c.c === 'hub.request')).toMatchObject({ amountMinor: FARES.maxFareMinor, op: { type: 'fare', entry: null } });
      await eventually(async () => (await site.balance(wallet)) === before - FARES.maxFareMinor, 8000, 'maximum fare settled');
      // Gone from the wallet: left there it would keep the next entry refused as "already inside".
      expect(wallet.applet.records.list(RecordKind.Admission)).toEqual([]);
    }
  });

  it('card pulled at the exit while a fare waits for the wallet (no offline credit): the barrier stays shut', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 0 });
    const pull = (c: Command) => {
      if (c.c === 'nfc.authorize') gateOut.pullOnNextExchange();
    };
    gateOut.runtime.on('command', pull);
    const exit = await pass(gateOut, wallet);
    gateOut.runtime.off('command', pull);
    expect(exit.opened).toBe(false);
    expect(exit.commands.map((c) => c.c)).not.toContain('hub.request');
  });

  it('bad wallet signature at the exit (fare waiting for the wallet): stays shut', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 0 });
    const exit = await pass(gateOut, badSignatureCard(wallet));
    expect(exit.opened).toBe(false);
    expect(exit.displays.some((d) => d.includes('BAD_SIGNATURE'))).toBe(true);
  });

  it('a customer who stands in the beam past the passage window is through: reported passed, the paid exit kept while the barrier was open is used up (nor refunded later)', async () => {
    const slowWalk = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit', passageTimeoutMs: 500 } });
    const wallet = await site.wallet({ balanceMinor: 1000 });
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    // The machine's own window is 0.5 s + 2 s: in the beam from 0.3 s until 3.3 s.
    slowWalk.nextVisitor({ kind: 'linger', walkInMs: 300, blockedMs: 3000 });
    const exit = await pass(slowWalk, wallet);
    expect(exit.opened).toBe(true);
    expect(exit.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'passed' });
    // Kept before the barrier opened (a power cut then must not charge again), used up at the passage.
    expect(exit.commands.filter((c) => c.c === 'paidExit.grant')).toHaveLength(1);
    expect(exit.commands.map((c) => c.c)).toContain('paidExit.consume');
    expect(slowWalk.started.store.getKv(`paid-exit.${wallet.publicKeyHex}`)).toBeUndefined();
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'fare settled');
  });

  it('a power cut while the barrier is open for a hub-approved fare: after the restart the customer leaves as paid, charged once', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-gate-cut-'));
    const exit = await site.terminal({ kind: 'gate', merchantId: 'transit', terminalId: 'gate-cut', gate: { station: 'south', mode: 'exit' }, dataDir });
    let again: SimulatedTerminal | undefined;
    try {
      const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 0 }); // the exit waits for the hub
      expect((await pass(gateIn, wallet)).opened).toBe(true);
      const store = exit.started.store;
      const setKv = store.setKv.bind(store);
      let cut = false;
      store.setKv = (key, value) => {
        setKv(key, value);
        if (!key.startsWith('paid-exit.')) return;
        cut = true;
        exit.runtime.simulatePowerCut(); // the grant is on disk; nothing more runs
      };
      exit.nextVisitor({ kind: 'nobody' });
      exit.tap(wallet);
      await eventually(() => cut, 8000, 'hub approval, grant kept');
      exit.remove();
      await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'fare settled');
      await exit.close({ keepData: true });
      again = await startSimulatedTerminal({ kind: 'gate', hubUrl: site.url, hub: site.hub, terminalId: 'gate-cut', merchantId: 'transit', gate: { station: 'south', mode: 'exit' }, dataDir });
      await eventually(() => again!.runtime.isOnline, 8000, 'restarted gate online');
      const after = await pass(again, wallet);
      expect(after.opened).toBe(true);
      expect(after.displays).toContain('paid — goodbye');
      expect(after.commands.map((c) => c.c)).not.toContain('hub.request');
      expect(await site.balance(wallet)).toBe(1000 - TRIP_MINOR);
    } finally {
      await again?.close();
      await exit.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a tap while the barrier is still open for the last decision is refused, not decided (its admit would fail, or take the last passage for its own)', async () => {
    // Someone stands in the beam for 4 s; the gate counts them through after 1 s (inPassageMaxMs),
    // while the barrier stays open for them.
    const lazy = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit', passageTimeoutMs: 500, inPassageMaxMs: 1000 } });
    const [first, second] = [await site.wallet({ balanceMinor: 1000 }), await site.wallet({ balanceMinor: 1000 })];
    for (const w of [first, second]) expect((await pass(gateIn, w)).opened).toBe(true);
    lazy.nextVisitor({ kind: 'linger', walkInMs: 100, blockedMs: 4000 });
    const through = await pass(lazy, first);
    expect(through.opened).toBe(true);
    expect(through.commands.find((c) => c.c === 'receipt')).toMatchObject({ outcome: 'passed' });
    expect(lazy.runtime.machineState.s).toBe('idle');
    const early = await pass(lazy, second);
    expect(early.opened).toBe(false);
    expect(early.displays).toContain('please wait');
    await eventually(() => lazy.started.hardware.devices.gate?.isOpen === false, 8000, 'barrier closed');
    expect((await pass(lazy, second)).opened).toBe(true);
  });

  it('hub down: entry and exit still work on the local policy; the fare settles when the hub is back', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const url = await site.stopServer();
    try {
      await eventually(() => !gateOut.runtime.isOnline && !gateIn.runtime.isOnline, 5000, 'offline');
      expect((await pass(gateIn, wallet)).opened).toBe(true);
      const exit = await pass(gateOut, wallet);
      expect(exit.opened).toBe(true);
      expect(gateOut.started.store.openCount()).toBe(1);
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => gateOut.started.store.openCount() === 0, 15_000, 'outbox forwarded');
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'fare settled');
  });

  it('hub answers after the exit gave up: no second charge — the retry waits, then the wallet leaves as paid', async () => {
    const slowExit = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit' }, config: { hub: { timeoutMs: 500, retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 0 });
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    site.faults.delayMs = 1500;
    try {
      const first = await pass(slowExit, wallet);
      expect(first.opened).toBe(false);
      expect(first.commands.map((c) => c.c)).toContain('hub.abandon');
      // Tapping again at once: the first fare may still settle, so no second request.
      const again = await pass(slowExit, wallet);
      expect(again.opened).toBe(false);
      expect(again.commands.map((c) => c.c)).not.toContain('hub.request');
      expect(again.displays).toContain('previous payment still pending — please wait');
      await eventually(() => slowExit.started.store.openCount() === 0, 8000, 'late answer');
    } finally {
      site.faults.delayMs = 0;
    }
    // The hub claimed the entry record, still on the wallet, for this fare: no other exit can
    // charge it again, so the grant is not refunded if it goes unused.
    const grant = JSON.parse(slowExit.started.store.getKv(`paid-exit.${wallet.publicKeyHex}`)!) as { requestId: string };
    // It rests on that record (the tap below opens only if the stored record id is the wallet's).
    expect(grant).toMatchObject({ kind: 'fare', refundable: false, onRecord: expect.any(String) });
    const paid = await pass(slowExit, wallet);
    expect(paid.opened).toBe(true);
    expect(paid.commands.map((c) => c.c)).not.toContain('hub.request');
    // The exit made at last on that fare is reported, as any fare's is.
    expect(paid.commands.find((c) => c.c === 'receipt')).toEqual({ c: 'receipt', requestId: grant.requestId, outcome: 'passed' });
    // Used up once the customer was through.
    expect(slowExit.started.store.getKv(`paid-exit.${wallet.publicKeyHex}`)).toBeUndefined();
    expect(admissions(wallet)).toHaveLength(0);
    expect(await site.balance(wallet)).toBe(1000 - TRIP_MINOR);
  });

  it('hub answers after the exit gave up, no entry record: the customer pays again at another gate, and the grant left unused is refunded when it expires', async () => {
    const slowExit = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit' }, config: { hub: { timeoutMs: 500, retryMs: 150 } } });
    const wallet = await site.wallet({ balanceMinor: 2000, offlineLimitMinor: 0 });
    site.faults.delayMs = 1500;
    try {
      expect((await pass(slowExit, wallet)).opened).toBe(false);
      await eventually(() => slowExit.started.store.openCount() === 0, 8000, 'late answer');
    } finally {
      site.faults.delayMs = 0;
    }
    const key = `paid-exit.${wallet.publicKeyHex}`;
    const grant = JSON.parse(slowExit.started.store.getKv(key)!) as { requestId: string; refundable: boolean; timeMs: number };
    expect(grant.refundable).toBe(true);
    // Out through the other gate, which knows nothing of the first fare: charged there.
    expect((await pass(gateOut, wallet)).opened).toBe(true);
    await eventually(async () => (await site.balance(wallet)) === 2000 - 2 * FARES.maxFareMinor, 8000, 'charged at the other gate');
    // Hours later (staged: the grant made 4 h ago), the slow gate restarts and its start-up pruning ends the grant.
    slowExit.started.store.setKv(key, JSON.stringify({ ...grant, timeMs: Date.now() - 4 * 3600_000 }));
    await slowExit.close({ keepData: true });
    const again = await startTerminal(slowExit.config, { log: pino({ level: 'silent' }) });
    try {
      expect(again.store.getKv(key)).toBeUndefined();
      await eventually(async () => (await site.balance(wallet)) === 2000 - FARES.maxFareMinor, 8000, 'the unused fare refunded');
      await eventually(() => again.store.getReceipt(grant.requestId)?.acknowledged === true, 8000, 'receipt acknowledged');
      expect(again.store.getReceipt(grant.requestId)!.envelope).toContain('paid exit unused');
    } finally {
      await again.close();
      rmSync(slowExit.dataDir, { recursive: true, force: true });
    }
  });
});

// A finished trip's admission record left on the wallet because the exit could not delete it (the
// card pulled during "checking…" while a fare waited for the hub; a ticket trip's exit whose delete
// failed): the next entry, online, asks the hub whether an exit consumed it and admits with a fresh
// record; offline it is refused "already inside", as before.
describe('gate terminals end to end: a consumed record the exit could not delete', () => {
  let site: Site;
  let gateIn: SimulatedTerminal;
  let gateOut: SimulatedTerminal;
  let pos: SimulatedTerminal;

  beforeAll(async () => {
    site = await Site.start();
    gateIn = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'north', mode: 'entry' } });
    gateOut = await site.terminal({ kind: 'gate', merchantId: 'transit', gate: { station: 'south', mode: 'exit' } });
    pos = await site.terminal({ kind: 'pos', merchantId: 'merchant-pos', config: { pos: { operators: OPERATORS } } });
  });
  afterAll(async () => {
    await site?.close();
  });

  const recordIds = (w: SimulatedWallet): string[] =>
    admissions(w).map((r) => {
      const d = decodeAnyForm(r.bytes, 'gate.admission');
      if (!d.ok) throw new Error(d.code);
      return d.value.body.recordId;
    });

  /** In at the entrance, out at the exit on a fare the hub must approve, the card pulled during "checking…": the record stays. */
  async function leftWithRecordOnWallet(): Promise<{ wallet: SimulatedWallet; recordId: string }> {
    const wallet = await site.wallet({ balanceMinor: 1000, offlineLimitMinor: 0 }); // the exit waits for the hub
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const [recordId] = recordIds(wallet);
    const log = record(gateOut);
    site.faults.delayMs = 400;
    try {
      gateOut.tap(wallet);
      await eventually(() => log.displays.includes('checking…'), 8000, 'exit waiting for the hub');
      gateOut.remove(); // the customer pulls the card while the fare waits
      await eventually(() => log.commands.some((c) => c.c === 'gate.open'), 8000, 'hub approval opens the barrier');
      await eventually(() => gateOut.runtime.machineState.s === 'idle', 12_000, 'exit idle');
      await gateOut.runtime.settle();
    } finally {
      site.faults.delayMs = 0;
      log.stop();
    }
    await sleep(60);
    // Charged once, passed, and the record of the finished trip is still on the wallet.
    await eventually(async () => (await site.balance(wallet)) === 1000 - TRIP_MINOR, 8000, 'fare settled');
    expect(log.commands).toContainEqual(expect.objectContaining({ c: 'receipt', outcome: 'passed' }));
    expect(recordIds(wallet)).toEqual([recordId]);
    return { wallet, recordId: recordId! };
  }

  it('fare approved while the card was pulled: the next entry online asks the hub and admits with a fresh record; offline the same entry is refused "already inside"', async () => {
    const online = await leftWithRecordOnWallet();
    const offline = await leftWithRecordOnWallet();

    const entry = await pass(gateIn, online.wallet);
    expect(entry.opened).toBe(true);
    expect(entry.displays).toContain('checking…');
    expect(entry.commands.find((c) => c.c === 'hub.ask')).toMatchObject({ op: { type: 'admission.check', entry: { body: { recordId: online.recordId } } } });
    const written = entry.commands.find((c) => c.c === 'nfc.storeAdmission') as Extract<Command, { c: 'nfc.storeAdmission' }>;
    // The fresh record replaced the old one on the wallet; no money moved for the question.
    expect(recordIds(online.wallet)).toEqual([written.body.recordId]);
    expect(written.body.recordId).not.toBe(online.recordId);
    expect(await site.balance(online.wallet)).toBe(1000 - TRIP_MINOR);
    // The question was never put in the outbox.
    expect(gateIn.started.store.get(entry.commands.find((c) => c.c === 'hub.ask')!.requestId)).toBeUndefined();

    const url = await site.stopServer();
    try {
      await eventually(() => !gateIn.runtime.isOnline, 8000, 'entrance offline');
      const refused = await pass(gateIn, offline.wallet);
      expect(refused.opened).toBe(false);
      expect(refused.displays).toContain('already inside');
      expect(refused.commands.map((c) => c.c)).not.toContain('hub.ask');
      expect(recordIds(offline.wallet)).toEqual([offline.recordId]);
    } finally {
      await site.restartServer(url);
    }
    await eventually(() => gateIn.runtime.isOnline, 8000, 'entrance online again');
    // Back online, the same wallet is let in.
    expect((await pass(gateIn, offline.wallet)).opened).toBe(true);
  });

  it('a record no exit consumed (still travelling, or passed back over the barrier): asked online, refused "already inside"', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const again = await pass(gateIn, wallet);
    expect(again.opened).toBe(false);
    expect(again.commands.map((c) => c.c)).toContain('hub.ask');
    expect(again.displays).toContain('already inside');
  });

  it('a ticket trip\'s exit is reported; its record left on the wallet is then no bar to the next entry online', async () => {
    const wallet = await site.wallet({ balanceMinor: 1000 });
    const log = record(pos);
    await pos.runtime.sellTicket('day');
    pos.tap(wallet);
    await eventually(() => log.commands.find((c) => c.c === 'print') && log.commands.at(-2)?.c === 'nfc.release', 8000, 'ticket receipt');
    await eventually(() => pos.runtime.machineState.s === 'idle');
    pos.remove();
    log.stop();
    expect((await pass(gateIn, wallet)).opened).toBe(true);
    const [onWallet] = admissions(wallet);
    const leftover = onWallet!.bytes.slice();
    const exit = await pass(gateOut, wallet);
    expect(exit.opened).toBe(true);
    const report = exit.commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    expect(report).toMatchObject({ offline: true, amountMinor: 0, op: { type: 'ticket.exit', exitStation: 'south' } });
    await eventually(() => gateOut.started.store.get(report.requestId)?.state === 'done', 8000, 'ticket exit recorded by the hub');
    // The delete did not reach the wallet (written back here): the finished trip's record is on it.
    wallet.applet.records.store(RecordKind.Admission, leftover, true);
    const entry = await pass(gateIn, wallet);
    expect(entry.opened).toBe(true);
    expect(entry.commands.map((c) => c.c)).toContain('hub.ask');
    expect(admissions(wallet)).toHaveLength(1);
    expect(await site.balance(wallet)).toBe(500);
  });
});
