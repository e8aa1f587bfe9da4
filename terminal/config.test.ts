import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, toHex } from '../protocol/index.ts';
import { ConfigError, loadConfigFile, parseConfig, readCaFile } from './config.ts';

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
  // --check reads and cross-checks the key and the certificate: real ones for gate-3.
  const keys = generateKeyPair();
  const now = Date.now();
  writeFileSync(join(dir, 'terminal.key'), `${toHex(keys.secretKey)}\n`, { mode: 0o600 });
  const cert = issueTerminalCertificate(generateKeyPair(), { terminalId: 'gate-3', kind: 'gate', merchantId: 'transit', publicKey: toHex(keys.publicKey), notBefore: now, notAfter: now + 365 * 86_400_000 });
  writeFileSync(join(dir, 'terminal.cert.json'), JSON.stringify(cert));
  const creds = { keyFile: 'terminal.key', certificateFile: 'terminal.cert.json' };

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
      'hub.url: expected mqtt://host:port or mqtts://host:port',
      'hub.hubKey: expected 64 lowercase hex chars (an Ed25519 public key)',
    ]);
    expect(issues({ ...base, gate: undefined })).toEqual(['gate: required when kind is "gate"']);
    expect(issues({ ...base, io: { kind: 'johnny-five', port: '/dev/ttyACM0' } })).toEqual(['io.gate: pin map required for a gate on johnny-five']);
    expect(issues({ ...base, nfc: { kind: 'pn532', path: '/dev/serial0', baudRate: 9600 } })[0]).toMatch(/^nfc\.baudRate: /);
    expect(issues({ ...base, extra: 1 })[0]).toMatch(/extra/);
  });

  it('johnny-five needs exactly one of io.port and io.ioPlugin (neither was a TypeError at start); ioPluginExport only with a plugin', () => {
    const gate = { barrier: { kind: 'relay', pin: 2 }, beam: { pin: 3, blockedLevel: 0 }, entryLed: 4, exitLed: 5, deniedLed: 6, buzzer: 7 };
    expect(issues({ ...base, io: { kind: 'johnny-five', gate } })).toEqual([
      'io.port: johnny-five needs io.port (a Firmata board on a serial port, e.g. /dev/ttyACM0) or io.ioPlugin (an IO plugin package)',
    ]);
    expect(issues({ ...base, io: { kind: 'johnny-five', port: '/dev/ttyACM0', ioPlugin: 'raspi-io', gate } })).toEqual([
      "io.ioPlugin: give io.port (a Firmata board) or io.ioPlugin (the Pi's own GPIO), not both: the plugin would be used and the board ignored",
    ]);
    expect(issues({ ...base, io: { kind: 'johnny-five', port: '/dev/ttyACM0', ioPluginExport: 'RaspiIO', gate } })).toEqual(['io.ioPluginExport: only with io.ioPlugin']);
    expect(issues({ ...base, io: { kind: 'johnny-five', ioPlugin: 'raspi-io', ioPluginExport: 'raspi-io', gate } })).toEqual(['io.ioPluginExport: expected a JavaScript export name (e.g. "RaspiIO")']);
    expect(parseConfig({ ...base, io: { kind: 'johnny-five', ioPlugin: 'raspi-io', ioPluginExport: 'RaspiIO', gate } }, '/opt/t', {}).io).toMatchObject({ ioPlugin: 'raspi-io', ioPluginExport: 'RaspiIO' });
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
    // A key given twice is refused, not the last one taken.
    const twice = join(dir, 'twice.json');
    writeFileSync(twice, JSON.stringify({ ...base, ...creds }).replace('{', '{"dataDir": "elsewhere",'));
    expect(() => loadConfigFile(twice, {})).toThrow(/not JSON: duplicate key "dataDir"/);
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ ...base, ...creds }));
    expect(loadConfigFile(good, {}).dataDir).toBe(join(dir, 'state'));
    const ok = spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', good, '--check'], { encoding: 'utf8' });
    expect(ok.stdout).toContain('config OK: gate-3 (gate)');
    expect(ok.status).toBe(0);
    writeFileSync(bad, JSON.stringify({ ...base, kind: 'kiosk' }));
    const no = spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', bad, '--check'], { encoding: 'utf8' });
    expect(no.status).toBe(78);
    expect(no.stderr).toContain('kind: ');
  });

  describe('printer (ESC/POS receipt printer)', () => {
    const { gate: _gate, ...noGate } = base;
    const pos = { ...noGate, terminalId: 'pos-1', kind: 'pos', merchantId: 'canteen', pos: {} };

    it('is optional; the link follows the path unless printer.kind says; baudRate is left to the driver (19200) unless given', () => {
      expect(parseConfig(pos, '/opt/t', {}).printer).toBeUndefined();
      expect(parseConfig({ ...pos, printer: { path: '/dev/usb/lp0' } }, '/opt/t', {}).printer).toEqual({ path: '/dev/usb/lp0', kind: 'device' });
      expect(parseConfig({ ...pos, printer: { path: '/dev/lp1' } }, '/opt/t', {}).printer).toEqual({ path: '/dev/lp1', kind: 'device' });
      expect(parseConfig({ ...pos, printer: { path: '/dev/ttyUSB1' } }, '/opt/t', {}).printer).toEqual({ path: '/dev/ttyUSB1', kind: 'serial' });
      const c = parseConfig({ ...pos, printer: { path: '/dev/receipt-printer', kind: 'serial', baudRate: 9600 } }, '/opt/t', {});
      expect(c.printer).toEqual({ path: '/dev/receipt-printer', kind: 'serial', baudRate: 9600 });
      expect(Object.isFrozen(c.printer)).toBe(true);
      expect(parseConfig({ ...pos, kind: 'vending', printer: { path: '/dev/usb/lp0' } }, '/opt/t', {}).printer?.kind).toBe('device');
    });

    it('names each bad printer field', () => {
      expect(issues({ ...pos, printer: { path: '' } })).toEqual(['printer.path: Too small: expected string to have >=1 characters']);
      expect(issues({ ...pos, printer: { path: '/dev/ttyUSB1', baudRate: 12345 } })).toEqual([
        'printer.baudRate: expected one of 2400, 4800, 9600, 19200, 38400, 57600, 115200 (the rate on the printer\'s self-test page)',
      ]);
      expect(issues({ ...pos, printer: { path: '/dev/usb/lp0', kind: 'usb' } })).toEqual(['printer.kind: Invalid option: expected one of "serial"|"device"']);
      expect(issues({ ...pos, printer: { path: '/dev/usb/lp0', cut: true } })).toEqual(['printer: Unrecognized key: "cut"']);
      expect(issues({ ...pos, printer: { path: '/dev/usb/lp0', baudRate: 9600 } })).toEqual([
        'printer.baudRate: only for a serial printer: /dev/usb/lp0 is a printer device (USB printer class) with no baud rate; remove baudRate, or set printer.kind to "serial" if it is a serial port',
      ]);
      expect(issues({ ...pos, printer: { path: '/dev/usb/lp0', kind: 'serial', baudRate: 9600 } })).toEqual([]);
      expect(issues({ ...base, printer: { path: '/dev/usb/lp0' } })).toEqual(['printer: a gate prints no slips: only a pos or vending terminal has a printer']);
    });

    it('--check refuses a bad printer section with exit 78, naming the field', () => {
      const file = join(dir, 'printer.json');
      writeFileSync(file, JSON.stringify({ ...pos, ...creds, printer: { path: '/dev/usb/lp0', baudRate: 19200 } }));
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', file, '--check'], { encoding: 'utf8' });
      expect(r.status).toBe(78);
      expect(r.stderr).toContain('printer.baudRate: only for a serial printer');
    });
  });

  describe('hub.caFile (mqtts://)', () => {
    // A real CA certificate in PEM (Node's bundled roots), so no openssl is needed here.
    const caPem = rootCertificates[0]!;
    const tlsHub = { ...base.hub, url: 'mqtts://hub.lan:8883' };
    const write = (name: string, text: string): string => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const check = (file: string) => spawnSync(process.execPath, ['--import', 'tsx', 'terminal/main.ts', '--config', file, '--check'], { encoding: 'utf8' });
    const loadIssues = (file: string): string[] => {
      try {
        loadConfigFile(file, {});
      } catch (err) {
        if (err instanceof ConfigError) return err.issues;
        throw err;
      }
      return [];
    };

    it('mqtts:// without caFile is accepted (Node default CAs); with mqtt:// a caFile is refused, saying why', () => {
      expect(parseConfig({ ...base, hub: tlsHub }, '/opt/t', {}).hub.caFile).toBeUndefined();
      expect(issues({ ...base, hub: { ...base.hub, caFile: 'hub-ca.pem' } })).toEqual([
        'hub.caFile: only for an mqtts:// hub.url: mqtt:// is plain TCP, no certificate is checked (use mqtts:// or remove caFile)',
      ]);
      // parseConfig resolves the path against the config file's folder (and reads nothing).
      expect(parseConfig({ ...base, hub: { ...tlsHub, caFile: 'hub-ca.pem' } }, '/opt/t', {}).hub.caFile).toBe('/opt/t/hub-ca.pem');
    });

    it('a readable PEM bundle is accepted by loadConfigFile and --check, and readCaFile returns its certificates', () => {
      write('ca.pem', `# the hub's CA\n${caPem}\n${rootCertificates[1]!}\n`);
      const file = write('tls-good.json', JSON.stringify({ ...base, ...creds, hub: { ...tlsHub, caFile: 'ca.pem' } }));
      const c = loadConfigFile(file, {});
      expect(c.hub.caFile).toBe(join(dir, 'ca.pem'));
      expect(c.hub.url).toBe('mqtts://hub.lan:8883');
      const pem = readCaFile(c.hub.caFile!);
      expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
      expect(pem).not.toContain('# the hub');
      const ok = check(file);
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      expect(ok.stdout).toContain('config OK: gate-3 (gate) → mqtts://hub.lan:8883');
    });

    it('a missing CA file is a ConfigError at load, and --check exits 78 naming hub.caFile', () => {
      const file = write('tls-missing.json', JSON.stringify({ ...base, hub: { ...tlsHub, caFile: 'no-such-ca.pem' } }));
      expect(() => loadConfigFile(file, {})).toThrow(ConfigError);
      expect(loadIssues(file)).toEqual([expect.stringMatching(new RegExp(`^hub\\.caFile: cannot read ${join(dir, 'no-such-ca.pem')}: ENOENT`))]);
      const no = check(file);
      expect(no.status).toBe(78);
      expect(no.stderr).toContain(`hub.caFile: cannot read ${join(dir, 'no-such-ca.pem')}`);
    });

    it('a file that is not a PEM certificate bundle (a directory, a key, a broken certificate) is a ConfigError', () => {
      const cfg = (caFile: string) => write('tls-bad.json', JSON.stringify({ ...base, hub: { ...tlsHub, caFile } }));
      expect(loadIssues(cfg(dir))[0]).toMatch(/^hub\.caFile: cannot read .*EISDIR/);
      write('key.pem', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n');
      expect(loadIssues(cfg('key.pem'))).toEqual([`hub.caFile: ${join(dir, 'key.pem')} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`]);
      const body = caPem.split('\n');
      write('broken.pem', [...body.slice(0, 3), ...body.slice(6)].join('\n'));
      expect(loadIssues(cfg('broken.pem'))[0]).toMatch(/^hub\.caFile: certificate 1 in .*broken\.pem does not parse/);
      // The mqtt:// check does not depend on the file: it is refused even when the file is fine.
      write('ca.pem', caPem);
      const plain = write('tls-plain.json', JSON.stringify({ ...base, hub: { ...base.hub, caFile: 'ca.pem' } }));
      expect(loadIssues(plain)).toEqual([expect.stringMatching(/^hub\.caFile: only for an mqtts:\/\/ hub\.url/)]);
      expect(check(plain).status).toBe(78);
    });
  });
});
