/**
 * Re-sends and probes are timed on a monotonic clock, not the wall clock: a Pi without an RTC
 * boots with a wrong time and NTP steps it later, by hours. Stepped back by D, a wall-clock timer
 * held every re-send for D; stepped forward, it re-sent everything at once. The real hub client
 * against a real aedes broker on loopback and a real store; both clocks are driven by the test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newRequestId } from '../../protocol/index.ts';
import type { HubClient } from '../../terminal/hub/hub-client.ts';
import { TerminalStore } from '../../terminal/store/terminal-store.ts';
import { eventually } from '../mqtt/fixtures.ts';
import { startHubClient, startLoopbackBroker, type LoopbackBroker } from './loopback-broker.ts';

const HOURS_3 = 3 * 3600_000;
const RETRY_MS = 200; // the client's timer then ticks every 50 ms

const dirs: string[] = [];
const open: { client?: HubClient; store?: TerminalStore; broker?: LoopbackBroker }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.client?.close();
    o.store?.close();
    await o.broker?.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A broker, a store and a client whose wall clock and monotonic clock the test sets. */
async function rig(options: { hubDown?: boolean; hubDownProbeMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-resend-clock-'));
  dirs.push(dir);
  const broker = await startLoopbackBroker();
  if (options.hubDown === true) await broker.hubPresence('offline');
  const store = TerminalStore.open(join(dir, 'terminal.sqlite'));
  const clocks = { wallMs: Date.now(), monotonicMs: 1000 };
  const { client, log } = startHubClient({
    url: broker.url,
    store,
    clock: () => clocks.wallMs,
    monotonicMs: () => clocks.monotonicMs,
    retryMs: RETRY_MS,
    ...(options.hubDownProbeMs !== undefined ? { hubDownProbeMs: options.hubDownProbeMs } : {}),
  });
  open.push({ client, store, broker });
  return { broker, store, client, clocks, log };
}

const copiesOf = (sent: string[], envelope: string) => sent.filter((s) => s === envelope).length;
const ticks = (n: number) => new Promise((resolve) => setTimeout(resolve, n * 50));

describe('re-send timing across a wall-clock step', () => {
  it('re-sends a request after retryMs of monotonic time, whether NTP steps the wall clock back or forward', async () => {
    const { broker, store, client, clocks } = await rig();
    await eventually(() => client.online);
    const requestId = newRequestId();
    const envelope = JSON.stringify({ requestId });
    store.enqueue({ requestId, envelope, wallet: null, amountMinor: 250, local: true, createdMs: clocks.wallMs });
    client.send(requestId, envelope);
    await eventually(() => copiesOf(broker.requests, envelope) === 1);

    // Forward by hours, no monotonic time passed: nothing is due yet.
    clocks.wallMs += HOURS_3;
    await ticks(6);
    expect(copiesOf(broker.requests, envelope)).toBe(1);

    // Back by hours (behind the first send), and retryMs of monotonic time passed: re-sent now.
    clocks.wallMs -= 2 * HOURS_3;
    clocks.monotonicMs += RETRY_MS;
    await eventually(() => copiesOf(broker.requests, envelope) === 2, 2000);
  });

  it('re-sends an unacknowledged receipt after retryMs of monotonic time with the wall clock stepped back', async () => {
    const { broker, client, clocks } = await rig();
    await eventually(() => client.online);
    const receipt = JSON.stringify({ receipt: newRequestId() });
    client.publishReceipt(newRequestId(), receipt);
    await eventually(() => copiesOf(broker.receipts, receipt) === 1);
    clocks.wallMs -= HOURS_3;
    await ticks(6);
    expect(copiesOf(broker.receipts, receipt)).toBe(1);
    clocks.monotonicMs += RETRY_MS;
    await eventually(() => copiesOf(broker.receipts, receipt) === 2, 2000);
  });

  it("probes a hub whose presence says down after hubDownProbeMs of monotonic time, not of the wall clock's", async () => {
    const { broker, store, client, clocks, log } = await rig({ hubDown: true, hubDownProbeMs: 100 });
    await eventually(() => log.some((r) => r.hubUp === false));
    const requestId = newRequestId();
    const envelope = JSON.stringify({ requestId });
    store.enqueue({ requestId, envelope, wallet: null, amountMinor: 250, local: true, createdMs: clocks.wallMs });
    // Real time passes, monotonic time does not: no probe.
    await ticks(8);
    expect(client.online).toBe(false);
    expect(copiesOf(broker.requests, envelope)).toBe(0);
    clocks.wallMs -= HOURS_3;
    clocks.monotonicMs += 100;
    await eventually(() => copiesOf(broker.requests, envelope) === 1, 2000);
  });
});
