/**
 * Nearest-neighbour 2x upsampling, as PyTorch's nn.Upsample(scale_factor=2,
 * mode='nearest'): out[2i + a, 2j + b] = x[i, j] for a, b in {0, 1}.
 *
 * Forward is reshape + tile; the backward pass sums each 2x2 block
 * (reshape + sum), with a customGrad because TF.js has no tile gradient above
 * rank 4.
 */
import * as tf from '@tensorflow/tfjs';

/** x [B, H, W, C] -> [B, 2H, 2W, C]. */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  if (x.rank !== 4) throw new Error(`upsampleNearest2x: x must be [B, H, W, C], got shape [${x.shape}]`);
  const [b, h, w, c] = x.shape;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor4D;
    return {
      value: tf.reshape(tf.tile(tf.reshape(xi, [b, h, 1, w, 1, c]), [1, 1, 2, 1, 2, 1]), [b, 2 * h, 2 * w, c]) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor): tf.Tensor => tf.sum(tf.reshape(dy, [b, h, 2, w, 2, c]), [2, 4]),
    };
  });
  return f(x) as tf.Tensor4D;
}
