import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttClient } from 'mqtt';
import { makeConnectToken, topics } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import type { SettlementHandler } from '../../hub/mqtt/types.ts';
import { MemoryDirectory, captureLogger, makeTerminal } from './fixtures.ts';

// The embedded broker holds a request's PUBACK until the hub's reply is written: both reach the
// terminal in one TCP segment (hub/mqtt/ack-coalescer.ts).
const directory = new MemoryDirectory();
const terminal = makeTerminal('pos-7');
directory.add(terminal);
let failNext = false;
const service: SettlementHandler = {
  async handleRequest(_terminalId, payload) {
    await new Promise((r) => setTimeout(r, 30));
    if (failNext) {
      failNext = false;
      throw new Error('hub fault');
    }
    return Buffer.from(`{"answer":${Buffer.from(payload).toString('utf8')}}`);
  },
};
let hub: HubServer;
let client: MqttClient;
/** Every chunk the terminal's socket read, as it arrived. */
const chunks: Buffer[] = [];
const replies: string[] = [];

beforeAll(async () => {
  hub = await createHubServer({ service, directory, logger: captureLogger().logger });
  client = new MqttClient(
    () => {
      const socket = net.connect(hub.port!, '127.0.0.1');
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      return socket;
    },
    { protocolVersion: 4, clientId: terminal.terminalId, username: terminal.terminalId, password: makeConnectToken(terminal.terminalId, terminal.keys.secretKey, Date.now()), clean: false, reconnectPeriod: 0 },
  );
  client.on('message', (_topic, payload) => replies.push(payload.toString('utf8')));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(topics.reply(terminal.terminalId), { qos: 1 });
});
afterAll(async () => {
  await client?.endAsync(true);
  await hub?.close();
});

/** Publishes a request QoS 1; resolves with the message id once its PUBACK came. */
async function request(body: string): Promise<number> {
  const sent = await client.publishAsync(topics.request(terminal.terminalId), body, { qos: 1 });
  return sent!.messageId!;
}

function pubackAt(messageId: number): number {
  const puback = Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
  return chunks.findIndex((c) => c.includes(puback));
}

describe('PUBACK and reply in one write (embedded broker)', () => {
  it('the PUBACK of a request arrives in the same segment as the hub’s reply', async () => {
    chunks.length = 0;
    const messageId = await request('1');
    await new Promise((r) => setTimeout(r, 50));
    expect(replies).toContain('{"answer":1}');
    const at = pubackAt(messageId);
    expect(at).toBeGreaterThanOrEqual(0);
    // A QoS 1 PUBLISH on the reply topic, in that same chunk.
    expect(chunks[at]!.includes(Buffer.from(topics.reply(terminal.terminalId)))).toBe(true);
    expect(chunks[at]!.includes(Buffer.from('{"answer":1}'))).toBe(true);
  });

  it('a request the hub fails on still gets its PUBACK, without waiting out the hold', async () => {
    chunks.length = 0;
    failNext = true;
    const started = Date.now();
    const messageId = await request('2');
    // The hold's own limit is 1 s; the failure path releases it as soon as the handler gave up.
    expect(Date.now() - started).toBeLessThan(900);
    expect(pubackAt(messageId)).toBeGreaterThanOrEqual(0);
    expect(replies).not.toContain('{"answer":2}');
    expect(hub.stats().failed).toBe(1);
  });
});
