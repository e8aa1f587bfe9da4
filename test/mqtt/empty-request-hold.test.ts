/**
 * An empty request on the embedded broker: the broker holds its PUBACK until the hub has answered
 * (hub/mqtt/ack-coalescer.ts), so the hub must answer it — a signed MALFORMED error — and let the
 * hold go, or that terminal's socket stays corked and its next replies wait for the hold's timer.
 * The timer is set to 10 minutes here: whatever reaches the terminal within the test got there
 * because the hub released the hold, not because the timer ran out (no timing bound to flake).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify, topics } from '../../protocol/index.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { inlineVerifier } from '../../hub/verify/verifier.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { MemoryDirectory, TestSettlementHandler, captureLogger, eventually, makeTerminal, purchase, purchaseParty } from './fixtures.ts';

const HOLD_MS = 10 * 60_000;
const directory = new MemoryDirectory();
const terminal = makeTerminal('pos-empty');
directory.add(terminal);
const handler = new TestSettlementHandler(directory, inlineVerifier);
let hub: HubServer;
let client: TerminalClient;

beforeAll(async () => {
  hub = await createHubServer({ service: handler, directory, logger: captureLogger().logger, ackHoldMs: HOLD_MS });
  client = await connectTerminal({ url: hub.url, terminalId: terminal.terminalId, secretKey: terminal.keys.secretKey, reconnectPeriodMs: 0 });
});
afterAll(async () => {
  await client?.close({ graceful: false }).catch(() => {});
  await hub?.close();
});

/** Rejects after `ms` with `what`: a held PUBACK or reply would otherwise hang until the 10 min hold ends. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

describe('an empty request on the embedded broker', () => {
  it('gets its PUBACK and a signed MALFORMED error, and the next request is answered with the hold released', async () => {
    const replies: Buffer[] = [];
    client.onReply((p) => replies.push(p));
    // Resolves only once the broker writes the PUBACK, i.e. once the hub released the hold.
    await within(5000, 'PUBACK of the empty request', client.client.publishAsync(topics.request(terminal.terminalId), Buffer.alloc(0), { qos: 1 }));
    const answer = await eventually(() => replies.find((r) => decodeAndVerify(r, 'error', handler.hubKeyHex).ok), 5000);
    const err = decodeAndVerify(answer, 'error', handler.hubKeyHex);
    expect(err.ok && err.value.body).toMatchObject({ code: 'MALFORMED' });
    expect(err.ok && err.value.body.requestId).toBeUndefined();

    // With the empty request's hold still open, this reply would stay corked behind it.
    const req = purchase(purchaseParty(terminal));
    const reply = await within(5000, 'reply to the next request', client.request(req.bytes, req.requestId, 10_000));
    expect(decodeAndVerify(reply, 'settlement.result', handler.hubKeyHex).ok).toBe(true);
    expect(hub.stats()).toMatchObject({ requests: 2, replies: 2, failed: 0, inflight: 0 });
  });
});
