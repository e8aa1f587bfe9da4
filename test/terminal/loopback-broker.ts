// A real aedes broker on a free loopback port that records what terminals publish, and the real
// terminal hub client against it, for the tests of the client's re-sends and link set-up.
import { createServer, type AddressInfo } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { topics } from '../../protocol/index.ts';
import { HubClient, type HubClientOptions } from '../../terminal/hub/hub-client.ts';
import { captureLogger, makeTerminal } from '../mqtt/fixtures.ts';

export interface LoopbackBroker {
  readonly broker: Aedes;
  readonly url: string;
  /** Every request and receipt payload published, in order of arrival. */
  readonly requests: string[];
  readonly receipts: string[];
  /** Publishes the hub's retained presence, as the hub (or its will) does. */
  hubPresence(state: 'online' | 'offline'): Promise<void>;
  close(): Promise<void>;
}

export async function startLoopbackBroker(options: AedesOptions = {}): Promise<LoopbackBroker> {
  const broker = await Aedes.createBroker(options);
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const requests: string[] = [];
  const receipts: string[] = [];
  const record = (into: string[]) => (packet: { payload: string | Buffer }, cb: () => void) => (into.push(Buffer.from(packet.payload).toString('utf8')), cb());
  await new Promise<void>((resolve) => broker.subscribe(topics.allRequests, record(requests), resolve));
  await new Promise<void>((resolve) => broker.subscribe(topics.allReceipts, record(receipts), resolve));
  return {
    broker,
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    receipts,
    hubPresence: (state) =>
      new Promise<void>((resolve, reject) =>
        broker.publish({ cmd: 'publish', topic: topics.hubPresence, payload: Buffer.from(JSON.stringify({ v: 1, state, time: Date.now() })), qos: 1, retain: true, dup: false }, (err) => (err ? reject(err) : resolve())),
      ),
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

export type TestHubClientOptions = Partial<Omit<HubClientOptions, 'url' | 'store'>> & Pick<HubClientOptions, 'url' | 'store'>;

/** The real hub client with quiet defaults; `log` records every log line it writes. */
export function startHubClient(options: TestHubClientOptions): { client: HubClient; log: Record<string, unknown>[]; online: boolean[] } {
  const terminalId = options.terminalId ?? 'vend-resend';
  const { logger, records } = captureLogger();
  const online: boolean[] = [];
  const client = new HubClient({
    terminalId,
    secretKey: makeTerminal(terminalId).keys.secretKey,
    log: logger,
    clock: Date.now,
    retryMs: 60_000,
    reconnectPeriodMs: 100,
    onReply: () => undefined,
    onAnnouncement: () => undefined,
    ...options,
    onOnlineChange: (up) => (online.push(up), options.onOnlineChange?.(up)),
  });
  return { client, log: records, online };
}
