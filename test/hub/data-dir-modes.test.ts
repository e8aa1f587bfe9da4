// The hub's data folder is owner-only whoever made it: SQLite creates registry/ledger -wal and -shm
// files under the umask (0644) before the hub's chmod of the database files, so on a folder that
// existed as 0755 the WAL holding wallet names was readable by every local user.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createHub } from '../../hub/service/hub.ts';

const root = mkdtempSync(join(tmpdir(), 'tapsettle-modes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs `cat file` as the unprivileged user nobody (possible only as root); undefined when it cannot. */
function catAsNobody(file: string): number | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', file], { stdio: 'ignore' });
  return r.error ? undefined : (r.status ?? undefined);
}

describe('hub data folder', () => {
  it('an existing 0755 folder becomes 0700 at open, so no one else reaches its WAL files', async () => {
    chmodSync(root, 0o755); // nobody may enter the temp root: only the data folder keeps them out
    const dataDir = join(root, 'hub');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o755);
    const hub = await createHub({ dataDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 });
    try {
      await hub.registerWallet({ identity: { name: 'Alice Example' } });
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      const wal = join(dataDir, 'registry.sqlite-wal');
      expect(existsSync(wal)).toBe(true);
      const status = catAsNobody(wal);
      if (status === undefined) console.warn('not root (or no setpriv): reading the WAL as another user is not checked');
      else expect(status).not.toBe(0);
    } finally {
      await hub.close();
    }
  });
});
