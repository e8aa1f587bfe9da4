/**
 * Test kit for the hub: a hub on a real SQLite data dir in a temp folder with a movable clock,
 * enrolled terminals and registered wallets with real keys, and request builders that go through
 * the same protocol functions a terminal and a wallet use (createOffer → authorizeOffer → sign).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  authorizeOffer,
  createOffer,
  decodeAndVerify,
  decodeMessage,
  encodeMessage,
  linesTotalMinor,
  newChallenge,
  newRequestId,
  signMessage,
  toHex,
  type Body,
  type Envelope,
  type KeyPair,
  type LineItemT,
} from '../../protocol/index.ts';
import { main as cliMain } from '../../hub/cli/main.ts';
import { createHub, type CreateHubOptions, type Hub } from '../../hub/service/hub.ts';

export const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

export interface TestTerminal {
  readonly id: string;
  readonly merchantId: string;
  readonly keyPair: KeyPair;
  readonly certificate: Envelope<'terminal.certificate'>;
}

export interface TestWallet {
  readonly id: string;
  readonly keyPair: KeyPair;
  readonly license: Envelope<'wallet.license'>;
  counter: number;
}

export interface HubFixture {
  readonly hub: Hub;
  readonly dir: string;
  now: number;
  advance(ms: number): void;
  /** Closes the hub, runs `whileClosed` (e.g. to copy or replace its files), opens it again. */
  reopen(whileClosed?: () => void): Promise<Hub>;
  cleanup(): Promise<void>;
}

/**
 * Copies the registry file now (the hub reopened around it); the returned function puts the copy
 * back (reopened again): what a power cut leaves when the registry's later commits were not on disk.
 */
export async function registryLosesWhatFollows(fx: HubFixture, name: string): Promise<() => Promise<void>> {
  const registryFile = join(fx.dir, 'registry.sqlite');
  const snapshot = join(fx.dir, `registry.${name}`);
  // The file with its WAL, if the close left one (a checkpoint is not guaranteed): what is on disk.
  const copyWithWal = (from: string, to: string) => {
    copyFileSync(from, to);
    rmSync(`${to}-wal`, { force: true });
    rmSync(`${to}-shm`, { force: true });
    if (existsSync(`${from}-wal`)) copyFileSync(`${from}-wal`, `${to}-wal`);
  };
  await fx.reopen(() => copyWithWal(registryFile, snapshot));
  return async () => {
    await fx.reopen(() => copyWithWal(snapshot, registryFile));
  };
}

export async function openHubFixture(options: Partial<CreateHubOptions> = {}): Promise<HubFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-hub-'));
  const fx = {
    dir,
    now: T0,
    hub: undefined as unknown as Hub,
    advance(ms: number) {
      fx.now += ms;
    },
    async reopen(whileClosed?: () => void) {
      await fx.hub.close();
      whileClosed?.();
      fx.hub = await createHub({ dataDir: dir, clock: () => fx.now, holdReleaseIntervalMs: 0, ...options });
      return fx.hub;
    },
    async cleanup() {
      await fx.hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  fx.hub = await createHub({ dataDir: dir, clock: () => fx.now, holdReleaseIntervalMs: 0, ...options });
  return fx;
}

export async function enroll(hub: Hub, id: string, kind: 'vending' | 'gate' | 'pos', merchantId: string): Promise<TestTerminal> {
  const { certificate, keyPair } = await hub.enrollTerminal({ terminalId: id, kind, merchantId });
  if (!keyPair) throw new Error('expected a generated key');
  return { id, merchantId, keyPair, certificate };
}

export async function register(hub: Hub, options: Parameters<Hub['registerWallet']>[0] = {}): Promise<TestWallet> {
  const { license, keyPair } = await hub.registerWallet(options);
  if (!keyPair) throw new Error('expected a generated key');
  return { id: toHex(keyPair.publicKey), keyPair, license, counter: 0 };
}

/** A wallet registered and topped up in cash at `till` (a POS); throws unless the top-up is approved. */
export async function fundedWallet(fx: HubFixture, till: TestTerminal, amountMinor: number, options: Parameters<Hub['registerWallet']>[0] = {}): Promise<TestWallet> {
  const w = await register(fx.hub, options);
  if (amountMinor > 0) {
    const r = readResult(fx.hub, await fx.hub.handleRequest(till.id, cashTopup(till, w, amountMinor, fx.now).bytes));
    if (r.status !== 'approved') throw new Error(`top-up of ${amountMinor} not approved: ${r.code ?? r.status}`);
  }
  return w;
}

/** An admission record as entry gate `gate` writes it onto the wallet. */
export function admissionRecord(gate: TestTerminal, w: TestWallet, station: string, time: number): Envelope<'gate.admission'> {
  return signMessage('gate.admission', { recordId: newRequestId(), wallet: w.id, terminalId: gate.id, station, time }, gate.keyPair.secretKey);
}

export function signRequest(
  terminal: TestTerminal,
  op: Body<'settlement.request'>['op'],
  nowMs: number,
  extra: { requestId?: string; offline?: boolean; time?: number } = {},
): { requestId: string; bytes: Uint8Array } {
  const requestId = extra.requestId ?? newRequestId();
  const request = signMessage(
    'settlement.request',
    { requestId, terminalId: terminal.id, time: extra.time ?? nowMs, offline: extra.offline ?? false, op },
    terminal.keyPair.secretKey,
  );
  return { requestId, bytes: encodeMessage(request) };
}

/** Offer → wallet authorization, exactly as at the NFC reader. */
export function authorize(
  terminal: TestTerminal,
  wallet: TestWallet,
  purpose: Body<'purchase.offer'>['purpose'],
  amountMinor: number,
  lines: LineItemT[],
  nowMs: number,
  currency = 'EUR',
): Envelope<'wallet.authorization'> {
  const offer = createOffer(terminal.keyPair, {
    terminalId: terminal.id,
    merchantId: terminal.merchantId,
    purpose,
    amountMinor,
    currency,
    lines,
    nowMs,
    terminalCert: terminal.certificate,
  });
  return authorizeOffer(wallet.keyPair, offer, wallet.counter++, nowMs);
}

export function purchase(
  terminal: TestTerminal,
  wallet: TestWallet,
  lines: LineItemT[],
  nowMs: number,
  { catalogVersion, ...extra }: { requestId?: string; offline?: boolean; catalogVersion?: number } = {},
): { requestId: string; bytes: Uint8Array; authorization: Envelope<'wallet.authorization'> } {
  const authorization = authorize(terminal, wallet, 'purchase', linesTotalMinor(lines), lines, nowMs);
  const op = { type: 'purchase' as const, authorization, license: wallet.license, lines, ...(catalogVersion !== undefined ? { catalogVersion } : {}) };
  return { ...signRequest(terminal, op, nowMs, extra), authorization };
}

export function cashTopup(pos: TestTerminal, wallet: TestWallet, amountMinor: number, nowMs: number): { requestId: string; bytes: Uint8Array } {
  return signRequest(pos, { type: 'topup', wallet: wallet.id, amountMinor, currency: 'EUR', method: 'cash', operatorId: 'op-1' }, nowMs);
}

export function cancellation(wallet: TestWallet, originalRequestId: string, nowMs: number): Envelope<'cancellation'> {
  return signMessage('cancellation', { originalRequestId, wallet: wallet.id, time: nowMs, challenge: newChallenge() }, wallet.keyPair.secretKey);
}

export function historyQuery(wallet: TestWallet, nowMs: number, limit = 20): Envelope<'history.query'> {
  return signMessage('history.query', { wallet: wallet.id, time: nowMs, challenge: newChallenge(), limit }, wallet.keyPair.secretKey);
}

export function transfer(from: TestWallet, to: TestWallet, amountMinor: number, nowMs: number): Envelope<'transfer'> {
  return signMessage(
    'transfer',
    { from: from.id, to: to.id, amountMinor, currency: 'EUR', time: nowMs, counter: from.counter++, challenge: newChallenge() },
    from.keyPair.secretKey,
  );
}

export function receipt(terminal: TestTerminal, requestId: string, outcome: Body<'completion.receipt'>['outcome'], nowMs: number, reason?: string): Uint8Array {
  return encodeMessage(signMessage('completion.receipt', { requestId, terminalId: terminal.id, outcome, time: nowMs, ...(reason === undefined ? {} : { reason }) }, terminal.keyPair.secretKey));
}

/** Decodes a hub answer and checks the hub's signature; throws when it is not a signed result. */
export function readResult(hub: Hub, bytes: Uint8Array): Body<'settlement.result'> {
  const r = decodeAndVerify(bytes, 'settlement.result', hub.hubPublicKey);
  if (!r.ok) throw new Error(`not a hub-signed result: ${r.code} ${r.detail}`);
  return r.value.body;
}

export function readError(hub: Hub, bytes: Uint8Array): Body<'error'> {
  const r = decodeAndVerify(bytes, 'error', hub.hubPublicKey);
  if (!r.ok) throw new Error(`not a hub-signed error: ${r.code} ${r.detail}`);
  return r.value.body;
}

export function messageType(bytes: Uint8Array): string {
  const r = decodeMessage(bytes, ['settlement.result', 'error']);
  return r.ok ? r.value.type : `undecodable:${r.code}`;
}

export const SNACKS = {
  merchantId: 'snacks',
  articles: [
    { sku: 'cola', name: 'Cola 0.5l', priceMinor: 250, currency: 'EUR', slot: 1 },
    { sku: 'chips', name: 'Chips', priceMinor: 180, currency: 'EUR', slot: 2 },
    { sku: 'beer', name: 'Beer', priceMinor: 400, currency: 'EUR', restriction: { minAge: 18 } },
    { sku: 'staff-meal', name: 'Staff meal', priceMinor: 300, currency: 'EUR', restriction: { groupsAny: ['staff'] } },
    { sku: 'jacket', name: 'Jacket', priceMinor: 5000, currency: 'EUR', cancelWindowMs: 15 * 60_000 },
  ],
};

export const FARES = {
  currency: 'EUR',
  stations: { central: 0, park: 1, harbor: 2, airport: 4 },
  baseFareMinor: 150,
  perZoneMinor: 100,
  maxFareMinor: 800,
  maxTripMs: 3 * 3600_000,
  utcOffsetMinutes: 60,
  timeBands: [],
};

export const PRODUCTS = {
  products: [{ name: 'day-pass', priceMinor: 700, currency: 'EUR', validityMs: 24 * 3600_000, stations: [] }],
};

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The operator CLI's own entry (`main` of hub/cli/main.ts) in this process: the same parsing and
 * checks without a process start, for the many bad-input cases (which exit before any folder opens).
 */
export async function runCliHere(dataDir: string, args: readonly string[], cwd = process.cwd()): Promise<CliRun> {
  const run = { stdout: '', stderr: '' };
  const code = await cliMain(['node', 'tapsettle', '--data-dir', dataDir, ...args], {
    argv: [],
    cwd,
    out: (t) => void (run.stdout += t),
    err: (t) => void (run.stderr += t),
    exitCode: 0,
  });
  return { code, ...run };
}

/** The operator CLI (`hub/cli/main.ts`) as a real child process on a data folder. */
export function runCli(dataDir: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const tsx = join(process.cwd(), 'node_modules/.bin/tsx');
  const cli = join(process.cwd(), 'hub/cli/main.ts');
  return new Promise((resolve) => {
    execFile(tsx, [cli, '--data-dir', dataDir, ...args], { cwd: options.cwd, timeout: options.timeoutMs ?? 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
    });
  });
}
