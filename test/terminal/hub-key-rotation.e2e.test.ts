// Hub key rotation end to end (issue 4, retained announcements): the real hub announces its next
// signing key ahead of time under the key terminals already pin, switches at the planned time,
// retires the old key, and a terminal provisioned before all this keeps selling throughout —
// including after a restart once the key it was provisioned with is gone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, topics } from '../../protocol/index.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import type { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import type { Command } from '../../terminal/machines/types.ts';
import { eventually, Site } from './harness.ts';

/** One cola sold on `t`: returns the hub key that signed the stored result. */
async function sellCola(site: Site, t: SimulatedTerminal, wallet: SimulatedWallet): Promise<string> {
  const commands: Command[] = [];
  const onCommand = (c: Command) => commands.push(c);
  t.runtime.on('command', onCommand);
  try {
    await t.runtime.select('cola');
    t.tap(wallet);
    const receipt = await eventually(() => commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
    t.remove();
    expect(receipt).toMatchObject({ outcome: 'dispensed' });
    const request = commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    const stored = site.hub.registry.result(request.requestId);
    const decoded = decodeMessage(stored?.result ?? new Uint8Array(), 'settlement.result');
    if (!decoded.ok) throw new Error(`no stored result for ${request.requestId}`);
    await eventually(() => t.runtime.machineState.s === 'idle', 5000, 'idle');
    return decoded.value.body.hubKey;
  } finally {
    t.runtime.off('command', onCommand);
  }
}

async function until(timeMs: number): Promise<void> {
  await new Promise((r) => setTimeout(r, Math.max(0, timeMs - Date.now() + 5)));
}

describe('hub key rotation end to end', () => {
  let site: Site;
  let dataDir: string;
  beforeAll(async () => {
    site = await Site.start();
    dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-rotation-'));
  });
  afterAll(async () => {
    await site?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('announces ahead, switches on time, retires the old key; a terminal pinned to the old key sells throughout and after a restart', async () => {
    const vm = await site.terminal({ kind: 'vending', terminalId: 'vm-rotate', dataDir });
    const wallet = await site.wallet({ balanceMinor: 2000 });
    const oldKey = site.hub.hubPublicKey;
    expect(vm.config.hub.hubKey).toBe(oldKey);

    const next = site.hub.rotateHubKey({ activateInMs: 1500, retireAfterMs: 1500 });
    expect(next.publicKey).not.toBe(oldKey);
    // Before the switch: the old key signs; the terminal does not trust the new one yet.
    expect(await sellCola(site, vm, wallet)).toBe(oldKey);
    expect(vm.runtime.trustedHubKeys).toEqual([oldKey]);

    await until(next.notBefore);
    site.hub.refreshKeys();
    expect(site.hub.hubPublicKey).toBe(next.publicKey);
    expect(site.hub.trustAnchorKey).toBe(oldKey);
    // The switch: results come signed by the new key, which the terminal learned from the announcement.
    expect(await sellCola(site, vm, wallet)).toBe(next.publicKey);
    expect([...vm.runtime.trustedHubKeys].sort()).toEqual([oldKey, next.publicKey].sort());

    const retiredAt = site.hub.hubKeys().find((k) => k.publicKey === oldKey)?.notAfter ?? 0;
    await until(retiredAt);
    site.hub.refreshKeys();
    // The terminal keeps the announcement now signed by the new key (which its config does not pin).
    await eventually(() => {
      const kept = decodeMessage(vm.started.store.getKv('announce.keys') ?? '', 'announce.keys');
      return kept.ok && kept.value.body.hubKey === next.publicKey;
    }, 5000, 'keys announcement under the new key');
    expect(vm.runtime.trustedHubKeys).toEqual([next.publicKey]);
    await vm.close({ keepData: true });
    expect(site.hub.trustAnchorKey).toBe(next.publicKey);
    const keys = decodeMessage(site.hub.announcements().find((a) => a.topic === topics.announce('keys'))?.payload ?? new Uint8Array(), 'announce.keys');
    expect(keys.ok && keys.value.body.hubKey).toBe(next.publicKey);
    expect(keys.ok && keys.value.body.hubKeys.map((k) => k.publicKey)).toEqual([next.publicKey]);

    // Restart with the config still pinning the retired key: the learned ring carries it over.
    const again = await startSimulatedTerminal({
      kind: 'vending',
      hubUrl: site.url,
      hub: site.hub,
      terminalId: 'vm-rotate',
      merchantId: 'merchant-vending',
      dataDir,
      config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } },
    });
    try {
      expect(again.config.hub.hubKey).toBe(oldKey);
      expect(again.runtime.trustedHubKeys).toEqual([next.publicKey]);
      await eventually(() => again.runtime.isOnline && again.runtime.articles.length > 0, 8000, 'online with the catalog');
      expect(await sellCola(site, again, wallet)).toBe(next.publicKey);
      expect(await site.balance(wallet)).toBe(2000 - 3 * 250);
    } finally {
      await again.close({ keepData: true });
    }
  });

  it('a second rotation while one is pending is refused with a typed error', () => {
    site.hub.rotateHubKey({ activateInMs: 3600_000, retireAfterMs: 0 });
    expect(() => site.hub.rotateHubKey({ activateInMs: 0, retireAfterMs: 0 })).toThrow(expect.objectContaining({ code: 'ROTATION_REFUSED' }));
  });
});
