/**
 * Group normalisation (Wu & He 2018, https://arxiv.org/abs/1803.08494), channels last.
 *
 * x [B, ..., C] is viewed as [B, S, G, C/G] (S = product of the middle axes);
 * each (sample, group) is normalised over its S * C/G values:
 *
 *   mu = mean(x),  r = 1 / sqrt(var(x) + eps)   (biased variance, as PyTorch)
 *   xhat = (x - mu) r,   y = gamma * xhat + beta   (gamma, beta per channel)
 *
 * Optionally fused with a following SiLU (z = y * sigmoid(y)), which saves the
 * activation's own saved copy and several elementwise passes.
 *
 * WASM cost model (notes/wasm-conv-gradients.md, bench/profileStep.ts): every
 * elementwise op is one pass over memory, tf.sum / tf.mean over non-last axes
 * transposes first (5-15 ms at B32 32x32x64), and every tensor saved for the
 * backward pass is copied (the Identity kernel copies). So:
 *   - per-(sample, channel) sums over S are batched matMuls ones[B, 1, S] @ x[B, S, C]
 *     (~0.5-1 ms), reduced to groups on tiny [B, C] tensors;
 *   - y = centred * a + beta with a = r * gamma per (sample, channel): 2 passes;
 *   - only `centred` = x - mu (and tiny stats) is saved.
 * Backward in per-(sample, channel) coefficients, n = S * C/G, sums over a group:
 *   dy   = dz * s (1 + y (1 - s)), s = sigmoid(y), y recomputed   (fused SiLU only)
 *   G1   = sum_c gamma_c sum_s dy,   G2 = sum_c gamma_c sum_s dy * centred
 *   dx   = a * dy - (r^3 G2 / n) * centred - r G1 / n
 *   dgamma_c = sum_b r_b sum_s dy * centred,   dbeta_c = sum_b sum_s dy
 * (the same as r (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = centred r).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** [B, S, C] -> [B, C]: sums over S as a batched matMul with ones [B, 1, S]. */
function sumOverS(x3: tf.Tensor3D, ones: tf.Tensor3D): tf.Tensor2D {
  const [b, , c] = x3.shape;
  return tf.reshape(tf.matMul(ones, x3), [b, c]);
}

/** [B, C] -> [B, G]: sums over each group's channels. */
function sumGroups(v: tf.Tensor2D, groups: number): tf.Tensor2D {
  const [b, c] = v.shape;
  return tf.sum(tf.reshape(v, [b, groups, c / groups]), 2);
}

/** [B, G] -> [B, 1, C]: each group's value repeated over its channels. */
function expandGroups(v: tf.Tensor2D, c: number): tf.Tensor3D {
  const [b, groups] = v.shape;
  return tf.reshape(tf.tile(tf.reshape(v, [b, groups, 1]), [1, 1, c / groups]), [b, 1, c]);
}

/** customGrad over (x [B, S, C], gamma [C], beta [C]); eps, groups and the activation are fixed per call. */
function groupNorm3d(x: tf.Tensor3D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groups: number, eps: number, fuseSilu: boolean): tf.Tensor3D {
  const [b, s, c] = x.shape;
  const n = s * (c / groups);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor3D;
    const gi = args[1] as tf.Tensor1D;
    const bi = args[2] as tf.Tensor1D;
    const save = args[3] as tf.GradSaveFunc;
    const ones = tf.ones([b, 1, s]) as tf.Tensor3D;
    const mu = tf.div(sumGroups(sumOverS(xi, ones), groups), n) as tf.Tensor2D; // [B, G]
    const centred = tf.sub(xi, expandGroups(mu, c)) as tf.Tensor3D;
    const variance = tf.div(sumGroups(sumOverS(tf.square(centred) as tf.Tensor3D, ones), groups), n);
    const r = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor2D; // [B, G]
    const a = tf.mul(expandGroups(r, c), tf.reshape(gi, [1, 1, c])); // [B, 1, C]
    const y = tf.add(tf.mul(centred, a), bi);
    save([centred, r, gi, bi]);
    return {
      value: (fuseSilu ? tf.mul(y, tf.sigmoid(y)) : y) as tf.Tensor3D,
      gradFunc: (dz: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
        tf.tidy((): tf.Tensor[] => {
          const [cs, rs, gs, bs] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
          const ra = expandGroups(rs, c);
          const aa = tf.mul(ra, tf.reshape(gs, [1, 1, c])); // [B, 1, C]
          let dy: tf.Tensor = dz;
          if (fuseSilu) {
            const yy = tf.add(tf.mul(cs, aa), bs);
            const sg = tf.sigmoid(yy);
            dy = tf.mul(dz, tf.mul(sg, tf.add(1, tf.mul(yy, tf.sub(1, sg)))));
          }
          const onesB = tf.ones([b, 1, s]) as tf.Tensor3D;
          const sdy = sumOverS(dy as tf.Tensor3D, onesB); // [B, C]
          const sdyc = sumOverS(tf.mul(dy, cs) as tf.Tensor3D, onesB); // [B, C]
          const g2 = tf.reshape(gs, [1, c]);
          const G1 = sumGroups(tf.mul(sdy, g2) as tf.Tensor2D, groups); // [B, G]
          const G2 = sumGroups(tf.mul(sdyc, g2) as tf.Tensor2D, groups); // [B, G]
          const kc = tf.div(tf.mul(tf.pow(rs, 3), G2), -n) as tf.Tensor2D; // coefficient of centred
          const k0 = tf.div(tf.mul(rs, G1), -n) as tf.Tensor2D; // constant
          const dx = tf.add(tf.add(tf.mul(dy, aa), tf.mul(cs, expandGroups(kc, c))), expandGroups(k0, c));
          const rC = tf.reshape(ra, [b, c]);
          const onesRow = tf.ones([1, b]);
          const dgamma = tf.reshape(tf.matMul(onesRow, tf.mul(sdyc, rC) as tf.Tensor2D), [c]);
          const dbeta = tf.reshape(tf.matMul(onesRow, sdy), [c]);
          return [dx, dgamma, dbeta];
        }),
    };
  });
  return f(x, gamma, beta) as tf.Tensor3D;
}

/** Options of groupNorm(). */
export interface GroupNormOptions {
  /** Apply SiLU to the output inside the same custom gradient (faster than silu(groupNorm(x))). Default false. */
  readonly silu?: boolean;
}

/** GroupNorm of x [B, ..., C] (rank >= 2) with per-channel gamma, beta [C]. Same shape out. */
export function groupNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, numGroups: number, eps: number, options: GroupNormOptions = {}): tf.Tensor {
  if (x.rank < 2) throw new Error(`groupNorm: x must be [B, ..., C], got shape [${x.shape}]`);
  const c = x.shape[x.rank - 1];
  if (!Number.isInteger(numGroups) || numGroups <= 0 || c % numGroups !== 0) {
    throw new Error(`groupNorm: ${c} channels are not divisible into ${numGroups} groups`);
  }
  if (gamma.rank !== 1 || gamma.shape[0] !== c || beta.rank !== 1 || beta.shape[0] !== c) {
    throw new Error(`groupNorm: gamma and beta must be [${c}], got [${gamma.shape}] and [${beta.shape}]`);
  }
  if (!(eps > 0)) throw new Error(`groupNorm: eps must be > 0, got ${eps}`);
  return tf.tidy(() => {
    const b = x.shape[0];
    const s = x.size / (b * c);
    const y = groupNorm3d(tf.reshape(x, [b, s, c]), gamma, beta, numGroups, eps, options.silu ?? false);
    return tf.reshape(y, x.shape);
  });
}

export interface GroupNormArgs {
  numGroups: number;
  numChannels: number;
  /** Added to the variance. Default 1e-5 (PyTorch's). */
  eps?: number;
}

/** nn.GroupNorm: parameters `weight` (gamma, ones) and `bias` (beta, zeros), both [C]. */
export class GroupNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly numGroups: number;
  readonly eps: number;

  constructor(args: GroupNormArgs) {
    super();
    const { numGroups, numChannels } = args;
    if (!Number.isInteger(numChannels) || numChannels <= 0) {
      throw new Error(`GroupNorm: numChannels must be a positive integer, got ${numChannels}`);
    }
    if (!Number.isInteger(numGroups) || numGroups <= 0 || numChannels % numGroups !== 0) {
      throw new Error(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    }
    this.numGroups = numGroups;
    this.eps = args.eps ?? 1e-5;
    this.weight = this.addParameter('weight', tf.ones([numChannels]), 'plain');
    this.bias = this.addParameter('bias', tf.zeros([numChannels]), 'plain');
  }

  /** x [B, H, W, C] or [B, N, C] -> same shape. */
  apply(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D, this.numGroups, this.eps);
  }

  /** silu(this.apply(x)) in one custom gradient (fewer passes and saved tensors). */
  applySilu(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D, this.numGroups, this.eps, { silu: true });
  }
}
