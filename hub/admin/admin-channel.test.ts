// The admin channel's own behaviour on a real Unix socket in a temp folder, with a runner that
// echoes what it got (the CLI behind it is tested in test/hub/cli-running-hub.test.ts).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminSocketPath, commandOf, parseAdminRequest, sendAdminRequest, startAdminServer, type AdminReply, type AdminRequest, type AdminServer } from './admin-channel.ts';

let dir: string;
let server: AdminServer | undefined;
const logger = pino({ level: 'silent' });
const echo = async (r: AdminRequest): Promise<AdminReply> => ({ stdout: JSON.stringify(r.argv), stderr: '', exitCode: 0 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tapsettle-admin-'));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `parts` one by one (a pause between), returns the whole answer. */
function rawExchange(parts: Buffer[], halfClose = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(adminSocketPath(dir), async () => {
      for (const p of parts) {
        s.write(p);
        await new Promise((r) => setTimeout(r, 20));
      }
      if (halfClose) s.end();
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
  });
}

describe('admin channel', () => {
  it('decodes a request whose multi-byte character arrives split across reads, and a long non-ASCII reply whole', async () => {
    const long = 'é'.repeat(200_000);
    server = await startAdminServer({ dataDir: dir, logger, run: async (r) => ({ stdout: r.argv.at(-1) === 'long' ? long : JSON.stringify(r.argv), stderr: '', exitCode: 0 }) });
    const line = Buffer.from(`${JSON.stringify({ v: 1, argv: ['node', 'cli', 'blocklist', 'add', 'w', '--reason', 'Zoë'], cwd: '/' })}\n`);
    const split = line.indexOf(Buffer.from('ë')) + 1; // inside the two bytes of ë
    const reply = JSON.parse(await rawExchange([line.subarray(0, split), line.subarray(split)])) as AdminReply;
    expect(JSON.parse(reply.stdout)).toEqual(['node', 'cli', 'blocklist', 'add', 'w', '--reason', 'Zoë']);
    const big = await sendAdminRequest(dir, { v: 1, argv: ['node', 'cli', 'long'], cwd: '/' });
    expect(big?.stdout).toBe(long);
  });

  it('binds its socket owner-only', async () => {
    server = await startAdminServer({ dataDir: dir, logger, run: echo });
    expect(statSync(adminSocketPath(dir)).mode & 0o777).toBe(0o600);
  });

  it('answers a request cut off without a newline with a typed error', async () => {
    server = await startAdminServer({ dataDir: dir, logger, run: echo });
    expect(JSON.parse(await rawExchange([Buffer.from('{"v":1')], true))).toEqual({ stdout: '', stderr: 'error: invalid admin request: no request line\n', exitCode: 2 });
  });

  it('on close, lets a running command finish and answer before it stops', async () => {
    let release!: () => void;
    const started = new Promise<void>((resolveStarted) => {
      void startAdminServer({
        dataDir: dir,
        logger,
        run: () =>
          new Promise<AdminReply>((resolve) => {
            resolveStarted();
            release = () => resolve({ stdout: 'done', stderr: '', exitCode: 0 });
          }),
      }).then((s) => (server = s));
    });
    await new Promise((r) => setTimeout(r, 50));
    const reply = sendAdminRequest(dir, { v: 1, argv: ['node', 'cli', 'top-up'], cwd: '/' });
    await started;
    let closed = false;
    const closing = server!.close().then(() => (closed = true));
    server = undefined;
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    release();
    expect(await reply).toEqual({ stdout: 'done', stderr: '', exitCode: 0 });
    await closing;
  });

  it('runs without the channel, with a warning, where it cannot listen', async () => {
    const warnings: string[] = [];
    const capture = pino({ level: 'warn' }, { write: (l: string) => void warnings.push((JSON.parse(l) as { msg: string }).msg) });
    expect(await startAdminServer({ dataDir: join(dir, 'missing', 'folder'), logger: capture, run: echo })).toBeUndefined();
    expect(await startAdminServer({ dataDir: join(dir, 'x'.repeat(120)), logger: capture, run: echo })).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/cannot listen/), expect.stringMatching(/too long/)]);
  });

  it('refuses requests of the wrong shape with the reason', () => {
    expect(parseAdminRequest('{"v":1,"argv":[1],"cwd":"/"}')).toEqual({ ok: false, message: expect.stringMatching(/^argv:/) as unknown as string });
    expect(parseAdminRequest('{"v":1,"argv":[],"cwd":"relative"}')).toEqual({ ok: false, message: 'cwd: expected an absolute path' });
    expect(parseAdminRequest('{"v":2,"argv":[],"cwd":"/"}')).toMatchObject({ ok: false });
    expect(parseAdminRequest('{"v":1,"argv":["a"],"cwd":"/"}')).toEqual({ ok: true, request: { v: 1, argv: ['a'], cwd: '/' } });
  });

  it('logs the command, never its values', () => {
    expect(commandOf(['node', 'cli', '--data-dir', '/d', 'revoke-wallet', 'ab'.repeat(32)])).toBe('revoke-wallet');
    expect(commandOf(['node', 'cli', 'blocklist', 'add', 'ab'.repeat(32), '--reason', 'x'])).toBe('blocklist add');
    expect(commandOf(['node', 'cli', 'reveal-identity', 'ab'.repeat(32), '--operator', 'o'])).toBe('reveal-identity');
    expect(commandOf(['node', 'cli', 'top-up', '--wallet', 'w', '--amount', '5'])).toBe('top-up');
  });
});
