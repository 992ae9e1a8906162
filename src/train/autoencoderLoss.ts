/**
 * The autoencoder's training loss (train/autoencoderTraining.ts explains the two
 * terms and how they relate to Stable Diffusion's), and the loss and gradients of
 * one batch: what the one loop and a data-parallel worker compute per batch.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import type { Batch } from '../data/batches';
import { Autoencoder, klDivergence } from '../models/autoencoder';

export type ReconstructionLoss = 'l1' | 'mse';

export interface AutoencoderLoss {
  readonly total: tf.Scalar;
  /** Reconstruction term, mean per pixel value. */
  readonly reconstruction: tf.Scalar;
  /** KL(q || N(0, I)), mean per latent value (unweighted). */
  readonly kl: tf.Scalar;
}

/** loss = rec(x^, x) + klWeight * kl, both means per element (see the header). */
export function autoencoderLoss(
  x: tf.Tensor4D,
  out: { reconstruction: tf.Tensor4D; mean: tf.Tensor4D; logvar: tf.Tensor4D },
  options: { loss: ReconstructionLoss; klWeight: number },
): AutoencoderLoss {
  const [total, reconstruction, kl] = tf.tidy(() => {
    const d = tf.sub(out.reconstruction, x);
    const rec = tf.mean(options.loss === 'l1' ? tf.abs(d) : tf.square(d)) as tf.Scalar;
    const klMean = tf.div(tf.sum(klDivergence(out)), out.mean.size) as tf.Scalar;
    return [tf.add(rec, tf.mul(klMean, options.klWeight)) as tf.Scalar, rec, klMean];
  });
  return { total, reconstruction, kl };
}

/** Standard normal eps for examples [first, first + B) of `step`, keyed by (seed, 'posterior', step, index). */
export function posteriorNoise(shape: [number, number, number, number], seed: number, step: number, first: number): tf.Tensor4D {
  const per = shape[1] * shape[2] * shape[3];
  const data = new Float32Array(shape[0] * per);
  for (let i = 0; i < shape[0]; i++) keyedRng(seed, 'posterior', step, first + i).fillNormal(data.subarray(i * per, (i + 1) * per));
  return tf.tensor4d(data, shape);
}

/**
 * Loss parts [total, reconstruction, kl] of a batch's examples [first, first + B) at `step`
 * (posterior noise keyed by example index) and the gradients of the total by parameter name.
 * The caller owns the returned tensors.
 */
export function autoencoderLossAndGrads(
  model: Autoencoder,
  params: ReadonlyArray<[string, tf.Variable]>,
  options: { loss: ReconstructionLoss; klWeight: number; seed: number },
  batch: Batch,
  step: number,
  first: number,
): { loss: tf.Tensor1D; grads: Map<string, tf.Tensor> } {
  const noise = posteriorNoise(model.latentShape(batch.x.shape[0]), options.seed, step, first);
  try {
    let parts: tf.Tensor1D | null = null;
    const { value, grads } = tf.variableGrads(() => {
      const out = model.apply(batch.x, { sample: true, noise });
      const l = autoencoderLoss(batch.x, out, options);
      parts = tf.keep(tf.stack([l.total, l.reconstruction, l.kl]) as tf.Tensor1D);
      return l.total;
    }, params.map(([, v]) => v));
    value.dispose(); // also in `parts`
    const names = new Map(params.map(([n, v]) => [v.name, n]));
    return { loss: parts as unknown as tf.Tensor1D, grads: new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])) };
  } finally {
    noise.dispose();
  }
}
