/**
 * A connect token is single use, but the embedded broker remembers used nonces in memory only:
 * a token captured on the wire must not be accepted again by the hub after a restart (it refuses
 * tokens dated before its start), while a terminal that reconnects — a fresh token per attempt —
 * gets in at once. Real aedes, the same directory and port for both hub instances.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeConnectToken } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal, purchase, purchaseParty, tryConnect } from './fixtures.ts';

const terminal = makeTerminal('pos-restart');
const directory = new MemoryDirectory();
directory.add(terminal);
const handler = new TestSettlementHandler(directory, inlineVerifier);

describe('connect tokens across a hub restart (embedded broker)', () => {
  const open: HubServer[] = [];
  let client: TerminalClient | undefined;
  afterEach(async () => {
    await client?.close({ graceful: false }).catch(() => {});
    client = undefined;
    for (const hub of open.splice(0)) await hub.close();
  });

  it('a token accepted by the hub before its restart is refused after it; a fresh one is accepted, and a connected terminal reconnects', async () => {
    const { logger, records } = captureLogger();
    const first = await createHubServer({ service: handler, directory, logger });
    open.push(first);
    const captured = makeConnectToken(terminal.terminalId, terminal.keys.secretKey, Date.now());
    expect(await tryConnect(first.url, terminal.terminalId, captured)).toBe('accepted');
    expect(await tryConnect(first.url, terminal.terminalId, captured)).toBe(5); // single use

    // A terminal connected through the restart: it reconnects every 100 ms with a new token each time.
    client = await connectTerminal({ url: first.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, reconnectPeriodMs: 100 });
    let reconnected = false;
    client.client.on('connect', () => (reconnected = true));
    const port = first.port!;
    await first.close();
    open.splice(0);
    // Started later (the token's millisecond is over), with the same directory, on the same port.
    const capturedAt = Number(captured.split('.')[1]);
    while (Date.now() <= capturedAt) await new Promise((r) => setTimeout(r, 1));
    const second = await createHubServer({ service: handler, directory, logger, port });
    open.push(second);

    await eventually(() => reconnected, 5000);
    const req = purchase(purchaseParty(terminal));
    expect((await client.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
    await client.close();
    client = undefined;

    const refusals = () => records.filter((r) => r['msg'] === 'mqtt: CONNECT refused' && r['terminalId'] === terminal.terminalId && r['reason'] === 'BEFORE_START').length;
    expect(refusals()).toBe(0);
    expect(await tryConnect(second.url, terminal.terminalId, captured)).toBe(5);
    expect(refusals()).toBe(1);
    expect(await tryConnect(second.url, terminal.terminalId, makeConnectToken(terminal.terminalId, terminal.keys.secretKey, Date.now()))).toBe('accepted');
  });

  it('a reconnect refused as BEFORE_START (its token made before the hub started: a busy terminal stalled between making it and connecting) is retried with a fresh token', async () => {
    const { logger, records } = captureLogger();
    const first = await createHubServer({ service: handler, directory, logger });
    open.push(first);
    let lagMs = 0;
    client = await connectTerminal({ url: first.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, reconnectPeriodMs: 100, clock: () => Date.now() - lagMs });
    let reconnected = false;
    client.client.on('connect', () => (reconnected = true));
    const port = first.port!;
    await first.close();
    open.splice(0);
    lagMs = 60_000; // every token it makes now is dated before the next hub's start
    const second = await createHubServer({ service: handler, directory, logger, port });
    open.push(second);
    const refused = () => records.some((r) => r['msg'] === 'mqtt: CONNECT refused' && r['terminalId'] === terminal.terminalId && r['reason'] === 'BEFORE_START');
    await eventually(refused, 5000);
    lagMs = 0;
    await eventually(() => reconnected, 5000);
    const req = purchase(purchaseParty(terminal));
    expect((await client.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
  });
});
