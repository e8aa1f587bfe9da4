/**
 * `npm start` (bin/start.ts) with files the config names that cannot be used (TLS key and
 * certificate, broker password, CA), an unusable data folder, a port another program holds or an
 * external broker that is down: exit 2, the message names the field (and the flag that overrides
 * it), and nothing is created. And the start banner's CLI command carries the data folder when
 * it is not the CLI's default, with `--data-dir` after the command name (where npm leaves it).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../hub/mqtt/mosquitto-process.ts';
import { createHub } from '../../hub/service/hub.ts';
import { spawnTs, type Spawned } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-start-files-'));
let running: Spawned | undefined;
afterAll(() => {
  if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const keyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
const file = (name: string, content: string | Buffer): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

let n = 0;
/** Runs bin/start.ts on a config (its dataDir a fresh folder name); returns exit code, stderr and the data folder. */
async function startWith(config: Record<string, unknown>, flags: string[] = []): Promise<{ code: number | string; stderr: string; dataDir: string; configFile: string }> {
  const dataDir = join(dir, `data-${++n}`);
  const configFile = file(`hub-${n}.json`, JSON.stringify({ dataDir, dashboard: { port: 0 }, site: { enabled: false }, verifierThreads: 0, ...config }));
  const p = spawnTs('bin/start.ts', ['--config', configFile, ...flags]);
  return { code: await p.exited(), stderr: p.stderr(), dataDir, configFile };
}

/** A port some other program holds (a server of ours on port 0). */
async function holdPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

const embeddedTls = (keyFile: string, certFile: string) => ({ mqtt: { kind: 'embedded', port: 0, tls: { keyFile, certFile } } });
const external = (passwordFile: string, caFile?: string) => ({
  mqtt: { kind: 'external', url: 'mqtt://127.0.0.1:1', username: 'hub@tapsettle', passwordFile, ...(caFile ? { caFile } : {}) },
});

describe('npm start: files the config names', () => {
  it('exits 2 naming the field, and creates nothing, when a file cannot be read or holds the wrong thing', async () => {
    const missing = join(dir, 'missing.pem');
    const key = file('key.pem', keyPem);
    const password = file('password', `${randomBytes(16).toString('hex')}\n`);
    const cases: [Record<string, unknown>, RegExp][] = [
      [embeddedTls(missing, missing), /mqtt\.tls\.keyFile: cannot read .*missing\.pem: ENOENT/],
      [embeddedTls(key, missing), /mqtt\.tls\.certFile: cannot read .*missing\.pem: ENOENT/],
      [embeddedTls(file('not-a-key.pem', 'hello'), key), /mqtt\.tls\.keyFile: no PEM private key in /],
      [embeddedTls(key, key), /mqtt\.tls\.certFile: no PEM certificate in /],
      [embeddedTls(dir, key), /mqtt\.tls\.keyFile: cannot read .*: EISDIR/],
      [external(missing), /mqtt\.passwordFile: cannot read .*missing\.pem: ENOENT/],
      [external(file('empty-password', '\n')), /mqtt\.passwordFile: .*empty-password is empty/],
      [external(password, missing), /mqtt\.caFile: cannot read .*missing\.pem: ENOENT/],
      [external(password, key), /mqtt\.caFile: no PEM certificate in /],
    ];
    for (const [config, message] of cases) {
      const r = await startWith(config);
      expect(r.stderr, JSON.stringify(config)).toMatch(message);
      expect(r.stderr).toMatch(/^tapsettle start: /);
      expect(r.code).toBe(2);
      expect(existsSync(r.dataDir)).toBe(false);
    }
  }, 150_000);

  // The operator's case: the example as shipped, on a machine without its TLS files yet.
  it.skipIf(existsSync('/etc/tapsettle/hub-mqtt.key.pem') || existsSync('/var/lib/tapsettle'))(
    'docs/examples/hub.json without its TLS files: exit 2 naming mqtt.tls.keyFile',
    async () => {
      const p = spawnTs('bin/start.ts', ['--config', 'docs/examples/hub.json']);
      expect(await p.exited()).toBe(2);
      expect(p.stderr()).toContain('mqtt.tls.keyFile: cannot read /etc/tapsettle/hub-mqtt.key.pem: ENOENT');
      expect(existsSync('/var/lib/tapsettle')).toBe(false);
    },
  );

  it('exits 2 naming --data-dir or dataDir when the data folder cannot be a folder', async () => {
    const plain = file('plain-file', 'not a folder');
    const flag = spawnTs('bin/start.ts', ['--no-site', '--port', '0', '--data-dir', join(plain, 'hub')]);
    expect(await flag.exited()).toBe(2);
    expect(flag.stderr()).toContain(`--data-dir: cannot use ${join(plain, 'hub')}: ${plain} is not a directory`);

    const dev = spawnTs('bin/start.ts', ['--no-site', '--port', '0', '--data-dir', '/dev/null/x']);
    expect(await dev.exited()).toBe(2);
    expect(dev.stderr()).toContain('--data-dir: cannot use /dev/null/x: /dev/null is not a directory');

    const r = await startWith({ dataDir: plain });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`dataDir: cannot use ${plain}: not a directory`);
    expect(existsSync(join(plain, 'hub'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('data-'))).toEqual([]);
  }, 60_000);
});

describe('npm start: ports taken and a broker that is down', () => {
  it('a port the config names that another program holds: exit 2 naming the field and the flag that overrides it; nothing created', async () => {
    const held = await holdPort();
    try {
      const P = held.port;
      const cases: Array<[Record<string, unknown>, string[], (configFile: string) => string]> = [
        [{ mqtt: { kind: 'embedded', port: P } }, [], (f) => `mqtt.port: 127.0.0.1:${P} is already in use by another program: stop it, or set another mqtt.port in ${f}, or override it with --mqtt-port N (0 = any free port); nothing was started or created`],
        [{ dashboard: { port: P } }, [], (f) => `dashboard.port: 127.0.0.1:${P} is already in use by another program: stop it, or set another dashboard.port in ${f}, or override it with --port N (0 = any free port)`],
        [{}, ['--mqtt-port', String(P)], () => `--mqtt-port: 127.0.0.1:${P} is already in use by another program: stop it, or choose another --mqtt-port (0 = any free port)`],
        [{}, ['--port', String(P)], () => `--port: 127.0.0.1:${P} is already in use by another program: stop it, or choose another --port (0 = any free port)`],
        // The demo site too: its marker is not written either.
        [{ dashboard: { port: P }, site: { enabled: true, terminalMode: 'direct', customersPerS: 0 } }, [], () => `dashboard.port: 127.0.0.1:${P} is already in use`],
      ];
      for (const [config, flags, message] of cases) {
        const r = await startWith(config, flags);
        expect(r.stderr, JSON.stringify([config, flags])).toContain(`tapsettle start: ${message(r.configFile)}`);
        expect(r.code).toBe(2);
        expect(existsSync(r.dataDir)).toBe(false);
      }
    } finally {
      await held.release();
    }
  }, 120_000);

  it('one port named for both the broker and the dashboard is refused naming dashboard.port', async () => {
    const port = await freePort();
    const r = await startWith({ mqtt: { kind: 'embedded', port }, dashboard: { port } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`dashboard.port: 127.0.0.1:${port} is already in use`);
    expect(existsSync(r.dataDir)).toBe(false);
  }, 30_000);

  it('an empty data folder stays empty, and an existing hub\'s folder is left as it was', async () => {
    const held = await holdPort();
    try {
      const empty = join(dir, 'empty-for-busy-port');
      mkdirSync(empty);
      const r = await startWith({ dataDir: empty, mqtt: { kind: 'embedded', port: held.port } });
      expect(r.code).toBe(2);
      expect(readdirSync(empty)).toEqual([]);

      const hubDir = join(dir, 'hub-for-busy-port');
      await (await createHub({ dataDir: hubDir, logger: pino({ level: 'silent' }), holdReleaseIntervalMs: 0 })).close();
      const before = readdirSync(hubDir).sort();
      const again = await startWith({ dataDir: hubDir, dashboard: { port: held.port } });
      expect(again.code).toBe(2);
      expect(again.stderr).toContain(`dashboard.port: 127.0.0.1:${held.port} is already in use`);
      expect(readdirSync(hubDir).sort()).toEqual(before);
    } finally {
      await held.release();
    }
  }, 60_000);

  it('an external broker that is down: exit 2 naming mqtt.url, before a hub is created', async () => {
    const password = file('broker-down-password', `${randomBytes(16).toString('hex')}\n`);
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const r = await startWith({ mqtt: { kind: 'external', url, username: 'hub@tapsettle', passwordFile: password } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^tapsettle start: mqtt\\.url: cannot reach the broker at ${url}: connect ECONNREFUSED .*nothing listens there`));
    expect(existsSync(r.dataDir)).toBe(false);
  }, 30_000);
});

describe('npm start: the banner names the data folder for the CLI', () => {
  it('prints `npx tapsettle blocklist add WALLET --data-dir DIR`, and that command line acts on the running hub', async () => {
    const dataDir = join(dir, 'banner hub');
    mkdirSync(dataDir);
    running = spawnTs('bin/start.ts', ['--no-site', '--data-dir', dataDir, '--port', '0', '--log-level', 'error']);
    await running.waitFor(/Press Ctrl-C/, 30_000);
    expect(running.stdout()).toContain(`\`npx tapsettle blocklist add WALLET --data-dir '${dataDir}'\` act on this hub`);

    // The global option after a nested subcommand reaches the hub CLI (commander), over the admin socket.
    const wallet = randomBytes(32).toString('hex');
    const add = spawnTs('bin/tapsettle.ts', ['blocklist', 'add', wallet, '--data-dir', dataDir]);
    expect(await add.exited()).toBe(0);
    expect(JSON.parse(add.stdout())).toEqual({ wallet, added: true });
    const list = spawnTs('bin/tapsettle.ts', ['blocklist', 'list', '--data-dir', dataDir]);
    expect(await list.exited()).toBe(0);
    expect(list.stdout()).toContain(wallet);

    running.child.kill('SIGINT');
    expect(await running.exited()).toBe(0);

    // The folder settles in EUR now: a config naming another currency is refused, naming the field.
    const usd = spawnTs('bin/start.ts', ['--config', file('usd.json', JSON.stringify({ dataDir, currency: 'USD', dashboard: { port: 0 }, site: { enabled: false } }))]);
    expect(await usd.exited()).toBe(2);
    expect(usd.stderr()).toContain('currency: this data folder settles in EUR, not USD');
  }, 90_000);
});
