/**
 * Group normalisation (Wu & He 2018, https://arxiv.org/abs/1803.08494), channels last.
 *
 * x [B, ..., C] is viewed as [B, S, G, C/G] (S = product of the middle axes);
 * each (sample, group) is normalised over its S * C/G values:
 *
 *   mu = mean(x),  r = 1 / sqrt(var(x) + eps)   (biased variance, as PyTorch)
 *   xhat = (x - mu) r,   y = gamma * xhat + beta   (gamma, beta per channel)
 *
 * The backward pass is the closed form (about 2x faster than autodiff on WASM,
 * notes/wasm-conv-gradients.md), with means over each group:
 *
 *   g = dy * gamma
 *   dx = r * (g - mean(g) - xhat * mean(g * xhat))
 *   dgamma = sum(dy * xhat),  dbeta = sum(dy)   (over all but the channel axis)
 *
 * The channel sums are matMuls ones[1, B*S] @ [B*S, C] (tf.sum over leading axes
 * transposes first and was several times slower on WASM).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';

/** customGrad over (x [B, S, G, Cg], gamma [C], beta [C]); eps is fixed per call. */
function groupNorm4d(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor4D {
  const [, , groups, cg] = x.shape;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor4D;
    const gi = args[1] as tf.Tensor1D;
    const bi = args[2] as tf.Tensor1D;
    const save = args[3] as tf.GradSaveFunc;
    const centred = tf.sub(xi, tf.mean(xi, [1, 3], true)); // mean [B, 1, G, 1]
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(centred), [1, 3], true), eps));
    const xhat = tf.mul(centred, r);
    const g4 = tf.reshape(gi, [1, 1, groups, cg]);
    const b4 = tf.reshape(bi, [1, 1, groups, cg]);
    save([xhat, r, g4]);
    return {
      value: tf.add(tf.mul(xhat, g4), b4) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
        const [xh, rs, gs] = saved;
        const g = tf.mul(dy, gs);
        const meanG = tf.mean(g, [1, 3], true);
        const meanGX = tf.mean(tf.mul(g, xh), [1, 3], true);
        const dx = tf.mul(rs, tf.sub(tf.sub(g, meanG), tf.mul(xh, meanGX)));
        const c = groups * cg;
        const rows = dy.size / c;
        const ones = tf.ones([1, rows]);
        const dgamma = tf.reshape(tf.matMul(ones, tf.reshape(tf.mul(dy, xh), [rows, c])), [c]);
        const dbeta = tf.reshape(tf.matMul(ones, tf.reshape(dy, [rows, c])), [c]);
        return [dx, dgamma, dbeta];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** GroupNorm of x [B, ..., C] (rank >= 2) with per-channel gamma, beta [C]. Same shape out. */
export function groupNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, numGroups: number, eps: number): tf.Tensor {
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
    const y = groupNorm4d(tf.reshape(x, [b, s, numGroups, c / numGroups]), gamma, beta, eps);
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
}
