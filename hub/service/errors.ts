/**
 * Operational error codes of the hub outside the wire protocol (those are protocol ERROR_CODES)
 * and the ledger (LEDGER_ERROR_CODES). Stable: add codes, never change a meaning.
 */
export const HUB_ERROR_CODES = {
  INVALID_INPUT: 'Operator input failed validation (the message names the field); nothing was written.',
  DATA_DIR_BUSY: 'Another hub process holds the data folder (hub.lock); stop it first.',
  KEY_FILE_INVALID: 'A key or secret file in the data folder is unreadable or not the lowercase hex of its expected length (32 bytes for keys, 24 for the hub broker password).',
  ROTATION_REFUSED: 'A hub key rotation was refused (a key is already waiting to start, too many keys announced, a time out of range) or the key ring names a missing key file; nothing was written.',
} as const;

export type HubErrorCode = keyof typeof HUB_ERROR_CODES;
