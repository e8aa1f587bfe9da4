/**
 * One hub process per data folder: the ledger engine assumes it is the only writer of its store
 * (hub/ledger/store.ts), so a second `createHub` on the same folder — the CLI while the hub
 * runs — is refused instead of racing the first for sequence numbers.
 *
 * The lock is the operating system's: `hub.lock` is a SQLite file held in EXCLUSIVE locking mode
 * (a POSIX record lock, which SQLite also enforces between connections of one process). The kernel
 * drops it when its process dies, however it dies, so there is no stale lock to take over and no
 * race between two processes taking one over at once (a pid file had both). The file is never
 * deleted: a process that opened it just before an unlink would lock a file nobody else sees.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { HubErrorCode } from './errors.ts';

export class DataDirBusyError extends Error {
  readonly code: HubErrorCode = 'DATA_DIR_BUSY';
  /** The holder's pid as it wrote it in hub.pid (-1 unknown): for the operator, not a proof. */
  readonly pid: number;
  constructor(dataDir: string, pid: number) {
    super(`data dir ${dataDir} is in use by ${pid > 0 ? `process ${pid}` : 'another process'}; stop that hub first`);
    this.name = 'DataDirBusyError';
    this.pid = pid;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holderPid(dataDir: string): number {
  try {
    const pid = Number.parseInt(readFileSync(join(dataDir, 'hub.pid'), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : -1;
  } catch {
    return -1;
  }
}

/** Takes `<dataDir>/hub.lock` for this process until release() (or its exit). */
export function lockDataDir(dataDir: string): { release(): void } {
  const file = join(dataDir, 'hub.lock');
  for (let attempt = 0; ; attempt++) {
    const db = new Database(file, { timeout: 0 });
    try {
      db.pragma('journal_mode = MEMORY'); // no journal file beside it
      db.pragma('locking_mode = EXCLUSIVE');
      // A write takes the exclusive lock, and EXCLUSIVE mode keeps it until the connection closes.
      db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)');
      db.exec('BEGIN EXCLUSIVE; DELETE FROM holder; COMMIT');
    } catch (err) {
      db.close();
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new DataDirBusyError(dataDir, holderPid(dataDir));
      // A pid file an older hub left: busy while that process lives, else gone with it.
      if (code === 'SQLITE_NOTADB' && attempt === 0) {
        const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new DataDirBusyError(dataDir, pid);
        rmSync(file, { force: true });
        continue;
      }
      throw err;
    }
    writeFileSync(join(dataDir, 'hub.pid'), `${process.pid}\n`, { mode: 0o600 });
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        db.close();
      },
    };
  }
}
