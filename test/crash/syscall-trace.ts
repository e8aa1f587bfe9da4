/**
 * Reads `strace -f -ttt -T -y` output into one event per system call, so a test can check the
 * order of what a process did on disk and on the wire (an fsync before a reply). A call another
 * thread interrupted (`<unfinished ...>` … `<... name resumed>`) becomes one event with its start,
 * its end and the text of both halves.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Syscall {
  readonly tid: number;
  readonly name: string;
  /** Seconds (epoch), when the call was entered and when it returned. */
  readonly start: number;
  readonly end: number;
  /** The first argument's path as `-y` prints it (`/data/ledger.sqlite-wal`, `socket:[123]`), if any. */
  readonly path: string | undefined;
  readonly text: string;
}

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
const CALL = /^([a-z0-9_]+)\(/;
const RESUMED = /^<\.\.\. ([a-z0-9_]+) resumed>/;
const DURATION = /<(\d+\.\d+)>$/;
const PATH = /^[a-z0-9_]+\(\d+<([^>]*)>/;

export function parseSyscalls(trace: string): Syscall[] {
  const events: Syscall[] = [];
  const pending = new Map<number, { name: string; start: number; text: string }>();
  for (const line of trace.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const tid = Number(m[1]);
    const at = Number(m[2]);
    const rest = m[3]!;
    const resumed = RESUMED.exec(rest);
    if (resumed) {
      const open = pending.get(tid);
      pending.delete(tid);
      if (!open || open.name !== resumed[1]) continue;
      const text = open.text + rest.slice(resumed[0].length);
      events.push(event(tid, open.name, open.start, text, at));
      continue;
    }
    const call = CALL.exec(rest);
    if (!call) continue; // signals, exits
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(tid, { name: call[1]!, start: at, text: rest.slice(0, -'<unfinished ...>'.length) });
      continue;
    }
    events.push(event(tid, call[1]!, at, rest, at));
  }
  return events.sort((a, b) => a.start - b.start);
}

function event(tid: number, name: string, start: number, text: string, lastSeen: number): Syscall {
  const duration = DURATION.exec(text.trimEnd());
  // strace's times are to the microsecond: so is the sum.
  const end = duration ? Math.round((start + Number(duration[1])) * 1e6) / 1e6 : lastSeen;
  return { tid, name, start, end, path: PATH.exec(text)?.[1], text };
}

export function straceAvailable(): boolean {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
}

export interface Tracer {
  /** Stops tracing (the traced process goes on) and returns its calls so far. */
  stop(): Promise<Syscall[]>;
}

/** Attaches strace to every thread of `pid`; resolves once it is attached. */
export async function traceProcess(pid: number, calls: readonly string[], outFile: string): Promise<Tracer> {
  const child: ChildProcess = spawn('strace', ['-f', '-ttt', '-T', '-y', '-s', '1024', '-e', `trace=${calls.join(',')}`, '-o', outFile, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/attached/.test(stderr)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`strace exited (${code}) before attaching: ${stderr.trim()}`)));
  });
  return {
    async stop() {
      child.kill('SIGINT'); // strace detaches and exits
      await exited;
      return parseSyscalls(readFileSync(outFile, 'utf8'));
    },
  };
}
