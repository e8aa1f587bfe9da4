/**
 * `--host` moves the embedded broker only: the dashboard (no authentication) stays where its own
 * config puts it, its printed URL is the address it bound, and a bind beyond loopback warns.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnTs } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function get(host: string, port: number, path: string, headers: Record<string, string> = {}): Promise<number | string> {
  return new Promise((resolve) => {
    http
      .get({ host, port, path, headers, timeout: 5_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
  });
}

/** An address of this machine that is not loopback, if it has one. */
const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe('npm start --host', () => {
  it('binds the broker there and leaves the dashboard on loopback, as printed', async () => {
    const cfg = join(dir, 'hub.json');
    writeFileSync(cfg, JSON.stringify({ dataDir: join(dir, 'hub'), dashboard: { port: 0 }, verifierThreads: 0 }));
    const p = spawnTs('bin/start.ts', ['--config', cfg, '--host', '0.0.0.0']);
    try {
      await p.waitFor(/Press Ctrl-C/, 30_000);
      const port = Number(/dashboard\s+http:\/\/127\.0\.0\.1:(\d+)\/\n/.exec(p.stdout())?.[1]);
      expect(port, p.stdout()).toBeGreaterThan(0);
      const mqttPort = Number(/mqtt\s+mqtt:\/\/[\d.]+:(\d+) \(listening on every interface, 0\.0\.0\.0/.exec(p.stdout())?.[1]);
      expect(await get('127.0.0.1', port, '/api/snapshot')).toBe(200);
      // Bound to loopback, it checks the Host header (DNS rebinding) and is not on the LAN.
      expect(await get('127.0.0.1', port, '/api/snapshot', { host: 'evil.example' })).toBe(421);
      if (lanAddress) {
        expect(await get(lanAddress, port, '/api/snapshot')).toBe('ECONNREFUSED');
        expect(await connects(lanAddress, mqttPort)).toBe(true); // the broker is on the LAN
      } else console.warn('no non-loopback IPv4 address: the LAN check is skipped');
      // Only the broker's plain-TCP warning, none for the dashboard.
      expect(p.stderr()).toContain('plain TCP beyond this machine');
      expect(p.stderr()).not.toContain('dashboard: bound beyond');
    } finally {
      p.child.kill('SIGINT');
      expect(await p.exited()).toBe(0);
    }
  }, 60_000);

  it('a dashboard the config binds beyond loopback prints that address and warns', async () => {
    const cfg = join(dir, 'open.json');
    writeFileSync(cfg, JSON.stringify({ dataDir: join(dir, 'hub-open'), dashboard: { host: '0.0.0.0', port: 0 }, verifierThreads: 0 }));
    const p = spawnTs('bin/start.ts', ['--config', cfg]);
    try {
      await p.waitFor(/Press Ctrl-C/, 30_000);
      const m = /dashboard\s+http:\/\/0\.0\.0\.0:(\d+)\/ \(every interface of this machine, no authentication\)/.exec(p.stdout());
      expect(m, p.stdout()).not.toBeNull();
      const port = Number(m![1]);
      if (lanAddress) expect(await get(lanAddress, port, '/api/snapshot')).toBe(200);
      expect(p.stderr()).toMatch(/"msg":"dashboard: bound beyond this machine and it has no authentication[^"]*reverse proxy/);
    } finally {
      p.child.kill('SIGINT');
      expect(await p.exited()).toBe(0);
    }
  }, 60_000);
});
