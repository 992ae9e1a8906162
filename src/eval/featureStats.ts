/**
 * Streaming Gaussian statistics of feature vectors (mean and covariance), in
 * float64, for FID.
 *
 * Features arrive batch by batch; only these accumulate:
 *
 *   n,   s = sum_i (x_i - c),   S = sum_i (x_i - c)(x_i - c)^T
 *
 * with a fixed shift c = the mean of the first batch (the "shifted data"
 * algorithm: covariance is shift-invariant, and subtracting a value close to
 * the mean avoids the cancellation of S/n - mu mu^T when the features have a
 * large mean compared with their spread). Then
 *
 *   mu = c + s / n
 *   C  = (S - s s^T / n) / (n - 1)      (unbiased, as numpy.cov / pytorch-fid / clean-fid)
 *
 * Memory: d + d^2 float64 (2048-d Inception features: 32 MB; 128-d: 128 KB),
 * whatever the number of images. Cost: d(d+1)/2 multiply-adds per image.
 */
import * as tf from '@tensorflow/tfjs';

/** Mean and covariance of a d-dimensional Gaussian (row-major d x d), float64. */
export interface GaussianStats {
  readonly dim: number;
  readonly mean: Float64Array; // [d]
  readonly cov: Float64Array; // [d, d], symmetric
  /** Number of samples the statistics came from (null when given directly). */
  readonly count: number | null;
}

export class FeatureStats {
  readonly dim: number;
  private n = 0;
  private shift: Float64Array | null = null; // c: mean of the first batch
  private readonly sum: Float64Array; // s = sum (x - c)
  private readonly sumOuter: Float64Array; // S = sum (x - c)(x - c)^T, upper triangle only until read

  constructor(dim: number) {
    if (!Number.isInteger(dim) || dim <= 0) throw new Error(`FeatureStats: dim must be a positive integer, received ${dim}`);
    this.dim = dim;
    this.sum = new Float64Array(dim);
    this.sumOuter = new Float64Array(dim * dim);
  }

  /** Number of feature vectors added so far. */
  get count(): number {
    return this.n;
  }

  /**
   * Adds `rows` feature vectors stored row-major in `features` (length rows * dim).
   * Values must be finite (a NaN would silently poison the statistics).
   */
  add(features: Float32Array | Float64Array, rows: number = features.length / this.dim): void {
    const d = this.dim;
    if (!Number.isInteger(rows) || rows < 0 || features.length !== rows * d) {
      throw new Error(`FeatureStats.add: ${features.length} values is not rows * dim = ${rows} * ${d}`);
    }
    if (rows === 0) return;
    for (let i = 0; i < features.length; i++) {
      if (!Number.isFinite(features[i])) {
        throw new Error(`FeatureStats.add: feature ${i % d} of row ${Math.floor(i / d)} is ${features[i]}; features must be finite`);
      }
    }
    if (this.shift === null) {
      const c = new Float64Array(d);
      for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) c[j] += features[r * d + j];
      for (let j = 0; j < d; j++) c[j] /= rows;
      this.shift = c;
    }
    const c = this.shift;
    const y = new Float64Array(d); // x - c of one row
    const S = this.sumOuter;
    for (let r = 0; r < rows; r++) {
      const off = r * d;
      for (let j = 0; j < d; j++) {
        y[j] = features[off + j] - c[j];
        this.sum[j] += y[j];
      }
      for (let i = 0; i < d; i++) {
        const yi = y[i];
        if (yi === 0) continue;
        const rowOff = i * d;
        for (let j = i; j < d; j++) S[rowOff + j] += yi * y[j];
      }
    }
    this.n += rows;
  }

  /** Adds the rows of a [B, dim] tensor (reads it back; the caller still owns and disposes it). */
  async addTensor(features: tf.Tensor2D): Promise<void> {
    if (features.rank !== 2 || features.shape[1] !== this.dim) {
      throw new Error(`FeatureStats.addTensor: expected [B, ${this.dim}], received [${features.shape}]`);
    }
    this.add((await features.data()) as Float32Array, features.shape[0]);
  }

  /** mu = c + s / n. */
  mean(): Float64Array {
    if (this.n === 0 || this.shift === null) throw new Error('FeatureStats.mean: no features added');
    const mu = new Float64Array(this.dim);
    for (let j = 0; j < this.dim; j++) mu[j] = this.shift[j] + this.sum[j] / this.n;
    return mu;
  }

  /** Unbiased covariance (S - s s^T / n) / (n - 1), full symmetric d x d; needs n >= 2. */
  covariance(): Float64Array {
    const n = this.n;
    if (n < 2) throw new Error(`FeatureStats.covariance: needs at least 2 feature vectors, received ${n}`);
    const d = this.dim;
    const C = new Float64Array(d * d);
    const s = this.sum;
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const v = (this.sumOuter[i * d + j] - (s[i] * s[j]) / n) / (n - 1);
        C[i * d + j] = v;
        C[j * d + i] = v;
      }
    }
    return C;
  }

  /** Mean, covariance and count together. */
  gaussian(): GaussianStats {
    return { dim: this.dim, mean: this.mean(), cov: this.covariance(), count: this.n };
  }
}

/** Two-pass reference: mean and unbiased covariance of `rows` x `dim` row-major features (all in memory). */
export function gaussianFromFeatures(features: Float32Array | Float64Array, rows: number, dim: number): GaussianStats {
  if (features.length !== rows * dim) throw new Error(`gaussianFromFeatures: ${features.length} values is not ${rows} * ${dim}`);
  if (rows < 2) throw new Error(`gaussianFromFeatures: needs at least 2 rows, received ${rows}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) mean[j] += features[r * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= rows;
  const cov = new Float64Array(dim * dim);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dim; i++) {
      const yi = features[r * dim + i] - mean[i];
      for (let j = 0; j < dim; j++) cov[i * dim + j] += yi * (features[r * dim + j] - mean[j]);
    }
  }
  for (let k = 0; k < cov.length; k++) cov[k] /= rows - 1;
  return { dim, mean, cov, count: rows };
}
