/**
 * Nearest-neighbour 2x upsampling, as PyTorch's nn.Upsample(scale_factor=2,
 * mode='nearest'): out[2i + a, 2j + b] = x[i, j] for a, b in {0, 1}.
 *
 * Forward: tf.image.resizeNearestNeighbor (alignCorners and halfPixelCenters
 * false, so source index = floor(i / 2) exactly). Backward: each input pixel
 * receives the sum of its 2x2 output block, computed as a stride-2 depthwise
 * conv of dY with a ones kernel. On WASM (B32 16x16x64, one loaded-machine run)
 * that took ~1 ms versus ~20 ms for reshape + sum and ~54 ms for the built-in
 * ResizeNearestNeighborGrad; a reshape + tile forward took ~210 ms versus ~9 ms.
 */
import * as tf from '@tensorflow/tfjs';

/** x [B, H, W, C] -> [B, 2H, 2W, C]. */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  if (x.rank !== 4) throw new Error(`upsampleNearest2x: x must be [B, H, W, C], got shape [${x.shape}]`);
  const [, h, w, c] = x.shape;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor4D;
    return {
      value: tf.image.resizeNearestNeighbor(xi, [2 * h, 2 * w], false, false),
      gradFunc: (dy: tf.Tensor): tf.Tensor => tf.tidy((): tf.Tensor => tf.depthwiseConv2d(dy as tf.Tensor4D, tf.ones([2, 2, c, 1]) as tf.Tensor4D, 2, 'valid')),
    };
  });
  return f(x) as tf.Tensor4D;
}
