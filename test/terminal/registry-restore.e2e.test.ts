// A hub whose registry was restored from a backup announces versions its terminals have passed
// already: the next change must still reach them (a stolen wallet blocklisted after the restore).
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHub } from '../../hub/service/hub.ts';
import { eventually, Site } from './harness.ts';

describe('terminal after the hub registry is restored from a backup', () => {
  let site: Site;
  beforeAll(async () => {
    site = await Site.start();
  }, 30_000);
  afterAll(async () => {
    await site.close();
  });

  const registryFile = (): string => join(site.dir, 'hub', 'registry.sqlite');

  /** The hub stops (its broker too), `between` runs on its files, and it starts again on the same port. */
  async function restartHub(between: () => void): Promise<void> {
    const url = await site.stopServer();
    await site.hub.close();
    between();
    site.hub = await createHub({ dataDir: join(site.dir, 'hub'), holdReleaseIntervalMs: 0 });
    await site.restartServer(url);
  }

  it('applies the restored hub’s next blocklist although its version is one the terminal has passed', async () => {
    const t = await site.terminal({ kind: 'vending', terminalId: 'vm-restore' });
    const [before, lost, after] = [await site.wallet(), await site.wallet(), await site.wallet()];
    site.hub.blocklistAdd(before.publicKeyHex);
    await eventually(() => t.runtime.isBlocklisted(before.publicKeyHex), 8000, 'first blocklist applied');

    const backup = join(site.dir, 'registry.backup.sqlite');
    await restartHub(() => copyFileSync(registryFile(), backup));
    // Changes the backup will not hold: the terminal's version moves past the backup's.
    site.hub.blocklistAdd(lost.publicKeyHex);
    site.hub.blocklistRemove(before.publicKeyHex);
    await eventually(() => t.runtime.isBlocklisted(lost.publicKeyHex) && !t.runtime.isBlocklisted(before.publicKeyHex), 8000, 'later blocklist applied');
    const passed = site.hub.registry.blocklistVersion();

    await restartHub(() => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(registryFile() + suffix, { force: true });
      copyFileSync(backup, registryFile());
    });
    await eventually(() => t.runtime.isOnline, 8000, 'terminal back online');
    // The retained announcement of the restored hub is older than the terminal's: kept as it was.
    expect(t.runtime.isBlocklisted(lost.publicKeyHex)).toBe(true);

    site.hub.blocklistAdd(after.publicKeyHex);
    expect(site.hub.registry.blocklistVersion()).toBeLessThanOrEqual(passed);
    await eventually(() => t.runtime.isBlocklisted(after.publicKeyHex), 8000, 'blocklist of the restored hub applied');
    // The restored hub's list is what holds now, as the hub itself refuses: the backup's entry
    // is back and the one made after the backup is gone.
    expect(t.runtime.isBlocklisted(before.publicKeyHex)).toBe(true);
    expect(t.runtime.isBlocklisted(lost.publicKeyHex)).toBe(false);
  }, 60_000);
});
