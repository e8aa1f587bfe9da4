/**
 * One contract every broker path must pass (embedded aedes, external Mosquitto): request/reply
 * with hub-signed replies, duplicates, signed rejections, concurrency, ACLs, size limit, presence
 * and retained announcements.
 */
import { expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { MAX_TERMINAL_PAYLOAD_BYTES, decodeAndVerify, topics, utf8 } from '../../protocol/index.ts';
import type { HubServer } from '../../hub/mqtt/hub-server.ts';
import type { TerminalClient } from '../../simulators/load/terminal-client.ts';
import { eventually, grantedQos, purchase, purchaseParty, type MemoryDirectory, type TestSettlementHandler, type TestTerminal } from './fixtures.ts';

export interface HubEnv {
  readonly hub: HubServer;
  readonly handler: TestSettlementHandler;
  readonly directory: MemoryDirectory;
  /** Enrolled terminals (at least three). */
  readonly terminals: readonly TestTerminal[];
  connect(terminal: TestTerminal, options?: { seq?: number; reconnectPeriodMs?: number; subscribeAnnouncements?: boolean }): Promise<TerminalClient>;
}

function onceClosed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (client.stream?.destroyed) resolve();
    client.stream.once('close', () => resolve());
  });
}

/**
 * `refusesAtSubscribe`: SUBACK 0x80 for a forbidden filter (aedes), rather than a grant that never
 * delivers (Mosquitto 2.0). `closesRefusedPublisher`: a forbidden PUBLISH closes the connection
 * (aedes), rather than being acknowledged and dropped (Mosquitto).
 */
/**
 * Publishes QoS 1 a message the broker must refuse: 'closed' when it closes the connection (aedes:
 * MQTT 3.1.1 has no negative PUBACK), 'acknowledged' when it acks and drops it (Mosquitto 2.0).
 */
async function refusedPublish(client: MqttClient, topic: string, payload: Uint8Array): Promise<'closed' | 'acknowledged' | 'failed'> {
  const closed = onceClosed(client).then(() => 'closed' as const);
  const sent = client.publishAsync(topic, Buffer.from(payload), { qos: 1 }).then(
    () => 'acknowledged' as const,
    () => 'failed' as const,
  );
  return Promise.race([closed, sent]);
}

export function hubContract(env: () => HubEnv, { refusesAtSubscribe, closesRefusedPublisher }: { refusesAtSubscribe: boolean; closesRefusedPublisher: boolean }): void {
  it('round trip: a signed purchase request gets a hub-signed result the terminal verifies', async () => {
    const { terminals, handler, connect } = env();
    const t = terminals[0]!;
    const c = await connect(t);
    try {
      const req = purchase(purchaseParty(t));
      const reply = await c.request(req.bytes, req.requestId);
      const verified = decodeAndVerify(reply, 'settlement.result', handler.hubKeyHex);
      expect(verified.ok).toBe(true);
      if (!verified.ok) return;
      expect(verified.value.body).toMatchObject({ requestId: req.requestId, terminalId: t.terminalId, status: 'approved', amountMinor: 250, currency: 'EUR' });
    } finally {
      await c.close();
    }
  });

  it('a redelivered duplicate gets the same reply bytes (idempotent by request id)', async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[0]!;
    const c = await connect(t);
    try {
      const req = purchase(purchaseParty(t));
      const first = await c.request(req.bytes, req.requestId);
      const second = await c.request(req.bytes, req.requestId);
      expect(Buffer.compare(first, second)).toBe(0);
      expect(handler.seen.filter((s) => Buffer.from(s.payload).equals(req.bytes)).length).toBe(2);
    } finally {
      await c.close();
    }
  });

  it('rejections are signed replies: malformed bytes, a bad terminal signature, insufficient funds', async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[0]!;
    const c = await connect(t);
    try {
      const replies: Buffer[] = [];
      c.onReply((p) => replies.push(p));
      await c.client.publishAsync(topics.request(t.terminalId), Buffer.from('{"not":"a request"'), { qos: 1 });
      const malformed = await eventually(() => replies.find((r) => decodeAndVerify(r, 'error', handler.hubKeyHex).ok));
      const err = decodeAndVerify(malformed, 'error', handler.hubKeyHex);
      expect(err.ok && err.value.body.code).toBe('MALFORMED');

      const party = purchaseParty(t);
      const req = purchase(party);
      const tampered = { ...req.message, sig: req.message.sig.replace(/^./, (ch) => (ch === '0' ? '1' : '0')) };
      const bad = await c.request(utf8(JSON.stringify(tampered)), req.requestId);
      const badResult = decodeAndVerify(bad, 'settlement.result', handler.hubKeyHex);
      expect(badResult.ok && badResult.value.body).toMatchObject({ status: 'declined', code: 'BAD_SIGNATURE', withdrawal: 'none' });

      const big = purchase(party, 500_000);
      const poor = decodeAndVerify(await c.request(big.bytes, big.requestId), 'settlement.result', handler.hubKeyHex);
      expect(poor.ok && poor.value.body).toMatchObject({ status: 'declined', code: 'INSUFFICIENT_FUNDS' });
    } finally {
      await c.close();
    }
  });

  it('hands requests to the service concurrently, not one at a time', async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[1]!;
    const c = await connect(t);
    try {
      const party = purchaseParty(t);
      handler.maxConcurrent = 0;
      const reqs = Array.from({ length: 40 }, () => purchase(party));
      const replies = await Promise.all(reqs.map((r) => c.request(r.bytes, r.requestId)));
      expect(replies.every((r) => decodeAndVerify(r, 'settlement.result', handler.hubKeyHex).ok)).toBe(true);
      expect(handler.maxConcurrent).toBeGreaterThan(1);
    } finally {
      await c.close();
    }
  });

  it('ACL: a terminal cannot publish on another terminal\'s topics nor read its replies', async () => {
    const { terminals, connect, handler } = env();
    const [victim, attacker] = [terminals[0]!, terminals[2]!];
    const v = await connect(victim);
    const received: Buffer[] = [];
    v.onReply((p) => received.push(p));
    const a = await connect(attacker, { reconnectPeriodMs: 0 });
    let forger: Awaited<ReturnType<HubEnv['connect']>> | undefined;
    try {
      const granted = await grantedQos(a.client, [topics.reply(victim.terminalId), topics.reply(victim.terminalId).replace(victim.terminalId, '+'), 'tapsettle/#']);
      // aedes refuses at SUBSCRIBE (0x80); Mosquitto 2.0 grants and then never delivers.
      if (refusesAtSubscribe) expect(granted).toEqual([128, 128, 128]);
      const stolen: string[] = [];
      a.client.on('message', (topic) => stolen.push(topic));
      const party = purchaseParty(victim);
      /**
       * Waits, without a timer, until whatever an acknowledged (or refused) publish was routed to
       * has arrived: the broker routes a publish before it acknowledges it, and delivers to each
       * subscriber (the hub, the victim) in the order it routed. So once the victim has the reply
       * to a request it makes after that, a forged message routed earlier would have arrived.
       */
      const barrier = async () => {
        const req = purchase(party);
        expect(decodeAndVerify(await v.request(req.bytes, req.requestId), 'settlement.result', handler.hubKeyHex).ok).toBe(true);
      };

      // The victim's own request works, and its reply never reaches the attacker.
      await barrier();

      // A request forged on the victim's request topic never reaches the hub.
      const forged = purchase(party);
      const before = handler.seen.length;
      expect(await refusedPublish(a.client, topics.request(victim.terminalId), forged.bytes)).toBe(closesRefusedPublisher ? 'closed' : 'acknowledged');
      await barrier();
      expect(handler.seen.slice(before).some((s) => Buffer.from(s.payload).equals(forged.bytes))).toBe(false);
      expect(stolen.filter((topic) => topic.includes(victim.terminalId))).toEqual([]);
      await a.close({ graceful: false }).catch(() => {});

      // A reply forged on the victim's reply topic, from a fresh connection (on aedes the refused
      // request above closed the first one): a genuine hub-signed result for a request of the
      // victim's that it never sent, so exactly what the victim would act on. It never arrives.
      const unsent = purchase(party);
      const genuine = Buffer.from(await handler.handleRequest(victim.terminalId, unsent.bytes));
      expect(decodeAndVerify(genuine, 'settlement.result', handler.hubKeyHex).ok).toBe(true);
      forger = await connect(attacker, { reconnectPeriodMs: 0 });
      expect(await refusedPublish(forger.client, topics.reply(victim.terminalId), genuine)).toBe(closesRefusedPublisher ? 'closed' : 'acknowledged');
      await barrier();
      expect(received.length).toBeGreaterThanOrEqual(2);
      expect(received.some((r) => r.equals(genuine) || r.includes(Buffer.from(unsent.requestId)))).toBe(false);
    } finally {
      await a.close({ graceful: false }).catch(() => {});
      await forger?.close({ graceful: false }).catch(() => {});
      await v.close();
    }
  });

  it('an empty request is malformed: answered with a hub-signed MALFORMED error, and the next request as usual', async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[1]!;
    const c = await connect(t);
    try {
      const replies: Buffer[] = [];
      c.onReply((p) => replies.push(p));
      await c.client.publishAsync(topics.request(t.terminalId), Buffer.alloc(0), { qos: 1 });
      const answer = await eventually(() => replies.find((r) => decodeAndVerify(r, 'error', handler.hubKeyHex).ok));
      const err = decodeAndVerify(answer, 'error', handler.hubKeyHex);
      expect(err.ok && err.value.body.code).toBe('MALFORMED');
      const req = purchase(purchaseParty(t));
      expect(decodeAndVerify(await c.request(req.bytes, req.requestId), 'settlement.result', handler.hubKeyHex).ok).toBe(true);
    } finally {
      await c.close();
    }
  });

  it(`a message larger than ${MAX_TERMINAL_PAYLOAD_BYTES} bytes: refused by the broker (aedes), or answered with a hub-signed TOO_LARGE (a broker that lets it through)`, async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[1]!;
    const c = await connect(t, { reconnectPeriodMs: 0 });
    try {
      const replies: Buffer[] = [];
      c.onReply((p) => replies.push(p));
      const before = handler.seen.length;
      const closed = onceClosed(c.client);
      c.client.publish(topics.request(t.terminalId), Buffer.alloc(MAX_TERMINAL_PAYLOAD_BYTES + 1, 0x20), { qos: 1 });
      if (closesRefusedPublisher) {
        await Promise.race([closed, new Promise((r) => setTimeout(r, 500))]);
        expect(handler.seen.length).toBe(before);
      } else {
        const answer = await eventually(() => replies.find((r) => decodeAndVerify(r, 'error', handler.hubKeyHex).ok));
        const err = decodeAndVerify(answer, 'error', handler.hubKeyHex);
        expect(err.ok && err.value.body.code).toBe('TOO_LARGE');
      }
    } finally {
      await c.close({ graceful: false }).catch(() => {});
    }
  });

  it('presence: online after connect, offline after a clean goodbye and after a dropped connection (will)', async () => {
    const { terminals, connect, hub } = env();
    const t = terminals[1]!;
    const state = () => hub.presence().find((p) => p.terminalId === t.terminalId);
    // seq grows per connection; start above the clock-based seqs other tests used.
    const seq = Date.now() + 1_000_000;
    const c1 = await connect(t, { seq });
    await eventually(() => state()?.state === 'online' && state()!.seq === seq);
    await c1.close({ graceful: true });
    await eventually(() => state()?.state === 'offline' && state()!.seq === seq);
    const c2 = await connect(t, { seq: seq + 1, reconnectPeriodMs: 0 });
    await eventually(() => state()?.state === 'online' && state()!.seq === seq + 1);
    await c2.close({ graceful: false });
    await eventually(() => state()?.state === 'offline' && state()!.seq === seq + 1, 5000);
  });

  it('presence: the late will of a taken-over session does not mark the new session offline', async () => {
    const { terminals, connect, hub } = env();
    const t = terminals[2]!;
    const state = () => hub.presence().find((p) => p.terminalId === t.terminalId);
    const seq = Date.now() + 2_000_000;
    const old = await connect(t, { seq, reconnectPeriodMs: 0 });
    const fresh = await connect(t, { seq: seq + 1, reconnectPeriodMs: 0 });
    try {
      // The broker closes the old connection for the same client id and publishes its will (seq).
      await eventually(() => state()?.seq === seq + 1 && state()!.state === 'online');
      await new Promise((r) => setTimeout(r, 300));
      expect(state()).toMatchObject({ state: 'online', seq: seq + 1 });
    } finally {
      await old.close({ graceful: false }).catch(() => {});
      await fresh.close();
    }
  });

  it('announcements are retained: a terminal gets the current ones at subscribe time and new ones live', async () => {
    const { terminals, connect, handler } = env();
    const t = terminals[0]!;
    handler.announce({ topic: topics.announce('fares'), payload: utf8('{"fares":1}') });
    await new Promise((r) => setTimeout(r, 100));
    const c = await connect(t, { subscribeAnnouncements: true });
    try {
      const latest = (topic: string) => c.announcements().get(topic)?.toString();
      await eventually(() => latest(topics.announce('fares')) === '{"fares":1}');
      handler.announce({ topic: topics.announce('blocklist'), payload: utf8('{"blocklist":2}') });
      await eventually(() => latest(topics.announce('blocklist')) === '{"blocklist":2}');
    } finally {
      await c.close();
    }
  });
}
