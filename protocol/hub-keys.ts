/**
 * Hub key windows as the keys announcement carries them (rotation, issue 4). Shared by the hub,
 * which plans them, and the terminal, which trusts a hub key only inside its window.
 */
export interface HubKeyWindow {
  readonly publicKey: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export function keyActiveAt(k: HubKeyWindow, t: number): boolean {
  return k.notBefore <= t && t <= k.notAfter;
}

/** Public keys (hex) whose window contains t. */
export function hubKeysTrustedAt(keys: readonly HubKeyWindow[], t: number): string[] {
  return keys.filter((k) => keyActiveAt(k, t)).map((k) => k.publicKey);
}
