import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from './loopback.ts';

describe('isLoopbackHost', () => {
  it('is true for localhost, 127/8, ::1 (bare or in brackets) and IPv4-mapped loopback; false for the rest', () => {
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'hub.example.lan', '128.0.0.1', '[2001:db8::1]', '']) expect(isLoopbackHost(host), host).toBe(false);
  });
});
