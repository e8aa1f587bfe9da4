import { describe, expect, it } from 'vitest';
import { bytesOf, parseSyscalls } from './syscall-trace.ts';

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

  it('decodes hex-escaped paths and the bytes of every string argument (-xx), and C escapes', () => {
    const [writev, write] = parseSyscalls(
      [
        '100 1.000000 writev(5<\\x73\\x6f\\x63\\x6b\\x65\\x74\\x3a\\x5b\\x31\\x5d>, [{iov_base="\\x7b\\x22", iov_len=2}, {iov_base="\\x7d", iov_len=1}], 2) = 3 <0.000001>',
        '100 1.000002 write(6</d/x>, "a\\"b\\\\c\\n\\0"..., 7) = 7 <0.000001>',
      ].join('\n'),
    );
    expect(writev!.path).toBe('socket:[1]');
    expect(bytesOf(writev!).toString()).toBe('{"}');
    expect([...bytesOf(write!)]).toEqual([...Buffer.from('a"b\\c\n\0')]);
  });
});
