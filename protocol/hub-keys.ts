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

/** Public keys (hex) whose window contains t (± slackMs). */
export function hubKeysTrustedAt(keys: readonly HubKeyWindow[], t: number, slackMs = 0): string[] {
  return keys.filter((k) => keyActiveAt(k, t, slackMs)).map((k) => k.publicKey);
}
