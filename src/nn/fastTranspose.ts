/**
 * Transposes that run several times faster than the direct tf.transpose on the
 * WASM backend (tfjs-backend-wasm 4.22, measured B32 in bench/profileStep.ts and
 * scratch micro-benchmarks on a loaded 2-core machine):
 *
 *   2-D [32768, 96] -> [96, 32768]:  tf.transpose 26-32 ms; as 3-D [256, 128, 96]
 *       with perm [2, 0, 1]: ~5 ms (the kernel's 2-D path is slow for long rows).
 *   [B, H, W, C] -> [C, H, W, B] (32x32, C 96):  perm [3, 1, 2, 0] ~18 ms;
 *       as [B, HW, C] -> [C, B, HW] -> [C, HW, B] in two 3-D steps ~8 ms.
 *
 * Results are identical (pure data movement); only the kernel path differs.
 */
import * as tf from '@tensorflow/tfjs';

/** Largest divisor of n that is <= cap (>= 1). */
function divisorAtMost(n: number, cap: number): number {
  for (let d = Math.min(n, cap); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** x [R, C] -> [C, R]. */
export function transpose2d(x: tf.Tensor): tf.Tensor2D {
  if (x.rank !== 2) throw new Error(`transpose2d: x must be rank 2, got shape [${x.shape}]`);
  const [r, c] = x.shape as [number, number];
  const r2 = divisorAtMost(r, 128);
  if (r < 1024 || r2 < 16) return tf.transpose(x) as tf.Tensor2D;
  return tf.reshape(tf.transpose(tf.reshape(x, [r / r2, r2, c]), [2, 0, 1]), [c, r]);
}

/** x [B, H, W, C] -> [C, H, W, B] (the layout of the batch-as-channels weight gradient). */
export function channelsFirstBatchLast(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (b === 1) return tf.reshape(transpose2d(tf.reshape(x, [h * w, c])), [c, h, w, 1]);
  const cbs = tf.transpose(tf.reshape(x, [b, h * w, c]), [2, 0, 1]); // [C, B, HW]
  return tf.reshape(tf.transpose(cbs, [0, 2, 1]), [c, h, w, b]);
}
