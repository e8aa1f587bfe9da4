// Shared by the ledger's tests: a real SQLite file in a temp dir, and id makers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, type EngineOptions } from './engine.ts';
import { SqliteLedgerStore, type SqliteStoreOptions } from './sqlite-store.ts';

export interface TempLedger {
  readonly dir: string;
  readonly file: string;
  openStore(): SqliteLedgerStore;
  openEngine(options?: EngineOptions): Promise<Engine>;
  cleanup(): void;
}

export function tempLedger(storeOptions: SqliteStoreOptions = {}): TempLedger {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-ledger-'));
  const file = join(dir, 'ledger.db');
  return {
    dir,
    file,
    // No checkpoint worker per open: tests open stores often; sqlite-store.test covers it.
    openStore: () => SqliteLedgerStore.open(file, { backgroundCheckpointMs: 0, ...storeOptions }),
    openEngine: (options) => Engine.open(SqliteLedgerStore.open(file, { backgroundCheckpointMs: 0, ...storeOptions }), options),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function rid(): string {
  return randomBytes(16).toString('hex');
}

/** Deterministic 64-hex wallet id for test wallet n. */
export function walletId(n: number): string {
  return n.toString(16).padStart(64, 'a');
}

/** A controllable clock. */
export function manualClock(startMs = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void; set: (ms: number) => void } {
  let t = startMs;
  return { now: () => t, advance: (ms) => void (t += ms), set: (ms) => void (t = ms) };
}
