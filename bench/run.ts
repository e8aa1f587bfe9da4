/**
 * `npm run bench` runs every group; `npm run bench -- GROUP [GROUP…]` runs some.
 * Each figure is printed on its own line as `name: value unit`.
 * Several groups run one after another, each in its own process (same node flags): a group's
 * heap (the engine group leaves 100,000 wallets' worth of old generation behind) must not slow
 * the garbage collection of the next one.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Report } from './harness.ts';

const GROUPS = ['protocol', 'engine', 'restore', 'mqtt', 'nfc', 'gate', 'outbox'] as const;

const report: Report = (name, value, unit) => console.log(`${name}: ${value} ${unit}`);

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((g) => !(GROUPS as readonly string[]).includes(g));
  if (unknown.length > 0) {
    console.error(`bench: unknown group(s) ${unknown.join(', ')}; groups are ${GROUPS.join(', ')}`);
    process.exit(2);
  }
  const groups = wanted.length > 0 ? wanted : GROUPS;
  if (groups.length > 1) {
    let failures = 0;
    for (const group of groups) {
      const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), group], { stdio: 'inherit' });
      if (child.status !== 0) failures++;
    }
    process.exit(failures > 0 ? 1 : 0);
  }
  let failed = false;
  for (const group of groups) {
    console.error(`# ${group}`);
    try {
      const mod = (await import(`./${group}.ts`)) as { run: (r: Report) => Promise<void> };
      await mod.run(report);
    } catch (err) {
      failed = true;
      console.error(`bench ${group} failed:`, err);
    }
  }
  process.exit(failed ? 1 : 0);
}

await main();
