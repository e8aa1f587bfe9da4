/**
 * One terminal flooding the hub cannot take the fleet's share of the requests handled at once: past
 * its own cap (maxInflightPerTerminal) its new messages are dropped (it retries), and another
 * terminal's request is still handled. Real aedes on port 0; the service holds its answers until the
 * test lets them go, so "in flight" is exact, not a matter of timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify, topics } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal, purchase, purchaseParty } from './fixtures.ts';

/** Answers only once `release()` is called; counts the requests that reached it, per terminal. */
class HeldHandler extends TestSettlementHandler {
  readonly reached = new Map<string, number>();
  #open!: () => void;
  #gate = new Promise<void>((resolve) => (this.#open = resolve));
  release(): void {
    this.#open();
  }
  override async handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    this.reached.set(terminalId, (this.reached.get(terminalId) ?? 0) + 1);
    await this.#gate;
    return super.handleRequest(terminalId, payload);
  }
}

const CAP = 2;
const directory = new MemoryDirectory();
const flooder = makeTerminal('pos-flood');
const neighbour = makeTerminal('pos-calm');
directory.add(flooder);
directory.add(neighbour);
const handler = new HeldHandler(directory, inlineVerifier);
const { logger, records } = captureLogger();
let hub: HubServer;
let clients: TerminalClient[] = [];

beforeAll(async () => {
  hub = await createHubServer({ service: handler, directory, logger, maxInflightPerTerminal: CAP });
  clients = await Promise.all([flooder, neighbour].map((t) => connectTerminal({ url: hub.url, terminalId: t.terminalId, secretKey: t.keys.secretKey, reconnectPeriodMs: 0 })));
});
afterAll(async () => {
  for (const c of clients) await c.close({ graceful: false }).catch(() => {});
  await hub?.close();
});

describe('a cap of messages in flight per terminal', () => {
  it('drops a flooding terminal’s messages past its cap, warns once, and still handles another terminal’s request', async () => {
    const [flood, calm] = clients as [TerminalClient, TerminalClient];
    const sent = Array.from({ length: 5 }, () => purchase(purchaseParty(flooder)));
    // Not awaited one by one: the broker holds each PUBACK until the hub has answered (ack-coalescer).
    const delivered = Promise.all(sent.map((r) => flood.client.publishAsync(topics.request(flooder.terminalId), Buffer.from(r.bytes), { qos: 1 })));
    await eventually(() => hub.stats().dropped === 3);
    const other = purchase(purchaseParty(neighbour));
    const answered = calm.request(other.bytes, other.requestId, 10_000);
    await eventually(() => handler.reached.get(neighbour.terminalId) === 1);
    expect(handler.reached.get(flooder.terminalId)).toBe(CAP);
    expect(records.filter((r) => String(r['msg']).includes('at its cap')).map((r) => r['terminalId'])).toEqual([flooder.terminalId]);

    handler.release();
    expect(decodeAndVerify(await answered, 'settlement.result', handler.hubKeyHex).ok).toBe(true);
    await delivered;
    await eventually(() => hub.stats().inflight === 0);
    // Below its cap again, the terminal's next request is handled.
    const retry = sent[4]!;
    expect(decodeAndVerify(await flood.request(retry.bytes, retry.requestId, 10_000), 'settlement.result', handler.hubKeyHex).ok).toBe(true);
    expect(hub.stats()).toMatchObject({ dropped: 3, failed: 0 });
  });
});
