import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../protocol/index.ts';
import { KeyFileError } from '../registry/keys.ts';
import { RotationError } from '../registry/hub-keyring.ts';
import { DataDirBusyError } from './data-dir-lock.ts';
import { HUB_ERROR_CODES } from './errors.ts';
import { InputError, OperationRefused } from './input-error.ts';
import { mapDecline } from './decline-codes.ts';
import { DECLINE_CODES } from '../ledger/types.ts';

describe('hub error codes', () => {
  it('every operational error class carries a documented code', () => {
    for (const err of [new InputError('amount', 'bad'), new DataDirBusyError('/x', 1), new KeyFileError('/x/k.key', 'bad'), new RotationError('pending')]) {
      expect(Object.keys(HUB_ERROR_CODES)).toContain(err.code);
      expect(HUB_ERROR_CODES[err.code as keyof typeof HUB_ERROR_CODES].length).toBeGreaterThan(10);
    }
    expect(Object.keys(ERROR_CODES)).toContain(new OperationRefused('NOT_FOUND', 'x').code);
  });

  it('every ledger decline maps onto a wire error code', () => {
    for (const d of DECLINE_CODES) expect(Object.keys(ERROR_CODES)).toContain(mapDecline(d));
  });
});
