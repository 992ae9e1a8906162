/**
 * Clipping the predicted x0 during sampling.
 *
 *   none     leave x0 as predicted.
 *   static   clip x0 to [-value, value] (DDPM's clip_denoised, value = 1 for data in [-1, 1]).
 *   dynamic  Imagen (Saharia et al. 2022, sec. 2.3): per sample, s = max(1, the
 *            `percentile` quantile of |x0|); x0 <- clip(x0, -s, s) / s. Pixels are
 *            pushed inwards instead of saturating at +-1 under strong guidance.
 *            The quantile interpolates linearly between order statistics, as
 *            numpy.quantile / torch.quantile (what diffusers' _threshold_sample uses).
 */
import * as tf from '@tensorflow/tfjs';

export type ClipMode =
  | { readonly kind: 'none' }
  | { readonly kind: 'static'; /** Bound, usually 1. */ readonly value: number }
  | { readonly kind: 'dynamic'; /** Quantile of |x0| in (0, 1], Imagen uses 0.995. */ readonly percentile: number };

export const NO_CLIP: ClipMode = { kind: 'none' };

/** Throws unless `mode` is a well-formed ClipMode. */
export function validateClipMode(mode: ClipMode): void {
  switch (mode.kind) {
    case 'none':
      return;
    case 'static':
      if (!(mode.value > 0)) throw new Error(`clip: static value must be > 0, got ${mode.value}`);
      return;
    case 'dynamic':
      if (!(mode.percentile > 0 && mode.percentile <= 1)) throw new Error(`clip: dynamic percentile must be in (0, 1], got ${mode.percentile}`);
      return;
    default:
      throw new Error(`clip: kind must be 'none' | 'static' | 'dynamic', got '${String((mode as { kind: unknown }).kind)}'`);
  }
}

/**
 * Per-sample quantile of |x| over all non-batch elements: x [B, ...] -> [B].
 * Sorts each row (topk with k = N); fine for the sizes sampled here.
 */
export function absQuantilePerSample(x: tf.Tensor, q: number): tf.Tensor1D {
  return tf.tidy(() => {
    const B = x.shape[0];
    const n = x.size / B;
    const sortedDesc = tf.topk(tf.abs(x.reshape([B, n])), n, true).values; // [B, N], descending
    // Ascending position q (n - 1), interpolated between its floor and ceil.
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, n - 1);
    const frac = pos - lo;
    const vLo = sortedDesc.slice([0, n - 1 - lo], [B, 1]);
    const vHi = sortedDesc.slice([0, n - 1 - hi], [B, 1]);
    return tf.add(vLo, tf.mul(tf.sub(vHi, vLo), frac)).reshape([B]) as tf.Tensor1D;
  });
}

/** Applies `mode` to a predicted x0 [B, ...]; returns a new tensor. */
export function clipX0(x0: tf.Tensor, mode: ClipMode): tf.Tensor {
  validateClipMode(mode);
  switch (mode.kind) {
    case 'none':
      return x0.clone();
    case 'static':
      return tf.clipByValue(x0, -mode.value, mode.value);
    case 'dynamic':
      return tf.tidy(() => {
        const s = tf.maximum(absQuantilePerSample(x0, mode.percentile), 1).reshape([x0.shape[0], ...new Array<number>(x0.rank - 1).fill(1)]);
        return tf.div(tf.minimum(tf.maximum(x0, tf.neg(s)), s), s);
      });
  }
}
