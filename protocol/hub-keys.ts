/**
 * Hub key windows as the keys announcement carries them (rotation, issue 4). Shared by the hub,
 * which plans them, and the terminal, which trusts a hub key only inside its window.
 */
export interface HubKeyWindow {
  readonly publicKey: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** t inside the key's window, widened by `slackMs` on both sides (clock skew between hub and terminal). */
export function keyActiveAt(k: HubKeyWindow, t: number, slackMs = 0): boolean {
  return k.notBefore - slackMs <= t && t <= k.notAfter + slackMs;
}

/** The longest a hub-signed ticket may be valid; a retired key stays honoured this long for its tickets. */
export const TICKET_HORIZON_MS = 366 * 24 * 3600_000;

/**
 * Keys that may have signed a ticket issued at `issuedAt`, judged at `nowMs`: the key had not
 * retired when it was issued (a duplicate sale answered late may carry an issue time from before
 * the key started signing, so there is no lower bound), and it retired less than a ticket
 * lifetime ago.
 */
export function ticketKeysAt(keys: readonly HubKeyWindow[], issuedAt: number, nowMs: number, slackMs = 0): string[] {
  return keys.filter((k) => issuedAt <= k.notAfter + slackMs && nowMs <= k.notAfter + TICKET_HORIZON_MS).map((k) => k.publicKey);
}

/** Public keys (hex) whose window contains t (± slackMs). */
export function hubKeysTrustedAt(keys: readonly HubKeyWindow[], t: number, slackMs = 0): string[] {
  return keys.filter((k) => keyActiveAt(k, t, slackMs)).map((k) => k.publicKey);
}
