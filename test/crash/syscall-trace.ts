/**
 * Reads `strace -f -ttt -T -y -xx` output into one event per system call, so a test can check the
 * order of what a process did on disk and on the wire (an fsync before a reply). A call another
 * thread interrupted (`<unfinished ...>` … `<... name resumed>`) becomes one event with its start,
 * its end and the text of both halves; `bytesOf` gives the data its string arguments carried.
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
  const path = PATH.exec(text)?.[1];
  return { tid, name, start, end, path: path === undefined ? undefined : unescape(path).toString('latin1'), text };
}

const STRING_ARG = /"((?:[^"\\]|\\.)*)"/g;
const ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, '"': 34, '\\': 92 };

/** The bytes of every string argument of the call, concatenated (all iovecs of a writev). */
export function bytesOf(call: Syscall): Buffer {
  return Buffer.concat([...call.text.matchAll(STRING_ARG)].map((m) => unescape(m[1]!)));
}

/** strace's C-style escapes (`\x7b`, `\n`, octal `\0`) back to bytes. */
function unescape(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') {
      out.push(s.charCodeAt(i));
      continue;
    }
    const next = s[++i]!;
    if (next === 'x') {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (next >= '0' && next <= '7') {
      const octal = /^[0-7]{1,3}/.exec(s.slice(i))![0];
      out.push(parseInt(octal, 8));
      i += octal.length - 1;
    } else out.push(ESCAPES[next] ?? next.charCodeAt(0));
  }
  return Buffer.from(out);
}

/** Whether strace can attach to a running process here (installed, and ptrace allowed); why not. */
export async function tracingSupport(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status !== 0) return { ok: false, reason: 'strace not found (Debian package `strace`)' };
  const target = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const tracer = await traceProcess(target.pid!, ['nanosleep'], '/dev/null');
    await tracer.stop();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `strace cannot attach to a process here: ${(err as Error).message}` };
  } finally {
    target.kill('SIGKILL');
  }
}

export interface Tracer {
  /** Stops tracing (the traced process goes on) and returns its calls so far. */
  stop(): Promise<Syscall[]>;
}

/** Attaches strace to every thread of `pid`; resolves once it is attached. */
export async function traceProcess(pid: number, calls: readonly string[], outFile: string): Promise<Tracer> {
  // -xx -s 4200: every byte of a 4 KiB page write, in hex, so a test can find a row in it.
  const child: ChildProcess = spawn('strace', ['-f', '-ttt', '-T', '-y', '-xx', '-s', '4200', '-e', `trace=${calls.join(',')}`, '-o', outFile, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
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
      return outFile === '/dev/null' ? [] : parseSyscalls(readFileSync(outFile, 'utf8'));
    },
  };
}
