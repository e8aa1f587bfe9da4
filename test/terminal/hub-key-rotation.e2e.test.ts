// Hub key rotation end to end (issue 4, retained announcements): the real hub announces its next
// signing key ahead of time under the key terminals already pin, switches at the planned time,
// retires the old key on its own timer, and a terminal provisioned before all this keeps selling
// throughout — including after a restart once the key it was provisioned with is gone, and after
// an operator re-pins it to the key that replaced a leaked one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, topics } from '../../protocol/index.ts';
import { startSimulatedTerminal, type SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';
import type { SimulatedWallet } from '../../simulators/wallet/simulated-wallet.ts';
import type { Command } from '../../terminal/machines/types.ts';
import { eventually, Site, tapAfresh } from './harness.ts';

/** One cola sold on `t`: returns the hub key that signed the stored result. */
async function sellCola(site: Site, t: SimulatedTerminal, wallet: SimulatedWallet): Promise<{ hubKey: string }> {
  const commands: Command[] = [];
  const onCommand = (c: Command) => commands.push(c);
  t.runtime.on('command', onCommand);
  try {
    await t.runtime.select('cola');
    await tapAfresh(t, wallet);
    const receipt = await eventually(() => commands.find((c) => c.c === 'receipt'), 8000, 'receipt');
    t.remove();
    expect(receipt).toMatchObject({ outcome: 'dispensed' });
    const request = commands.find((c) => c.c === 'hub.request') as Extract<Command, { c: 'hub.request' }>;
    const stored = site.hub.registry.result(request.requestId);
    const decoded = decodeMessage(stored?.result ?? new Uint8Array(), 'settlement.result');
    if (!decoded.ok) throw new Error(`no stored result for ${request.requestId}`);
    await eventually(() => t.runtime.machineState.s === 'idle', 5000, 'idle');
    return { hubKey: decoded.value.body.hubKey };
  } finally {
    t.runtime.off('command', onCommand);
  }
}

async function until(timeMs: number): Promise<void> {
  await new Promise((r) => setTimeout(r, Math.max(0, timeMs - Date.now() + 5)));
}

/** Restarts a simulated terminal on its data dir, optionally re-pinned to another hub key first. */
async function restart(site: Site, dataDir: string, repinTo?: string): Promise<SimulatedTerminal> {
  if (repinTo) {
    const trustFile = join(dataDir, 'trust.json');
    writeFileSync(trustFile, JSON.stringify({ ...(JSON.parse(readFileSync(trustFile, 'utf8')) as object), hubKey: repinTo }));
  }
  const t = await startSimulatedTerminal({
    kind: 'vending',
    hubUrl: site.url,
    hub: site.hub,
    terminalId: 'vm-rotate',
    merchantId: 'merchant-vending',
    dataDir,
    config: { hub: { reconnectPeriodMs: 100, retryMs: 300 } },
  });
  await eventually(() => t.runtime.isOnline && t.runtime.articles.length > 0, 8000, 'online with the catalog');
  return t;
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

  it('announces ahead, switches on time, retires the old key on its own timer; a terminal pinned to the old key sells throughout and after a restart; re-pinned after a leak it sells again', async () => {
    const vm = await site.terminal({ kind: 'vending', terminalId: 'vm-rotate', dataDir });
    const wallet = await site.wallet({ balanceMinor: 2000 });
    const oldKey = site.hub.hubPublicKey;
    expect(vm.config.hub.hubKey).toBe(oldKey);

    const next = site.hub.rotateHubKey({ activateInMs: 3000, retireAfterMs: 1500 });
    // Before the switch the old key signs (on a slow machine the sale may straddle the switch:
    // then the new key, already announced, signs and the terminal accepts that too).
    const early = await sellCola(site, vm, wallet);
    if (Date.now() < next.notBefore) expect(early.hubKey).toBe(oldKey);
    else expect([oldKey, next.publicKey]).toContain(early.hubKey);

    await until(next.notBefore);
    // The switch: results come signed by the new key, which the terminal learned from the announcement.
    expect(await sellCola(site, vm, wallet)).toMatchObject({ hubKey: next.publicKey });
    expect([...vm.runtime.trustedHubKeys].sort()).toEqual([oldKey, next.publicKey].sort());

    // Retirement: the hub's key timer re-announces under the new key; the terminal keeps that
    // announcement (which its config does not pin).
    const retiredAt = site.hub.hubKeys().find((k) => k.publicKey === oldKey)?.notAfter ?? 0;
    const keysSigner = (raw: string | Uint8Array | undefined) => {
      const d = decodeMessage(raw ?? '', 'announce.keys');
      return d.ok ? d.value.body.hubKey : undefined;
    };
    const hubSide = () => keysSigner(site.hub.announcements().find((a) => a.topic === topics.announce('keys'))?.payload);
    await eventually(() => keysSigner(vm.started.store.getKv('announce.keys')) === next.publicKey, 15_000, 'keys announcement under the new key').catch((err: unknown) => {
      // Which side is behind: the hub's timer, or the terminal's copy?
      throw new Error(`${String(err)}; hub announces under ${hubSide()?.slice(0, 8)}, the terminal kept ${keysSigner(vm.started.store.getKv('announce.keys'))?.slice(0, 8)}, online ${vm.runtime.isOnline}, now-retiredAt ${Date.now() - retiredAt} ms`);
    });
    expect(Date.now()).toBeGreaterThan(retiredAt);
    const keys = decodeMessage(site.hub.announcements().find((a) => a.topic === topics.announce('keys'))?.payload ?? new Uint8Array(), 'announce.keys');
    expect(keys.ok && keys.value.body.hubKeys.map((k) => k.publicKey)).toEqual([oldKey, next.publicKey]);
    await vm.close({ keepData: true });

    // Restart with the config still pinning the retired key: the learned ring carries it over.
    const again = await restart(site, dataDir);
    try {
      expect(again.config.hub.hubKey).toBe(oldKey);
      expect(again.runtime.trustedHubKeys).toContain(next.publicKey);
      expect(await sellCola(site, again, wallet)).toMatchObject({ hubKey: next.publicKey });
    } finally {
      await again.close({ keepData: true });
    }

    // The new key leaks: the operator rotates it out and re-pins the terminal to the replacement.
    const replacement = site.hub.rotateHubKey({ activateInMs: 0, retireAfterMs: 0, compromised: true });
    const repinned = await restart(site, dataDir, replacement.publicKey);
    try {
      // The leak dropped the whole ring: the terminal follows the replacement alone.
      await eventually(() => repinned.runtime.trustedHubKeys.includes(replacement.publicKey), 5000, 'the replacement trusted');
      expect(repinned.runtime.trustedHubKeys).toEqual([replacement.publicKey]);
      expect(await sellCola(site, repinned, wallet)).toMatchObject({ hubKey: replacement.publicKey });
      expect(await site.balance(wallet)).toBe(2000 - 4 * 250);
    } finally {
      await repinned.close({ keepData: true });
    }
  });
  it('a second rotation while one is pending is refused with a typed error', () => {
    site.hub.rotateHubKey({ activateInMs: 3600_000, retireAfterMs: 0 });
    expect(() => site.hub.rotateHubKey({ activateInMs: 0, retireAfterMs: 0 })).toThrow(expect.objectContaining({ code: 'ROTATION_REFUSED' }));
  });
});
