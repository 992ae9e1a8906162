/**
 * Condition dropout for classifier-free guidance (Ho & Salimans 2022): during
 * training each example's condition is replaced by the null condition with
 * probability p, so one network learns both p(x | c) and p(x).
 *
 * The draw for example i at step s is keyed by (seed, 'cfg-drop', step, i): it
 * does not depend on batch splitting or worker count.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';

/** 1 where example `exampleIds[j]` drops its condition at `step`, else 0. */
export function conditionDropMask(seed: number, step: number, exampleIds: ArrayLike<number>, p: number): Uint8Array {
  if (!(p >= 0 && p <= 1)) throw new Error(`condition dropout probability must be in [0, 1], got ${p}`);
  const mask = new Uint8Array(exampleIds.length);
  if (p === 0) return mask;
  for (let j = 0; j < exampleIds.length; j++) {
    mask[j] = keyedRng(seed, 'cfg-drop', step, exampleIds[j]).uniform() < p ? 1 : 0;
  }
  return mask;
}

/** Class labels with dropped entries replaced by the null class (index `numClasses`). */
export function dropLabels(labels: Int32Array, mask: Uint8Array, numClasses: number): Int32Array {
  if (labels.length !== mask.length) throw new Error(`dropLabels: ${labels.length} labels but ${mask.length} mask entries`);
  return labels.map((l, j) => (mask[j] === 1 ? numClasses : l));
}

/**
 * Token states with dropped rows replaced by the null context (e.g. the frozen
 * encoder's states for the empty prompt), and its mask likewise.
 * context [B, L, D], mask [B, L], nullContext [1, L, D], nullMask [1, L].
 */
export function dropContext(
  context: tf.Tensor3D,
  contextMask: tf.Tensor2D,
  nullContext: tf.Tensor3D,
  nullMask: tf.Tensor2D,
  dropMask: Uint8Array,
): { context: tf.Tensor3D; contextMask: tf.Tensor2D } {
  const [b, l, d] = context.shape;
  if (dropMask.length !== b) throw new Error(`dropContext: batch ${b} but ${dropMask.length} mask entries`);
  if (nullContext.shape[1] !== l || nullContext.shape[2] !== d) {
    throw new Error(`dropContext: null context [${nullContext.shape}] does not match context [${context.shape}]`);
  }
  return tf.tidy(() => {
    const keep = tf.tensor(Float32Array.from(dropMask, (m) => 1 - m), [b, 1, 1]);
    const keep2 = tf.reshape(keep, [b, 1]);
    return {
      context: tf.add(tf.mul(context, keep), tf.mul(nullContext, tf.sub(1, keep))) as tf.Tensor3D,
      contextMask: tf.add(tf.mul(contextMask, keep2), tf.mul(nullMask, tf.sub(1, keep2))) as tf.Tensor2D,
    };
  });
}
