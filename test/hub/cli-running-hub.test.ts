// The operator CLI against a RUNNING hub (the production wiring, startDemo without a site): its
// commands travel over the hub's admin socket and act on the live state at once; the CLI is a
// real child process, the socket a real Unix socket in the data folder.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../protocol/index.ts';
import { adminSocketPath, sendAdminRequest, MAX_ADMIN_REQUEST_BYTES } from '../../hub/admin/admin-channel.ts';
import { startDemo, type Demo } from '../../simulators/fleet/demo.ts';
import { runCli, SNACKS } from './kit.ts';

let dir: string;
let dataDir: string;
const cli = (cwd: string, ...args: string[]) => runCli(dataDir, args, { cwd });
let demo: Demo;
const announced: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tapsettle-admin-'));
  dataDir = join(dir, 'hub');
  demo = await startDemo({ dataDir, logger: pino({ level: 'silent' }), dashboardPort: 0, mqttPort: 0, host: '127.0.0.1', actionsPerS: 0, site: false, verifierThreads: 0 });
  demo.hub.onAnnouncement((a) => announced.push(a.topic));
});

afterAll(async () => {
  await demo?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('operator CLI while the hub runs', () => {
  it('listens on a socket only its owner can use, in the data folder', () => {
    expect(demo.adminSocket).toBe(adminSocketPath(dataDir));
    expect(statSync(adminSocketPath(dataDir)).isSocket()).toBe(true);
    expect(statSync(adminSocketPath(dataDir)).mode & 0o777).toBe(0o600);
  });

  it('blocklists a wallet in the running hub at once, announced; removes it again', async () => {
    const wallet = 'ab'.repeat(32);
    const added = await cli(dir, 'blocklist', 'add', wallet, '--reason', 'stolen');
    expect(added.code).toBe(0);
    // An unregistered wallet is added, with the warning the running hub sends back.
    expect(added.stderr).toContain(`warning: wallet ${wallet.slice(0, 16)}… is not registered with this hub (a typo?); blocklisted anyway`);
    expect(JSON.parse(added.stdout)).toEqual({ wallet, added: true });
    expect(demo.hub.registry.isBlocklisted(wallet)).toBe(true);
    expect(announced).toContain(topics.announce('blocklist'));
    const removed = await cli(dir, 'blocklist', 'remove', wallet);
    expect(JSON.parse(removed.stdout)).toEqual({ wallet, removed: true });
    expect(demo.hub.registry.isBlocklisted(wallet)).toBe(false);
  });

  it('reads a file argument relative to the operator’s directory, not the hub’s', async () => {
    const work = join(dir, 'operator');
    mkdirSync(work);
    writeFileSync(join(work, 'catalog.json'), JSON.stringify(SNACKS));
    const r = await cli(work, 'import-catalog', 'catalog.json');
    expect(r.code).toBe(0);
    expect(demo.hub.registry.latestCatalog(SNACKS.merchantId)?.articles.map((a) => a.sku)).toEqual(SNACKS.articles.map((a) => a.sku));
  });

  it('answers refusals and bad input with the CLI’s exit codes and messages', async () => {
    const refused = await cli(dir, 'revoke-terminal', 'no-such-terminal');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused: NOT_FOUND/);
    // The hub checks the command line again itself: the socket is not trusted to carry checked input.
    const bad = await sendAdminRequest(dataDir, { v: 1, argv: ['node', 'tapsettle', 'top-up', '--wallet', 'zz', '--amount', '5', '--operator', 'op'], cwd: dir });
    expect(bad).toEqual({ stdout: '', stderr: expect.stringMatching(/^error: invalid wallet: /) as unknown as string, exitCode: 2 });
  });

  it('refuses a malformed or oversized request with a typed error, and keeps serving', async () => {
    const raw = (payload: string) =>
      new Promise<string>((resolve, reject) => {
        let out = '';
        const s = net.connect(adminSocketPath(dataDir), () => s.write(payload));
        s.on('data', (d: Buffer) => (out += d.toString()));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
    expect(JSON.parse(await raw('hello\n'))).toEqual({ stdout: '', stderr: 'error: invalid admin request: not JSON\n', exitCode: 2 });
    expect(JSON.parse(await raw('x'.repeat(MAX_ADMIN_REQUEST_BYTES + 10)))).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/larger than/) as unknown as string });
    const list = await cli(dir, 'blocklist', 'list');
    expect(JSON.parse(list.stdout)).toMatchObject({ wallets: [] });
  });

  it('after the hub stops, a socket file it left behind does not stop the CLI from opening the data folder itself', async () => {
    await demo.close();
    writeFileSync(adminSocketPath(dataDir), ''); // what a killed hub leaves: a path nothing listens on
    const r = await cli(dir, 'blocklist', 'list');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: expect.any(Number) as unknown as number });
  });
});
