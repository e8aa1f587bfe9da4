/**
 * Bad operator input (CLI, admin API): names the field. Thrown before anything is written, so a
 * rejected command leaves no trace. The CLI maps it to exit code 2.
 */
import type { HubErrorCode } from './errors.ts';

export class InputError extends Error {
  readonly code: HubErrorCode = 'INVALID_INPUT';
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InputError';
    this.field = field;
  }
}

/** Operator action refused for a business reason (unknown request, window closed, ...). */
export class OperationRefused extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'OperationRefused';
    this.code = code;
  }
}
