// CPU time (and read calls) of this process's main thread alone (Node 20 has no process.threadCpuUsage): the
// hub's event loop is the resource its latency queues on, so the bench reports it apart from
// the worker threads. Linux only (/proc); elsewhere undefined and the figure is left out.
import { readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ: 100 on every Linux ABI Node runs on

/** A file of the main thread's /proc entry (stat, io), or undefined without /proc. */
function mainThreadProc(file: string): string | undefined {
  try {
    return readFileSync(`/proc/self/task/${process.pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** User + system CPU milliseconds of the main thread so far, or undefined without /proc. */
export function mainThreadCpuMs(): number | undefined {
  const stat = mainThreadProc('stat');
  if (stat === undefined) return undefined;
  // Fields after the parenthesised command name (which may itself hold spaces): utime is the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_S : undefined;
}

/**
 * Read system calls (read, pread, recv…) of the main thread so far (`syscr` of /proc/self/task/PID/io),
 * or undefined without /proc. Page-cache misses of SQLite's own cache show here as preads on
 * the event loop.
 */
export function mainThreadReadCalls(): number | undefined {
  const m = /^syscr:\s*(\d+)$/m.exec(mainThreadProc('io') ?? '');
  return m ? Number(m[1]) : undefined;
}
