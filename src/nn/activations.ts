/**
 * Activations with explicit gradients (one fused expression each instead of the
 * autodiff chain of several elementwise kernels).
 *
 *   silu(x) = x * sigmoid(x)                      d/dx = s (1 + x (1 - s)),  s = sigmoid(x)
 *   gelu(x) = x * Phi(x) = x/2 (1 + erf(x/sqrt2))  d/dx = Phi(x) + x phi(x)
 *
 * gelu is the exact (erf) form, PyTorch's nn.GELU() default (not the tanh
 * approximation). TF.js's erf is a polynomial approximation (|error| < 1.5e-7).
 */
import * as tf from '@tensorflow/tfjs';

export type Activation = 'silu' | 'gelu';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

const siluGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  save([x]);
  return {
    value: tf.mul(x, tf.sigmoid(x)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.tidy((): tf.Tensor => {
        const xs = saved[0];
        const s = tf.sigmoid(xs);
        return tf.mul(dy, tf.mul(s, tf.add(1, tf.mul(xs, tf.sub(1, s)))));
      }),
  };
});

const geluGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  save([x]);
  return {
    value: tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, SQRT1_2)))),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.tidy((): tf.Tensor => {
        const xs = saved[0];
        const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(xs, SQRT1_2))));
        const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(tf.square(xs), -0.5)));
        return tf.mul(dy, tf.add(cdf, tf.mul(xs, pdf)));
      }),
  };
});

/** SiLU / swish: x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return siluGrad(x) as T;
}

/** Exact GELU: x * Phi(x) with the standard normal CDF (erf form). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return geluGrad(x) as T;
}

export function activation<T extends tf.Tensor>(name: Activation, x: T): T {
  switch (name) {
    case 'silu':
      return silu(x);
    case 'gelu':
      return gelu(x);
    default: {
      const never: never = name;
      throw new Error(`unknown activation '${String(never)}': expected 'silu' or 'gelu'`);
    }
  }
}
