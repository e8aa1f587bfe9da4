/**
 * A terminal the broker refuses at CONNECT keeps trying, each time with a new token, ever more
 * slowly, and gets in once the cause is gone (here a clock 10 minutes slow, corrected as NTP
 * would): MQTT.js alone stops reconnecting after a refused CONNACK, leaving the terminal offline
 * until someone restarts it. The real terminal hub client against the embedded broker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { HubClient } from '../../terminal/hub/hub-client.ts';
import { TerminalStore } from '../../terminal/store/terminal-store.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal } from '../mqtt/fixtures.ts';

describe('a terminal refused at CONNECT', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-refused-'));
  const terminal = makeTerminal('vend-1');
  const directory = new MemoryDirectory();
  directory.add(terminal);
  let server: HubServer | undefined;
  let client: HubClient | undefined;
  let store: TerminalStore | undefined;
  afterAll(async () => {
    await client?.close();
    store?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps trying with new tokens, backing off, and is online once its clock is right', async () => {
    server = await createHubServer({ service: new TestSettlementHandler(directory, inlineVerifier), directory, logger: captureLogger().logger });
    store = TerminalStore.open(join(dir, 'terminal.db'));
    const { logger, records } = captureLogger();
    let clockOffsetMs = -10 * 60_000; // a Pi without RTC before NTP: every token is stale
    const online: boolean[] = [];
    client = new HubClient({
      url: server.url,
      terminalId: terminal.terminalId,
      secretKey: terminal.keys.secretKey,
      store,
      log: logger,
      clock: () => Date.now() + clockOffsetMs,
      retryMs: 1000,
      reconnectPeriodMs: 50,
      onReply: () => undefined,
      onAnnouncement: () => undefined,
      onOnlineChange: (up) => online.push(up),
    });
    const refusals = () => records.filter((r) => r['msg'] === 'hub: CONNECT refused; retrying');
    // Refused (CONNACK 5, not authorized) three times: it did not give up after the first.
    await eventually(() => refusals().length >= 3, 5000);
    expect(client.online).toBe(false);
    expect(refusals().map((r) => r['returnCode'])).toEqual(refusals().map(() => 5));
    // Backing off: each wait twice the last, from the configured period.
    expect(refusals().slice(0, 3).map((r) => r['retryInMs'])).toEqual([100, 200, 400]);
    clockOffsetMs = 0; // NTP has synced
    await eventually(() => online.at(-1) === true, 5000);
    expect(client.online).toBe(true);
  });
});
