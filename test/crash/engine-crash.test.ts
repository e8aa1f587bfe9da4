// Crash test: SIGKILL an engine process under load at random moments, restart it, and check that
// the ledger verifies and every outcome the child reported is in the ledger exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLedgerStore } from '../../hub/ledger/sqlite-store.ts';
import type { Outcome } from '../../hub/ledger/types.ts';
import { verifyLedger } from '../../hub/ledger/verify.ts';

const CHILD = fileURLToPath(new URL('./engine-child.ts', import.meta.url));
const KILLS = 5;
/** engine-child.ts's purchases with a cancellation window given as its length. */
const HOLD_MS = 3_600_000;
const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface RunResult {
  readonly outcomes: Outcome[];
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Runs the child; with killAfterReadyMs, SIGKILLs it that long after it reported ready. */
function runChild(file: string, run: number, killAfterReadyMs: number | null, finish = false): Promise<RunResult> {
  // Rotate the durability modes on the same file: each must survive SIGKILL.
  const durability = (['full', 'pipelined', 'writer-thread'] as const)[run % 3] as string;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, file, String(run), finish ? '--finish' : '--run', durability], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const outcomes: Outcome[] = [];
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') {
          if (killAfterReadyMs !== null) setTimeout(() => child.kill('SIGKILL'), killAfterReadyMs);
        } else if (line.startsWith('{')) outcomes.push(JSON.parse(line) as Outcome);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ outcomes, code, signal, stderr });
    });
  });
}

describe('engine crash test (SIGKILL under load)', () => {
  it('loses nothing and settles nothing twice across repeated kills', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-crash-'));
    dirs.push(dir);
    const file = join(dir, 'ledger.db');
    const reported = new Map<string, Outcome>();
    for (let run = 0; run < KILLS; run++) {
      const r = await runChild(file, run, 150 + Math.floor(Math.random() * 700));
      expect(r.signal, r.stderr).toBe('SIGKILL');
      for (const o of r.outcomes) {
        const prev = reported.get(o.requestId);
        // A retried id (same content) must get exactly the outcome it got before the crash.
        if (prev) expect(o).toEqual(prev);
        else reported.set(o.requestId, o);
      }
    }
    const fin = await runChild(file, KILLS, null, true);
    expect(fin.code, fin.stderr).toBe(0);

    const store = SqliteLedgerStore.open(file);
    try {
      const report = await verifyLedger(store);
      expect(report.firstDiscrepancy).toBeNull();
      expect(report.currencies[0]?.inTransitMinor).toBe(0);
      const approvals = [...reported.values()].filter((o) => o.status === 'approved');
      expect(approvals.length).toBeGreaterThan(100);
      const logs = await store.logByRequestIds([...reported.keys()]);
      const holds = await store.holdsBySeqs([...logs.values()].map((r) => r.seq));
      let held = 0;
      for (const o of reported.values()) {
        const row = logs.get(o.requestId);
        expect(row, o.requestId).toBeDefined();
        if (o.status === 'approved') {
          expect(row).toMatchObject({ seq: o.seq, entryId: o.entryId, balanceAfterMinor: o.balanceAfterMinor });
          if (o.holdUntilMs !== undefined) {
            // Logged and withdrawn in one commit: the window ends HOLD_MS after that turn, and the
            // row, a retry's answer after a crash (compared above) and the release time all say so.
            held++;
            expect(o.holdUntilMs).toBe(o.atMs + HOLD_MS);
            expect(row?.holdUntilMs).toBe(o.holdUntilMs);
            expect(holds.get(o.seq)?.releaseAtMs).toBe(o.holdUntilMs); // an hour: none released yet
          }
          expect(row?.state).not.toBe('declined');
        } else {
          expect(row).toMatchObject({ state: 'declined', code: o.code });
        }
      }
      expect(held).toBeGreaterThan(0); // a tenth of the commands (more than 100 approvals, above)
      // Exactly once: one withdrawal-type journal entry per approved seq, one deposit at most.
      const perSeq = store.db
        .prepare('SELECT seq, COUNT(*) AS n FROM journal_entries WHERE seq > 0 AND kind IN (0, 2, 4, 5, 6) GROUP BY seq HAVING n != 1')
        .all();
      expect(perSeq).toEqual([]);
      const approvedSeqs = store.db.prepare("SELECT COUNT(*) AS n FROM settlement_log WHERE state != 4").get() as { n: number };
      const entrySeqs = store.db.prepare('SELECT COUNT(DISTINCT seq) AS n FROM journal_entries WHERE seq > 0 AND kind IN (0, 2, 4, 5, 6)').get() as { n: number };
      expect(entrySeqs.n).toBe(approvedSeqs.n);
    } finally {
      await store.close();
    }
  });
});
