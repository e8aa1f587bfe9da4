/**
 * `terminal/main.ts` as systemd runs it, on configs that are wrong or name a machine that is not
 * there: `--check` and the real start agree (one shared check), and every operational failure is
 * one line and a documented exit code, never a stack trace — 78 (EX_CONFIG, not restarted) for
 * the config, its key and certificate and the command line; 69 (EX_UNAVAILABLE, restarted) for a
 * missing device; 73 (EX_CANTCREAT, restarted) for a dataDir that cannot be created.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, toHex, type KeyPair } from '../../protocol/index.ts';
import { ConfigError, parseConfig } from '../../terminal/config.ts';
import { loadIoPlugin } from '../../terminal/devices.ts';
import { checkTerminalConfig } from '../../terminal/start-terminal.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-cli-start-'));
/** A child's TMPDIR: a folder it leaves behind (the emulator's tapsettle-pn532-*) shows up here. */
const childTmp = join(dir, 'tmp');
mkdirSync(childTmp);
const leftInTmp = (): string[] => readdirSync(childTmp).filter((name) => !name.startsWith('tsx-')); // tsx's compile cache
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hub = generateKeyPair();
const terminal = generateKeyPair();
const now = Date.now();
function certificate(keys: KeyPair, fields: { terminalId?: string; merchantId?: string; kind?: 'vending' | 'gate' | 'pos'; notAfter?: number } = {}): string {
  return JSON.stringify(
    issueTerminalCertificate(hub, { terminalId: 'gate-3', merchantId: 'transit', kind: 'gate', notAfter: now + 365 * 24 * 3600_000, ...fields, publicKey: toHex(keys.publicKey), notBefore: now - 60_000 }),
  );
}
const write = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};
write('terminal.key', `${toHex(terminal.secretKey)}\n`);
write('other.key', `${toHex(generateKeyPair().secretKey)}\n`);
write('terminal.cert.json', certificate(terminal));
write('other-terminal.cert.json', certificate(terminal, { terminalId: 'gate-4', kind: 'pos' }));
write('expired.cert.json', certificate(terminal, { notAfter: now - 1000 }));
// What `tapsettle enroll-terminal` prints, saved whole instead of its `certificate` field.
const enrollOutput = JSON.stringify({ terminalId: 'gate-3', certificate: JSON.parse(certificate(terminal)) as unknown, hubKey: toHex(hub.publicKey), issuerKey: toHex(hub.publicKey), openedMerchants: [] }, null, 2);
write('enrolled.json', `${enrollOutput}\n`);
// The field extracted as the docs say (terminal/README.md step 6), and as `jq .certificate` would (indented).
write('extracted.cert.json', execFileSync(process.execPath, ['-p', 'JSON.stringify(JSON.parse(require("fs").readFileSync(0, "utf8")).certificate)'], { input: enrollOutput, encoding: 'utf8' }));
write('indented.cert.json', `${JSON.stringify(JSON.parse(certificate(terminal)), null, 2)}\n`);
write('not-a-folder', 'x');

const GATE_PINS = { barrier: { kind: 'relay', pin: 2 }, beam: { pin: 3, blockedLevel: 0 }, entryLed: 4, exitLed: 5, deniedLed: 6, buzzer: 7 };
const base = {
  terminalId: 'gate-3',
  kind: 'gate',
  merchantId: 'transit',
  dataDir: 'state',
  keyFile: 'terminal.key',
  certificateFile: 'terminal.cert.json',
  // Nothing listens on port 1: a terminal that got past its checks would only retry the hub.
  hub: { url: 'mqtt://127.0.0.1:1', hubKey: toHex(hub.publicKey), issuerKeys: [toHex(hub.publicKey)] },
  nfc: { kind: 'emulated' },
  io: { kind: 'virtual' },
  gate: { station: 'north', mode: 'entry' },
  log: { level: 'warn' },
};
let configs = 0;
const config = (changes: Record<string, unknown>): string => write(`terminal-${++configs}.json`, JSON.stringify({ ...base, ...changes }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** One run of the CLI (as the unit does: node --import tsx), killed if it is still up after 20 s. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'terminal/main.ts', ...args], { env: { ...process.env, ...env }, timeout: 20_000, encoding: 'utf8' }, (_err, stdout, stderr) =>
      resolve({ status: child.exitCode, stdout, stderr }),
    );
  });
}
/** The start's failure: exactly one pino JSON line on stderr, no stack trace. */
function fatalLine(run: Run): Record<string, unknown> {
  const lines = run.stderr.trim().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(line['level']).toBe(60);
  return line;
}

describe('terminal CLI: --check and the start agree, and fail with one line and a documented code', () => {
  it('a certificate of another terminal: --check and the start exit 78 naming each differing field', async () => {
    const file = config({ certificateFile: 'other-terminal.cert.json' });
    const [check, start] = await Promise.all([cli(['--config', file, '--check']), cli(['--config', file])]);
    expect(check.status, check.stderr).toBe(78);
    expect(check.stdout).not.toContain('config OK');
    expect(check.stderr).toContain(`certificateFile: ${join(dir, 'other-terminal.cert.json')} is for terminalId "gate-4", the config has terminalId "gate-3"`);
    expect(check.stderr).toContain('is for kind "pos", the config has kind "gate"');
    expect(start.status, start.stderr).toBe(78);
    const line = fatalLine(start);
    expect(line).toMatchObject({ code: 'CONFIG_INVALID', exitCode: 78, terminalId: 'gate-3' });
    expect(line['issues']).toHaveLength(2);
    expect(start.stderr).not.toContain('TypeError');
  });

  it('a key that is not the certificate\'s: exit 78 naming keyFile, from --check and the start', async () => {
    const file = config({ keyFile: 'other.key' });
    const [check, start] = await Promise.all([cli(['--config', file, '--check']), cli(['--config', file])]);
    expect(check.status, check.stderr).toBe(78);
    expect(check.stderr).toContain(`keyFile: ${join(dir, 'other.key')} does not match certificateFile ${join(dir, 'terminal.cert.json')}`);
    expect(start.status, start.stderr).toBe(78);
    expect(fatalLine(start)).toMatchObject({ code: 'CONFIG_INVALID', issues: [expect.stringMatching(/^keyFile: .* does not match certificateFile/)] });
  });

  it('--check reads the key and the certificate: a missing one is exit 78 naming the field', async () => {
    const [noKey, noCert, ok, expired] = await Promise.all([
      cli(['--config', config({ keyFile: 'missing.key' }), '--check']),
      cli(['--config', config({ certificateFile: 'missing.cert.json' }), '--check']),
      cli(['--config', config({}), '--check']),
      cli(['--config', config({ certificateFile: 'expired.cert.json' }), '--check']),
    ]);
    expect(noKey.status).toBe(78);
    expect(noKey.stderr).toContain(`keyFile: cannot read ${join(dir, 'missing.key')}`);
    expect(noCert.status).toBe(78);
    expect(noCert.stderr).toContain(`certificateFile: cannot read ${join(dir, 'missing.cert.json')}`);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain('config OK: gate-3 (gate) → mqtt://127.0.0.1:1');
    expect(ok.status).toBe(0);
    // An expired certificate is told, not refused: the Pi's clock may be what is wrong.
    expect(expired.status).toBe(0);
    expect(expired.stdout).toContain('config OK: gate-3 (gate)');
    expect(expired.stderr).toMatch(/^warning: CERT_EXPIRED: the certificate expired at .*reissue-certificate/);
  });

  it('enroll-terminal\'s whole output saved as the certificate: exit 78 saying to save its `certificate` field; the extracted or indented field passes', async () => {
    const file = config({ certificateFile: 'enrolled.json' });
    const [check, start, extracted, indented] = await Promise.all([
      cli(['--config', file, '--check']),
      cli(['--config', file]),
      cli(['--config', config({ certificateFile: 'extracted.cert.json' }), '--check']),
      cli(['--config', config({ certificateFile: 'indented.cert.json' }), '--check']),
    ]);
    expect(check.status, check.stderr).toBe(78);
    expect(check.stderr).toContain(`certificateFile: ${join(dir, 'enrolled.json')} is enroll-terminal's output (or reissue-certificate's), not the certificate: save its \`certificate\` field`);
    expect(check.stderr).not.toContain('UNSUPPORTED_VERSION');
    expect(start.status, start.stderr).toBe(78);
    expect(fatalLine(start)).toMatchObject({ code: 'CONFIG_INVALID', issues: [expect.stringContaining("is enroll-terminal's output")] });
    for (const ok of [extracted, indented]) {
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('config OK: gate-3 (gate)');
    }
  });

  it('an IO plugin that is not installed: exit 78 naming io.ioPlugin and how to install it', async () => {
    const file = config({ io: { kind: 'johnny-five', ioPlugin: 'tapsettle-no-such-io-plugin', gate: GATE_PINS } });
    const [check, start] = await Promise.all([cli(['--config', file, '--check']), cli(['--config', file])]);
    expect(check.status, check.stderr).toBe(78);
    expect(check.stderr).toContain('io.ioPlugin: the IO plugin package "tapsettle-no-such-io-plugin" is not installed; install it with: cd ');
    expect(check.stderr).toContain('npm install tapsettle-no-such-io-plugin');
    expect(start.status, start.stderr).toBe(78);
    expect(fatalLine(start)).toMatchObject({ code: 'CONFIG_INVALID', issues: [expect.stringContaining('npm install tapsettle-no-such-io-plugin')] });
    expect(start.stderr).not.toContain('ERR_MODULE_NOT_FOUND');
  });

  it('a missing PN532 or Firmata device: --check passes, the start exits 69 (restarted) naming the field and path, leaving no temp folder', async () => {
    const pn532 = config({ nfc: { kind: 'pn532', path: join(dir, 'no-such-serial') } });
    const firmata = config({ io: { kind: 'johnny-five', port: join(dir, 'no-such-firmata'), gate: GATE_PINS } }); // with the emulated PN532
    const noAnswer = config({ nfc: { kind: 'pn532', path: '/dev/null' } }); // a device, but no serial port: the driver fails
    const [check, a, b, c] = await Promise.all([cli(['--config', pn532, '--check']), cli(['--config', pn532]), cli(['--config', firmata], { TMPDIR: childTmp }), cli(['--config', noAnswer])]);
    expect(check.status).toBe(0);
    expect(a.status, a.stderr).toBe(69);
    expect(fatalLine(a)).toMatchObject({ code: 'DEVICE_UNAVAILABLE', field: 'nfc.path', path: join(dir, 'no-such-serial'), cause: 'ENOENT', exitCode: 69 });
    expect(b.status, b.stderr).toBe(69);
    expect(fatalLine(b)).toMatchObject({ code: 'DEVICE_UNAVAILABLE', field: 'io.port', path: join(dir, 'no-such-firmata'), exitCode: 69 });
    expect(c.status, c.stderr).toBe(69);
    expect(fatalLine(c)).toMatchObject({ code: 'DEVICE_UNAVAILABLE', field: 'nfc.path', path: '/dev/null', cause: 'NFC_DISCONNECTED' });
    expect(leftInTmp()).toEqual([]);
  });

  it('a dataDir that cannot be created: exit 73 (restarted) naming dataDir', async () => {
    const start = await cli(['--config', config({ dataDir: 'not-a-folder/state' })]);
    expect(start.status, start.stderr).toBe(73);
    expect(fatalLine(start)).toMatchObject({ code: 'DATA_DIR_UNAVAILABLE', field: 'dataDir', path: join(dir, 'not-a-folder', 'state'), cause: 'ENOTDIR', exitCode: 73 });
  });

  it('--keygen into a missing folder or over a key: exit 78 with one line, nothing written', async () => {
    const [missing, existing] = await Promise.all([cli(['--keygen', join(dir, 'no-such-dir', 'terminal.key')]), cli(['--keygen', join(dir, 'terminal.key')])]);
    expect(missing.status).toBe(78);
    expect(missing.stderr.trim()).toBe(
      `--keygen: cannot write ${join(dir, 'no-such-dir', 'terminal.key')}: the folder ${join(dir, 'no-such-dir')} does not exist (create it first: sudo install -d -o tapsettle -m 0700 ${join(dir, 'no-such-dir')})`,
    );
    expect(missing.stdout).toBe('');
    expect(existing.status).toBe(78);
    expect(existing.stderr).toContain('refusing to overwrite');
  });

  it('checkTerminalConfig (shared by --check and startTerminal) returns the key and certificate, or a ConfigError per field', async () => {
    const load = (changes: Record<string, unknown>) => checkTerminalConfig(parseConfig({ ...base, ...changes }, dir, {}));
    const { keys, certificate: cert } = await load({});
    expect(toHex(keys.publicKey)).toBe(cert.body.publicKey);
    const issues = async (changes: Record<string, unknown>): Promise<string[]> => {
      try {
        await load(changes);
      } catch (err) {
        if (err instanceof ConfigError) return err.issues;
        throw err;
      }
      return [];
    };
    expect(await issues({ merchantId: 'canteen' })).toEqual([expect.stringMatching(/^certificateFile: .* is for merchantId "transit", the config has merchantId "canteen"/)]);
    expect((await issues({ keyFile: 'other.key', terminalId: 'gate-9' })).map((i) => i.split(':')[0])).toEqual(['certificateFile', 'keyFile']);
  });
});

/**
 * IO plugin packages in a temp node_modules, shaped like the real ones: raspi-io 11 is CommonJS
 * with `exports.RaspiIO` and no default export (`new mod.default()` was a TypeError at start,
 * after a passing --check, restarted by systemd every 5 s).
 */
describe('io.ioPlugin: --check loads the plugin and checks its export, without constructing it', () => {
  const root = join(dir, 'plugins');
  const plugin = (name: string, source: string): void => {
    const pkg = join(root, 'node_modules', name);
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'dist/index.js' }));
    writeFileSync(join(pkg, 'dist', 'index.js'), source);
  };
  const RASPI_IO = `"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
function RaspiIO(options) { globalThis.__tapsettleConstructed = true; return { options }; }
exports.RaspiIO = RaspiIO;
`;
  plugin('raspi-io', RASPI_IO);
  plugin('tapsettle-test-io-default', 'module.exports = class BoardIo { constructor() { this.kind = "default"; } };\n');
  plugin('tapsettle-test-io-two', 'exports.BoardIo = class BoardIo {};\nexports.LedIo = class LedIo {};\nexports.VERSION = 2;\n');
  plugin('tapsettle-test-io-broken', 'throw new Error("libpigpio.so.1: cannot open shared object file: No such file or directory");\n');
  const resolveIoPlugin = (name: string): string => pathToFileURL(createRequire(join(root, 'index.js')).resolve(name)).href;
  const johnnyFive = (io: Record<string, unknown>) => parseConfig({ ...base, io: { kind: 'johnny-five', gate: GATE_PINS, ...io } }, dir, {});
  const issues = async (io: Record<string, unknown>, uid = 0): Promise<string[]> => {
    try {
      await checkTerminalConfig(johnnyFive(io), { resolveIoPlugin, uid });
    } catch (err) {
      if (err instanceof ConfigError) return err.issues;
      throw err;
    }
    return [];
  };

  it('raspi-io 11: its named export RaspiIO is the class, found without constructing it', async () => {
    expect(await issues({ ioPlugin: 'raspi-io' })).toEqual([]);
    expect((globalThis as { __tapsettleConstructed?: boolean }).__tapsettleConstructed).toBeUndefined();
    const RaspiIO = await loadIoPlugin(johnnyFive({ ioPlugin: 'raspi-io' }), { resolve: resolveIoPlugin });
    expect(RaspiIO?.name).toBe('RaspiIO');
    expect(new RaspiIO!()).toEqual({ options: undefined });
  });

  it('raspi-io needs root (pigpio): refused as any other user, naming the Arduino/Firmata way', async () => {
    expect(await issues({ ioPlugin: 'raspi-io' }, 999)).toEqual([
      expect.stringMatching(/^io\.ioPlugin: raspi-io drives the GPIO through the pigpio C library, which must run as root .*runs as uid 999, not root.*StandardFirmata on USB instead \(io\.port/),
    ]);
    // Other plugins are not held to it.
    expect(await issues({ ioPlugin: 'tapsettle-test-io-default' }, 999)).toEqual([]);
  });

  it('a default export that is a class is taken; several classes need io.ioPluginExport; a plugin that does not load is named', async () => {
    expect((await loadIoPlugin(johnnyFive({ ioPlugin: 'tapsettle-test-io-default' }), { resolve: resolveIoPlugin }))?.name).toBe('BoardIo');
    expect(await issues({ ioPlugin: 'tapsettle-test-io-two' })).toEqual([
      'io.ioPlugin: "tapsettle-test-io-two" has no default export to construct and several exported functions (BoardIo, LedIo): name the IO class in io.ioPluginExport',
    ]);
    expect(await issues({ ioPlugin: 'tapsettle-test-io-two', ioPluginExport: 'LedIo' })).toEqual([]);
    expect(await issues({ ioPlugin: 'tapsettle-test-io-two', ioPluginExport: 'VERSION' })).toEqual([
      'io.ioPluginExport: "tapsettle-test-io-two" has no exported class "VERSION" (its exported functions: BoardIo, LedIo)',
    ]);
    expect(await issues({ ioPlugin: 'tapsettle-test-io-broken' })).toEqual([
      'io.ioPlugin: "tapsettle-test-io-broken" is installed but does not load here: libpigpio.so.1: cannot open shared object file: No such file or directory',
    ]);
    expect(await issues({ ioPlugin: 'tapsettle-test-io-missing' })).toEqual([expect.stringMatching(/^io\.ioPlugin: the IO plugin package "tapsettle-test-io-missing" is not installed; install it with: cd .* && npm install tapsettle-test-io-missing$/)]);
  });
});
