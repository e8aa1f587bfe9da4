import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TERMINAL_PAYLOAD_BYTES, generateKeyPair, makeConnectToken, topics } from '../../protocol/index.ts';
import { MAX_KEEPALIVE_S } from '../../hub/mqtt/embedded-broker.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, grantedQos, makeTerminal, tryConnect } from './fixtures.ts';
import { hubContract, type HubEnv } from './hub-contract.ts';

const directory = new MemoryDirectory();
const terminals = ['pos-1', 'vend-2', 'gate-3', 'pos-revoked'].map(makeTerminal);
for (const t of terminals) directory.add(t);
directory.revoke('pos-revoked');
const verifier = new WorkerVerifier({ workers: 2 });
const handler = new TestSettlementHandler(directory, verifier, [{ topic: topics.announce('keys'), payload: Buffer.from('{"keys":1}') }]);
const { logger, records } = captureLogger();
let hub: HubServer;

beforeAll(async () => {
  hub = await createHubServer({ service: handler, directory, logger });
});
afterAll(async () => {
  await hub?.close();
  await verifier.close();
});

const connect: HubEnv['connect'] = (t, o = {}) => connectTerminal({ url: hub.url, terminalId: t.terminalId, secretKey: t.keys.secretKey, ...o });

describe('hub over the embedded aedes broker', () => {
  it('listens on a free port and serves plain MQTT', () => {
    expect(hub.port).toBeGreaterThan(0);
    expect(hub.url).toBe(`mqtt://127.0.0.1:${hub.port}`);
  });

  it('warns when it serves plain TCP beyond loopback, and not on loopback', async () => {
    const PLAIN = 'mqtt: plain TCP beyond this machine: requests and replies (balances, statements) cross the network unencrypted; give the broker a TLS key and certificate (mqtt.tls)';
    expect(records.some((r) => r.msg === PLAIN)).toBe(false);
    const wide = captureLogger();
    const open = await createHubServer({ service: handler, directory, logger: wide.logger, host: '0.0.0.0' });
    try {
      expect(wide.records.find((r) => r.msg === PLAIN)).toMatchObject({ level: 40, host: '0.0.0.0' });
    } finally {
      await open.close();
    }
  });

  describe('authentication at CONNECT', () => {
    const t = () => terminals[0]!;
    it('accepts a fresh token signed by the enrolled key', async () => {
      expect(await tryConnect(hub.url, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now()))).toBe('accepted');
    });
    it.each<[string, () => [string, string, string]]>([
      ['an unknown terminal', () => { const k = generateKeyPair(); return ['stranger-9', 'stranger-9', makeConnectToken('stranger-9', k.secretKey, Date.now())]; }],
      ['a revoked terminal', () => { const r = terminals[3]!; return [r.terminalId, r.terminalId, makeConnectToken(r.terminalId, r.keys.secretKey, Date.now())]; }],
      ['a token signed by another key', () => [t().terminalId, t().terminalId, makeConnectToken(t().terminalId, generateKeyPair().secretKey, Date.now())]],
      ['a stale token (10 min old)', () => [t().terminalId, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now() - 600_000)]],
      ['a malformed password', () => [t().terminalId, t().terminalId, 'hunter2']],
      ['a username that is not the client id', () => ['someone-else', t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now())]],
      ['another terminal\'s token', () => [t().terminalId, t().terminalId, makeConnectToken(terminals[1]!.terminalId, terminals[1]!.keys.secretKey, Date.now())]],
    ])('refuses %s with CONNACK 5 (not authorized) and logs it', async (_name, creds) => {
      const [clientId, username, password] = creds();
      const before = records.length;
      expect(await tryConnect(hub.url, username, password, { clientId })).toBe(5);
      expect(records.slice(before).some((r) => r.msg === 'mqtt: CONNECT refused')).toBe(true);
    });
    it.each([0, MAX_KEEPALIVE_S + 1])('refuses keepalive %i s (a half-open connection must end), and logs it; the limit itself is accepted', async (keepalive) => {
      const before = records.length;
      expect(await tryConnect(hub.url, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now()), { keepalive })).toBe(6);
      await eventually(() => records.slice(before).some((r) => r.msg === 'mqtt: CONNECT refused' && String(r.reason).startsWith('keepalive')));
      expect(await tryConnect(hub.url, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now()), { keepalive: MAX_KEEPALIVE_S })).toBe('accepted');
    });
    // Connects from 127.0.0.2: all of 127/8 is loopback on Linux only.
    it.skipIf(process.platform !== 'linux')('throttles a source address that keeps being refused: refused at once, logged once, while other addresses connect', async () => {
      const own = captureLogger();
      // Refills one refusal an hour: nothing comes back during the test.
      const guarded = await createHubServer({ service: handler, directory, logger: own.logger, connectThrottle: { burst: 3, refillPerS: 1 / 3600 } });
      try {
        const flood = { localAddress: '127.0.0.2' };
        const forged = () => makeConnectToken(t().terminalId, generateKeyPair().secretKey, Date.now());
        for (let i = 0; i < 3; i++) expect(await tryConnect(guarded.url, t().terminalId, forged(), flood)).toBe(5);
        const signatureRefusals = () => own.records.filter((r) => r.msg === 'mqtt: CONNECT refused' && r.reason === 'BAD_SIGNATURE').length;
        expect(signatureRefusals()).toBe(3);
        // Spent: even a good token from that address is refused now, and nothing is checked or logged at warn.
        for (let i = 0; i < 5; i++) expect(await tryConnect(guarded.url, t().terminalId, forged(), flood)).toBe(5);
        expect(await tryConnect(guarded.url, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now()), flood)).toBe(5);
        expect(signatureRefusals()).toBe(3);
        expect(own.records.filter((r) => r.reason === 'THROTTLED' && r.level === 40)).toEqual([
          expect.objectContaining({ source: '127.0.0.2', msg: 'mqtt: too many refused CONNECTs from one source; refusing it until it slows down' }),
        ]);
        expect(await tryConnect(guarded.url, t().terminalId, makeConnectToken(t().terminalId, t().keys.secretKey, Date.now()))).toBe('accepted');
      } finally {
        await guarded.close();
      }
    });
    it('refuses a replayed token (single use)', async () => {
      const token = makeConnectToken(t().terminalId, t().keys.secretKey, Date.now());
      expect(await tryConnect(hub.url, t().terminalId, token)).toBe('accepted');
      expect(await tryConnect(hub.url, t().terminalId, token)).toBe(5);
      expect(records.some((r) => r.msg === 'mqtt: CONNECT refused' && r.reason === 'REPLAY')).toBe(true);
    });
  });

  it('logs refused publishes and subscriptions, and closes the publisher (no negative PUBACK in 3.1.1)', async () => {
    const [victim, attacker] = [terminals[0]!, terminals[1]!];
    const a = await connect(attacker, { reconnectPeriodMs: 0 });
    expect(await grantedQos(a.client, [topics.reply(victim.terminalId)])).toEqual([128]);
    const closed = new Promise<void>((resolve) => a.client.stream.once('close', () => resolve()));
    a.client.publish(topics.request(victim.terminalId), Buffer.from('{}'), { qos: 1 });
    await closed;
    expect(records.some((r) => r.msg === 'mqtt: SUBSCRIBE refused' && r.terminalId === attacker.terminalId)).toBe(true);
    await eventually(() => records.some((r) => r.msg === 'mqtt: PUBLISH refused' && r.terminalId === attacker.terminalId && r.reason === 'topic of another terminal'));
    await a.close({ graceful: false }).catch(() => {});
  });

  it.each([
    ['names another terminal', (id: string) => JSON.stringify({ v: 1, terminalId: `${id}-other`, state: 'online', seq: 1, time: Date.now() })],
    ['is not a Presence', () => JSON.stringify({ junk: 'x'.repeat(100) })],
    ['is larger than a presence ever is', (id: string) => JSON.stringify({ v: 1, terminalId: id, state: 'online', seq: 1, time: Date.now(), pad: 'x'.repeat(300) })],
  ])('refuses a retained presence that %s, and closes the publisher', async (_name, payload) => {
    const t = terminals[1]!;
    const c = await connect(t, { reconnectPeriodMs: 0 });
    const closed = new Promise<void>((resolve) => c.client.stream.once('close', () => resolve()));
    const refused = () => records.filter((r) => r.msg === 'mqtt: PUBLISH refused' && r.terminalId === t.terminalId && String(r.reason).startsWith('presence')).length;
    const before = refused();
    c.client.publish(topics.presence(t.terminalId), Buffer.from(payload(t.terminalId)), { qos: 1, retain: true });
    await closed;
    await eventually(() => refused() > before);
    await c.close({ graceful: false }).catch(() => {});
  });

  it('refuses a QoS 2 publish (terminals publish at QoS 1) and closes the publisher', async () => {
    const t = terminals[1]!;
    const c = await connect(t, { reconnectPeriodMs: 0 });
    const closed = new Promise<void>((resolve) => c.client.stream.once('close', () => resolve()));
    const seen = handler.seen.length;
    c.client.publish(topics.request(t.terminalId), Buffer.from('{}'), { qos: 2 });
    await closed;
    await eventually(() => records.some((r) => r.msg === 'mqtt: PUBLISH refused' && r.terminalId === t.terminalId && String(r.reason).startsWith('QoS 2')));
    expect(handler.seen.length).toBe(seen);
    await c.close({ graceful: false }).catch(() => {});
  });

  it('logs an oversized publish as refused and closes the publisher', async () => {
    const t = terminals[1]!;
    const c = await connect(t, { reconnectPeriodMs: 0 });
    const closed = new Promise<void>((resolve) => c.client.stream.once('close', () => resolve()));
    c.client.publish(topics.request(t.terminalId), Buffer.alloc(MAX_TERMINAL_PAYLOAD_BYTES + 1, 0x20), { qos: 1 });
    await closed;
    await eventually(() => records.some((r) => r.msg === 'mqtt: PUBLISH refused' && r.terminalId === t.terminalId && String(r.reason).startsWith(`payload ${MAX_TERMINAL_PAYLOAD_BYTES + 1}`)));
    await c.close({ graceful: false }).catch(() => {});
  });

  it('drops a connection whose packet header announces more than the limit, before reading the body', async () => {
    const t = terminals[1]!;
    const c = await connect(t, { reconnectPeriodMs: 0 });
    const closed = new Promise<void>((resolve) => c.client.stream.once('close', () => resolve()));
    // PUBLISH QoS 0 whose remaining length says 10 MiB ([MQTT-2.2.3] variable byte integer); no body follows.
    const remaining = 10 * 1024 * 1024;
    const varint: number[] = [];
    for (let x = remaining; ; ) {
      const byte = x % 128;
      x = Math.floor(x / 128);
      varint.push(x > 0 ? byte | 0x80 : byte);
      if (x === 0) break;
    }
    c.client.stream.write(Buffer.from([0x30, ...varint, 0x00, 0x01, 0x61]));
    await closed;
    await eventually(() => records.some((r) => r.msg === 'mqtt: oversized packet refused' && r.terminalId === t.terminalId));
    await c.close({ graceful: false }).catch(() => {});
  });

  hubContract(() => ({ hub, handler, directory, terminals, connect }), { refusesAtSubscribe: true, closesRefusedPublisher: true });
});
