/**
 * Sinusoidal timestep embedding (Ho et al. 2020, DDPM, appendix B; the
 * Transformer position encoding of Vaswani et al. 2017 applied to t):
 *
 *   half = dim / 2,   f_i = exp(-ln(10000) * i / half),   i = 0 .. half-1
 *   emb(t) = cat(sin(t * f), cos(t * f))                       // [B, dim]
 *
 * The frequencies are rounded exactly as the PyTorch peer computes them in
 * float32 (`torch.exp(-math.log(10000.0) * torch.arange(half, dtype=float32) / half)`):
 * the product and quotient are float32, exp is correctly rounded. For t up to
 * 1000 a one-ulp difference in f_i would move t * f_i by up to ~5e-5, which is
 * visible in a float32 reference comparison, so this is not pedantry.
 */
import * as tf from '@tensorflow/tfjs';

/** The half = dim/2 frequencies f_i, float32-rounded as in the PyTorch peer. */
export function timestepFrequencies(dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) {
    throw new Error(`timestepEmbedding: dim must be a positive even integer, got ${dim}`);
  }
  const half = dim / 2;
  const negLog = Math.fround(-Math.log(10000));
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const a = Math.fround(Math.fround(negLog * i) / half);
    out[i] = Math.exp(a); // Float32Array store rounds to nearest float32
  }
  return out;
}

/**
 * Sinusoidal embedding of timesteps `t` ([B], float32 or int32; fractional t is
 * allowed, e.g. for continuous-time samplers) -> [B, dim] float32.
 */
export function timestepEmbedding(t: tf.Tensor1D, dim: number): tf.Tensor2D {
  if (t.rank !== 1) throw new Error(`timestepEmbedding: t must be rank 1 [B], got shape [${t.shape}]`);
  const freqs = timestepFrequencies(dim);
  return tf.tidy(() => {
    const args = tf.mul(tf.reshape(tf.cast(t, 'float32'), [-1, 1]), tf.tensor2d(freqs, [1, freqs.length])); // [B, half]
    return tf.concat([tf.sin(args), tf.cos(args)], 1) as tf.Tensor2D; // [B, dim]
  });
}
