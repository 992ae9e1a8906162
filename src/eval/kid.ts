/**
 * Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs",
 * https://arxiv.org/abs/1801.01401): the unbiased estimate of the squared
 * maximum mean discrepancy between two feature sets under the cubic polynomial
 * kernel
 *
 *   k(x, y) = (x.y / d + 1)^3
 *
 *   MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
 *             - 2 sum_{i, j} k(x_i, y_j) / m^2
 *
 * computed on `numSubsets` random subsets of size m drawn without replacement
 * from each side (default 100 subsets of min(1000, nA, nB), as torch-fidelity /
 * clean-fid); the result is the mean over subsets and their standard deviation
 * (population std, numpy's default, as torch-fidelity reports). Unlike FID it
 * is unbiased: two samples of the same distribution give ~0 (possibly < 0).
 *
 * Precision and cost: the Gram matrices x.y come from a float32 tf.matMul (the
 * dot products, ~1e-7 relative error); the kernel and all sums are float64 JS.
 * Per subset: 3 m^2 d multiply-adds on the backend + 3 m^2 kernel evaluations.
 * Memory: the features themselves (n * d float32 per side: 10k x 2048-d is
 * 80 MB) plus three m x m float32 Grams per subset (12 MB at m = 1000).
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';

/** n feature vectors of dimension d, row-major. */
export interface FeatureMatrix {
  readonly data: Float32Array; // [count, dim]
  readonly count: number;
  readonly dim: number;
}

export interface KidOptions {
  /** Number of random subsets (default 100). */
  readonly numSubsets?: number;
  /** Subset size m (default min(1000, nA, nB); must be >= 2 and <= both counts). */
  readonly subsetSize?: number;
  /** Seed of the subset draws (default 0). */
  readonly seed?: number | string;
}

export interface KidResult {
  /** Mean of MMD^2_u over the subsets. */
  readonly mean: number;
  /** Population standard deviation over the subsets (0 with one subset). */
  readonly std: number;
  readonly numSubsets: number;
  readonly subsetSize: number;
  /** MMD^2_u of each subset. */
  readonly values: Float64Array;
}

// helpers

function checkMatrix(f: FeatureMatrix, what: string): void {
  if (!Number.isInteger(f.count) || f.count < 0 || !Number.isInteger(f.dim) || f.dim <= 0 || f.data.length !== f.count * f.dim) {
    throw new Error(`${what}: ${f.data.length} values is not count * dim = ${f.count} * ${f.dim}`);
  }
}

/** m distinct indices out of n (partial Fisher-Yates). */
function sampleWithoutReplacement(n: number, m: number, rng: { int(k: number): number }): Int32Array {
  const pool = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, m);
}

function gatherRows(f: FeatureMatrix, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * f.dim);
  for (let i = 0; i < idx.length; i++) out.set(f.data.subarray(idx[i] * f.dim, (idx[i] + 1) * f.dim), i * f.dim);
  return out;
}

/** Sum of (g / d + 1)^3 over a Gram matrix, without (offDiagonal) or with its diagonal. */
function kernelSum(gram: Float32Array, m: number, d: number, offDiagonal: boolean): number {
  let s = 0;
  for (let i = 0; i < m; i++) {
    const row = i * m;
    for (let j = 0; j < m; j++) {
      if (offDiagonal && i === j) continue;
      const k = gram[row + j] / d + 1;
      s += k * k * k;
    }
  }
  return s;
}

/** x [m, d] @ y^T [d, m] -> [m, m] (explicit transpose: transposeB matMuls are slow on wasm). */
async function gram(x: tf.Tensor2D, y: tf.Tensor2D): Promise<Float32Array> {
  const g = tf.tidy(() => tf.matMul(x, tf.transpose(y)));
  try {
    return (await g.data()) as Float32Array;
  } finally {
    g.dispose();
  }
}

// the estimator

/** MMD^2_u of two equal-size sets, entirely in float64 JS (O(m^2 d)): the reference for small data. */
export function mmd2PolynomialDirect(x: FeatureMatrix, y: FeatureMatrix): number {
  checkMatrix(x, 'mmd2PolynomialDirect: x');
  checkMatrix(y, 'mmd2PolynomialDirect: y');
  if (x.dim !== y.dim || x.count !== y.count || x.count < 2) {
    throw new Error(`mmd2PolynomialDirect: needs two sets of the same size >= 2 and dim, received ${x.count}x${x.dim} and ${y.count}x${y.dim}`);
  }
  const m = x.count;
  const d = x.dim;
  const k = (a: Float32Array, i: number, b: Float32Array, j: number): number => {
    let dot = 0;
    for (let t = 0; t < d; t++) dot += a[i * d + t] * b[j * d + t];
    return (dot / d + 1) ** 3;
  };
  let kxx = 0;
  let kyy = 0;
  let kxy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i !== j) {
        kxx += k(x.data, i, x.data, j);
        kyy += k(y.data, i, y.data, j);
      }
      kxy += k(x.data, i, y.data, j);
    }
  }
  return (kxx + kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
}

/** KID between feature sets `a` and `b` (see the header). */
export async function kernelInceptionDistance(a: FeatureMatrix, b: FeatureMatrix, options: KidOptions = {}): Promise<KidResult> {
  checkMatrix(a, 'kernelInceptionDistance: first features');
  checkMatrix(b, 'kernelInceptionDistance: second features');
  if (a.dim !== b.dim) throw new Error(`kernelInceptionDistance: feature dimensions differ: ${a.dim} vs ${b.dim}`);
  const numSubsets = options.numSubsets ?? 100;
  const m = options.subsetSize ?? Math.min(1000, a.count, b.count);
  if (!Number.isInteger(numSubsets) || numSubsets < 1) throw new Error(`kernelInceptionDistance: numSubsets must be a positive integer, received ${numSubsets}`);
  if (!Number.isInteger(m) || m < 2 || m > a.count || m > b.count) {
    throw new Error(`kernelInceptionDistance: subsetSize must be an integer in [2, min(nA, nB) = ${Math.min(a.count, b.count)}], received ${m}`);
  }
  const d = a.dim;
  const rng = keyedRng(options.seed ?? 0, 'kid');
  const values = new Float64Array(numSubsets);
  for (let s = 0; s < numSubsets; s++) {
    const x = tf.tensor2d(gatherRows(a, sampleWithoutReplacement(a.count, m, rng)), [m, d]);
    const y = tf.tensor2d(gatherRows(b, sampleWithoutReplacement(b.count, m, rng)), [m, d]);
    try {
      const kxx = kernelSum(await gram(x, x), m, d, true);
      const kyy = kernelSum(await gram(y, y), m, d, true);
      const kxy = kernelSum(await gram(x, y), m, d, false);
      values[s] = (kxx + kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
    } finally {
      tf.dispose([x, y]);
    }
  }
  let mean = 0;
  for (const v of values) mean += v;
  mean /= numSubsets;
  let variance = 0;
  for (const v of values) variance += (v - mean) ** 2;
  return { mean, std: Math.sqrt(variance / numSubsets), numSubsets, subsetSize: m, values };
}
