/**
 * Simulated customers' wallets as the demo and the fleet simulator hold them: an Ed25519 key,
 * the issuer-signed license, an increasing counter, the last gate admission record and the last
 * hub-signed balance (seed 004: the wallet stores its entry record and statement).
 */
import type { KeyObject } from 'node:crypto';
import type { Envelope } from '../../protocol/index.ts';
import { nodeSigningKey } from '../load/purchase-request.ts';

export interface SimWallet {
  readonly name: string;
  readonly publicKey: string;
  readonly secretKey: Uint8Array;
  readonly key: KeyObject;
  readonly license: Envelope<'wallet.license'>;
  /** The last hub-signed balance seen, in minor units (null before the first statement). */
  balanceMinor: number | null;
  /** The gate admission record on the wallet (the station it entered at), null when outside. */
  admission: { readonly station: string; readonly envelope?: Envelope<'gate.admission'> } | null;
  /** Purchases still inside their cancellation window: request id → hold end. */
  readonly cancellable: Map<string, number>;
  nextCounter(): number;
}

export function makeSimWallet(name: string, secretKey: Uint8Array, publicKey: string, license: Envelope<'wallet.license'>): SimWallet {
  // Time-based so a restarted demo never reuses a counter the hub has already seen.
  let counter = 0;
  return {
    name,
    publicKey,
    secretKey,
    key: nodeSigningKey(secretKey),
    license,
    balanceMinor: null,
    admission: null,
    cancellable: new Map(),
    nextCounter() {
      counter = Math.max(counter + 1, Date.now());
      return counter;
    },
  };
}
