// A simulated terminal in its own process (as on its own Raspberry Pi): the parent drives it over
// IPC — tap a wallet, store a record on it, take it away — and gets the terminal's commands back
// with wall-clock timestamps (ms since the epoch, sub-ms precision). Keeps the hub's fsyncs and
// signature checks off the terminal's event loop when both run on one machine (benchmarks, demo).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeMessage, fromHex, generateKeyPair, toHex, type Envelope, type KeyPair } from '../../protocol/index.ts';
import { RecordKind, type RecordKindName } from '../../hardware/wallet-apdu/apdu.ts';
import { SimulatedWallet } from '../wallet/simulated-wallet.ts';
import { startSimulatedTerminal, type SimulatedTerminal, type SimulatedTerminalOptions } from './start-simulated-terminal.ts';

export type ProcessTerminalOptions = Omit<SimulatedTerminalOptions, 'hub' | 'credentials' | 'log'> & {
  credentials: { keys: KeyPair; certificate: Envelope<'terminal.certificate'>; hubKey: string; issuerKeys: string[] };
  wallets: Array<{ keys: KeyPair; license: Envelope<'wallet.license'> }>;
};

type ToChild =
  | { type: 'start'; options: Omit<ProcessTerminalOptions, 'credentials' | 'wallets'>; secretKeyHex: string; certificate: Envelope<'terminal.certificate'>; hubKey: string; issuerKeys: string[]; wallets: Array<{ secretKeyHex: string; license: Envelope<'wallet.license'> }> }
  | { type: 'store'; wallet: number; kind: RecordKindName; json: string }
  | { type: 'tap'; wallet: number }
  | { type: 'remove' }
  | { type: 'close' };

export type FromChild =
  | { type: 'ready' }
  | { type: 'presented'; atMs: number }
  | { type: 'command'; c: string; requestId?: string; outcome?: string; atMs: number }
  | { type: 'state'; s: string; atMs: number }
  | { type: 'online'; online: boolean }
  | { type: 'closed' };

const nowEpochMs = (): number => performance.timeOrigin + performance.now();

export interface ProcessTerminal {
  readonly child: ChildProcess;
  storeRecord(wallet: number, kind: RecordKindName, message: Envelope<'gate.admission' | 'ticket' | 'balance.statement'>): void;
  tap(wallet: number): void;
  remove(): void;
  on(listener: (m: FromChild) => void): () => void;
  close(): Promise<void>;
}

export async function startProcessTerminal(options: ProcessTerminalOptions): Promise<ProcessTerminal> {
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const listeners = new Set<(m: FromChild) => void>();
  child.on('message', (m: FromChild) => {
    for (const l of listeners) l(m);
  });
  const send = (m: ToChild): void => {
    child.send(m);
  };
  const { credentials, wallets, ...rest } = options;
  const ready = new Promise<void>((resolve, reject) => {
    const onMsg = (m: FromChild) => {
      if (m.type === 'ready') {
        listeners.delete(onMsg);
        resolve();
      }
    };
    listeners.add(onMsg);
    child.once('exit', (code) => reject(new Error(`terminal process exited early (${code})`)));
  });
  send({
    type: 'start',
    options: rest,
    secretKeyHex: toHex(credentials.keys.secretKey),
    certificate: credentials.certificate,
    hubKey: credentials.hubKey,
    issuerKeys: credentials.issuerKeys,
    wallets: wallets.map((w) => ({ secretKeyHex: toHex(w.keys.secretKey), license: w.license })),
  });
  await ready;
  return {
    child,
    storeRecord: (wallet, kind, message) => send({ type: 'store', wallet, kind, json: JSON.stringify(message) }),
    tap: (wallet) => send({ type: 'tap', wallet }),
    remove: () => send({ type: 'remove' }),
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------- child side ----------------

async function childMain(): Promise<void> {
  let terminal: SimulatedTerminal | undefined;
  let wallets: SimulatedWallet[] = [];
  const reply = (m: FromChild): void => {
    process.send?.(m);
  };
  process.on('message', (m: ToChild) => {
    void (async () => {
      switch (m.type) {
        case 'start': {
          const keys = generateKeyPair(fromHex(m.secretKeyHex));
          wallets = m.wallets.map((w) => new SimulatedWallet({ keys: generateKeyPair(fromHex(w.secretKeyHex)), license: w.license, trustedHubKeys: [m.hubKey] }));
          terminal = await startSimulatedTerminal({ ...m.options, credentials: { keys, certificate: m.certificate, hubKey: m.hubKey, issuerKeys: m.issuerKeys } });
          terminal.runtime.on('command', (c) => {
            if (c.c === 'display' || c.c === 'print') return;
            reply({ type: 'command', c: c.c, atMs: nowEpochMs(), ...('requestId' in c ? { requestId: c.requestId } : {}), ...('outcome' in c ? { outcome: c.outcome } : {}) });
          });
          terminal.runtime.on('state', (s) => reply({ type: 'state', s: s.s, atMs: nowEpochMs() }));
          // The reader found the card (start of the NFC session): for latency breakdowns.
          terminal.runtime.on('tap', () => reply({ type: 'command', c: 'nfc.session', atMs: nowEpochMs() }));
          const t = terminal;
          const waitOnline = setInterval(() => {
            if (t.runtime.isOnline && (t.config.kind !== 'gate' || t.runtime.fareTable)) {
              clearInterval(waitOnline);
              reply({ type: 'ready' });
            }
          }, 10);
          return;
        }
        case 'store': {
          const w = wallets[m.wallet];
          const d = decodeMessage(m.json, ['gate.admission', 'ticket', 'balance.statement']);
          if (w && d.ok) w.applet.records.store(RecordKind[m.kind], Buffer.from(m.json), m.kind !== 'Ticket');
          return;
        }
        case 'tap': {
          const w = wallets[m.wallet];
          if (!w || !terminal) return;
          const atMs = nowEpochMs();
          terminal.tap(w);
          reply({ type: 'presented', atMs });
          return;
        }
        case 'remove':
          terminal?.remove();
          return;
        case 'close':
          await terminal?.close();
          reply({ type: 'closed' });
          process.exit(0);
      }
    })();
  });
}

if (process.argv.includes('--child') && process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await childMain();
}
