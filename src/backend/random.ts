/**
 * Seeded randomness. Every random draw in the library goes through an `Rng`
 * (seedrandom's Alea generator, whose state can be saved and restored), so one
 * seed fixes data order, initialisation and noise.
 *
 * `keyedRng(seed, ...keys)` derives an independent stream from a seed and a key
 * path such as (step, exampleIndex): draws keyed that way do not depend on how
 * work is split into batches or workers.
 */
import seedrandom from 'seedrandom';
import * as tf from '@tensorflow/tfjs';

/** Serializable generator state (seedrandom's Alea state). */
export interface RngState {
  readonly alea: { c: number; s0: number; s1: number; s2: number };
  readonly spareNormal: number | null;
}

export class Rng {
  private readonly prng: seedrandom.StatefulPRNG<seedrandom.State.Alea>;
  private spare: number | null = null;

  constructor(seed: string | number, state?: RngState) {
    if (state !== undefined) {
      this.prng = seedrandom.alea('', { state: { ...state.alea } });
      this.spare = state.spareNormal;
    } else {
      this.prng = seedrandom.alea(String(seed), { state: true });
    }
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.prng();
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u <= Number.MIN_VALUE) u = this.prng();
    const v = this.prng();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.prng() * n);
  }

  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  fillUniform(out: Float32Array, low = 0, high = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.prng();
    return out;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): typeof items {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.prng() * (i + 1));
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  state(): RngState {
    const a = this.prng.state();
    return { alea: { c: a.c, s0: a.s0, s1: a.s1, s2: a.s2 }, spareNormal: this.spare };
  }

  static fromState(state: RngState): Rng {
    return new Rng('', state);
  }
}

/** An independent generator for (seed, key...): e.g. keyedRng(seed, 'noise', step, i). */
export function keyedRng(seed: number | string, ...keys: Array<string | number>): Rng {
  return new Rng([String(seed), ...keys.map(String)].join('/'));
}

/** A float32 tensor of standard normals from `rng`. */
export function randomNormal(shape: number[], rng: Rng, mean = 0, std = 1): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(size), mean, std), shape, 'float32');
}

/** A float32 tensor of uniforms in [low, high) from `rng`. */
export function randomUniform(shape: number[], rng: Rng, low = 0, high = 1): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillUniform(new Float32Array(size), low, high), shape, 'float32');
}
