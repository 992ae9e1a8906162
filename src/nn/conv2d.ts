/**
 * 2-D convolution (NHWC input, HWIO kernel) with fast custom gradients for the
 * WASM backend.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel and runs
 * Conv2DBackpropInput about 10x slower than the forward conv, so both
 * gradients are rewritten as forward convolutions (measured in
 * notes/wasm-conv-gradients.md):
 *
 *   dX, stride 1:  conv of dY with the kernel flipped spatially and in/out swapped
 *                  (the "full" correlation), cropped by the forward padding.
 *   dX, stride 2:  sub-pixel: one ceil(k/2) x ceil(k/2) conv of dY to 4*Cin
 *                  channels (one group per output parity), then interleaved
 *                  with reshape/transpose.
 *   dW:            one conv with the batch as channels: input x as
 *                  [Cin, H, W, B], filter dY as [oh, ow, B, Cout], dilation =
 *                  stride, output [Cin, kh, kw, Cout].
 *   1x1, stride 1, no padding: plain matMuls with explicit transposes.
 *   db (optional fused bias): ones[1, B*oh*ow] @ dY, a plain matMul (summing over
 *                  leading axes with tf.sum transposes first and was ~10x slower).
 *
 * Padding: a number p is PyTorch's symmetric zero padding (nn.Conv2d(padding=p));
 * 'same' and 'valid' are TensorFlow's ('same' at stride 2 pads bottom/right
 * first, which differs from PyTorch's padding=1 on even sizes). The default is
 * floor(k/2), i.e. PyTorch's usual `padding=k//2`. Internally TF 'same' is used
 * whenever it gives exactly the requested pads (explicit pads were slower).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Rng, randomUniform } from '../backend/random';
import { channelsFirstBatchLast, transpose2d } from './fastTranspose';

// ---------------------------------------------------------------------------
// types

export type ConvPadding = number | 'same' | 'valid';

export interface Conv2dOptions {
  /** Spatial stride (both axes). Default 1. */
  stride?: 1 | 2;
  /** PyTorch-style symmetric zero padding, or TF 'same' / 'valid'. Default floor(k / 2). */
  padding?: ConvPadding;
  /** Optional bias [Cout], fused into the conv (and differentiated). Default none. */
  bias?: tf.Tensor1D | null;
}

/** Pads of one spatial axis: `before` zeros at the start, `after` at the end. */
interface AxisGeometry {
  readonly size: number; // input size
  readonly k: number; // kernel size
  readonly before: number;
  readonly after: number;
  readonly out: number; // output size
}

interface ConvGeometry {
  readonly stride: 1 | 2;
  readonly h: AxisGeometry;
  readonly w: AxisGeometry;
}

type TfPad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

// ---------------------------------------------------------------------------
// geometry helpers

function axisGeometry(size: number, k: number, stride: 1 | 2, padding: ConvPadding, axis: string): AxisGeometry {
  let before: number;
  let after: number;
  if (padding === 'valid') {
    before = 0;
    after = 0;
  } else if (padding === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + k - size, 0);
    before = Math.floor(total / 2);
    after = total - before;
  } else {
    if (!Number.isInteger(padding) || padding < 0) {
      throw new Error(`conv2d: padding must be a non-negative integer, 'same' or 'valid', got ${padding}`);
    }
    before = padding;
    after = padding;
  }
  if (before > k - 1 || after > k - 1) {
    throw new Error(`conv2d: padding ${before}/${after} on ${axis} exceeds kernel size - 1 = ${k - 1} (rows of pure padding are not supported)`);
  }
  const padded = size + before + after;
  if (padded < k) {
    throw new Error(`conv2d: ${axis} = ${size} plus padding ${before + after} is smaller than the kernel (${k})`);
  }
  return { size, k, before, after, out: Math.floor((padded - k) / stride) + 1 };
}

/** TF's padding argument giving exactly these pads: 'valid', 'same' if equivalent, else explicit. */
function tfPadding(h: AxisGeometry, w: AxisGeometry, stride: number): TfPad {
  if (h.before === 0 && h.after === 0 && w.before === 0 && w.after === 0) return 'valid';
  const sameAxis = (a: AxisGeometry): boolean => {
    const out = Math.ceil(a.size / stride);
    const total = Math.max((out - 1) * stride + a.k - a.size, 0);
    return a.before === Math.floor(total / 2) && a.after === total - Math.floor(total / 2);
  };
  if (sameAxis(h) && sameAxis(w)) return 'same';
  return [[0, 0], [h.before, h.after], [w.before, w.after], [0, 0]];
}

/** Explicit pads, or 'valid' when all are zero. */
function explicitPad(top: number, bottom: number, left: number, right: number): TfPad {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return 'valid';
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

function isPointwise(g: ConvGeometry): boolean {
  return g.stride === 1 && g.h.k === 1 && g.w.k === 1 && g.h.before + g.h.after + g.w.before + g.w.after === 0;
}

// ---------------------------------------------------------------------------
// forward and gradients

function convForward(x: tf.Tensor4D, weight: tf.Tensor4D, bias: tf.Tensor1D | null, g: ConvGeometry): tf.Tensor4D {
  if (isPointwise(g)) {
    const [b, hh, ww, cin] = x.shape;
    const cout = weight.shape[3];
    const x2 = tf.reshape(x, [b * hh * ww, cin]) as tf.Tensor2D;
    const w2 = tf.reshape(weight, [cin, cout]) as tf.Tensor2D;
    const y = bias === null ? tf.matMul(x2, w2) : tf.fused.matMul({ a: x2, b: w2, bias });
    return tf.reshape(y, [b, hh, ww, cout]);
  }
  const pad = tfPadding(g.h, g.w, g.stride);
  if (bias === null) return tf.conv2d(x, weight, g.stride, pad);
  return tf.fused.conv2d({ x, filter: weight, strides: g.stride, pad, bias });
}

/**
 * Sum of dY over every axis but the last -> [C]: per-sample sums as a batched
 * matMul ones[B, 1, S] @ dY[B, S, C] (dY stays the A-side operand, so XNNPACK does not
 * repack it as weights), then ones[1, B] @ [B, C].
 */
export function sumToChannels(dy: tf.Tensor): tf.Tensor1D {
  const c = dy.shape[dy.rank - 1] as number;
  const b = dy.rank > 2 ? dy.shape[0] : 1;
  const s = dy.size / (b * c);
  const perSample = tf.reshape(tf.matMul(tf.ones([b, 1, s]), tf.reshape(dy, [b, s, c])), [b, c]);
  return tf.reshape(tf.matMul(tf.ones([1, b]), perSample), [c]);
}

/** dX for stride 1: correlation of dY with the flipped, in/out-swapped kernel. */
function convGradInputStride1(dy: tf.Tensor4D, weight: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const flipped = tf.transpose(tf.reverse(weight, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, Cout, Cin]
  // dX[i] = sum_b dY[i + before - (k-1) + b] * flipped[b]: pad dY by k-1-before / k-1-after.
  const top = g.h.k - 1 - g.h.before;
  const bottom = g.h.k - 1 - g.h.after;
  const left = g.w.k - 1 - g.w.before;
  const right = g.w.k - 1 - g.w.after;
  const sameH = top === bottom && top === (g.h.k - 1) / 2;
  const sameW = left === right && left === (g.w.k - 1) / 2;
  const pad: TfPad = sameH && sameW ? 'same' : explicitPad(top, bottom, left, right);
  return tf.conv2d(dy, flipped, 1, pad);
}

/**
 * dX for stride 2, sub-pixel form. In padded input coordinates i = 2m + r, output
 * parity r receives taps a = r + 2j from dY[m - j] (j = 0..T-1, T = ceil(k/2)).
 * One T x T conv of dY computes all 4 parities as channel groups.
 */
function convGradInputStride2(dy: tf.Tensor4D, weight: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const [b] = dy.shape;
  const [kh, kw, cin, cout] = weight.shape;
  const th = Math.ceil(kh / 2);
  const tw = Math.ceil(kw / 2);
  // Kernel: zero-pad W to [2T_h, 2T_w], split each axis a = 2u + r, t = T-1-u.
  const wp = tf.pad(weight, [[0, 2 * th - kh], [0, 2 * tw - kw], [0, 0], [0, 0]]);
  const w6 = tf.reverse(tf.reshape(wp, [th, 2, tw, 2, cin, cout]), [0, 2]);
  const wSub = tf.reshape(tf.transpose(w6, [0, 2, 5, 1, 3, 4]), [th, tw, cout, 4 * cin]) as tf.Tensor4D;
  // Number of output rows m needed to cover padded rows up to before + size - 1.
  const mh = Math.ceil((g.h.before + g.h.size) / 2);
  const mw = Math.ceil((g.w.before + g.w.size) / 2);
  let dyUsed = dy;
  if (g.h.out > mh || g.w.out > mw) {
    dyUsed = tf.slice(dy, [0, 0, 0, 0], [b, Math.min(g.h.out, mh), Math.min(g.w.out, mw), cout]);
  }
  const pad = explicitPad(th - 1, Math.max(0, mh - g.h.out), tw - 1, Math.max(0, mw - g.w.out));
  const phases = tf.conv2d(dyUsed, wSub, 1, pad); // [B, mh, mw, 4 * Cin], channels (rh, rw, ci)
  const interleaved = tf.reshape(
    tf.transpose(tf.reshape(phases, [b, mh, mw, 2, 2, cin]), [0, 1, 3, 2, 4, 5]),
    [b, 2 * mh, 2 * mw, cin],
  );
  return tf.slice(interleaved, [0, g.h.before, g.w.before, 0], [b, g.h.size, g.w.size, cin]) as tf.Tensor4D;
}

/** dW with the batch as channels: one 'valid' conv (dilation = stride) gives [Cin, kh, kw, Cout]. */
function convGradWeight(x: tf.Tensor4D, dy: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const s = g.stride;
  // Rows of padded x read by the forward conv: s*(out-1) + k. Pad after (or crop) to exactly that.
  let xs = x;
  const afterH = g.h.k + s * (g.h.out - 1) - g.h.size - g.h.before;
  const afterW = g.w.k + s * (g.w.out - 1) - g.w.size - g.w.before;
  if (afterH < 0 || afterW < 0) {
    const [b, hh, ww, c] = x.shape;
    xs = tf.slice(x, [0, 0, 0, 0], [b, hh + Math.min(afterH, 0), ww + Math.min(afterW, 0), c]);
  }
  const xT = channelsFirstBatchLast(xs); // [Cin, H, W, B]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [oh, ow, B, Cout]
  const pad = explicitPad(g.h.before, Math.max(afterH, 0), g.w.before, Math.max(afterW, 0));
  const dw = tf.conv2d(xT, dyT, 1, pad, 'NHWC', s); // [Cin, kh, kw, Cout]
  return tf.transpose(dw, [1, 2, 0, 3]) as tf.Tensor4D;
}

function pointwiseGrads(x: tf.Tensor4D, weight: tf.Tensor4D, dy: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const [b, hh, ww, cin] = x.shape;
  const cout = weight.shape[3];
  const n = b * hh * ww;
  const dy2 = tf.reshape(dy, [n, cout]);
  const x2 = tf.reshape(x, [n, cin]);
  const dx = tf.matMul(dy2, tf.transpose(tf.reshape(weight, [cin, cout]))); // [n, Cin]
  // dW = x^T dY, or (dY^T x)^T when Cout < Cin: transpose the narrower of the two big operands.
  const dw = cout < cin ? tf.transpose(tf.matMul(transpose2d(dy2), x2)) : tf.matMul(transpose2d(x2), dy2); // [Cin, Cout]
  return [tf.reshape(dx, x.shape), tf.reshape(dw, weight.shape)];
}

// ---------------------------------------------------------------------------
// the function

/**
 * y = conv2d(x, weight) (+ bias): x [B, H, W, Cin], weight [kh, kw, Cin, Cout] (odd kh, kw),
 * optional bias [Cout] -> [B, oh, ow, Cout] with oh = floor((H + padTop + padBottom - kh) / stride) + 1.
 * Differentiable w.r.t. x, weight and bias with the fast gradients above. Padding larger
 * than k - 1 is rejected.
 */
export function conv2d(x: tf.Tensor4D, weight: tf.Tensor4D, options: Conv2dOptions = {}): tf.Tensor4D {
  const stride = options.stride ?? 1;
  if (stride !== 1 && stride !== 2) throw new Error(`conv2d: stride must be 1 or 2, got ${String(stride)}`);
  if (x.rank !== 4) throw new Error(`conv2d: x must be [B, H, W, Cin], got shape [${x.shape}]`);
  if (weight.rank !== 4) throw new Error(`conv2d: weight must be [kh, kw, Cin, Cout], got shape [${weight.shape}]`);
  const [kh, kw, wcin] = weight.shape;
  if (x.shape[3] !== wcin) {
    throw new Error(`conv2d: input has ${x.shape[3]} channels but weight [${weight.shape}] expects Cin = ${wcin}`);
  }
  if (kh % 2 !== 1 || kw % 2 !== 1) throw new Error(`conv2d: kernel size must be odd, got ${kh}x${kw}`);
  const padH = options.padding ?? Math.floor(kh / 2);
  const padW = options.padding ?? Math.floor(kw / 2);
  const g: ConvGeometry = {
    stride,
    h: axisGeometry(x.shape[1], kh, stride, padH, 'height'),
    w: axisGeometry(x.shape[2], kw, stride, padW, 'width'),
  };
  const bias = options.bias ?? null;
  if (bias !== null && (bias.rank !== 1 || bias.shape[0] !== weight.shape[3])) {
    throw new Error(`conv2d: bias must be [${weight.shape[3]}], got shape [${bias.shape}]`);
  }
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor4D;
    const wi = args[1] as tf.Tensor4D;
    const bi = bias === null ? null : (args[2] as tf.Tensor1D);
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([xi, wi]);
    return {
      value: convForward(xi, wi, bi, g),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
        tf.tidy((): tf.Tensor[] => {
          const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
          const dy4 = dy as tf.Tensor4D;
          let grads: tf.Tensor[];
          if (isPointwise(g)) {
            grads = pointwiseGrads(xs, ws, dy4);
          } else {
            const dx = g.stride === 1 ? convGradInputStride1(dy4, ws, g) : convGradInputStride2(dy4, ws, g);
            grads = [dx, convGradWeight(xs, dy4, g)];
          }
          return bias === null ? grads : [...grads, sumToChannels(dy4)];
        }),
    };
  });
  return (bias === null ? f(x, weight) : f(x, weight, bias)) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------
// the module

export interface Conv2dArgs {
  inChannels: number;
  outChannels: number;
  /** Odd kernel size (square). */
  kernelSize: number;
  /** Default 1. */
  stride?: 1 | 2;
  /** Default floor(kernelSize / 2) (PyTorch-style symmetric). */
  padding?: ConvPadding;
  /** Default true. */
  bias?: boolean;
  rng: Rng;
  /** 'torch' (default): U(-1/sqrt(fanIn), 1/sqrt(fanIn)) for weight and bias, PyTorch's default; 'zeros': all zero. */
  init?: 'torch' | 'zeros';
}

/** nn.Conv2d: parameters `weight` [k, k, Cin, Cout] (HWIO) and `bias` [Cout]. */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  private readonly stride: 1 | 2;
  private readonly padding: ConvPadding;

  constructor(args: Conv2dArgs) {
    super();
    const { inChannels, outChannels, kernelSize } = args;
    for (const [name, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernelSize', kernelSize]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Conv2d: ${name} must be a positive integer, got ${v}`);
    }
    if (kernelSize % 2 !== 1) throw new Error(`Conv2d: kernelSize must be odd, got ${kernelSize}`);
    this.stride = args.stride ?? 1;
    this.padding = args.padding ?? Math.floor(kernelSize / 2);
    const init = args.init ?? 'torch';
    // kaiming_uniform_(a=sqrt(5)) gives bound sqrt(6 / ((1 + 5) * fanIn)) = 1/sqrt(fanIn); the bias uses the same bound.
    const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
    const wShape = [kernelSize, kernelSize, inChannels, outChannels];
    const w0 = init === 'zeros' ? tf.zeros(wShape) : randomUniform(wShape, args.rng, -bound, bound);
    this.weight = this.addParameter('weight', w0, 'conv2d');
    if (args.bias ?? true) {
      const b0 = init === 'zeros' ? tf.zeros([outChannels]) : randomUniform([outChannels], args.rng, -bound, bound);
      this.bias = this.addParameter('bias', b0, 'plain');
    } else {
      this.bias = null;
    }
  }

  /** x [B, H, W, Cin] -> [B, oh, ow, Cout]. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return conv2d(x, this.weight as tf.Tensor4D, { stride: this.stride, padding: this.padding, bias: this.bias as tf.Tensor1D | null });
  }
}
