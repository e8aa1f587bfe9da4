/**
 * One hub process per data folder: the ledger engine assumes it is the only writer of its store
 * (hub/ledger/store.ts), so a second `createHub` on the same folder — the CLI while the hub
 * runs — is refused instead of racing the first for sequence numbers.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HubErrorCode } from './errors.ts';

export class DataDirBusyError extends Error {
  readonly code: HubErrorCode = 'DATA_DIR_BUSY';
  readonly pid: number;
  constructor(dataDir: string, pid: number) {
    super(`data dir ${dataDir} is in use by process ${pid}; stop that hub first`);
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

/** Takes `<dataDir>/hub.lock` (pid inside); a lock left by a dead process is taken over. */
export function lockDataDir(dataDir: string): { release(): void } {
  const file = join(dataDir, 'hub.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new DataDirBusyError(dataDir, pid);
      rmSync(file, { force: true }); // stale: its process is gone (crash, SIGKILL)
    }
  }
  throw new DataDirBusyError(dataDir, -1);
}
