/** `tapsettle sim`: a tiny real run through the bin entry, and argument errors (exit 2). */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHub } from '../../hub/service/hub.ts';
import { SIM_DATA_DIR_MARKER } from '../../simulators/fleet/fleet-run.ts';
import { parseSimArgs, UsageError } from '../../simulators/fleet/sim-cli.ts';
import { spawnTs } from './process.ts';

describe('tapsettle sim', () => {
  it('runs a small fleet and prints the summary with a conservation check', async () => {
    const p = spawnTs('bin/tapsettle.ts', ['sim', '--terminals', '5', '--rate', '20', '--duration', '3', '--dashboard']);
    expect(await p.exited()).toBe(0);
    const out = p.stdout();
    expect(out).toContain('tapsettle sim: 5 terminals, 25 wallets, 20 requests/s for 3 s');
    const settled = Number(/settled\s+(\d+)/.exec(out)?.[1]);
    const sent = Number(/sent\s+(\d+)/.exec(out)?.[1]);
    expect(sent).toBeGreaterThanOrEqual(55);
    expect(settled).toBeGreaterThan(0);
    // Every 20th wallet cannot pay: its purchases are declined with a reason.
    expect(out).toMatch(/declined\s+\d+\s+by reason: INSUFFICIENT_FUNDS \d+/);
    expect(out).toMatch(/latency\s+p50 [\d.]+ ms, p99 [\d.]+ ms/);
    expect(out).toMatch(/conservation\s+OK/);
    expect(out).toMatch(/timeouts\s+0/);
    expect(p.stderr()).toMatch(/tapsettle sim: dashboard http:\/\/127\.0\.0\.1:\d+\//);
    // Not a TTY here: progress comes as periodic lines on stderr.
    expect(p.stderr()).toMatch(/\[\d+\.\d\/3 s\s+\d+%\] settled \d+/);
  }, 60_000);

  it("never runs on a real hub's data folder: only an empty one, or one an earlier run made", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-sim-dir-'));
    try {
      // A hub's folder (made by the hub itself, not the simulator).
      const hubDir = join(dir, 'hub');
      await (await createHub({ dataDir: hubDir, holdReleaseIntervalMs: 0 })).close();
      const before = readdirSync(hubDir).sort();
      const refused = spawnTs('bin/tapsettle.ts', ['sim', '--terminals', '1', '--rate', '5', '--duration', '0.5', '--data-dir', hubDir]);
      expect(await refused.exited()).toBe(2);
      expect(refused.stderr()).toContain(`--data-dir ${hubDir} is not empty and was not made by tapsettle sim`);
      expect(readdirSync(hubDir).sort()).toEqual(before);
      // An empty folder is taken and marked; the next run may reuse it.
      const simDir = join(dir, 'sim');
      for (let run = 0; run < 2; run++) {
        const p = spawnTs('bin/tapsettle.ts', ['sim', '--terminals', '1', '--rate', '5', '--duration', '0.5', '--data-dir', simDir]);
        expect(await p.exited()).toBe(0);
      }
      expect(existsSync(join(simDir, SIM_DATA_DIR_MARKER))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('refuses bad arguments with exit code 2 and says which', async () => {
    const p = spawnTs('bin/tapsettle.ts', ['sim', '--terminals', '0']);
    expect(await p.exited()).toBe(2);
    expect(p.stderr()).toContain('--terminals must be between 1 and 5000, got 0');
    expect(p.stderr()).toContain('usage: tapsettle sim');

    expect(() => parseSimArgs(['--rate', 'fast'])).toThrow(new UsageError('--rate must be a number, got "fast"'));
    expect(() => parseSimArgs(['--duration', '-3'])).toThrow(UsageError);
    expect(() => parseSimArgs(['--terminals', '2.5'])).toThrow(/whole number/);
    expect(() => parseSimArgs(['--bogus'])).toThrow(/bogus/);
    expect(() => parseSimArgs(['extra'])).toThrow(UsageError);
    expect(parseSimArgs(['--terminals', '200', '--rate', '1000', '--duration', '60'])).toMatchObject({ terminals: 200, ratePerS: 1000, durationS: 60, walletsPerTerminal: 5, json: false });
  }, 30_000);
});
