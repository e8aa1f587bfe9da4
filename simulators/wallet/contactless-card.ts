/** What a reader (emulated PN532 or simulated reader) needs from a card in its field. */
export interface ContactlessCard {
  /** ISO 14443-A UID (4 or 7 bytes). Phones using HCE present a random one per tap. */
  readonly uid: Uint8Array;
  /** Entering the field powers the card up: volatile applet state (selection, chaining) is lost. */
  powerOn(): void;
  /** One ISO 7816-4 command APDU in, one response APDU (data + SW1 SW2) out. */
  processApdu(apdu: Uint8Array): Promise<Uint8Array>;
}
