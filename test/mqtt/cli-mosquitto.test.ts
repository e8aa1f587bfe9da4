/**
 * The operator's way to an external Mosquitto: the CLI (a real child process) writes the broker's
 * config, password and ACL files from the hub's enrolled terminals and prints each terminal's
 * broker password; a real Mosquitto started on those files lets exactly them in. Skipped (with a
 * message) without the binary.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, mosquittoAvailable, startMosquitto, type MosquittoProcess } from '../../hub/mqtt/mosquitto-process.ts';
import { runCli } from '../hub/kit.ts';
import { tryConnect } from './fixtures.ts';

const available = mosquittoAvailable();
if (!available) console.warn('test/mqtt/cli-mosquitto: SKIPPED — no `mosquitto` binary on PATH (Debian package `mosquitto`)');

describe.skipIf(!available)('CLI: files and passwords for an external Mosquitto', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-cli-mosquitto-'));
  const dataDir = path.join(dir, 'hub');
  let mosquitto: MosquittoProcess | undefined;
  let files: { configPath: string; passwordPath: string; aclPath: string; url: string; hubUsername: string; hubPasswordFile: string; hubConfig: Record<string, unknown> };

  const cli = (...args: string[]) => runCli(dataDir, args, { cwd: dir });

  beforeAll(async () => {
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
  });

  it('the broker lets in an enrolled terminal with its printed password and the hub with its file, nobody else', async () => {
    const printed = await cli('broker-password', 'pos-1');
    const { password } = JSON.parse(printed.stdout) as { password: string };
    expect(await tryConnect(files.url, 'pos-1', password)).toBe('accepted');
    expect(await tryConnect(files.url, 'pos-1', `${password}x`)).not.toBe('accepted');
    expect(await tryConnect(files.url, files.hubUsername, readFileSync(files.hubPasswordFile, 'utf8').trim())).toBe('accepted');
    // The same password again: the secret it derives from is kept in the data folder.
    expect(JSON.parse((await cli('broker-password', 'pos-1')).stdout)).toEqual({ terminalId: 'pos-1', password });
  });

  it('refuses a revoked or unknown terminal and a bad port with the CLI’s exit codes', async () => {
    expect(await cli('broker-password', 'pos-2')).toMatchObject({ code: 1, stderr: expect.stringMatching(/refused: NOT_FOUND/) as unknown as string });
    expect(await cli('broker-password', 'nobody')).toMatchObject({ code: 1 });
    expect(await cli('mosquitto-files', '--out', 'x', '--port', '70000')).toMatchObject({ code: 2, stderr: expect.stringMatching(/invalid port/) as unknown as string });
  });
});
