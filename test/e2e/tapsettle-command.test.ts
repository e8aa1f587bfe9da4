/**
 * The `tapsettle` command (bin/tapsettle.ts → the operator CLI): help asked for is exit 0 on
 * stdout; help shown because a command is missing (`tapsettle`, `tapsettle blocklist`) is a usage
 * error, exit 2 on stderr, as an unknown command is (both were exit 0). The help names the program
 * `tapsettle` (it said `tapsettle-hub`) and lists `sim`. `blocklist add` of a wallet the hub has
 * not registered adds it and warns (it was silent).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCliHere } from '../hub/kit.ts';
import { spawnTs } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tapsettle-command-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tapsettle(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = spawnTs('bin/tapsettle.ts', args);
  const code = await p.exited();
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

describe('tapsettle: usage and help', () => {
  it('help asked for: exit 0 on stdout, the program named tapsettle, sim listed', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await tapsettle(...args);
      expect([args.join(' '), r.code, r.stderr]).toEqual([args.join(' '), 0, '']);
      expect(r.stdout).toMatch(/^Usage: tapsettle \[options\] \[command\]\n/);
      expect(r.stdout).not.toContain('tapsettle-hub');
      expect(r.stdout).toMatch(/^ {2}sim {2,}fleet\/load simulator/m);
      expect(r.stdout).toMatch(/^ {2}blocklist {2,}the announced blocklist/m);
    }
    const sim = await tapsettle('help', 'sim');
    expect([sim.code, sim.stdout]).toEqual([0, expect.stringContaining('usage: tapsettle sim')]);
    const group = await tapsettle('blocklist', '--help');
    expect([group.code, group.stdout]).toEqual([0, expect.stringMatching(/^Usage: tapsettle blocklist /)]);
  }, 60_000);

  it('no command, or a command group without its subcommand: the usage on stderr, exit 2', async () => {
    const none = await tapsettle();
    expect([none.code, none.stdout]).toEqual([2, '']);
    expect(none.stderr).toMatch(/^Usage: tapsettle \[options\] \[command\]\n/);
    expect(none.stderr).toMatch(/^ {2}sim {2,}/m);

    const group = await tapsettle('blocklist');
    expect([group.code, group.stdout]).toEqual([2, '']);
    expect(group.stderr).toMatch(/^Usage: tapsettle blocklist \[options\] \[command\]\n/);
    expect(group.stderr).toMatch(/^ {2}add \[options\] <wallet>/m);

    const unknown = await tapsettle('blocklsit');
    expect([unknown.code, unknown.stdout]).toEqual([2, '']);
    expect(unknown.stderr).toContain("error: unknown command 'blocklsit'");
  }, 60_000);
});

describe('tapsettle blocklist add', () => {
  it('adds a wallet the hub has not registered, with a warning on stderr; a registered one without', async () => {
    const hubDir = join(dir, 'hub');
    const registered = await runCliHere(hubDir, ['register-wallet', '--init']);
    expect(registered.code).toBe(0);
    const { wallet } = JSON.parse(registered.stdout) as { wallet: string };

    const known = await runCliHere(hubDir, ['blocklist', 'add', wallet]);
    expect([known.code, JSON.parse(known.stdout), known.stderr]).toEqual([0, { wallet, added: true }, '']);

    const stranger = 'cd'.repeat(32);
    const unknown = await runCliHere(hubDir, ['blocklist', 'add', stranger, '--reason', 'lost card']);
    expect([unknown.code, JSON.parse(unknown.stdout)]).toEqual([0, { wallet: stranger, added: true }]);
    expect(unknown.stderr).toBe(
      `warning: wallet ${stranger.slice(0, 16)}… is not registered with this hub (a typo?); blocklisted anyway, as a card may be blocklisted before its registration is imported\n`,
    );
    const list = await runCliHere(hubDir, ['blocklist', 'list']);
    expect((JSON.parse(list.stdout) as { wallets: Array<{ wallet: string }> }).wallets.map((w) => w.wallet).sort()).toEqual([wallet, stranger].sort());
  }, 60_000);
});
