/**
 * Forward noising, Ho et al. 2020 eq. 4 (guided-diffusion's q_sample):
 *
 *   x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I)
 *
 * for x of any rank [B, ...] with one timestep per batch element.
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule, tableAt } from './schedule';

/** Throws unless t is an int32 [B] matching the batch of x. */
export function assertTimesteps(where: string, x: tf.Tensor, t: tf.Tensor1D): void {
  if (x.rank < 1) throw new Error(`${where}: x must be batch-first [B, ...], got a scalar`);
  if (t.rank !== 1 || t.shape[0] !== x.shape[0]) {
    throw new Error(`${where}: t must be [B] = [${x.shape[0]}] (one timestep per batch element), got shape [${t.shape.join(', ')}]`);
  }
  if (t.dtype !== 'int32') throw new Error(`${where}: t must be int32 timesteps in [0, T), got ${t.dtype}`);
}

function assertSameShape(where: string, a: tf.Tensor, b: tf.Tensor, names: [string, string]): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${where}: ${names[1]} must have the shape of ${names[0]} [${a.shape.join(', ')}], got [${b.shape.join(', ')}]`);
  }
}

/**
 * Samples q(x_t | x_0): x0 [B, ...], t int32 [B], noise [B, ...] (same shape as x0).
 * Returns x_t [B, ...].
 */
export function qSample(x0: tf.Tensor, t: tf.Tensor1D, noise: tf.Tensor, schedule: Schedule): tf.Tensor {
  assertTimesteps('qSample', x0, t);
  assertSameShape('qSample', x0, noise, ['x0', 'noise']);
  return tf.tidy(() => {
    const signal = tableAt(schedule.sqrtAlphasCumprod, t, x0.rank); // [B, 1, ...]
    const noiseScale = tableAt(schedule.sqrtOneMinusAlphasCumprod, t, x0.rank); // [B, 1, ...]
    return tf.add(tf.mul(signal, x0), tf.mul(noiseScale, noise));
  });
}
