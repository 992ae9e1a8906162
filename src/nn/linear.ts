/**
 * Dense layer y = x W + b with W stored [in, out] (PyTorch stores [out, in]).
 *
 * TF.js autodiff of matMul uses the transposeA / transposeB flags, which run at
 * 0.6-2.3 GFLOP/s on the WASM backend versus 15-28 for a plain matMul
 * (notes/wasm-conv-gradients.md), so the gradient is written out with explicit
 * transposes:  dX = dY W^T,  dW = X^T dY,  db = ones[1, N] dY (a plain matMul;
 * tf.sum over axis 0 transposes first and was ~10x slower).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Rng, randomUniform } from '../backend/random';
import { transpose2d } from './fastTranspose';

/** Forward with a fused bias; customGrad over (x [N, in], w [in, out], b [out]). */
const denseWithBias = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor2D;
  const w = args[1] as tf.Tensor2D;
  const b = args[2] as tf.Tensor1D;
  const save = args[3] as tf.GradSaveFunc;
  save([x, w]);
  return {
    value: tf.fused.matMul({ a: x, b: w, bias: b }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      tf.tidy((): tf.Tensor[] => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dy2 = dy as tf.Tensor2D;
        const db = tf.reshape(tf.matMul(tf.ones([1, dy2.shape[0]]), dy2), [dy2.shape[1]]);
        return [tf.matMul(dy2, tf.transpose(ws)), tf.matMul(transpose2d(xs), dy2), db];
      }),
  };
});

const denseNoBias = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor2D;
  const w = args[1] as tf.Tensor2D;
  const save = args[2] as tf.GradSaveFunc;
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      tf.tidy((): tf.Tensor[] => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dy2 = dy as tf.Tensor2D;
        return [tf.matMul(dy2, tf.transpose(ws)), tf.matMul(transpose2d(xs), dy2)];
      }),
  };
});

/** y = x W + b over the last axis: x [..., in] (rank >= 2), W [in, out], b [out] or null -> [..., out]. */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias: tf.Tensor1D | null): tf.Tensor {
  if (weight.rank !== 2) throw new Error(`linear: weight must be [in, out], got shape [${weight.shape}]`);
  const [inF, outF] = weight.shape;
  if (x.rank < 2) throw new Error(`linear: x must have rank >= 2 ([..., ${inF}]), got shape [${x.shape}]`);
  if (x.shape[x.rank - 1] !== inF) {
    throw new Error(`linear: x has last dimension ${x.shape[x.rank - 1]} but weight [${weight.shape}] expects ${inF}`);
  }
  if (bias !== null && (bias.rank !== 1 || bias.shape[0] !== outF)) {
    throw new Error(`linear: bias must be [${outF}], got shape [${bias.shape}]`);
  }
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    const x2 = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, inF]);
    const y2 = bias === null ? denseNoBias(x2, weight) : denseWithBias(x2, weight, bias);
    return x.rank === 2 ? y2 : tf.reshape(y2, [...lead, outF]);
  });
}

export interface LinearArgs {
  inFeatures: number;
  outFeatures: number;
  /** Default true. */
  bias?: boolean;
  rng: Rng;
  /** 'torch' (default): U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, PyTorch's default; 'zeros': all zero. */
  init?: 'torch' | 'zeros';
}

/** nn.Linear: parameters `weight` [in, out] (layout 'linear') and `bias` [out]. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(args: LinearArgs) {
    super();
    const { inFeatures, outFeatures } = args;
    for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Linear: ${name} must be a positive integer, got ${v}`);
    }
    const init = args.init ?? 'torch';
    const bound = 1 / Math.sqrt(inFeatures);
    const w0 = init === 'zeros' ? tf.zeros([inFeatures, outFeatures]) : randomUniform([inFeatures, outFeatures], args.rng, -bound, bound);
    this.weight = this.addParameter('weight', w0, 'linear');
    if (args.bias ?? true) {
      const b0 = init === 'zeros' ? tf.zeros([outFeatures]) : randomUniform([outFeatures], args.rng, -bound, bound);
      this.bias = this.addParameter('bias', b0, 'plain');
    } else {
      this.bias = null;
    }
  }

  /** x [..., in] -> [..., out]. */
  apply(x: tf.Tensor): tf.Tensor {
    return linear(x, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D | null);
  }
}
