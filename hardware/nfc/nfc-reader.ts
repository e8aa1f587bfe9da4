// The NFC reader interface the terminal runtime uses. Two implementations: the PN532 driver
// (hardware/nfc/pn532-nfc-reader.ts) and a simulated reader (simulators/wallet/simulated-nfc-reader.ts).

/** One tap: from the card entering the field (and being activated) to release. */
export interface NfcSession {
  /** ISO 14443-A UID as activated (random per tap on phones). */
  readonly uid: Uint8Array;
  /**
   * Send one command APDU, get the whole response APDU (data + SW1 SW2).
   * Rejects with HardwareError NFC_CARD_REMOVED if the card left; never returns part of a response.
   */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** End the session (PN532 InRelease). Safe to call twice and after the card left. */
  release(): Promise<void>;
  /** False once released or once the card was lost. */
  readonly active: boolean;
}

export interface NfcReader {
  /**
   * Resolve with a session when a card is tapped. A card that stays in the field after its session
   * was released does not start a new one until it has been taken away (one tap, one session).
   * Rejects with the signal's reason when aborted.
   */
  waitForCard(signal?: AbortSignal): Promise<NfcSession>;
  close(): Promise<void>;
}

/**
 * Run `handler` for each tap until the signal aborts; the session is always released afterwards.
 * Errors thrown by the handler go to `onError` (default: ignored) and the loop continues.
 */
export async function onTap(
  reader: NfcReader,
  handler: (session: NfcSession) => Promise<void>,
  options: { signal: AbortSignal; onError?: (err: unknown) => void },
): Promise<void> {
  while (!options.signal.aborted) {
    let session: NfcSession;
    try {
      session = await reader.waitForCard(options.signal);
    } catch (err) {
      if (options.signal.aborted) return;
      throw err;
    }
    try {
      await handler(session);
    } catch (err) {
      options.onError?.(err);
    } finally {
      await session.release();
    }
  }
}

export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}
