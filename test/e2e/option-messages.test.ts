/**
 * What an operator reads after a mistyped number. The operator CLI says "expected a positive
 * integer" (or "0 or a positive integer") with the value, for -5, 0 and 12.5 alike (it said
 * "expected an integer" for -5 and "≥ 1" for 0). `npm start` refuses `--rate -1` by its range
 * (node:util parseArgs called it "ambiguous") and its --help names the V8 flags the README
 * says to keep (it suggested `npx tsx bin/start.ts`, which drops them).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli, runCliHere } from '../hub/kit.ts';
import { spawnTs } from './process.ts';

/** Every refusal below happens before the data folder is opened: no hub is needed. */
const NO_HUB = '/nonexistent/tapsettle-hub';
const WALLET = 'ab'.repeat(32);

describe('operator CLI: integer options', () => {
  it('say "expected a positive integer" (or "0 or a positive integer") with the value given, exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [['top-up', '--wallet', WALLET, '--operator', 'op', '--amount', '-5'], 'invalid amount: expected a positive integer, got "-5"'],
      [['top-up', '--wallet', WALLET, '--operator', 'op', '--amount', '0'], 'invalid amount: expected a positive integer, got "0"'],
      [['top-up', '--wallet', WALLET, '--operator', 'op', '--amount', '12.5'], 'invalid amount: expected a positive integer, got "12.5"'],
      [['top-up', '--wallet', WALLET, '--operator', 'op', '--amount', '1234567890123456'], 'invalid amount: expected a positive integer of at most 15 digits, got "1234567890123456"'],
      [['payout', '--merchant', 'shop', '--amount', '-5'], 'invalid amount: expected a positive integer, got "-5"'],
      [['show-account', WALLET, '--limit', '-5'], 'invalid limit: expected a positive integer, got "-5"'],
      [['incidents', '--limit', '0'], 'invalid limit: expected a positive integer, got "0"'],
      [['register-wallet', '--offline-limit', '-5'], 'invalid offline-limit: expected 0 or a positive integer, got "-5"'],
      [['rotate-hub-key', '--activate-in-hours', '-5'], 'invalid activate-in-hours: expected 0 or a positive integer, got "-5"'],
      [['reissue-certificate', 'pos-1', '--validity-days', '0'], 'invalid validity-days: expected a positive integer, got "0"'],
    ];
    for (const [args, message] of cases) {
      const r = await runCliHere(NO_HUB, args);
      expect([args.join(' '), r.code, r.stderr]).toEqual([args.join(' '), 2, `error: ${message}\n`]);
    }
    // The real command line too: commander hands "-5" to --amount as its value.
    expect(await runCli(NO_HUB, ['top-up', '--wallet', WALLET, '--operator', 'op', '--amount', '-5'])).toMatchObject({
      code: 2,
      stderr: 'error: invalid amount: expected a positive integer, got "-5"\n',
    });
  }, 60_000);
});

describe('npm start (bin/start.ts): options', () => {
  const start = async (args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> => {
    const p = spawnTs('bin/start.ts', args);
    const code = await p.exited();
    return { code, stdout: p.stdout(), stderr: p.stderr() };
  };

  it('a negative number is refused by its range, a missing value by name; exit 2, nothing started', async () => {
    const [rate, port, noValue, dashValue] = await Promise.all([start(['--rate', '-1']), start(['--port', '-1']), start(['--rate', '--no-site']), start(['--data-dir', '-x'])]);
    expect(rate.code).toBe(2);
    expect(rate.stderr).toMatch(/^tapsettle start: --rate must be between 0\.1 and 1000, got -1\n/);
    expect(rate.stderr).not.toContain('ambiguous');
    expect(port.stderr).toMatch(/^tapsettle start: --port must be between 0 and 65535, got -1\n/);
    expect(noValue.stderr).toMatch(/^tapsettle start: --rate needs a value, got the option --no-site\n/);
    expect(dashValue.stderr).toMatch(/^tapsettle start: --data-dir -x: a value that starts with "-" is written --data-dir=-x\n/);
    for (const r of [rate, port, noValue, dashValue]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
  }, 60_000);

  it('--help gives the command line with the V8 flags, not one without them', async () => {
    const help = await start(['--help']);
    expect(help.code).toBe(0);
    const { scripts } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
    expect(scripts.start).toMatch(/^node --max-semi-space-size=\d+ --initial-old-space-size=\d+ --import tsx bin\/start\.ts$/);
    expect(help.stdout).toContain(`${scripts.start} [options]`);
    expect(help.stdout).not.toContain('npx tsx bin/start.ts');
  }, 30_000);
});
