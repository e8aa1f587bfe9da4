/**
 * Closing the hub's MQTT side answers the requests it is handling before the broker goes (bounded
 * by drainMs), and takes no new requests or receipts meanwhile (the broker has acknowledged them:
 * the terminal re-sends both until the hub answers — a result, a receipt.ack — so the next hub gets
 * them; test/terminal/vending.e2e.test.ts shows a lost receipt re-sent): a settled request's reply is sent, not
 * left for a retry to fetch. Embedded aedes on a free port, a slow service in front of the test handler.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMessage, signMessage, topics } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, makeTerminal, purchase, purchaseParty } from './fixtures.ts';

// unref: the stuck handler below must not keep the test process alive.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
const terminal = makeTerminal('pos-1');
const directory = new MemoryDirectory();
directory.add(terminal);

describe('closing the hub server', () => {
  let client: TerminalClient | undefined;
  afterEach(async () => {
    await client?.close({ graceful: false }).catch(() => {});
    client = undefined;
  });

  /** `arrived`: every request and receipt the hub handed to the service, as it arrived. */
  async function slowHub(serviceMs: number, drainMs?: number): Promise<{ server: HubServer; arrived: Buffer[]; records: Record<string, unknown>[] }> {
    const handler = new TestSettlementHandler(directory, inlineVerifier);
    const { logger, records } = captureLogger();
    const arrived: Buffer[] = [];
    const service = {
      handleRequest: async (terminalId: string, payload: Uint8Array) => {
        arrived.push(Buffer.from(payload));
        await sleep(serviceMs);
        return handler.handleRequest(terminalId, payload);
      },
      answerReceipt: async (terminalId: string, payload: Uint8Array) => {
        arrived.push(Buffer.from(payload));
        return handler.answerReceipt(terminalId, payload);
      },
    };
    const server = await createHubServer({ service, directory, logger, ...(drainMs !== undefined ? { drainMs } : {}) });
    client = await connectTerminal({ url: server.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, reconnectPeriodMs: 0 });
    return { server, arrived, records };
  }

  it('answers the request in hand before the broker goes, and takes no new one meanwhile', async () => {
    const { server, arrived } = await slowHub(400);
    const party = purchaseParty(terminal);
    const req = purchase(party);
    const reply = client!.request(req.bytes, req.requestId, 3000);
    await sleep(100); // the service is working on it
    const closing = server.close();
    // Arrives while closing: acknowledged by the broker, left to the terminal's retry (same id).
    const late = purchase(party);
    client!.client.publish(topics.request(terminal.terminalId), Buffer.from(late.bytes), { qos: 1 });
    const receipt = encodeMessage(signMessage('completion.receipt', { requestId: req.requestId, terminalId: terminal.terminalId, outcome: 'failed', time: Date.now() }, terminal.keys.secretKey));
    client!.client.publish(topics.receipt(terminal.terminalId), Buffer.from(receipt), { qos: 1 });
    await closing;
    expect((await reply).length).toBeGreaterThan(0);
    // Only the request in hand reached the service: neither the late request nor the receipt.
    expect(arrived.map((payload) => payload.equals(Buffer.from(req.bytes)))).toEqual([true]);
  });

  it('waits no longer than drainMs for a stuck handler, and says so', async () => {
    const { server, records } = await slowHub(60_000, 200);
    const req = purchase(purchaseParty(terminal));
    void client!.request(req.bytes, req.requestId, 1000).catch(() => undefined);
    await sleep(100);
    const started = performance.now();
    await server.close();
    expect(performance.now() - started).toBeLessThan(5000);
    expect(records.some((r) => r['msg'] === 'mqtt: closed with requests unanswered (terminals retry them)' && r['inflight'] === 1)).toBe(true);
  });
});
