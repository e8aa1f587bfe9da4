/**
 * The hub as its own process for the crash tests: a data folder seeded in-process (a catalog, a
 * fare table, ticket products, enrolled POS terminals and gates, funded wallets), then
 * `bin/start.ts --no-site` on it (what `npm start -- --no-site` runs), and purchases and fare exits
 * signed as a terminal and a wallet sign them.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import pino from 'pino';
import { createHub } from '../../hub/service/hub.ts';
import { makePurchaseRequest, nodeSigningKey, type PurchaseParty } from '../../simulators/load/purchase-request.ts';
import { spawnTs, type Spawned } from '../e2e/process.ts';
import { FARES, PRODUCTS, authorize, enroll, register, signRequest, type TestTerminal, type TestWallet } from '../hub/kit.ts';

export const PRICE_MINOR = 250;
/** An exit without an entry record pays the maximum fare. */
export const FARE_EXIT_MINOR = FARES.maxFareMinor;

export interface SeededTerminal {
  readonly terminalId: string;
  readonly secretKey: Uint8Array;
  /** One per wallet this terminal sells to. */
  readonly parties: PurchaseParty[];
}

export interface SeededGate {
  readonly terminal: TestTerminal;
  /** The wallets that leave through this gate. */
  readonly wallets: TestWallet[];
}

export interface Seeded {
  readonly terminals: SeededTerminal[];
  readonly gates: SeededGate[];
  readonly hubKey: string;
}

/**
 * Enrolls `terminals` POS terminals and `gates` exit gates with `walletsPerTerminal` wallets of
 * `startMinor` each, then lets go of the folder.
 */
export async function seedHub(dataDir: string, o: { terminals: number; gates?: number; walletsPerTerminal: number; startMinor: number }): Promise<Seeded> {
  const h = await createHub({ dataDir, logger: pino({ level: 'silent' }) });
  try {
    h.importCatalog({ merchantId: 'shop', articles: [{ sku: 'coffee', name: 'Coffee', priceMinor: PRICE_MINOR, currency: 'EUR' }] });
    h.importFares(FARES);
    h.importProducts(PRODUCTS);
    const fundedWallets = async (): Promise<TestWallet[]> => {
      const wallets: TestWallet[] = [];
      for (let w = 0; w < o.walletsPerTerminal; w++) {
        const wallet = await register(h);
        await h.topUp({ wallet: wallet.id, amountMinor: o.startMinor, operatorId: 'crash-test' });
        wallets.push(wallet);
      }
      return wallets;
    };
    const terminals: SeededTerminal[] = [];
    for (let t = 0; t < o.terminals; t++) {
      const pos = await enroll(h, `pos-${t}`, 'pos', 'shop');
      const terminalKey = nodeSigningKey(pos.keyPair.secretKey);
      const parties = (await fundedWallets()).map(
        (wallet): PurchaseParty => ({ terminalId: pos.id, merchantId: pos.merchantId, terminalKey, walletPublicKeyHex: wallet.id, walletKey: nodeSigningKey(wallet.keyPair.secretKey), license: wallet.license }),
      );
      terminals.push({ terminalId: pos.id, secretKey: pos.keyPair.secretKey, parties });
    }
    const gates: SeededGate[] = [];
    for (let g = 0; g < (o.gates ?? 0); g++) gates.push({ terminal: await enroll(h, `gate-${g}`, 'gate', 'transit'), wallets: await fundedWallets() });
    return { terminals, gates, hubKey: h.hubPublicKey };
  } finally {
    await h.close();
  }
}

export interface HubProcess {
  readonly proc: Spawned;
  readonly url: string;
  readonly port: number;
}

const MQTT_URL = /mqtt\s+(mqtt:\/\/127\.0\.0\.1:(\d+))/;

/**
 * A free port below the kernel's ephemeral range, for a hub that restarts on its port while
 * clients keep reconnecting to it. On an ephemeral port, a client's connect while the hub is down
 * can be given that very port as its source and connect to itself (TCP simultaneous open); it
 * then holds the port and the restart fails with EADDRINUSE. A deployed hub is configured on a
 * fixed port below the range (docs/examples/hub.json: 8883) for the same reason.
 */
export async function restartablePort(): Promise<number> {
  const range = /^(\d+)\s+\d+/.exec(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'));
  const low = range ? Number(range[1]) : 32768;
  const from = Math.max(1024, low - 10_000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in [${from}, ${low})`);
}

/**
 * `bin/start.ts --no-site` on the folder; `mqttPort` 0 = a free port (to restart on one, see
 * restartablePort). Logs at warn (a refused CONNECT, an incident: what a failure message quotes);
 * with HUB_CRASH_LOG_DIR set, each instance's whole output is kept there too (a flake's history).
 */
export async function startHubProcess(dataDir: string, mqttPort: number): Promise<HubProcess> {
  const proc = spawnTs('bin/start.ts', ['--no-site', '--data-dir', dataDir, '--port', '0', '--mqtt-port', String(mqttPort), '--log-level', 'warn']);
  const logDir = process.env.HUB_CRASH_LOG_DIR;
  if (logDir) {
    const file = createWriteStream(join(logDir, `hub-${Date.now()}-${proc.child.pid}.log`));
    proc.child.stdout!.pipe(file, { end: false });
    proc.child.stderr!.pipe(file, { end: false });
  }
  const m = await proc.waitFor(MQTT_URL, 30_000);
  return { proc, url: m[1]!, port: Number(m[2]) };
}

/** The next purchase of one coffee by this wallet (its counters only grow, starting at the clock). */
export function purchaseFactory(): (party: PurchaseParty) => ReturnType<typeof makePurchaseRequest> {
  const counters = new Map<PurchaseParty, number>();
  return (party) => {
    const counter = (counters.get(party) ?? Date.now()) + 1;
    counters.set(party, counter);
    return makePurchaseRequest(party, { lines: [{ sku: 'coffee', qty: 1, unitMinor: PRICE_MINOR }], currency: 'EUR', counter, nowMs: Date.now() });
  };
}

/**
 * A fare at the exit gate without an entry record (the maximum fare), decided at the gate
 * (`offline`) or by the hub; `resign` wraps the same wallet authorization in a new request.
 */
export function fareExit(gate: TestTerminal, wallet: TestWallet, offline: boolean): { requestId: string; bytes: Buffer; resign: (requestId: string) => Buffer } {
  const op = { type: 'fare' as const, authorization: authorize(gate, wallet, 'fare', FARE_EXIT_MINOR, [], Date.now()), license: wallet.license, entry: null, exitStation: 'harbor', exitTime: Date.now() };
  const sign = (requestId?: string) => signRequest(gate, op, Date.now(), { offline, ...(requestId !== undefined ? { requestId } : {}) });
  const first = sign();
  return { requestId: first.requestId, bytes: Buffer.from(first.bytes), resign: (requestId) => Buffer.from(sign(requestId).bytes) };
}
