/**
 * Diffusion training loss: MSE between the model output and the target of its
 * prediction type, averaged per example, optionally weighted by Min-SNR-gamma
 * (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
 * Strategy", eq. 9 and Table 1):
 *
 *   epsilon-prediction: w(t) = min(SNR(t), gamma) / SNR(t)
 *   v-prediction:       w(t) = min(SNR(t), gamma) / (SNR(t) + 1)
 *   x0-prediction:      w(t) = min(SNR(t), gamma)
 *
 * where SNR(t) = abar_t / (1 - abar_t). The weights come from the float64
 * schedule table and are gathered per example.
 */
import * as tf from '@tensorflow/tfjs';

export type LossPredictionType = 'epsilon' | 'v' | 'x0';

/** Min-SNR weights for every timestep, in float64 (null gamma = all ones). */
export function minSnrWeights(snr: ArrayLike<number>, predictionType: LossPredictionType, gamma: number | null): Float64Array {
  const w = new Float64Array(snr.length);
  for (let i = 0; i < snr.length; i++) {
    if (gamma === null) {
      w[i] = 1;
      continue;
    }
    const s = snr[i];
    const clipped = Math.min(s, gamma);
    if (predictionType === 'epsilon') w[i] = s > 0 ? clipped / s : 1;
    else if (predictionType === 'v') w[i] = clipped / (s + 1);
    else w[i] = clipped;
  }
  return w;
}

/**
 * Mean over the batch of w(t_i) * mean((output_i - target_i)^2).
 * `weights` is the per-timestep table from `minSnrWeights` as a float32 tensor [T] (or null for plain MSE).
 */
export function diffusionLoss(output: tf.Tensor, target: tf.Tensor, t: tf.Tensor1D, weights: tf.Tensor1D | null): tf.Scalar {
  if (output.shape.join(',') !== target.shape.join(',')) {
    throw new Error(`diffusionLoss: output shape [${output.shape}] differs from target shape [${target.shape}]`);
  }
  return tf.tidy(() => {
    const batch = output.shape[0];
    const perExample = tf.mean(tf.reshape(tf.square(tf.sub(output, target)), [batch, -1]), 1);
    if (weights === null) return tf.mean(perExample) as tf.Scalar;
    const w = tf.gather(weights, tf.cast(t, 'int32'));
    return tf.mean(tf.mul(perExample, w)) as tf.Scalar;
  });
}
