import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from './config.ts';

const KEY = 'a'.repeat(64);
const base = {
  terminalId: 'gate-3',
  kind: 'gate',
  merchantId: 'transit',
  dataDir: 'state',
  keyFile: '/etc/tapsettle/terminal.key',
  certificateFile: 'terminal.cert.json',
  hub: { url: 'mqtt://hub.local:1883', hubKey: KEY, issuerKeys: [KEY] },
  nfc: { kind: 'pn532', path: '/dev/serial0' },
  io: { kind: 'virtual' },
  gate: { station: 'north', mode: 'entry' },
};

function issues(raw: unknown): string[] {
  try {
    parseConfig(raw, '/opt/t', {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('terminal config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-terminal-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fills defaults, resolves paths against the config file, and freezes', () => {
    const c = parseConfig(base, '/opt/t', {});
    expect(c.dataDir).toBe('/opt/t/state');
    expect(c.keyFile).toBe('/etc/tapsettle/terminal.key');
    expect(c.hub).toMatchObject({ timeoutMs: 5000, retryMs: 1000 });
    expect(c.nfc).toMatchObject({ baudRate: 115_200, pollIntervalMs: 30 });
    expect(c.currency).toBe('EUR');
    expect(c.limits.maxSingleMinor).toBeGreaterThan(0);
    expect(Object.isFrozen(c.hub)).toBe(true);
  });

  it('names every bad field', () => {
    expect(issues({ ...base, hub: { ...base.hub, url: 'http://x', hubKey: 'nope' } })).toEqual([
      'hub.url: expected mqtt://host:port',
      'hub.hubKey: expected 64 lowercase hex chars (an Ed25519 public key)',
    ]);
    expect(issues({ ...base, gate: undefined })).toEqual(['gate: required when kind is "gate"']);
    expect(issues({ ...base, io: { kind: 'johnny-five', port: '/dev/ttyACM0' } })).toEqual(['io.gate: pin map required for a gate on johnny-five']);
    expect(issues({ ...base, nfc: { kind: 'pn532', path: '/dev/serial0', baudRate: 9600 } })[0]).toMatch(/^nfc\.baudRate: /);
    expect(issues({ ...base, extra: 1 })[0]).toMatch(/extra/);
  });

  it('only the config module reads the environment: TAPSETTLE_TERMINAL_LOG_LEVEL', () => {
    expect(parseConfig(base, '/opt/t', { TAPSETTLE_TERMINAL_LOG_LEVEL: 'debug' }).log.level).toBe('debug');
    expect(() => parseConfig(base, '/opt/t', { TAPSETTLE_TERMINAL_LOG_LEVEL: 'loud' })).toThrow(ConfigError);
  });

  it('file errors are ConfigErrors; the CLI --check validates a file and exits 78 on a bad one', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => loadConfigFile(bad)).toThrow(/not JSON/);
    expect(() => loadConfigFile(join(dir, 'missing.json'))).toThrow(/cannot read/);
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(base));
    expect(loadConfigFile(good, {}).dataDir).toBe(join(dir, 'state'));
    const ok = spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', good, '--check'], { encoding: 'utf8' });
    expect(ok.stdout).toContain('config OK: gate-3 (gate)');
    expect(ok.status).toBe(0);
    writeFileSync(bad, JSON.stringify({ ...base, kind: 'kiosk' }));
    const no = spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', bad, '--check'], { encoding: 'utf8' });
    expect(no.status).toBe(78);
    expect(no.stderr).toContain('kind: ');
  });
});
