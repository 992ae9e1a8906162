/** Shared test helpers: backend setup and numeric comparison. */
import * as tf from '@tensorflow/tfjs';
import { initBackend, BackendChoice } from '../src/backend/backend';

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
