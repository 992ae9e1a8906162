/**
 * Inverted dropout (Srivastava et al. 2014): each element is zeroed with
 * probability `rate` and the survivors scaled by 1 / (1 - rate), so the
 * expectation is unchanged and inference needs no rescaling. The mask is drawn
 * from `rng` (seeded), one uniform per element.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../backend/random';

/** x * mask / (1 - rate); rate 0 returns x itself. Call only in training. */
export function dropout<T extends tf.Tensor>(x: T, rate: number, rng: Rng): T {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return x;
  const scale = 1 / (1 - rate);
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < rate ? 0 : scale;
  return tf.tidy(() => tf.mul(x, tf.tensor(mask, x.shape, 'float32')) as T);
}
