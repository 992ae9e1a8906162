/** Shared test helpers: backend setup and numeric comparison. */
import * as tf from '@tensorflow/tfjs';
import { initBackend, BackendChoice } from '../src/backend/backend';
import { Rng } from '../src/backend/random';
import { ImageDataset } from '../src/data/dataset';

/** Initialises a backend once per test file (call in beforeAll). */
export async function useBackend(name: Exclude<BackendChoice, 'auto'> = 'wasm'): Promise<void> {
  await initBackend(name);
}

/** max |a - b| / max(max |b|, tiny): the relative error used throughout the tests. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

/** Asserts tensors (or arrays) agree to `rtol` in the relativeError sense. */
export async function expectClose(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>, rtol = 1e-5): Promise<void> {
  const av = a instanceof tf.Tensor ? await a.data() : a;
  const bv = b instanceof tf.Tensor ? await b.data() : b;
  if (a instanceof tf.Tensor && b instanceof tf.Tensor) expect(a.shape).toEqual(b.shape);
  const err = relativeError(av as ArrayLike<number>, bv as ArrayLike<number>);
  if (!(err <= rtol)) throw new Error(`relative error ${err.toExponential(3)} exceeds ${rtol}`);
}

/** `count` images 8x8x1 of two classes, class 0 bright top half, class 1 bright left half (plus seeded noise): tiny training data. */
export function tinyTwoClassDataset(count: number, seed: number): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 64);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 2;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const on = labels[i] === 0 ? y < 4 : x < 4;
        images[i * 64 + y * 8 + x] = Math.min(255, Math.max(0, Math.round((on ? 220 : 30) + 20 * rng.normal())));
      }
    }
  }
  return { name: 'tiny', split: 'train', images, count, height: 8, width: 8, channels: 1, labels, classNames: ['top', 'left'], captions: null };
}
