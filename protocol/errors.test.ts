import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODE_LIST, ERROR_CODES, isErrorCode, TapsettleError } from './errors.ts';

describe('error registry', () => {
  const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');

  it.each(ERROR_CODE_LIST)('%s has a message and is documented in protocol/README.md', (code) => {
    expect(ERROR_CODES[code].length).toBeGreaterThan(10);
    expect(readme).toContain(`\`${code}\``);
  });

  it('codes are stable SCREAMING_SNAKE_CASE and unique', () => {
    for (const code of ERROR_CODE_LIST) expect(code).toMatch(/^[A-Z][A-Z_]+$/);
    expect(new Set(ERROR_CODE_LIST).size).toBe(ERROR_CODE_LIST.length);
  });

  it('TapsettleError keeps its code and cause', () => {
    const cause = new Error('disk full');
    const err = new TapsettleError('INTERNAL', 'writing outbox', { cause });
    expect(err.code).toBe('INTERNAL');
    expect(err.cause).toBe(cause);
    expect(err.message).toContain('writing outbox');
    expect(isErrorCode('INTERNAL')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
  });
});
