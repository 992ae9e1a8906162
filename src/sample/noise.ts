/**
 * Sampling noise keyed per image: the noise of image i at a given step comes
 * from keyedRng(seed, 'sample', i, stepKey), so image i is the same whether it
 * is sampled alone or as element k of a batch starting at index i - k.
 * The samplers use stepKey 'xT' for the initial noise and `t<timestep>` for the
 * noise added when stepping away from timestep t.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';

/**
 * Standard normal noise [B, ...shape[1:]] where row b uses image index
 * `indices[b]` (or `indices + b` when a first index is given).
 */
export function noiseForBatch(shape: readonly number[], seed: number | string, indices: number | readonly number[], stepKey: string | number): tf.Tensor {
  if (shape.length < 1 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`noiseForBatch: shape must be positive integers [B, ...], got [${shape.join(', ')}]`);
  }
  const B = shape[0];
  const ids = typeof indices === 'number' ? Array.from({ length: B }, (_, b) => indices + b) : indices;
  if (ids.length !== B) throw new Error(`noiseForBatch: need one image index per batch element (${B}), got ${ids.length}`);
  if (ids.some((i) => !Number.isInteger(i) || i < 0)) throw new Error(`noiseForBatch: image indices must be integers >= 0, got [${ids.join(', ')}]`);
  const perImage = shape.slice(1).reduce((a, b) => a * b, 1);
  const data = new Float32Array(B * perImage);
  for (let b = 0; b < B; b++) {
    keyedRng(seed, 'sample', ids[b], stepKey).fillNormal(data.subarray(b * perImage, (b + 1) * perImage));
  }
  return tf.tensor(data, [...shape], 'float32');
}
