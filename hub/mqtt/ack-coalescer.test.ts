import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AckCoalescer } from './ack-coalescer.ts';

/** A real TCP pair on loopback: what the hub writes on `server`, `received` collects. */
async function socketPair(): Promise<{ server: net.Socket; received: () => string; close: () => void }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  let text = '';
  client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const server = await accepted;
  return {
    server,
    received: () => text,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('AckCoalescer', () => {
  it('holds a terminal’s writes until its last open request is released', async () => {
    const pair = await socketPair();
    cleanups.push(pair.close);
    const acks = new AckCoalescer(10_000);
    acks.hold('pos-1', pair.server);
    acks.hold('pos-1', pair.server);
    pair.server.write('ack1');
    pair.server.write('ack2');
    await settle(50);
    expect(pair.received()).toBe('');
    acks.release('pos-1');
    pair.server.write('reply1');
    await settle(50);
    expect(pair.received()).toBe('');
    expect(acks.held).toBe(1);
    acks.release('pos-1');
    await settle(50);
    expect(pair.received()).toBe('ack1ack2reply1');
    expect(acks.held).toBe(0);
    // Released: later writes go out at once; an extra release is harmless.
    acks.release('pos-1');
    pair.server.write('!');
    await settle(50);
    expect(pair.received()).toBe('ack1ack2reply1!');
  });

  it('lets go on its own after maxHoldMs when no reply comes', async () => {
    const pair = await socketPair();
    cleanups.push(pair.close);
    const acks = new AckCoalescer(100);
    acks.hold('vend-2', pair.server);
    pair.server.write('ack');
    await settle(30);
    expect(pair.received()).toBe('');
    await settle(300);
    expect(pair.received()).toBe('ack');
    expect(acks.held).toBe(0);
  });

  it('holds nothing for a socket with a backlog, and releaseAll lets every terminal go', async () => {
    const a = await socketPair();
    const b = await socketPair();
    cleanups.push(a.close, b.close);
    const acks = new AckCoalescer(10_000);
    b.server.cork();
    b.server.write(Buffer.alloc(16 * 1024));
    acks.hold('gate-3', b.server);
    expect(acks.held).toBe(0);
    b.server.uncork();
    acks.hold('pos-1', a.server);
    a.server.write('held');
    expect(acks.held).toBe(1);
    acks.releaseAll();
    await settle(50);
    expect(a.received()).toBe('held');
    expect(acks.held).toBe(0);
  });
});
