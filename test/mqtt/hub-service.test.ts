/**
 * The MQTT hub in front of the REAL settlement service and ledger (hub/service createHub: registry,
 * SQLite ledger with synchronous=FULL, rules), with the worker-thread verifier plugged in.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttClient } from 'mqtt';
import { decodeAndVerify, makeConnectToken, signMessage, encodeMessage, topics } from '../../protocol/index.ts';
import { createHub, type Hub } from '../../hub/service/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { noDelayStreamBuilder } from '../../hub/mqtt/no-delay-stream.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import { makePurchaseRequest, nodeSigningKey, type PurchaseParty } from '../../simulators/load/purchase-request.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { captureLogger, eventually } from './fixtures.ts';

describe('hub over MQTT with the real settlement service', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-mqtt-service-'));
  const { logger, records } = captureLogger();
  let hub: Hub;
  let server: HubServer;
  let party: PurchaseParty;
  let terminalSecret: Uint8Array;
  let client: TerminalClient;
  let counter = 0;

  beforeAll(async () => {
    hub = await createHub({ dataDir: dir, verifier: new WorkerVerifier({ workers: 2 }), holdReleaseIntervalMs: 0 });
    hub.importCatalog({ merchantId: 'canteen', articles: [{ sku: 'coffee', name: 'Coffee', priceMinor: 250, currency: 'EUR' }] });
    const enrolled = await hub.enrollTerminal({ terminalId: 'pos-1', kind: 'pos', merchantId: 'canteen' });
    terminalSecret = enrolled.keyPair!.secretKey;
    const wallet = await hub.registerWallet({});
    await hub.topUp({ wallet: wallet.license.body.wallet, amountMinor: 1000, operatorId: 'op-1' });
    party = {
      terminalId: 'pos-1',
      merchantId: 'canteen',
      terminalKey: nodeSigningKey(terminalSecret),
      walletPublicKeyHex: wallet.license.body.wallet,
      walletKey: nodeSigningKey(wallet.keyPair!.secretKey),
      license: wallet.license,
    };
    server = await createHubServer({ service: hub, directory: hub, logger });
    client = await connectTerminal({ url: server.url, terminalId: 'pos-1', secretKey: terminalSecret, subscribeAnnouncements: true });
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const buy = (qty = 1) => makePurchaseRequest(party, { lines: [{ sku: 'coffee', qty, unitMinor: 250 }], currency: 'EUR', counter: ++counter, nowMs: Date.now() });

  it('settles a signed purchase and answers with a result signed by the hub key', async () => {
    const req = buy();
    const reply = decodeAndVerify(await client.request(req.bytes, req.requestId), 'settlement.result', hub.hubPublicKey);
    expect(reply.ok && reply.value.body).toMatchObject({ requestId: req.requestId, status: 'approved', withdrawal: 'complete', amountMinor: 250, currency: 'EUR' });
  });

  it('answers a redelivered request with the original result, and settles it once', async () => {
    const req = buy();
    const [a, b] = await Promise.all([client.request(req.bytes, req.requestId), new Promise<void>((r) => setTimeout(r, 1)).then(() => client.request(req.bytes, req.requestId))]);
    const c = await client.request(req.bytes, req.requestId);
    expect(Buffer.compare(a, c)).toBe(0);
    expect(Buffer.compare(b, c)).toBe(0);
    const account = await hub.showAccount(party.walletPublicKeyHex);
    expect(account?.account.balanceMinor).toBe(1000 - 2 * 250);
  });

  it('requests published together reach the engine together: one group commit for many', async () => {
    // A second funded wallet so this test doesn't depend on the balance left by the others.
    const wallet = await hub.registerWallet({});
    await hub.topUp({ wallet: wallet.license.body.wallet, amountMinor: 100_000, operatorId: 'op-1' });
    const rich: PurchaseParty = { ...party, walletPublicKeyHex: wallet.license.body.wallet, walletKey: nodeSigningKey(wallet.keyPair!.secretKey), license: wallet.license };
    const before = hub.engine.stats;
    const reqs = Array.from({ length: 40 }, (_, i) => makePurchaseRequest(rich, { lines: [{ sku: 'coffee', qty: 1, unitMinor: 250 }], currency: 'EUR', counter: i + 1, nowMs: Date.now() }));
    const replies = await Promise.all(reqs.map((r) => client.request(r.bytes, r.requestId)));
    expect(replies.every((r) => { const d = decodeAndVerify(r, 'settlement.result', hub.hubPublicKey); return d.ok && d.value.body.status === 'approved'; })).toBe(true);
    const after = hub.engine.stats;
    expect(after.commands - before.commands).toBeGreaterThanOrEqual(40);
    // Far fewer transactions than requests: the MQTT layer hands them over concurrently.
    expect(after.batches - before.batches).toBeLessThan(10);
    expect(after.largestBatch).toBeGreaterThan(1);
  });

  it('declines with a signed INSUFFICIENT_FUNDS and a signed error for garbage', async () => {
    const req = buy(3);
    const reply = decodeAndVerify(await client.request(req.bytes, req.requestId), 'settlement.result', hub.hubPublicKey);
    expect(reply.ok && reply.value.body).toMatchObject({ status: 'declined', code: 'INSUFFICIENT_FUNDS', withdrawal: 'none' });
    const errors: Buffer[] = [];
    client.onReply((p) => errors.push(p));
    await client.client.publishAsync(topics.request('pos-1'), Buffer.from('[]'), { qos: 1 });
    const err = await eventually(() => errors.map((e) => decodeAndVerify(e, 'error', hub.hubPublicKey)).find((d) => d.ok));
    expect(err.ok && err.value.body.code).toBe('MALFORMED');
  });

  it('publishes the hub-signed announcements retained', async () => {
    const keys = await eventually(() => client.announcements().get(topics.announce('keys')));
    const decoded = decodeAndVerify(keys, 'announce.keys', hub.hubPublicKey);
    expect(decoded.ok && decoded.value.body.hubKeys[0]!.publicKey).toBe(hub.hubPublicKey);
  });

  it('answers a completion receipt with a hub-signed acknowledgement, once recorded', async () => {
    const req = buy();
    await client.request(req.bytes, req.requestId);
    const acks: Buffer[] = [];
    client.onReply((payload) => acks.push(payload));
    const receipt = signMessage('completion.receipt', { requestId: req.requestId, terminalId: 'pos-1', outcome: 'delivered', time: Date.now() }, terminalSecret);
    await client.publishReceipt(encodeMessage(receipt));
    const ackOf = (n: number) => eventually(() => acks.map((a) => decodeAndVerify(a, 'receipt.ack', hub.hubPublicKey)).filter((d) => d.ok)[n]);
    const first = await ackOf(0);
    expect(first.ok && first.value.body).toMatchObject({ requestId: req.requestId, terminalId: 'pos-1', status: 'recorded' });
    // The same receipt again (the terminal re-sends until acknowledged): recorded once.
    await client.publishReceipt(encodeMessage(receipt));
    const second = await ackOf(1);
    expect(second.ok && second.value.body).toMatchObject({ requestId: req.requestId, status: 'duplicate' });
  });

  it('on revocation closes the open session, refuses CONNECT, and says so in the announcements', async () => {
    const closed = new Promise<void>((resolve) => client.client.stream.once('close', () => resolve()));
    client.client.options.reconnectPeriod = 0;
    hub.revokeTerminal('pos-1');
    await closed;
    expect(records.some((r) => r.msg === 'mqtt: session closed' && r.terminalId === 'pos-1' && r.reason === 'REVOKED')).toBe(true);
    const code = await new Promise<number | 'accepted'>((resolve) => {
      const c = new MqttClient(noDelayStreamBuilder(server.url), { protocolVersion: 4, clientId: 'pos-1', username: 'pos-1', password: makeConnectToken('pos-1', terminalSecret, Date.now()), reconnectPeriod: 0, clean: false });
      c.once('connect', () => (c.end(true), resolve('accepted')));
      c.once('error', (e: Error & { code?: number }) => (c.end(true), resolve(e.code ?? -1)));
    });
    expect(code).toBe(5);
    const keys = hub.announcements().find((a) => a.topic === topics.announce('keys'))!;
    const decoded = decodeAndVerify(keys.payload, 'announce.keys', hub.hubPublicKey);
    expect(decoded.ok && decoded.value.body.revokedTerminals).toContain('pos-1');
  });
});
