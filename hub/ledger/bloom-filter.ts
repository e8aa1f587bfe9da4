/**
 * A set that may say "maybe" but never wrongly says "no": a Bloom filter over strings, so that
 * a lookup for a key that was never stored (almost every new request id) skips the SQLite read.
 * "Maybe" sends the caller to the database, which stays the authority.
 *
 * It grows by layers (a scalable Bloom filter): when a layer holds as many keys as it was sized
 * for, a new one twice as large takes further keys, so the false-positive rate stays near
 * 0.8 % × layers instead of rising without bound.
 *
 * Hand-written because the hot path needs it in well under a microsecond: the `bloom-filters`
 * package took ~21 µs per lookup here (as long as the SQLite read it would save).
 */

/** 10 bits and 7 probes per key: ~0.8 % false positives per layer. */
const BITS_PER_KEY = 10;
const PROBES = 7;

interface Layer {
  readonly bits: Uint32Array;
  /** Number of bits (a multiple of 32). */
  readonly size: number;
  readonly capacity: number;
  count: number;
}

/** 2^32 bits (512 MiB): a probe is a 32-bit number, so a larger layer could not use the rest. */
const MAX_LAYER_WORDS = 2 ** 27;

function layer(wanted: number): Layer {
  const words = Math.min(MAX_LAYER_WORDS, Math.max(1, Math.ceil((wanted * BITS_PER_KEY) / 32)));
  return { bits: new Uint32Array(words), size: words * 32, capacity: Math.floor((words * 32) / BITS_PER_KEY), count: 0 };
}

/**
 * Two independent 32-bit FNV-1a hashes of the UTF-16 code units; the probes are h1 + i·h2
 * (Kirsch–Mitzenmacher). Keys here are ids a terminal chose: a crafted collision costs only a
 * database read.
 */
function hashes(key: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  // A step of 0 would put all probes on one bit.
  return [h1 >>> 0, (h2 | 1) >>> 0];
}

export class BloomFilter {
  readonly #layers: Layer[];
  #keys = 0;

  /** `expectedKeys` sizes the first layer; more keys are fine (new layers). */
  constructor(expectedKeys: number) {
    if (!Number.isSafeInteger(expectedKeys) || expectedKeys < 1) throw new RangeError(`BloomFilter: expectedKeys must be a positive integer (${expectedKeys})`);
    this.#layers = [layer(expectedKeys)];
  }

  /** Keys added so far (repeats counted). */
  get keys(): number {
    return this.#keys;
  }

  /** Layers in use (1 until the first layer is full). */
  get layers(): number {
    return this.#layers.length;
  }

  add(key: string): void {
    let top = this.#layers[this.#layers.length - 1]!;
    if (top.count >= top.capacity) {
      top = layer(top.capacity * 2);
      this.#layers.push(top);
    }
    const [h1, h2] = hashes(key);
    for (let i = 0; i < PROBES; i++) {
      const at = probe(top, h1, h2, i);
      top.bits[at >>> 5]! |= 1 << (at & 31);
    }
    top.count++;
    this.#keys++;
  }

  /** False only for a key never added; true for every added key and a few others. */
  mightContain(key: string): boolean {
    const [h1, h2] = hashes(key);
    for (const l of this.#layers) if (inLayer(l, h1, h2)) return true;
    return false;
  }
}

/** The bit of `l` the i-th probe of a key hashed to (h1, h2) lands on; add and lookup share it. */
function probe(l: Layer, h1: number, h2: number, i: number): number {
  return ((h1 + Math.imul(i, h2)) >>> 0) % l.size;
}

function inLayer(l: Layer, h1: number, h2: number): boolean {
  for (let i = 0; i < PROBES; i++) {
    const at = probe(l, h1, h2, i);
    if ((l.bits[at >>> 5]! & (1 << (at & 31))) === 0) return false;
  }
  return true;
}
