/** The hub config file: defaults, clear errors naming the field, and a hub-only start from a file. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HubConfigError, loadHubConfigFile, parseHubConfig } from '../../bin/hub-config.ts';
import type { DashboardSnapshot } from '../../hub/dashboard/types.ts';
import { spawnTs } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hub config', () => {
  it('has working defaults: embedded broker on a free port, dashboard on loopback, demo site on', () => {
    const c = parseHubConfig({}, '/srv/hub');
    expect(c).toMatchObject({
      dataDir: '/srv/hub/data/hub',
      currency: 'EUR',
      mqtt: { kind: 'embedded', host: '127.0.0.1', port: 0 },
      dashboard: { host: '127.0.0.1', port: 4600 },
      site: { enabled: true, customersPerS: 5, terminalMode: 'runtime' },
      payoutRetry: { intervalMs: 60_000, maxIntervalMs: 30 * 60_000 },
    });
    expect(Object.isFrozen(c.mqtt)).toBe(true);
  });

  it('names the bad field', () => {
    expect(() => parseHubConfig({ mqtt: { kind: 'embedded', port: 70000 } })).toThrow(/mqtt\.port/);
    expect(() => parseHubConfig({ mqtt: { kind: 'external', url: 'http://x', username: 'hub', passwordFile: 'p' } })).toThrow(/mqtt\.url: expected mqtt:\/\/host:port/);
    expect(() => parseHubConfig({ dashbord: {} })).toThrow(HubConfigError);
    expect(() => parseHubConfig({ currency: 'CHF' })).toThrow(/site\.enabled/);
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
});
