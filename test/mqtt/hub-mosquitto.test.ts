/**
 * The same hub against a real external Mosquitto, started by this test on a free port with the
 * config, password and ACL files the hub generates. Skipped (with a message) without the binary.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TERMINAL_PAYLOAD_BYTES, decodeAndVerify, topics } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { HUB_USERNAME, brokerPasswordFor, mosquittoPasswordHash, writeMosquittoFiles } from '../../hub/mqtt/mosquitto-config.ts';
import { freePort, mosquittoAvailable, startMosquitto, type MosquittoProcess } from '../../hub/mqtt/mosquitto-process.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal, purchase, purchaseParty, tryConnect } from './fixtures.ts';
import { hubContract, type HubEnv } from './hub-contract.ts';

const available = mosquittoAvailable();
if (!available) console.warn('test/mqtt/hub-mosquitto: SKIPPED — no `mosquitto` binary on PATH (Debian package `mosquitto`)');

describe.skipIf(!available)('hub over an external Mosquitto broker', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-mosquitto-'));
  const directory = new MemoryDirectory();
  const terminals = ['pos-1', 'vend-2', 'gate-3', 'pos-revoked', 'pos-later'].map(makeTerminal);
  for (const t of terminals) directory.add(t);
  directory.revoke('pos-revoked');
  const brokerSecret = randomBytes(32);
  const hubPassword = randomBytes(16).toString('hex');
  const verifier = new WorkerVerifier({ workers: 1 });
  const handler = new TestSettlementHandler(directory, verifier);
  const { logger, records } = captureLogger();
  let mosquitto: MosquittoProcess;
  let hub: HubServer;
  let url: string;
  let logPath: string;

  const startHub = () => createHubServer({ service: handler, directory, logger, external: { url, username: HUB_USERNAME, password: hubPassword } });

  beforeAll(async () => {
    const port = await freePort();
    const files = writeMosquittoFiles({ dir, port, directory, brokerSecret, hubPassword });
    url = files.url;
    logPath = files.logPath;
    mosquitto = await startMosquitto(files.configPath, port);
    hub = await startHub();
  });
  afterAll(async () => {
    await hub?.close();
    await mosquitto?.stop();
    await verifier.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect: HubEnv['connect'] = (t, o = {}) =>
    connectTerminal({ url, terminalId: t.terminalId, password: brokerPasswordFor(brokerSecret, directory.subject(t.terminalId)), ...o });

  const aclWarning = /ACL pattern .* does not contain '%c' or '%u'/;

  it('writes mosquitto_passwd-compatible $7$ hashes and the ACL: patterns on %u, the shared topics as topic lines per terminal', () => {
    expect(mosquittoPasswordHash('secret', Buffer.alloc(12, 1), 101)).toMatch(/^\$7\$101\$AQEBAQEBAQEBAQEB\$[A-Za-z0-9+/]{86}==$/);
    const acl = readFileSync(path.join(dir, 'acl'), 'utf8');
    expect(acl).toContain('pattern write tapsettle/v1/terminal/%u/request');
    expect(acl).toContain('pattern read tapsettle/v1/terminal/%u/reply');
    // Every pattern names the client: a pattern without %u or %c draws a warning at every (re)load.
    for (const line of acl.split('\n').filter((l) => l.startsWith('pattern '))) expect(line).toContain('/%u/');
    // A topic line before any user line would be for anonymous clients only: one block per enrolled terminal.
    for (const id of ['pos-1', 'vend-2', 'gate-3', 'pos-later']) {
      expect(acl).toContain(`\nuser ${id}\ntopic read tapsettle/v1/hub/announce/#\ntopic read tapsettle/v1/hub/presence\n`);
    }
    expect(acl).not.toContain('user pos-revoked');
    expect(readFileSync(logPath, 'utf8')).toMatch(/Config loaded from/);
    expect(readFileSync(logPath, 'utf8')).not.toMatch(aclWarning);
    const passwd = readFileSync(path.join(dir, 'passwd'), 'utf8');
    expect(passwd).toContain('pos-1:$7$');
    expect(passwd).not.toContain('pos-revoked');
    expect(readFileSync(path.join(dir, 'mosquitto.conf'), 'utf8')).toContain('set_tcp_nodelay true');
  });

  describe('authentication at CONNECT', () => {
    it('accepts the derived per-terminal password', async () => {
      expect(await tryConnect(url, 'pos-1', brokerPasswordFor(brokerSecret, directory.subject('pos-1')))).toBe('accepted');
    });
    it.each([
      ['an unknown terminal', 'stranger-9', () => brokerPasswordFor(brokerSecret, { ...directory.subject('pos-1'), terminalId: 'stranger-9' })],
      ['a revoked terminal', 'pos-revoked', () => brokerPasswordFor(brokerSecret, directory.subject('pos-revoked'))],
      ['a wrong password', 'pos-1', () => brokerPasswordFor(brokerSecret, directory.subject('vend-2'))],
      ['a password derived from another secret', 'pos-1', () => brokerPasswordFor(randomBytes(32), directory.subject('pos-1'))],
      ['the password of the same id and key under another certificate', 'pos-1', () => brokerPasswordFor(brokerSecret, { ...directory.subject('pos-1'), serial: randomBytes(16).toString('hex') })],
    ])('refuses %s (CONNACK 4/5)', async (_name, username, password) => {
      const code = await tryConnect(url, username, password());
      expect([4, 5]).toContain(code);
    });
    it("a terminal whose certificate was reissued (its terminal.json leaked): once the files are regenerated and SIGHUP, its old password's session is closed and the old password refused; the new one gets in, the others' sessions stay", async () => {
      const t = terminals[1]!; // vend-2
      const old = brokerPasswordFor(brokerSecret, directory.subject(t.terminalId));
      const open = await connect(t, { reconnectPeriodMs: 0 });
      const other = await connect(terminals[2]!, { reconnectPeriodMs: 0 });
      let closed = false;
      let otherClosed = false;
      open.client.on('close', () => (closed = true));
      other.client.on('close', () => (otherClosed = true));
      try {
        directory.reissue(t.terminalId);
        const fresh = brokerPasswordFor(brokerSecret, directory.subject(t.terminalId));
        expect(fresh).not.toBe(old);
        writeMosquittoFiles({ dir, port: Number(new URL(url).port), directory, brokerSecret, hubPassword });
        mosquitto.reload();
        await eventually(() => closed, 3000);
        expect([4, 5]).toContain(await tryConnect(url, t.terminalId, old));
        expect(await tryConnect(url, t.terminalId, fresh)).toBe('accepted');
        const req = purchase(purchaseParty(terminals[2]!));
        expect((await other.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
        expect(otherClosed).toBe(false);
      } finally {
        await open.close();
        await other.close();
      }
    });
    it('closes the open session of a terminal revoked while the broker runs, and refuses it after, once the files are regenerated and SIGHUP', async () => {
      const later = terminals[4]!;
      const open = await connect(later, { reconnectPeriodMs: 0 });
      const other = await connect(terminals[0]!, { reconnectPeriodMs: 0 });
      let closed = false;
      let otherClosed = false;
      open.client.on('close', () => (closed = true));
      other.client.on('close', () => (otherClosed = true));
      try {
        directory.revoke('pos-later');
        writeMosquittoFiles({ dir, port: Number(new URL(url).port), directory, brokerSecret, hubPassword });
        mosquitto.reload();
        // Mosquitto checks every connected client against the reloaded password file.
        await eventually(() => closed, 3000);
        expect([4, 5]).toContain(await tryConnect(url, 'pos-later', brokerPasswordFor(brokerSecret, directory.subject('pos-later'))));
        expect(readFileSync(path.join(dir, 'acl'), 'utf8')).not.toContain('user pos-later');
        expect(readFileSync(logPath, 'utf8')).toMatch(/Reloading config/);
        expect(readFileSync(logPath, 'utf8')).not.toMatch(aclWarning);
        // Another terminal's session, and the hub's, stay: a request on that same session is answered.
        const req = purchase(purchaseParty(terminals[0]!));
        expect((await other.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
        expect(otherClosed).toBe(false);
      } finally {
        await open.close();
        await other.close();
      }
    });
  });

  it("a terminal reads the hub's presence and the announcements (topic lines), and its own reply but not another's (patterns)", async () => {
    const t = terminals[1]!;
    const c = await connect(t, { subscribeAnnouncements: true });
    const seen = new Map<string, string>();
    c.client.on('message', (topic, payload) => seen.set(topic, payload.toString('utf8')));
    try {
      handler.announce({ topic: topics.announce('fares'), payload: Buffer.from('{"fares":"topic-line"}') });
      await c.client.subscribeAsync([topics.hubPresence, topics.reply('pos-1')], { qos: 1 });
      await eventually(() => seen.get(topics.hubPresence)?.includes('"state":"online"'), 3000);
      await eventually(() => c.announcements().get(topics.announce('fares'))?.toString() === '{"fares":"topic-line"}', 3000);
      // pos-1's reply is not delivered to vend-2 (Mosquitto grants the SUBSCRIBE and delivers nothing).
      const other = await connect(terminals[0]!);
      try {
        const req = purchase(purchaseParty(terminals[0]!));
        expect((await other.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
        await new Promise((r) => setTimeout(r, 200));
        expect(seen.has(topics.reply('pos-1'))).toBe(false);
      } finally {
        await other.close();
      }
    } finally {
      await c.close();
    }
  });

  it('answers a denied publish with a failure PUBACK code and never delivers it', async () => {
    const a = await connect(terminals[2]!);
    const before = handler.seen.length;
    // Mosquitto 2.0 acks a denied QoS 1 publish with rc 135 (not authorized) and drops it; it
    // logs "Denied PUBLISH" at log_type debug (off by default: it would log every message).
    await a.client.publishAsync(topics.request('pos-1'), Buffer.from('{}'), { qos: 1 }).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    await a.close();
    expect(handler.seen.length).toBe(before);
    expect(readFileSync(logPath, 'utf8')).toMatch(/New client connected .* as gate-3/);
  });

  it('an announcement larger than a terminal may send (a 100 KiB blocklist) reaches the terminals, and the hub keeps answering', async () => {
    const t = terminals[0]!;
    const c = await connect(t, { subscribeAnnouncements: true });
    try {
      const big = Buffer.alloc(100 * 1024, 0x61);
      expect(big.length).toBeGreaterThan(MAX_TERMINAL_PAYLOAD_BYTES);
      handler.announce({ topic: topics.announce('blocklist'), payload: big });
      await eventually(() => c.announcements().get(topics.announce('blocklist'))?.length === big.length, 5000);
      const req = purchase(purchaseParty(t));
      expect((await c.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
      expect(readFileSync(logPath, 'utf8')).not.toMatch(/oversize/i);
    } finally {
      await c.close();
    }
  });

  it("a terminal connecting with another terminal's client id, or the hub's, takes over neither session", async () => {
    const victim = terminals[0]!;
    const v = await connect(victim, { reconnectPeriodMs: 0 });
    let victimClosed = false;
    v.client.on('close', () => (victimClosed = true));
    try {
      // Accepted as itself: the broker replaces the client id with the username.
      for (const clientId of [victim.terminalId, HUB_USERNAME]) expect(await tryConnect(url, 'vend-2', brokerPasswordFor(brokerSecret, directory.subject('vend-2')), { clientId })).toBe('accepted');
      await new Promise((r) => setTimeout(r, 300));
      expect(victimClosed).toBe(false);
      const req = purchase(purchaseParty(victim));
      expect((await v.request(req.bytes, req.requestId, 5000)).length).toBeGreaterThan(0);
      expect(readFileSync(path.join(dir, 'mosquitto.conf'), 'utf8')).toContain('use_username_as_clientid true');
    } finally {
      await v.close();
    }
  });

  it('a request queued for the hub while it restarts is answered once it is back', async () => {
    const t = terminals[1]!;
    const c = await connect(t);
    try {
      await hub.close();
      const req = purchase(purchaseParty(t));
      const reply = c.request(req.bytes, req.requestId, 10_000);
      await new Promise((r) => setTimeout(r, 300)); // queued by Mosquitto for the hub's session
      hub = await startHub();
      expect((await reply).length).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });

  it('a retained request is handled once, live; at the next subscribe the hub ignores it and clears it from the broker', async () => {
    const t = terminals[2]!;
    const c = await connect(t);
    const retainedLogs = () => records.filter((r) => r['msg'] === 'mqtt: retained message ignored and cleared').length;
    const replies: Buffer[] = [];
    c.onReply((p) => replies.push(p));
    const emptySeen = () => handler.seen.filter((s) => s.terminalId === t.terminalId && s.payload.length === 0).length;
    try {
      const emptyBefore = emptySeen();
      const req = purchase(purchaseParty(t));
      const seen = () => handler.seen.filter((s) => Buffer.from(s.payload).equals(req.bytes)).length;
      await c.client.publishAsync(topics.request(t.terminalId), req.bytes, { qos: 1, retain: true });
      await eventually(() => seen() === 1);
      const logged = retainedLogs();
      for (const expectedLogs of [logged + 1, logged + 1]) {
        await hub.close();
        hub = await startHub();
        await new Promise((r) => setTimeout(r, 300));
        expect(seen()).toBe(1);
        expect(retainedLogs()).toBe(expectedLogs); // the second restart finds nothing retained
      }
      // The hub's clear came back to it live (RETAIN 0): not taken for an empty request, not answered.
      expect(emptySeen()).toBe(emptyBefore);
      expect(replies.filter((r) => decodeAndVerify(r, 'error', handler.hubKeyHex).ok)).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("a presence that is not a small Presence of its terminal is cleared from Mosquitto's retained store", async () => {
    const t = terminals[2]!;
    const c = await connect(t);
    const cleared = () => records.filter((r) => r['msg'] === 'mqtt: retained message ignored and cleared' && r['terminalId'] === t.terminalId && String(r['why']).startsWith('presence')).length;
    try {
      const before = cleared();
      await c.client.publishAsync(topics.presence(t.terminalId), Buffer.alloc(1024, 0x61), { qos: 1, retain: true });
      await eventually(() => cleared() === before + 1);
      // Gone from the store: the hub's next subscribe finds nothing to clear.
      await hub.close();
      hub = await startHub();
      await new Promise((r) => setTimeout(r, 300));
      expect(cleared()).toBe(before + 1);
    } finally {
      await c.close({ graceful: false }).catch(() => {});
    }
  });

  hubContract(() => ({ hub, handler, directory, terminals, connect }), { refusesAtSubscribe: false, closesRefusedPublisher: false });
});
