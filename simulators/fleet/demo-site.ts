/**
 * Sets up (first run) or reopens (later runs) the demo site in a hub's data folder: catalogs,
 * fare table and ticket products imported once; the site's terminals enrolled and the simulated
 * customers' wallets registered and topped up once. The simulated devices' secret keys live in
 * `<dataDir>/demo-site.json` (mode 0600), so a re-run reuses the same terminals and wallets.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, newRequestId, toHex, type Envelope } from '../../protocol/index.ts';
import type { Hub } from '../../hub/service/hub.ts';
import { DEMO_CATALOGS, DEMO_CUSTOMERS, DEMO_FARES, DEMO_PRODUCTS, DEMO_TERMINALS } from './demo-data.ts';
import { makeSimWallet, type SimWallet } from './wallets.ts';

export interface DemoTerminalSecret {
  readonly terminalId: string;
  readonly kind: 'gate' | 'vending' | 'pos';
  readonly merchantId: string;
  readonly station?: string;
  readonly secretKeyHex: string;
  readonly certificate: Envelope<'terminal.certificate'>;
}

interface DemoState {
  readonly version: 1;
  terminals: DemoTerminalSecret[];
  wallets: Array<{ name: string; secretKeyHex: string; publicKey: string; license: Envelope<'wallet.license'> }>;
}

export interface DemoSite {
  readonly terminals: readonly DemoTerminalSecret[];
  readonly wallets: readonly SimWallet[];
  /** True when this run created the site (false: reopened from the data folder). */
  readonly created: boolean;
}

export class DemoSiteError extends Error {
  readonly code = 'DEMO_SITE_STATE';
}

/** Marks a data folder as the demo's own (its hub holds simulated money and terminals with known keys). */
export const DEMO_DATA_DIR_MARKER = 'tapsettle-demo.txt';

/** The data folder holds something the demo did not make (a real hub's data): the demo must not run there. */
export class DemoDataDirError extends Error {
  readonly code = 'DEMO_DATA_DIR';
}

/**
 * The demo enrolls terminals whose secret keys sit in demo-site.json and tops wallets up from
 * nothing, so it runs only in a missing or empty folder (then marked) or one it marked before —
 * never on a real hub's data (as `tapsettle sim`, fleet-run.ts). Checked before anything is written.
 */
export function claimDemoDataDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new DemoDataDirError(`${dir} is not a folder`);
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, DEMO_DATA_DIR_MARKER))) {
    throw new DemoDataDirError(
      `${dir} is not empty and was not made by the demo site: the demo enrolls terminals with known keys and mints money into its hub's ledger, so it runs only in an empty folder or one of its own (a real hub: set "site": { "enabled": false } or pass --no-site)`,
    );
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, DEMO_DATA_DIR_MARKER), 'A demo hub made by `npm start`: its terminals and money are simulated.\n');
}

function saveState(file: string, state: DemoState): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export async function openDemoSite(hub: Hub, dataDir: string): Promise<DemoSite> {
  for (const catalog of DEMO_CATALOGS) if (!hub.registry.latestCatalog(catalog.merchantId)) hub.importCatalog(structuredClone(catalog));
  if (hub.registry.fareVersions().length === 0) hub.importFares(structuredClone(DEMO_FARES));
  if (!hub.registry.product(DEMO_PRODUCTS.products[0]!.name)) hub.importProducts(structuredClone(DEMO_PRODUCTS));

  const file = join(dataDir, 'demo-site.json');
  const state: DemoState = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoState) : { version: 1, terminals: [], wallets: [] };
  const created = state.terminals.length === 0;

  for (const t of DEMO_TERMINALS) {
    if (state.terminals.some((s) => s.terminalId === t.terminalId)) continue;
    if (hub.registry.terminal(t.terminalId)) {
      throw new DemoSiteError(`terminal ${t.terminalId} is enrolled in ${dataDir} but its simulated key is missing from demo-site.json; use a fresh --data-dir`);
    }
    const enrolled = await hub.enrollTerminal({ terminalId: t.terminalId, kind: t.kind, merchantId: t.merchantId });
    state.terminals.push({
      terminalId: t.terminalId,
      kind: t.kind,
      merchantId: t.merchantId,
      ...('station' in t ? { station: t.station } : {}),
      secretKeyHex: toHex(enrolled.keyPair!.secretKey),
      certificate: enrolled.certificate,
    });
    saveState(file, state);
  }

  for (const c of DEMO_CUSTOMERS) {
    if (state.wallets.some((w) => w.name === c.name)) continue;
    const reg = await hub.registerWallet({ ageOver: c.ageOver, groups: [...c.groups], offlineLimitMinor: 1_000, identity: { name: c.name } });
    const publicKey = reg.license.body.wallet;
    state.wallets.push({ name: c.name, secretKeyHex: toHex(reg.keyPair!.secretKey), publicKey, license: reg.license });
    saveState(file, state);
    await hub.topUp({ wallet: publicKey, amountMinor: c.topupMinor, operatorId: 'demo-setup', requestId: newRequestId() });
  }

  const wallets = await Promise.all(
    state.wallets.map(async (w) => {
      const sim = makeSimWallet(w.name, fromHex(w.secretKeyHex), w.publicKey, w.license);
      sim.balanceMinor = (await hub.engine.getAccount(w.publicKey))?.balanceMinor ?? null;
      return sim;
    }),
  );
  return { terminals: state.terminals, wallets, created };
}
