/**
 * With an external broker the broker can be up while the hub is down: the terminal follows the
 * hub's retained presence (its will says offline), decides offline meanwhile instead of waiting
 * for answers that cannot come, and forwards its outbox when the hub is back. The real terminal
 * hub client against a real aedes broker on a free port, the hub's presence published as the hub does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeMessage, generateKeyPair, newRequestId, signMessage, toHex, topics } from '../../protocol/index.ts';
import { HubClient } from '../../terminal/hub/hub-client.ts';
import { TerminalStore } from '../../terminal/store/terminal-store.ts';
import { captureLogger, eventually, makeTerminal } from '../mqtt/fixtures.ts';

/** The real terminal hub client; `online` records every change it reports. */
function terminalClient(url: string, terminalId: string, store: TerminalStore, online: boolean[], retryMs = 60_000, hubDownProbeMs = 60_000): HubClient {
  const terminal = makeTerminal(terminalId);
  return new HubClient({
    hubDownProbeMs,
    url,
    terminalId,
    secretKey: terminal.keys.secretKey,
    store,
    log: captureLogger().logger,
    clock: Date.now,
    retryMs,
    reconnectPeriodMs: 100,
    onReply: () => undefined,
    onAnnouncement: () => undefined,
    onOnlineChange: (up) => online.push(up),
  });
}

describe("the hub's presence on the terminal", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-hub-presence-'));
  let broker: Aedes | undefined;
  let server: Server | undefined;
  let client: HubClient | undefined;
  let store: TerminalStore | undefined;
  afterAll(async () => {
    await client?.close();
    store?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('is offline while the hub is down behind a live broker, and forwards its outbox when the hub is back', async () => {
    broker = await Aedes.createBroker();
    server = createServer(broker.handle);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const hubPresence = (state: 'online' | 'offline') =>
      new Promise<void>((resolve, reject) =>
        broker!.publish({ cmd: 'publish', topic: topics.hubPresence, payload: Buffer.from(JSON.stringify({ v: 1, state, time: Date.now() })), qos: 1, retain: true, dup: false }, (err) => (err ? reject(err) : resolve())),
      );
    const requests: string[] = [];
    const receipts: string[] = [];
    const terminalStates: string[] = [];
    broker.subscribe(topics.allRequests, (packet, cb) => (requests.push(Buffer.from(packet.payload).toString('utf8')), cb()), () => undefined);
    broker.subscribe(topics.allReceipts, (packet, cb) => (receipts.push(Buffer.from(packet.payload).toString('utf8')), cb()), () => undefined);
    broker.subscribe(topics.allPresence, (packet, cb) => (terminalStates.push((JSON.parse(Buffer.from(packet.payload).toString('utf8')) as { state: string }).state), cb()), () => undefined);
    await hubPresence('offline'); // the hub's will, retained: the hub is down

    store = TerminalStore.open(join(dir, 'terminal.db'));
    const online: boolean[] = [];
    // Re-sends every 50 ms, were they allowed while the hub is down.
    client = terminalClient(url, 'vend-1', store, online, 50);
    // Connected and subscribed (its own presence, published after subscribing, is out), yet offline: the hub is down.
    await eventually(() => terminalStates.includes('online'));
    expect(client.online).toBe(false);
    expect(online).toEqual([]);

    // An offline sale queued and sent meanwhile waits in the outbox, unsent and uncounted (through
    // a dozen retry intervals), and goes out once when the hub is back.
    const requestId = newRequestId();
    const envelope = `{"offline-sale":"${requestId}"}`;
    store.enqueue({ requestId, envelope, wallet: null, amountMinor: 250, local: true, createdMs: Date.now() });
    client.send(requestId, envelope);
    // A receipt made meanwhile (of an earlier, settled request) waits as well.
    const settledId = newRequestId();
    store.enqueue({ requestId: settledId, envelope: '{}', wallet: null, amountMinor: 100, local: true, createdMs: Date.now() - 1000 });
    store.complete(settledId, '{}', { envelope: `{"receipt":"${settledId}"}` });
    client.publishReceipt(settledId, `{"receipt":"${settledId}"}`);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(store.get(requestId)?.attempts).toBe(0);
    expect(receipts).toEqual([]);
    await hubPresence('online');
    await eventually(() => online.at(-1) === true);
    expect(client.online).toBe(true);
    await eventually(() => requests.includes(envelope));
    await eventually(() => receipts.includes(`{"receipt":"${settledId}"}`));
    client.receiptAcknowledged(settledId);
    store.complete(requestId, '{}'); // answered: no more re-sends
    // Every send counted reached the broker, and none was counted while the hub was down.
    await eventually(() => requests.filter((r) => r === envelope).length === store!.get(requestId)!.attempts);
    expect(store.get(requestId)!.attempts).toBeLessThanOrEqual(2);

    await hubPresence('offline');
    await eventually(() => online.at(-1) === false);
    expect(client.online).toBe(false);
    expect(online).toEqual([true, false]);
  });

  it('with a stale "offline" presence and the hub up, probes with its oldest request and goes online when the hub answers it', async () => {
    const stale = await Aedes.createBroker();
    const staleServer = createServer(stale.handle);
    await new Promise<void>((resolve) => staleServer.listen(0, '127.0.0.1', resolve));
    // The hub left an "offline" retained (a hub from before presence is running now, say), and answers requests.
    await new Promise<void>((resolve, reject) =>
      stale.publish({ cmd: 'publish', topic: topics.hubPresence, payload: Buffer.from(JSON.stringify({ v: 1, state: 'offline', time: Date.now() })), qos: 1, retain: true, dup: false }, (err) => (err ? reject(err) : resolve())),
    );
    const hubKey = generateKeyPair();
    const probes: string[] = [];
    stale.subscribe(
      topics.allRequests,
      (packet, cb) => {
        const requestId = (JSON.parse(Buffer.from(packet.payload).toString('utf8')) as { requestId: string }).requestId;
        probes.push(requestId);
        const body = { requestId, terminalId: 'vend-3', status: 'approved' as const, withdrawal: 'none' as const, amountMinor: 0, currency: 'EUR', time: Date.now(), hubKey: toHex(hubKey.publicKey) };
        const reply = Buffer.from(encodeMessage(signMessage('settlement.result', body, hubKey.secretKey)));
        stale.publish({ cmd: 'publish', topic: topics.reply('vend-3'), payload: reply, qos: 1, retain: false, dup: false }, () => cb());
      },
      () => undefined,
    );
    const staleStore = TerminalStore.open(join(dir, 'terminal-stale.db'));
    const [older, newer] = [newRequestId(), newRequestId()];
    staleStore.enqueue({ requestId: older, envelope: JSON.stringify({ requestId: older }), wallet: null, amountMinor: 100, local: true, createdMs: Date.now() - 2000 });
    staleStore.enqueue({ requestId: newer, envelope: JSON.stringify({ requestId: newer }), wallet: null, amountMinor: 100, local: true, createdMs: Date.now() - 1000 });
    const online: boolean[] = [];
    const staleClient = terminalClient(`mqtt://127.0.0.1:${(staleServer.address() as AddressInfo).port}`, 'vend-3', staleStore, online, 1000, 300);
    try {
      await eventually(() => online.at(-1) === true);
      // The probe carried the oldest request, uncounted; once it was answered the outbox went out
      // (the oldest again, counted this time).
      expect(probes[0]).toBe(older);
      await eventually(() => probes.includes(newer));
      expect(staleStore.get(older)?.attempts).toBe(1);
      expect(staleClient.online).toBe(true);
    } finally {
      await staleClient.close();
      staleStore.close();
      await new Promise<void>((resolve) => staleServer.close(() => resolve()));
      await new Promise<void>((resolve) => stale.close(() => resolve()));
    }
  });

  it("goes by its connection alone when the broker refuses the hub's presence topic (an ACL from before it)", async () => {
    const old = await Aedes.createBroker();
    // The older ACL: the hub's presence topic is refused (SUBACK 0x80), the rest granted.
    old.authorizeSubscribe = (_client, sub, done) => done(null, sub.topic === topics.hubPresence ? null : sub);
    const oldServer = createServer(old.handle);
    await new Promise<void>((resolve) => oldServer.listen(0, '127.0.0.1', resolve));
    const oldStore = TerminalStore.open(join(dir, 'terminal-old.db'));
    const online: boolean[] = [];
    const oldClient = terminalClient(`mqtt://127.0.0.1:${(oldServer.address() as AddressInfo).port}`, 'vend-2', oldStore, online);
    try {
      await eventually(() => online.at(-1) === true);
      expect(oldClient.online).toBe(true);
    } finally {
      await oldClient.close();
      oldStore.close();
      await new Promise<void>((resolve) => oldServer.close(() => resolve()));
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
  });
});
