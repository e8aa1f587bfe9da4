// Operational errors of the hardware layer: one class, stable codes from one registry.
export const HARDWARE_ERROR_CODES = {
  NFC_ACK_TIMEOUT: 'the PN532 did not acknowledge a command after the bounded retries',
  NFC_RESPONSE_TIMEOUT: 'the PN532 acknowledged a command but sent no response in time',
  NFC_FRAME_INVALID: 'the PN532 sent a frame that cannot be decoded, even after NACK retries',
  NFC_ERROR_FRAME: 'the PN532 answered with an application-level error frame (UM0701-02 §6.2.1.5)',
  NFC_UNEXPECTED_RESPONSE: 'the PN532 answered with an unexpected command code or length',
  NFC_STATUS: 'the PN532 reported a non-zero status byte for a command',
  NFC_CARD_REMOVED: 'the card left the field during an exchange; no response was delivered',
  NFC_SESSION_RELEASED: 'the session was already released',
  NFC_SESSION_ACTIVE: 'waitForCard while the previous session is still active: release it first',
  NFC_SESSION_EXPIRED: 'the tap took longer than its session allows: no more APDUs on it',
  NFC_DISCONNECTED: 'the serial adapter is gone; the driver reconnects on its own',
  NFC_CLOSED: 'the reader was closed',
  WALLET_STATUS: 'the wallet answered with an unexpected ISO 7816 status word',
  WALLET_RESPONSE_INVALID: 'the wallet answered with bytes that do not follow the applet protocol',
  WALLET_RESPONSE_TOO_LONG: 'the wallet answer exceeded the host limit',
  ACTUATOR_NOT_READY: 'the johnny-five board did not become ready in time',
  ACTUATOR_BUSY: 'the actuator is already doing this (a gate passage is in progress)',
  ACTUATOR_CLOSED: 'the actuator was closed',
  ACTUATOR_LINK_LOST: 'the link to the johnny-five board (its serial port or IO plugin) was lost after start: nothing can be switched or read any more',
  VENDING_SLOT_UNKNOWN: 'a dispense on a slot the vending machine does not have (slots are 0..slotCount-1)',
  DROP_SENSOR_BLOCKED: 'the drop sensor did not read clear before the motor would start (beam blocked, or no reading yet): nothing was run',
  PRINTER_UNAVAILABLE: 'the receipt printer (its serial port or printer device) could not be opened at start',
  PRINTER_WRITE_FAILED: 'a slip could not be written to the receipt printer (link lost, write error or timeout); the next slip reopens the link',
  PRINTER_CLOSED: 'the receipt printer was closed',
} as const;

export type HardwareErrorCode = keyof typeof HARDWARE_ERROR_CODES;

export class HardwareError extends Error {
  readonly code: HardwareErrorCode;
  /** ISO 7816 status word or PN532 status byte, when one caused the error. */
  readonly status: number | undefined;

  constructor(code: HardwareErrorCode, message?: string, options?: { cause?: unknown; status?: number }) {
    super(message ?? HARDWARE_ERROR_CODES[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HardwareError';
    this.code = code;
    this.status = options?.status;
  }
}

export function isHardwareError(err: unknown, code?: HardwareErrorCode): err is HardwareError {
  return err instanceof HardwareError && (code === undefined || err.code === code);
}
