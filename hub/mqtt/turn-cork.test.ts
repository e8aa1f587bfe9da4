import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { corkForTurn } from './turn-cork.ts';

/** A connected pair of real loopback sockets. */
async function socketPair(): Promise<{ client: net.Socket; server: net.Socket; close: () => Promise<void> }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const server = await accepted;
  return {
    client,
    server,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('corkForTurn', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it("holds one turn's writes and sends them together when the turn ends", async () => {
    const pair = await socketPair();
    close = pair.close;
    const received: Buffer[] = [];
    pair.server.on('data', (d: Buffer) => received.push(d));
    corkForTurn(pair.client);
    corkForTurn(pair.client); // the same turn: still one cork
    expect(pair.client.writableCorked).toBe(1);
    for (const part of ['puback ', 'reply-1 ', 'reply-2']) pair.client.write(part);
    expect(pair.client.writableLength).toBe('puback reply-1 reply-2'.length);
    await turn();
    expect(pair.client.writableCorked).toBe(0);
    while (Buffer.concat(received).length < 22) await new Promise((r) => setTimeout(r, 5));
    expect(Buffer.concat(received).toString()).toBe('puback reply-1 reply-2');
  });

  it('corks again in the next turn', async () => {
    const pair = await socketPair();
    close = pair.close;
    corkForTurn(pair.client);
    await turn();
    expect(pair.client.writableCorked).toBe(0);
    corkForTurn(pair.client);
    expect(pair.client.writableCorked).toBe(1);
    await turn();
    expect(pair.client.writableCorked).toBe(0);
  });

  it('leaves a destroyed stream, and one destroyed while corked, alone', async () => {
    const pair = await socketPair();
    close = pair.close;
    corkForTurn(pair.client);
    pair.client.destroy();
    await turn(); // no uncork on a destroyed socket, and no throw
    corkForTurn(pair.client);
    expect(pair.client.writableCorked).toBe(1); // only the first, never released: the socket is gone
    corkForTurn(undefined); // mqtt.js has no stream while disconnected
  });
});
