import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HARDWARE_ERROR_CODES, HardwareError, isHardwareError } from './errors.ts';

describe('hardware error registry', () => {
  it('documents every code in hardware/README.md', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(HARDWARE_ERROR_CODES)) expect(readme, code).toContain(`| \`${code}\` |`);
  });

  it('keeps the code, the status and the cause', () => {
    const cause = new Error('EIO');
    const err = new HardwareError('WALLET_STATUS', undefined, { cause, status: 0x6a82 });
    expect(isHardwareError(err, 'WALLET_STATUS')).toBe(true);
    expect(isHardwareError(err, 'NFC_CLOSED')).toBe(false);
    expect(err.status).toBe(0x6a82);
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(HARDWARE_ERROR_CODES.WALLET_STATUS);
  });
});
