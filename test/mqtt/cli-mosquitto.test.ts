/**
 * The operator's way to an external Mosquitto: the CLI (a real child process) writes the broker's
 * config, password and ACL files from the hub's enrolled terminals and prints each terminal's
 * broker password; a real Mosquitto started on those files lets exactly them in. Skipped (with a
 * message) without the binary.
 */
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupBrokerAccount } from '../../hub/mqtt/broker-account.ts';
import { HUB_USERNAME, mosquittoPasswordHash, writeMosquittoFiles } from '../../hub/mqtt/mosquitto-config.ts';
import { mosquittoCredentials } from '../../hub/mqtt/mosquitto-credentials.ts';
import Database from 'better-sqlite3';
import { freePort, mosquittoAvailable, startMosquitto, type MosquittoProcess } from '../../hub/mqtt/mosquitto-process.ts';
import { runCli } from '../hub/kit.ts';
import { MqttClient } from 'mqtt';
import { noDelayStreamBuilder } from '../../hub/mqtt/no-delay-stream.ts';
import { tryConnect } from './fixtures.ts';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error === undefined;

const available = mosquittoAvailable();
if (!available) console.warn('test/mqtt/cli-mosquitto: SKIPPED — no `mosquitto` binary on PATH (Debian package `mosquitto`)');

describe.skipIf(!available)('CLI: files and passwords for an external Mosquitto', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-cli-mosquitto-'));
  const dataDir = path.join(dir, 'hub');
  let mosquitto: MosquittoProcess | undefined;
  let files: { configPath: string; passwordPath: string; aclPath: string; url: string; hubUsername: string; brokerUser: string; chownCommand?: string; hubPasswordFile: string; hubConfig: Record<string, unknown> };

  const cli = (...args: string[]) => runCli(dataDir, args, { cwd: dir });

  beforeAll(async () => {
    // Mosquitto, started as root, switches to its account: it must get through the test's folder.
    chmodSync(dir, 0o711);
    for (const id of ['pos-1', 'pos-2']) expect((await cli('enroll-terminal', '--init', '--id', id, '--kind', 'pos', '--merchant', 'shop')).code).toBe(0);
    expect((await cli('revoke-terminal', 'pos-2')).code).toBe(0);
    const port = await freePort();
    const r = await cli('mosquitto-files', '--out', 'mosquitto', '--port', String(port));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    files = JSON.parse(r.stdout) as typeof files;
    mosquitto = await startMosquitto(files.configPath, port);
  });

  afterAll(async () => {
    await mosquitto?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the files under the operator’s directory, owner-only, with TCP no-delay, and prints the hub’s broker config', () => {
    expect(files.configPath).toBe(path.join(dir, 'mosquitto', 'mosquitto.conf'));
    for (const f of [files.configPath, files.passwordPath, files.aclPath, files.hubPasswordFile]) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.configPath, 'utf8')).toContain('set_tcp_nodelay true');
    const accounts = readFileSync(files.passwordPath, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':')[0]);
    expect(accounts).toEqual([files.hubUsername, 'pos-1']);
    expect(files.hubConfig).toEqual({ kind: 'external', url: files.url, username: files.hubUsername, passwordFile: path.join(dataDir, 'mosquitto-hub.password') });
    expect(files).not.toHaveProperty('warning'); // loopback
  });

  it('warns about a plain-TCP listener beyond this machine', async () => {
    const r = await cli('mosquitto-files', '--out', 'lan', '--port', '1884', '--host', '0.0.0.0');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ warning: expect.stringMatching(/^plain TCP on 0\.0\.0\.0: .*--tls-cert/) as unknown as string });
  });

  it('makes Mosquitto run as its own account, not root, with the files given to it', () => {
    const account = lookupBrokerAccount('mosquitto');
    expect(files.brokerUser).toBe('mosquitto');
    expect(readFileSync(files.configPath, 'utf8')).toMatch(/^user mosquitto$/m);
    // The broker process's real and effective uid after its start (Linux /proc).
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${mosquitto!.child.pid}/status`, 'utf8'));
    if (process.getuid?.() === 0) {
      for (const f of [path.dirname(files.configPath), files.configPath, files.passwordPath, files.aclPath]) expect(statSync(f).uid, f).toBe(account.uid);
      expect(uids?.slice(1, 3).map(Number)).toEqual([account.uid, account.uid]);
      expect(files).not.toHaveProperty('chownCommand');
    } else {
      // Not root: the files stay the operator's, who is told how to hand them over.
      expect(files).toMatchObject({ chownCommand: `chown -R mosquitto: ${path.dirname(files.configPath)}` });
    }
  });

  it('the broker lets in an enrolled terminal with its printed password and the hub with its file, nobody else', async () => {
    const printed = await cli('broker-password', 'pos-1');
    const { password } = JSON.parse(printed.stdout) as { password: string };
    expect(await tryConnect(files.url, 'pos-1', password)).toBe('accepted');
    expect(await tryConnect(files.url, 'pos-1', `${password}x`)).not.toBe('accepted');
    expect(await tryConnect(files.url, files.hubUsername, readFileSync(files.hubPasswordFile, 'utf8').trim())).toBe('accepted');
    // The same password again: the secret it derives from is kept in the data folder.
    const again = await cli('broker-password', 'pos-1');
    expect(JSON.parse(again.stdout)).toEqual({ terminalId: 'pos-1', password, scheme: 2 }); // enrolled by this hub: bound to its certificate
    expect(again.stderr).toBe('');
  });

  it("reissue-certificate rotates that one terminal's broker password: printed with the certificate, refused in its old form once mosquitto-files is rerun and Mosquitto reloaded; enroll-terminal prints a new terminal's", async () => {
    const old = (JSON.parse((await cli('broker-password', 'pos-1')).stdout) as { password: string }).password;
    const reissued = await cli('reissue-certificate', 'pos-1');
    expect(reissued.code).toBe(0);
    expect(reissued.stderr).toContain('run `tapsettle mosquitto-files` again and reload Mosquitto');
    const { brokerPassword, certificate } = JSON.parse(reissued.stdout) as { brokerPassword: string; certificate: { body: { serial: string } } };
    expect(brokerPassword).toMatch(/^[0-9a-f]{64}$/);
    expect(brokerPassword).not.toBe(old);
    expect(JSON.parse((await cli('broker-password', 'pos-1')).stdout)).toEqual({ terminalId: 'pos-1', password: brokerPassword, scheme: 2 });
    // Until the files are rewritten the broker knows only the old one.
    expect(await tryConnect(files.url, 'pos-1', brokerPassword)).not.toBe('accepted');
    const enrolled = await cli('enroll-terminal', '--id', 'pos-3', '--kind', 'pos', '--merchant', 'shop');
    expect(enrolled.code).toBe(0);
    const pos3 = (JSON.parse(enrolled.stdout) as { brokerPassword: string }).brokerPassword;
    expect(pos3).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([old, brokerPassword, pos3]).size).toBe(3);
    expect((await cli('mosquitto-files', '--out', 'mosquitto', '--port', new URL(files.url).port)).code).toBe(0);
    mosquitto!.reload();
    await expect.poll(() => tryConnect(files.url, 'pos-1', brokerPassword), { timeout: 5000 }).toBe('accepted');
    expect(await tryConnect(files.url, 'pos-1', old)).not.toBe('accepted');
    expect(await tryConnect(files.url, 'pos-3', pos3)).toBe('accepted');
    expect(certificate.body.serial).toMatch(/^[0-9a-f]{32,64}$/);
  });

  it('refuses a revoked or unknown terminal and a bad port with the CLI’s exit codes', async () => {
    expect(await cli('broker-password', 'pos-2')).toMatchObject({ code: 1, stderr: expect.stringMatching(/refused: NOT_FOUND/) as unknown as string });
    expect(await cli('broker-password', 'nobody')).toMatchObject({ code: 1 });
    expect(await cli('mosquitto-files', '--out', 'x', '--port', '70000')).toMatchObject({ code: 2, stderr: expect.stringMatching(/invalid port/) as unknown as string });
  });

  it("refuses, writing nothing, a hub password file cut short (empty after a power cut): its empty password never reaches passwd", async () => {
    const saved = readFileSync(files.hubPasswordFile, 'utf8');
    try {
      writeFileSync(files.hubPasswordFile, '', { mode: 0o600 });
      const r = await cli('mosquitto-files', '--out', 'cut', '--port', '1884');
      expect(r).toMatchObject({ code: 1, stdout: '' });
      expect(r.stderr).toContain(`key file ${files.hubPasswordFile}: expected the hub's broker password`);
      expect(r.stderr).toContain('delete it, run `tapsettle mosquitto-files` again');
      expect(existsSync(path.join(dir, 'cut'))).toBe(false);
    } finally {
      writeFileSync(files.hubPasswordFile, saved, { mode: 0o600 });
    }
  });

  it('refuses, writing nothing, files the broker’s account could not use: an unknown account, a folder it cannot enter, a key it cannot read', async () => {
    const port = '1884';
    expect(await cli('mosquitto-files', '--out', 'a', '--port', port, '--broker-user', 'no-such-account')).toMatchObject({ code: 2, stderr: expect.stringMatching(/invalid broker-user: no account "no-such-account"/) as unknown as string });
    const closed = path.join(dir, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    expect(await cli('mosquitto-files', '--out', path.join(closed, 'b'), '--port', port)).toMatchObject({ code: 2, stderr: expect.stringMatching(/invalid out: .*cannot enter .*closed/) as unknown as string });
    const key = path.join(dir, 'server.key');
    writeFileSync(key, 'not really a key\n', { mode: 0o600 });
    expect(await cli('mosquitto-files', '--out', 'c', '--port', port, '--tls-cert', key, '--tls-key', key)).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot read .*server\.key/) as unknown as string });
    for (const d of ['a', path.join(closed, 'b'), 'c']) expect(existsSync(path.resolve(dir, d)), d).toBe(false);
  });

  it('refuses, writing nothing, a --tls-key or --tls-cert that is not there: exit 2 naming that option, as an unreadable one (it was exit 1 and a raw ENOENT)', async () => {
    const cert = path.join(dir, 'present.pem');
    writeFileSync(cert, 'a certificate\n', { mode: 0o644 });
    // One after the other: each opens the hub's folder (hub.lock).
    const noKey = await cli('mosquitto-files', '--out', 'd', '--port', '1884', '--tls-cert', cert, '--tls-key', path.join(dir, 'missing.key.pem'));
    const noCert = await cli('mosquitto-files', '--out', 'e', '--port', '1884', '--tls-cert', 'missing.cert.pem', '--tls-key', cert);
    expect(noKey).toMatchObject({ code: 2, stdout: '' });
    expect(noKey.stderr).toMatch(new RegExp(`^error: invalid tls-key: ${path.join(dir, 'missing.key.pem')} does not exist`));
    expect(noCert).toMatchObject({ code: 2, stdout: '' });
    expect(noCert.stderr).toMatch(new RegExp(`^error: invalid tls-cert: ${path.join(dir, 'missing.cert.pem')} does not exist`));
    expect(noKey.stderr + noCert.stderr).not.toContain('ENOENT');
    for (const d of ['d', 'e']) expect(existsSync(path.join(dir, d)), d).toBe(false);
  });

  it.skipIf(!hasOpenssl)('a TLS listener: the printed hub config names the certificate\'s host and trusts the self-signed certificate, and the hub gets in with it', async () => {
    // A self-signed certificate for a name, not for the listener's address (0.0.0.0 on a LAN hub).
    const certFile = path.join(dir, 'broker.cert.pem');
    const keyFile = path.join(dir, 'broker.key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
    expect(made.status, made.stderr.toString()).toBe(0);
    chmodSync(keyFile, 0o640);
    if (process.getuid?.() === 0) chownSync(keyFile, 0, lookupBrokerAccount('mosquitto').gids[0]!);
    const port = await freePort();
    const r = await cli('mosquitto-files', '--out', 'tls', '--port', String(port), '--host', '127.0.0.1', '--tls-cert', certFile, '--tls-key', keyFile);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const out = JSON.parse(r.stdout) as { configPath: string; url: string; hubConfig: { url: string; caFile?: string; username: string; passwordFile: string } };
    expect(out.url).toBe(`mqtts://127.0.0.1:${port}`); // where it listens
    expect(out.hubConfig).toMatchObject({ kind: 'external', url: `mqtts://localhost:${port}`, caFile: certFile });
    const broker = await startMosquitto(out.configPath, port);
    try {
      const password = readFileSync(out.hubConfig.passwordFile, 'utf8').trim();
      const connect = (url: string): Promise<string> =>
        new Promise((resolve) => {
          const client = new MqttClient(noDelayStreamBuilder(url, { ca: readFileSync(certFile) }), { protocolVersion: 4, clientId: out.hubConfig.username, username: out.hubConfig.username, password, reconnectPeriod: 0 });
          client.once('connect', () => {
            client.end(true);
            resolve('accepted');
          });
          client.once('error', (err) => {
            client.end(true);
            resolve(err.message);
          });
        });
      expect(await connect(out.hubConfig.url)).toBe('accepted');
      // The listener's own URL does not verify: the certificate does not name 127.0.0.1.
      expect(await connect(out.url)).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    } finally {
      await broker.stop();
    }
  });
});

describe.skipIf(!available)('CLI: a fleet enrolled before certificate-bound broker passwords (registry version 7), upgraded', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-cli-mosquitto-legacy-'));
  const dataDir = path.join(dir, 'hub');
  const cli = (...args: string[]) => runCli(dataDir, args, { cwd: dir });
  let mosquitto: MosquittoProcess | undefined;
  let url: string;
  let port: number;
  let brokerSecret: Uint8Array;
  /** The derivation of every hub before 2026-12-02 (git show 977eedb^:hub/mqtt/mosquitto-config.ts), written out here, not imported. */
  const idOnly = (id: string) => createHmac('sha256', brokerSecret).update(`tapsettle/mqtt-password/${id}`).digest('hex');
  const certificateBound = (id: string, publicKey: string, serial: string) =>
    createHmac('sha256', brokerSecret).update(`tapsettle/mqtt-password/v2\n${id}\n${publicKey}\n${serial}`).digest('hex');
  /** A terminal's connection held across reloads: Mosquitto closes it if its password stops matching. */
  let held: MqttClient | undefined;
  let heldCloses = 0;

  beforeAll(async () => {
    chmodSync(dir, 0o711);
    for (const [i, id] of ['pos-a', 'pos-b', 'pos-c'].entries()) expect((await cli('enroll-terminal', ...(i === 0 ? ['--init'] : []), '--id', id, '--kind', 'pos', '--merchant', 'shop')).code).toBe(0);
    // The registry as the previous hub left it: version 7, no scheme column.
    const db = new Database(path.join(dataDir, 'registry.sqlite'));
    db.exec('ALTER TABLE terminals DROP COLUMN broker_password_scheme; DELETE FROM schema_migrations WHERE version >= 8');
    db.close();
    // ...and the broker it ran: every terminal on its id-only password, the terminals connected.
    const creds = mosquittoCredentials(dataDir);
    brokerSecret = creds.brokerSecret;
    port = await freePort();
    // Config and ACL as this code writes them; the passwd file as the previous hub did.
    const none = { listTerminals: () => [] };
    const files = writeMosquittoFiles({ dir: path.join(dir, 'mosquitto'), port, directory: none, brokerSecret, hubPassword: creds.hubPassword });
    writeFileSync(files.passwordPath, [HUB_USERNAME, 'pos-a', 'pos-b', 'pos-c'].map((u) => `${u}:${mosquittoPasswordHash(u === HUB_USERNAME ? creds.hubPassword : idOnly(u))}\n`).join(''), { mode: 0o600 });
    url = files.url;
    mosquitto = await startMosquitto(files.configPath, port);
    for (const id of ['pos-a', 'pos-c']) expect(await tryConnect(url, id, idOnly(id))).toBe('accepted');
    held = new MqttClient(noDelayStreamBuilder(url), { protocolVersion: 4, clientId: 'pos-b', username: 'pos-b', password: idOnly('pos-b'), reconnectPeriod: 0 });
    held.on('close', () => void heldCloses++);
    await new Promise<void>((resolve, reject) => {
      held!.once('connect', () => resolve());
      held!.once('error', reject);
    });
  });

  afterAll(async () => {
    held?.end(true);
    await mosquitto?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the first mosquitto-files after the upgrade (revoking a stolen terminal) keeps every other terminal on the password it holds, and says how many are on the legacy scheme and how to move one', async () => {
    expect((await cli('revoke-terminal', 'pos-c')).code).toBe(0);
    const r = await cli('mosquitto-files', '--out', 'mosquitto', '--port', String(port));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ legacyPasswordCount: 2, legacyPasswordTerminals: ['pos-a', 'pos-b'] });
    expect(r.stderr).toContain('note: 2 terminals still on the legacy broker password');
    expect(r.stderr).toContain('pos-a, pos-b');
    expect(r.stderr).toContain('`tapsettle reissue-certificate <id>`');
    expect(r.stderr).toContain('brokerPassword');
    mosquitto!.reload();
    // The reload has happened once the revoked terminal is refused.
    await expect.poll(() => tryConnect(url, 'pos-c', idOnly('pos-c')), { timeout: 5000 }).not.toBe('accepted');
    expect(await tryConnect(url, 'pos-a', idOnly('pos-a'))).toBe('accepted');
    expect(held!.connected).toBe(true);
    expect(heldCloses).toBe(0);
  });

  it('broker-password prints a legacy terminal’s id-only password, scheme 1, with how to move it', async () => {
    const r = await cli('broker-password', 'pos-a');
    expect(JSON.parse(r.stdout)).toEqual({ terminalId: 'pos-a', password: idOnly('pos-a'), scheme: 1 });
    expect(r.stderr).toContain('note: 1 terminal still on the legacy broker password');
    expect(r.stderr).toContain('`tapsettle reissue-certificate pos-a`');
  });

  it('reissue-certificate moves that one terminal to the certificate-bound password: its old one is refused after mosquitto-files and a reload, the other legacy terminal keeps its own; a new enrollment is bound too', async () => {
    const reissued = await cli('reissue-certificate', 'pos-a');
    expect(reissued.code).toBe(0);
    const { brokerPassword, certificate } = JSON.parse(reissued.stdout) as { brokerPassword: string; certificate: { body: { publicKey: string; serial: string } } };
    expect(brokerPassword).toBe(certificateBound('pos-a', certificate.body.publicKey, certificate.body.serial));
    const after = await cli('broker-password', 'pos-a');
    expect(JSON.parse(after.stdout)).toEqual({ terminalId: 'pos-a', password: brokerPassword, scheme: 2 });
    expect(after.stderr).toBe('');
    const enrolled = await cli('enroll-terminal', '--id', 'pos-d', '--kind', 'pos', '--merchant', 'shop');
    const pos4 = JSON.parse(enrolled.stdout) as { brokerPassword: string; certificate: { body: { publicKey: string; serial: string } } };
    expect(pos4.brokerPassword).toBe(certificateBound('pos-d', pos4.certificate.body.publicKey, pos4.certificate.body.serial));
    expect(JSON.parse((await cli('broker-password', 'pos-d')).stdout)).toMatchObject({ scheme: 2 });

    const r = await cli('mosquitto-files', '--out', 'mosquitto', '--port', String(port));
    expect(JSON.parse(r.stdout)).toMatchObject({ legacyPasswordCount: 1, legacyPasswordTerminals: ['pos-b'] });
    expect(r.stderr).toContain('note: 1 terminal still on the legacy broker password');
    mosquitto!.reload();
    await expect.poll(() => tryConnect(url, 'pos-a', brokerPassword), { timeout: 5000 }).toBe('accepted');
    expect(await tryConnect(url, 'pos-a', idOnly('pos-a'))).not.toBe('accepted');
    expect(await tryConnect(url, 'pos-d', pos4.brokerPassword)).toBe('accepted');
    expect(held!.connected).toBe(true);
    expect(heldCloses).toBe(0);
  });
});
