import { describe, expect, it } from 'vitest';
import { onTap } from './nfc-reader.ts';
import { WalletCard } from '../wallet-apdu/wallet-card.ts';
import { SimulatedNfcReader } from '../../simulators/wallet/simulated-nfc-reader.ts';
import { createWalletWorld } from '../../simulators/wallet/wallet-world.ts';

describe('onTap', () => {
  it('runs the handler once per tap, releases each session and keeps going after a handler error', async () => {
    const reader = new SimulatedNfcReader();
    const world = createWalletWorld();
    const ac = new AbortController();
    const seen: string[] = [];
    const errors: unknown[] = [];
    const loop = onTap(
      reader,
      async (session) => {
        const card = new WalletCard(session);
        await card.select();
        seen.push(Buffer.from(session.uid).toString('hex'));
        if (seen.length === 1) throw new Error('handler failed');
      },
      { signal: ac.signal, onError: (e) => errors.push(e) },
    );
    const a = world.newWallet();
    const b = world.newWallet();
    reader.tap(a);
    await new Promise((r) => setTimeout(r, 20));
    reader.tap(b);
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await loop;
    expect(seen).toEqual([Buffer.from(a.uid).toString('hex'), Buffer.from(b.uid).toString('hex')]);
    expect(errors).toHaveLength(1);
  });
});
