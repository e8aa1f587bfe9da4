/** The hub config file: defaults, clear errors naming the field, and a hub-only start from a file. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { HubConfigError, loadHubConfigFile, parseHubConfig, ZERO_CONFIG } from '../../bin/hub-config.ts';
import { createHub } from '../../hub/service/hub.ts';
import { DEMO_DATA_DIR_MARKER } from '../../simulators/fleet/demo-site.ts';
import type { DashboardSnapshot } from '../../hub/dashboard/types.ts';
import { spawnTs } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hub config', () => {
  it('has working defaults: embedded broker on a free port, dashboard on loopback, demo site off', () => {
    const c = parseHubConfig({}, '/srv/hub');
    expect(c).toMatchObject({
      dataDir: '/srv/hub/data/hub',
      currency: 'EUR',
      mqtt: { kind: 'embedded', host: '127.0.0.1', port: 0 },
      dashboard: { host: '127.0.0.1', port: 4600 },
      site: { enabled: false, customersPerS: 5, terminalMode: 'runtime' },
      payoutRetry: { intervalMs: 60_000, maxIntervalMs: 30 * 60_000 },
    });
    expect(Object.isFrozen(c.mqtt)).toBe(true);
    // A config that leaves `site` out (or names only its rate) is a production hub: no demo on it.
    expect(parseHubConfig({ site: { customersPerS: 2 } }).site.enabled).toBe(false);
    expect(parseHubConfig({ site: { enabled: true } }).site.enabled).toBe(true);
    // Only the zero-config `npm start` (the quick start) runs the demo.
    expect(parseHubConfig(ZERO_CONFIG).site).toEqual({ enabled: true, customersPerS: 5, terminalMode: 'runtime' });
  });

  it('names the bad field', () => {
    expect(() => parseHubConfig({ mqtt: { kind: 'embedded', port: 70000 } })).toThrow(/mqtt\.port/);
    expect(() => parseHubConfig({ mqtt: { kind: 'external', url: 'http://x', username: 'hub', passwordFile: 'p' } })).toThrow(/mqtt\.url: expected mqtt:\/\/host:port/);
    expect(() => parseHubConfig({ dashbord: {} })).toThrow(HubConfigError);
    expect(() => parseHubConfig({ currency: 'CHF', site: { enabled: true } })).toThrow(/site\.enabled/);
    expect(parseHubConfig({ currency: 'CHF' }).currency).toBe('CHF');
    expect(parseHubConfig({ currency: 'CHF', site: { enabled: false } }).currency).toBe('CHF');
    // The payout retry timer: checked by the rule the hub applies, named by its field.
    expect(() => parseHubConfig({ payoutRetry: { intervalMs: -1 } })).toThrow(/payoutRetry\.intervalMs: expected an integer number of ms/);
    expect(() => parseHubConfig({ payoutRetry: { intervalMs: 120_000, maxIntervalMs: 60_000 } })).toThrow(/payoutRetry\.maxIntervalMs/);
    expect(() => parseHubConfig({ payoutRetry: { intervalMs: 1.5 } })).toThrow(HubConfigError);
    expect(() => parseHubConfig({ payoutRetry: { every: 1 } })).toThrow(HubConfigError);
    expect(parseHubConfig({ payoutRetry: { intervalMs: 0 } }).payoutRetry).toEqual({ intervalMs: 0, maxIntervalMs: 30 * 60_000 });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => loadHubConfigFile(bad)).toThrow(/is not JSON/);
    const twice = join(dir, 'twice.json');
    writeFileSync(twice, '{"dashboard": {"port": 4600}, "dashboard": {"port": 0}}');
    expect(() => loadHubConfigFile(twice)).toThrow(/is not JSON: duplicate key "dashboard" at line 1/);
    expect(() => loadHubConfigFile(join(dir, 'missing.json'))).toThrow(/ENOENT/);
  });

  it('runs a hub without the demo site from a config file', async () => {
    const file = join(dir, 'hub.json');
    writeFileSync(file, JSON.stringify({ dataDir: './hub-data', dashboard: { port: 0 }, site: { enabled: false }, verifierThreads: 0 }));
    const p = spawnTs('bin/start.ts', ['--config', file]);
    const url = (await p.waitFor(/dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/)/, 30_000))[1]!;
    expect(p.stdout()).toContain(`hub only, data in ${join(dir, 'hub-data')}`);
    const snap = (await (await fetch(new URL('api/snapshot', url))).json()) as DashboardSnapshot;
    expect(snap.terminals).toEqual([]);
    p.child.kill('SIGINT');
    expect(await p.exited()).toBe(0);

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, JSON.stringify({ log: { level: 'loud' } }));
    const q = spawnTs('bin/start.ts', ['--config', broken]);
    expect(await q.exited()).toBe(2);
    expect(q.stderr()).toContain('log.level');
  }, 60_000);

  it('a config file without `site` runs no demo on a real hub\'s folder', async () => {
    // A real hub's folder (keys, registry, ledger), as the production hub leaves it.
    const dataDir = join(dir, 'real-hub');
    await (await createHub({ dataDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 })).close();
    const file = join(dir, 'prod.json');
    writeFileSync(file, JSON.stringify({ dataDir, dashboard: { port: 0 }, verifierThreads: 0 }));
    const p = spawnTs('bin/start.ts', ['--config', file]);
    const url = (await p.waitFor(/dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/)/, 30_000))[1]!;
    expect(p.stdout()).toContain(`hub only, data in ${dataDir}`);
    const snap = (await (await fetch(new URL('api/snapshot', url))).json()) as DashboardSnapshot;
    expect(snap.terminals).toEqual([]);
    p.child.kill('SIGINT');
    expect(await p.exited()).toBe(0);
    expect(existsSync(join(dataDir, 'demo-site.json'))).toBe(false);
    const hub = await createHub({ dataDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 });
    try {
      expect(hub.registry.listTerminals()).toEqual([]);
    } finally {
      await hub.close();
    }
  }, 60_000);

  it('the demo site refuses a folder it did not make (exit 2, nothing written) and takes an empty one', async () => {
    const dataDir = join(dir, 'real-hub-2');
    const hub = await createHub({ dataDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 });
    // A real terminal that shares a demo terminal's name: the demo must not get half-way in.
    await hub.enrollTerminal({ terminalId: 'pos-cafe', kind: 'pos', merchantId: 'shop.cafe' });
    await hub.close();
    const before = readdirSync(dataDir).sort();

    const file = join(dir, 'demo-on-real.json');
    writeFileSync(file, JSON.stringify({ dataDir, dashboard: { port: 0 }, verifierThreads: 0, site: { enabled: true, terminalMode: 'direct', customersPerS: 0 } }));
    const viaConfig = spawnTs('bin/start.ts', ['--config', file]);
    expect(await viaConfig.exited()).toBe(2);
    expect(viaConfig.stderr()).toMatch(/dataDir: .*not made by the demo site/);
    const viaFlag = spawnTs('bin/start.ts', ['--data-dir', dataDir, '--port', '0', '--terminal-mode', 'direct', '--no-customers']);
    expect(await viaFlag.exited()).toBe(2);
    expect(viaFlag.stderr()).toMatch(/--data-dir: .*not made by the demo site/);

    expect(readdirSync(dataDir).sort()).toEqual(before);
    const after = await createHub({ dataDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 });
    try {
      expect(after.registry.listTerminals().map((t) => t.terminalId)).toEqual(['pos-cafe']);
    } finally {
      await after.close();
    }

    // An empty folder is the demo's own from then on (marked), and comes back up.
    const fresh = join(dir, 'demo-fresh');
    mkdirSync(fresh);
    for (const expected of ['new site created in', 'reusing']) {
      const q = spawnTs('bin/start.ts', ['--data-dir', fresh, '--port', '0', '--terminal-mode', 'direct', '--no-customers', '--log-level', 'error']);
      await q.waitFor(/Press Ctrl-C/, 30_000);
      expect(q.stdout()).toContain(`${expected} ${fresh}`);
      q.child.kill('SIGINT');
      expect(await q.exited()).toBe(0);
      expect(existsSync(join(fresh, DEMO_DATA_DIR_MARKER))).toBe(true);
    }
  }, 90_000);
});
