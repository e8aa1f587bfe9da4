/**
 * A restart of the external Mosquitto (generated config: `persistence false`) loses its retained
 * store; the hub, reconnecting on its own, must publish its announcements and its online presence
 * again, so a terminal that subscribes after the restart gets the blocklist, keys and fares at
 * once. A real Mosquitto on a free port, stopped and started again by the test; skipped (with a
 * message) without the binary.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPIC_ROOT, decodeAndVerify, topics, utf8 } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { HUB_USERNAME, brokerPasswordFor, mosquittoPasswordHash, writeMosquittoFiles } from '../../hub/mqtt/mosquitto-config.ts';
import { freePort, mosquittoAvailable, startMosquitto, type MosquittoProcess } from '../../hub/mqtt/mosquitto-process.ts';
import { noDelayStreamBuilder } from '../../hub/mqtt/no-delay-stream.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal, purchase, purchaseParty } from './fixtures.ts';

const available = mosquittoAvailable();
if (!available) console.warn('test/mqtt/hub-mosquitto-restart: SKIPPED — no `mosquitto` binary on PATH (Debian package `mosquitto`)');

interface Seen {
  readonly payload: string;
  readonly retain: boolean;
}

describe.skipIf(!available)('hub over an external Mosquitto that restarts', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-mosquitto-restart-'));
  const directory = new MemoryDirectory();
  const terminal = makeTerminal('pos-1');
  directory.add(terminal);
  const brokerSecret = randomBytes(32);
  const hubPassword = randomBytes(16).toString('hex');
  // A read-only observer account (test only): terminals may not read the hub's presence topic.
  const observerPassword = randomBytes(16).toString('hex');
  const handler = new TestSettlementHandler(directory, inlineVerifier, [
    { topic: topics.announce('blocklist'), payload: utf8('{"blocklist":1}') },
    { topic: topics.announce('keys'), payload: utf8('{"keys":1}') },
  ]);
  const { logger, records } = captureLogger();
  let configPath: string;
  let port: number;
  let url: string;
  let mosquitto: MosquittoProcess | undefined;
  let hub: HubServer | undefined;

  beforeAll(async () => {
    port = await freePort();
    const files = writeMosquittoFiles({ dir, port, directory, brokerSecret, hubPassword });
    appendFileSync(files.passwordPath, `observer:${mosquittoPasswordHash(observerPassword)}\n`);
    appendFileSync(files.aclPath, `\nuser observer\ntopic read ${TOPIC_ROOT}/#\n`);
    configPath = files.configPath;
    url = files.url;
    mosquitto = await startMosquitto(configPath, port);
    hub = await createHubServer({ service: handler, directory, logger, external: { url, username: HUB_USERNAME, password: hubPassword } });
  });
  afterAll(async () => {
    await hub?.close();
    await mosquitto?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A fresh client subscribing to `filter` now: what the broker's retained store gives it (RETAIN
   * 1 marks a message from the store, not a live one), collected until `settleMs` after SUBACK.
   */
  async function retainedNow(username: string, password: string, filter: string, settleMs = 300): Promise<Map<string, Seen>> {
    const client = new MqttClient(noDelayStreamBuilder(url), { protocolVersion: 4, clientId: username, username, password, clean: true, reconnectPeriod: 0 });
    const seen = new Map<string, Seen>();
    client.on('message', (topic, payload, packet) => seen.set(topic, { payload: payload.toString('utf8'), retain: packet.retain }));
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      await client.subscribeAsync(filter, { qos: 1 });
      await new Promise((r) => setTimeout(r, settleMs));
      return seen;
    } finally {
      await client.endAsync(true);
    }
  }
  const terminalView = () => retainedNow(terminal.terminalId, brokerPasswordFor(brokerSecret, directory.subject(terminal.terminalId)), topics.allAnnouncements);
  const hubPresence = async () => (await retainedNow('observer', observerPassword, topics.hubPresence)).get(topics.hubPresence);

  it('after a broker restart, a terminal subscribing later gets the blocklist, keys and fares again, and the hub is online', async () => {
    handler.announce({ topic: topics.announce('fares'), payload: utf8('{"fares":1}') });
    const expected = {
      [topics.announce('blocklist')]: { payload: '{"blocklist":1}', retain: true },
      [topics.announce('keys')]: { payload: '{"keys":1}', retain: true },
      [topics.announce('fares')]: { payload: '{"fares":1}', retain: true },
    };
    expect(Object.fromEntries(await terminalView())).toEqual(expected);
    expect(await hubPresence()).toMatchObject({ retain: true, payload: expect.stringContaining('"state":"online"') });

    await mosquitto!.stop();
    mosquitto = await startMosquitto(configPath, port);
    // The broker's store is empty now; the hub reconnects within its 1 s reconnect period.
    const reconnected = () => records.some((r) => r['msg'] === 'mqtt: reconnected to the broker; retained state published again');
    await eventually(reconnected, 10_000).catch(() => undefined);
    // Polled with a fresh subscriber each time: only what the broker's retained store holds counts.
    let view = new Map<string, Seen>();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      view = await terminalView();
      if (view.size === 3) break;
    }
    expect(Object.fromEntries(view)).toEqual(expected);
    expect(await hubPresence()).toMatchObject({ retain: true, payload: expect.stringContaining('"state":"online"') });
    expect(records.find((r) => r['msg'] === 'mqtt: reconnected to the broker; retained state published again')).toMatchObject({ sessionPresent: false, announcements: 3 });
    // The outage was told once, not at every reconnect attempt.
    expect(records.filter((r) => r['msg'] === 'mqtt: connection to the broker lost; reconnecting')).toHaveLength(1);
    // The broker lost the hub's subscriptions too (MQTT.js subscribes again): requests are answered.
    const c = await connectTerminal({ url, terminalId: terminal.terminalId, password: brokerPasswordFor(brokerSecret, directory.subject(terminal.terminalId)), reconnectPeriodMs: 0 });
    try {
      const req = purchase(purchaseParty(terminal));
      expect(decodeAndVerify(await c.request(req.bytes, req.requestId, 5000), 'settlement.result', handler.hubKeyHex).ok).toBe(true);
    } finally {
      await c.close();
    }
  });
});
