/**
 * A subscribe the broker refuses after CONNACK (an ACL not reloaded yet, a broker busy) left the
 * connection up and the terminal unlinked — deciding offline — until the connection happened to
 * drop, with one warning. The set-up is now tried again on the same connection, ever more slowly,
 * each failure logged as an error with a stable code. The real hub client against a real aedes
 * broker on loopback whose subscribe authorizer refuses the reply topic a few times.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AedesOptions } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { topics } from '../../protocol/index.ts';
import type { HubClient } from '../../terminal/hub/hub-client.ts';
import { TerminalStore } from '../../terminal/store/terminal-store.ts';
import { eventually } from '../mqtt/fixtures.ts';
import { startHubClient, startLoopbackBroker, type LoopbackBroker } from './loopback-broker.ts';

const TERMINAL_ID = 'vend-subscribe';
const RECONNECT_PERIOD_MS = 100;

/** Refuses (SUBACK 0x80) the terminal's reply topic the first `refusals` times it is asked for. */
function refusingReplies(refusals: number): AedesOptions & { asked: { n: number } } {
  const asked = { n: 0 };
  return {
    asked,
    authorizeSubscribe: (_client, sub, done) => {
      if (sub.topic !== topics.reply(TERMINAL_ID)) return done(null, sub);
      asked.n += 1;
      done(null, asked.n <= refusals ? null : sub);
    },
  };
}

describe('setting up the hub link after CONNACK', () => {
  let dir: string | undefined;
  let broker: LoopbackBroker | undefined;
  let store: TerminalStore | undefined;
  let client: HubClient | undefined;
  afterEach(async () => {
    await client?.close();
    store?.close();
    await broker?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function start(refusals: number) {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-subscribe-retry-'));
    const options = refusingReplies(refusals);
    broker = await startLoopbackBroker(options);
    let connections = 0;
    broker.broker.on('client', () => (connections += 1));
    store = TerminalStore.open(join(dir, 'terminal.sqlite'));
    const started = startHubClient({ url: broker.url, store, terminalId: TERMINAL_ID, reconnectPeriodMs: RECONNECT_PERIOD_MS });
    client = started.client;
    const setupFailures = () => started.log.filter((r) => r.code === 'HUB_SETUP_FAILED');
    return { ...started, asked: options.asked, connections: () => connections, setupFailures };
  }

  it('subscribes again on the same connection after a refused subscribe, backing off, and goes online', async () => {
    const t = await start(2);
    await eventually(() => t.online.at(-1) === true, 5000);
    expect(t.client.online).toBe(true);
    expect(t.asked.n).toBe(3);
    expect(t.connections()).toBe(1); // never dropped: the same connection, set up again
    expect(t.setupFailures().map((r) => ({ level: r.level, failures: r.failures, retryInMs: r.retryInMs }))).toEqual([
      { level: 50, failures: 1, retryInMs: RECONNECT_PERIOD_MS },
      { level: 50, failures: 2, retryInMs: 2 * RECONNECT_PERIOD_MS },
    ]);
  });

  it('keeps trying, ever more slowly, while the broker keeps refusing, and stops when closed', async () => {
    const t = await start(Number.POSITIVE_INFINITY);
    await eventually(() => t.setupFailures().length >= 3, 5000);
    expect(t.client.online).toBe(false);
    expect(t.setupFailures().slice(0, 3).map((r) => r.retryInMs)).toEqual([1, 2, 4].map((k) => k * RECONNECT_PERIOD_MS));
    await t.client.close();
    const asked = t.asked.n;
    await new Promise((resolve) => setTimeout(resolve, 10 * RECONNECT_PERIOD_MS));
    expect(t.asked.n).toBe(asked);
  });
});
