// The terminal's MQTT link against the real hub: presence birth/will with a growing seq (a late
// will never marks the new session dead), announcements verified and kept across a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, Site } from './harness.ts';
import type { SimulatedTerminal } from '../../simulators/site/start-simulated-terminal.ts';

describe('terminal ↔ hub link', () => {
  let site: Site;
  let vm: SimulatedTerminal;

  beforeAll(async () => {
    site = await Site.start();
    vm = await site.terminal({ kind: 'vending', terminalId: 'vm-link' });
  });
  afterAll(async () => {
    await site?.close();
  });

  const health = () => site.server?.presence().find((p) => p.terminalId === 'vm-link');

  it('announces itself online; a dropped connection publishes the will, the reconnect a newer online', async () => {
    const first = await eventually(() => (health()?.state === 'online' ? health() : undefined), 5000, 'online');
    vm.runtime.dropHubConnection();
    // The reconnect (new token, new seq) comes back online with a higher seq than the will it left.
    const back = await eventually(() => {
      const h = health();
      return h && h.state === 'online' && h.seq > first.seq && vm.runtime.isOnline ? h : undefined;
    }, 8000, 'back online with a newer seq');
    expect(back.seq).toBeGreaterThan(first.seq);
    expect(vm.runtime.isOnline).toBe(true);
  });

  it('keeps verified announcements: catalog, fares, keys — and blocklist updates arrive live', async () => {
    expect(vm.runtime.articles.map((a) => a.sku)).toContain('cola');
    expect(vm.runtime.trustedHubKeys).toContain(site.hub.hubPublicKey);
    const wallet = await site.wallet();
    site.hub.blocklistAdd(wallet.publicKeyHex, 'test');
    await eventually(() => vm.runtime.isBlocklisted(wallet.publicKeyHex), 5000, 'blocklist');
    site.hub.blocklistRemove(wallet.publicKeyHex);
    await eventually(() => !vm.runtime.isBlocklisted(wallet.publicKeyHex), 5000, 'unblocked');
  });

  it('closing publishes offline presence', async () => {
    await vm.close();
    await eventually(() => health()?.state === 'offline', 5000, 'offline presence');
  });
});
