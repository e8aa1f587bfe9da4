// Benchmark group `outbox`: what one re-send tick of the terminal's hub client
// (terminal/hub/hub-client.ts `retryDue`) costs with a full outbox — 10,000 open requests of
// 1.8 KB, as after a long outage — on the event loop that also serves NFC taps and a gate's
// local decision. The real store (SQLite WAL, synchronous=FULL, a file in a temp dir) and the
// real MQTT client against an aedes broker on loopback; the tick is called directly (retryMs is
// an hour, so the client's own timer never runs meanwhile).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { generateKeyPair } from '../protocol/index.ts';
import { HubClient } from '../terminal/hub/hub-client.ts';
import { MAX_OPEN_OUTBOX, TerminalStore } from '../terminal/store/terminal-store.ts';
import { percentile, round, type Report } from './harness.ts';

const ENVELOPE_BYTES = 1800;
/** The hub client's bound on sends per tick (MAX_SENDS_PER_TICK). */
const SENDS_PER_TICK = 256;

/** `rows` open requests written straight into the outbox (one transaction), oldest first. */
function fillOutbox(store: TerminalStore, rows: number): void {
  const padHexBytes = Math.floor((ENVELOPE_BYTES - 12) / 2);
  store.db.exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
    INSERT INTO outbox (request_id, envelope, wallet, amount_minor, local, created_ms, state, uptime_ms)
    SELECT printf('%032x', i), '{"pad":"' || hex(randomblob(${padHexBytes})) || '"}', NULL, 100, 1, i, 'pending', 0 FROM s`);
}

function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-bench-outbox-'));
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const store = TerminalStore.open(join(dir, 'terminal.sqlite'));
  fillOutbox(store, MAX_OPEN_OUTBOX);
  let reportOnline: () => void = () => undefined;
  const online = new Promise<void>((resolve) => (reportOnline = resolve));
  const client = new HubClient({
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    terminalId: 'bench-outbox',
    secretKey: generateKeyPair().secretKey,
    store,
    log: pino({ level: 'silent' }),
    clock: Date.now,
    retryMs: 3_600_000,
    reconnectPeriodMs: 1000,
    onReply: () => undefined,
    onAnnouncement: () => undefined,
    onOnlineChange: (up) => up && reportOnline(),
  });
  // The tick the client's timer runs (private: measured as the timer calls it).
  const tick = () => (client as unknown as { retryDue(): void }).retryDue();
  try {
    await online; // the connect's own tick sent the first slice
    const dueTicks: number[] = [];
    for (let sent = SENDS_PER_TICK; sent < MAX_OPEN_OUTBOX; sent += SENDS_PER_TICK) {
      dueTicks.push(timeMs(tick));
      await new Promise((resolve) => setImmediate(resolve)); // let the socket drain, as between timer ticks
    }
    const idleTicks: number[] = [];
    for (let i = 0; i < 20; i++) idleTicks.push(timeMs(tick));
    dueTicks.sort((a, b) => a - b);
    idleTicks.sort((a, b) => a - b);
    report('outbox.retry_tick_nothing_due_ms_p50', round(percentile(idleTicks, 50), 2), 'ms');
    report('outbox.retry_tick_256_due_ms_p50', round(percentile(dueTicks, 50), 2), 'ms');
    report('outbox.retry_tick_256_due_ms_max', round(percentile(dueTicks, 100), 2), 'ms');
  } finally {
    await client.close();
    store.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}
