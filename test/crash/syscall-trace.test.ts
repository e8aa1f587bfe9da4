import { describe, expect, it } from 'vitest';
import { parseSyscalls } from './syscall-trace.ts';

describe('parseSyscalls', () => {
  it('joins a call another thread interrupted, keeps paths and times, and skips signals and exits', () => {
    const trace = [
      '101 1000.000100 fdatasync(35</d/ledger.sqlite-wal> <unfinished ...>',
      '100 1000.000200 writev(50<socket:[48949]>, [{iov_base="0", iov_len=1}], 1) = 1 <0.000050>',
      '101 1000.000900 <... fdatasync resumed>) = 0 <0.000800>',
      '100 1000.001000 --- SIGCHLD {si_signo=SIGCHLD} ---',
      '102 1000.001100 +++ exited with 0 +++',
      '100 1000.000050 pwrite64(35</d/ledger.sqlite-wal>, "\\0", 1, 0) = 1 <0.000010>',
    ].join('\n');
    expect(parseSyscalls(trace)).toEqual([
      { tid: 100, name: 'pwrite64', start: 1000.00005, end: 1000.00006, path: '/d/ledger.sqlite-wal', text: 'pwrite64(35</d/ledger.sqlite-wal>, "\\0", 1, 0) = 1 <0.000010>' },
      { tid: 101, name: 'fdatasync', start: 1000.0001, end: 1000.0009, path: '/d/ledger.sqlite-wal', text: 'fdatasync(35</d/ledger.sqlite-wal> ) = 0 <0.000800>' },
      { tid: 100, name: 'writev', start: 1000.0002, end: 1000.00025, path: 'socket:[48949]', text: 'writev(50<socket:[48949]>, [{iov_base="0", iov_len=1}], 1) = 1 <0.000050>' },
    ]);
  });
});
