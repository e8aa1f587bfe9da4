/**
 * What the MQTT adapter needs from the rest of the hub. Structural, so the real
 * `SettlementService` (hub/service) and `TerminalDirectory` (hub/registry) plug in as they are.
 */

export interface Announcement {
  readonly topic: string;
  readonly payload: Uint8Array;
}

export interface SettlementHandler {
  /** Untrusted request bytes in, the encoded hub-signed reply out (a result or a signed error). */
  handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array>;
  /**
   * Terminal-signed completion receipt in, the encoded hub-signed `receipt.ack` (or a signed
   * error) out, sent once what the receipt did is durable. The terminal re-sends the receipt
   * until that answer arrives.
   */
  answerReceipt?(terminalId: string, payload: Uint8Array): Promise<Uint8Array>;
  /** Current retained announcements (blocklist, fares, keys, catalogs). */
  announcements?(): readonly Announcement[];
  /** Called for every new announcement; may return an unsubscribe function. */
  onAnnouncement?(cb: (a: Announcement) => void): unknown;
}

export interface TerminalRecord {
  readonly publicKey: string;
  readonly revoked: boolean;
}

export interface TerminalLookup {
  lookupTerminal(terminalId: string): TerminalRecord | undefined;
}

/** A terminal directory that can also list everyone (for generating Mosquitto's password file). */
export interface TerminalListing extends TerminalLookup {
  listTerminals(): Iterable<{ readonly terminalId: string } & TerminalRecord>;
}
