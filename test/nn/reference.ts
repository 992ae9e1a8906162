/**
 * Test helpers for test/nn: plain-op reference implementations (differentiated by
 * TF.js's own autodiff on the `cpu` backend, which has every gradient kernel) and a
 * runner that evaluates a function and its gradients on a chosen backend from plain
 * arrays, so the same inputs can be fed to `cpu` (reference) and `wasm` (ours).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/backend';
import { Rng } from '../../src/backend/random';

/** Registers and initialises both backends; leaves `wasm` active. */
export async function useCpuAndWasm(): Promise<void> {
  await initBackend('cpu');
  await initBackend('wasm');
}

/** A host-side array with its shape. */
export interface HostTensor {
  readonly data: Float32Array;
  readonly shape: number[];
}

export function randomHost(shape: number[], rng: Rng, std = 1): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  return { data: rng.fillNormal(data, 0, std), shape };
}

export interface ValueAndGrads {
  readonly value: HostTensor;
  readonly grads: HostTensor[];
}

/**
 * On `backend`: y = fn(...inputs), L = sum(y * dy) with a fixed random dy (seed
 * `dySeed`), and dL/d(inputs). Restores the previously active backend and leaves
 * no tensors behind.
 */
export async function valueAndGrads(
  backend: 'cpu' | 'wasm',
  fn: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: HostTensor[],
  dySeed = 12345,
): Promise<ValueAndGrads> {
  const previous = tf.getBackend();
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  try {
    const xs = inputs.map((h) => tf.tensor(h.data, h.shape, 'float32'));
    const y = tf.tidy(() => fn(...xs));
    const dy = tf.tensor(randomHost(y.shape, new Rng(dySeed)).data, y.shape, 'float32');
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(fn(...a), dy)))(xs);
    const out: ValueAndGrads = {
      value: { data: (await y.data()) as Float32Array, shape: y.shape },
      grads: await Promise.all(grads.map(async (g) => ({ data: (await g.data()) as Float32Array, shape: g.shape }))),
    };
    tf.dispose([...xs, y, dy, ...grads]);
    if (tf.memory().numTensors !== before) throw new Error(`valueAndGrads on ${backend} leaked ${tf.memory().numTensors - before} tensors`);
    return out;
  } finally {
    await tf.setBackend(previous);
  }
}

/** max |a - b| / max |b| (b is the reference). */
export function relErr(a: HostTensor, b: HostTensor): number {
  expect(a.shape).toEqual(b.shape);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[i]));
    maxRef = Math.max(maxRef, Math.abs(b.data[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

/** Compares ours on wasm against the plain reference on cpu: value and every gradient within rtol. */
export async function expectMatchesCpuAutodiff(
  ours: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: HostTensor[],
  rtol = 1e-4,
): Promise<number[]> {
  const ref = await valueAndGrads('cpu', reference, inputs);
  const got = await valueAndGrads('wasm', ours, inputs);
  const errs = [relErr(got.value, ref.value), ...got.grads.map((g, i) => relErr(g, ref.grads[i]))];
  errs.forEach((e, i) => {
    if (!(e < rtol)) throw new Error(`${i === 0 ? 'value' : `gradient ${i - 1}`}: relative error ${e.toExponential(3)} >= ${rtol}`);
  });
  // A gradient that is identically zero would match a zero reference trivially: require signal.
  for (const g of ref.grads) expect(g.data.some((v) => v !== 0)).toBe(true);
  return errs;
}

// ---------------------------------------------------------------------------
// plain-op references (autodiff only)

/** PyTorch-style conv: symmetric zero pad p (tf.pad), then 'valid'; or TF's 'same'/'valid'. */
export function refConv2d(x: tf.Tensor, w: tf.Tensor, stride: 1 | 2, padding: number | 'same' | 'valid'): tf.Tensor4D {
  if (typeof padding === 'number') {
    const xp = tf.pad(x as tf.Tensor4D, [[0, 0], [padding, padding], [padding, padding], [0, 0]]);
    return tf.conv2d(xp, w as tf.Tensor4D, stride, 'valid');
  }
  return tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, padding);
}

/** GroupNorm by moments over [B, S, G, C/G]. */
export function refGroupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number): tf.Tensor {
  const b = x.shape[0];
  const c = x.shape[x.rank - 1];
  const x4 = tf.reshape(x, [b, -1, groups, c / groups]);
  const { mean, variance } = tf.moments(x4, [1, 3], true);
  const xhat = tf.div(tf.sub(x4, mean), tf.sqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(tf.reshape(xhat, x.shape), gamma), beta);
}

/** Attention written the PyTorch way: [B, h, N, d] with matMul(..., transposeB) and a masked softmax. */
export function refAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number, keyMask?: tf.Tensor): tf.Tensor {
  const [b, n, c] = q.shape as [number, number, number];
  const m = k.shape[1] as number;
  const d = c / heads;
  const split = (t: tf.Tensor, len: number): tf.Tensor => tf.transpose(tf.reshape(t, [b, len, heads, d]), [0, 2, 1, 3]);
  let s = tf.div(tf.matMul(split(q, n), split(k, m), false, true), Math.sqrt(d)); // [B, h, N, M]
  if (keyMask !== undefined) {
    s = tf.where(tf.greater(tf.reshape(keyMask, [b, 1, 1, m]), 0.5), s, tf.fill(s.shape, -1e30));
  }
  const p = tf.softmax(s);
  const o = tf.matMul(p, split(v, m)); // [B, h, N, d]
  return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, n, c]);
}

/** sin(a * i + b) over the flat index: inputs the quoted Python fixture scripts rebuild exactly. */
export function sinTensor(shape: number[], a: number, b: number): tf.Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(a * i + b)), shape);
}

/** Asserts |got - expected| < atol elementwise (expected from a quoted reference script). */
export async function expectValues(got: tf.Tensor, expected: number[], atol = 2e-6): Promise<void> {
  const out = await got.data();
  expect(out.length).toBe(expected.length);
  expected.forEach((v, i) => {
    if (!(Math.abs(out[i] - v) < atol)) throw new Error(`element ${i}: got ${out[i]}, expected ${v} (atol ${atol})`);
  });
}

/** max |a - b| as a number (no tensors left behind). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
