/**
 * Layer normalisation (Ba et al. 2016, https://arxiv.org/abs/1607.06450) over the
 * last axis, as PyTorch's nn.LayerNorm(dim):
 *
 *   y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias     (biased variance)
 *
 * Implemented as a one-group GroupNorm over [tokens, 1, dim], which shares its
 * closed-form backward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { groupNorm } from './groupNorm';

/** LayerNorm of x [..., dim] (rank >= 1) with weight, bias [dim]. Same shape out. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  if (x.rank < 1) throw new Error(`layerNorm: x must have rank >= 1, got a scalar`);
  const dim = x.shape[x.rank - 1];
  if (weight.rank !== 1 || weight.shape[0] !== dim || bias.rank !== 1 || bias.shape[0] !== dim) {
    throw new Error(`layerNorm: weight and bias must be [${dim}], got [${weight.shape}] and [${bias.shape}]`);
  }
  return tf.tidy(() => tf.reshape(groupNorm(tf.reshape(x, [-1, 1, dim]), weight, bias, 1, eps), x.shape));
}

export interface LayerNormArgs {
  dim: number;
  /** Added to the variance. Default 1e-5 (PyTorch's). */
  eps?: number;
}

/** nn.LayerNorm(dim): parameters `weight` (ones) and `bias` (zeros), both [dim]. */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly eps: number;

  constructor(args: LayerNormArgs) {
    super();
    if (!Number.isInteger(args.dim) || args.dim <= 0) throw new Error(`LayerNorm: dim must be a positive integer, got ${args.dim}`);
    this.eps = args.eps ?? 1e-5;
    this.weight = this.addParameter('weight', tf.ones([args.dim]), 'plain');
    this.bias = this.addParameter('bias', tf.zeros([args.dim]), 'plain');
  }

  /** x [..., dim] -> same shape. */
  apply(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D, this.eps);
  }
}
