/**
 * The hub as its own process for the crash tests: a data folder seeded in-process (a catalog,
 * enrolled POS terminals, funded wallets), then `bin/start.ts --no-site` on it (what
 * `npm start -- --no-site` runs), and purchases signed as a terminal and a wallet sign them.
 */
import pino from 'pino';
import { createHub } from '../../hub/service/hub.ts';
import { makePurchaseRequest, nodeSigningKey, type PurchaseParty } from '../../simulators/load/purchase-request.ts';
import { spawnTs, type Spawned } from '../e2e/process.ts';

export const PRICE_MINOR = 250;

export interface SeededTerminal {
  readonly terminalId: string;
  readonly secretKey: Uint8Array;
  /** One per wallet this terminal sells to. */
  readonly parties: PurchaseParty[];
}

export interface Seeded {
  readonly terminals: SeededTerminal[];
  readonly hubKey: string;
}

/** Enrolls `terminals` POS terminals with `walletsPerTerminal` wallets of `startMinor` each, then lets go of the folder. */
export async function seedHub(dataDir: string, o: { terminals: number; walletsPerTerminal: number; startMinor: number }): Promise<Seeded> {
  const h = await createHub({ dataDir, logger: pino({ level: 'silent' }) });
  try {
    h.importCatalog({ merchantId: 'shop', articles: [{ sku: 'coffee', name: 'Coffee', priceMinor: PRICE_MINOR, currency: 'EUR' }] });
    const terminals: SeededTerminal[] = [];
    for (let t = 0; t < o.terminals; t++) {
      const terminalId = `pos-${t}`;
      const enrolled = await h.enrollTerminal({ terminalId, kind: 'pos', merchantId: 'shop' });
      const parties: PurchaseParty[] = [];
      for (let w = 0; w < o.walletsPerTerminal; w++) {
        const wallet = await h.registerWallet({});
        await h.topUp({ wallet: wallet.license.body.wallet, amountMinor: o.startMinor, operatorId: 'crash-test' });
        parties.push({
          terminalId,
          merchantId: 'shop',
          terminalKey: nodeSigningKey(enrolled.keyPair!.secretKey),
          walletPublicKeyHex: wallet.license.body.wallet,
          walletKey: nodeSigningKey(wallet.keyPair!.secretKey),
          license: wallet.license,
        });
      }
      terminals.push({ terminalId, secretKey: enrolled.keyPair!.secretKey, parties });
    }
    return { terminals, hubKey: h.hubPublicKey };
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

/** `bin/start.ts --no-site` on the folder; `mqttPort` 0 = a free port (pass the first one again to restart on it). */
export async function startHubProcess(dataDir: string, mqttPort: number): Promise<HubProcess> {
  const proc = spawnTs('bin/start.ts', ['--no-site', '--data-dir', dataDir, '--port', '0', '--mqtt-port', String(mqttPort), '--log-level', 'error']);
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
