/**
 * FeatureStats (src/eval/featureStats.ts): streaming in uneven batches equals the
 * two-pass batch computation; a large common offset (the cancellation case of
 * sum-of-squares formulas) stays accurate thanks to the shift; addTensor leaks
 * nothing; bad input is rejected.
 */
import * as tf from '@tensorflow/tfjs';
import { FeatureStats, gaussianFromFeatures } from '../../src/eval/featureStats';
import { Rng } from '../../src/backend/random';
import { relativeError, useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('cpu');
});

function randomFeatures(rows: number, dim: number, rng: Rng, offset = 0): Float64Array {
  // Correlated features: x = z A + offset, so the covariance is not diagonal.
  const a = Float64Array.from({ length: dim * dim }, () => rng.normal());
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const z = Float64Array.from({ length: dim }, () => rng.normal());
    for (let j = 0; j < dim; j++) {
      let s = offset;
      for (let k = 0; k < dim; k++) s += z[k] * a[k * dim + j];
      out[r * dim + j] = s;
    }
  }
  return out;
}

describe('FeatureStats', () => {
  it('streaming over uneven batches equals the two-pass computation (float64)', () => {
    const rng = new Rng('stream');
    const dim = 9;
    const rows = 101;
    const x = randomFeatures(rows, dim, rng, 0.3);
    const stats = new FeatureStats(dim);
    let start = 0;
    for (const b of [1, 7, 32, 0, 50, 11]) {
      stats.add(x.subarray(start * dim, (start + b) * dim), b);
      start += b;
    }
    expect(start).toBe(rows);
    expect(stats.count).toBe(rows);
    const ref = gaussianFromFeatures(x, rows, dim);
    const g = stats.gaussian();
    expect(relativeError(g.mean, ref.mean)).toBeLessThan(1e-13);
    expect(relativeError(g.cov, ref.cov)).toBeLessThan(1e-13);
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) expect(g.cov[i * dim + j]).toBe(g.cov[j * dim + i]);
  });

  it('unbiased (N - 1): two points a, b give variance (a - b)^2 / 2', () => {
    const stats = new FeatureStats(2);
    stats.add(Float64Array.of(1, 5));
    stats.add(Float64Array.of(3, 1));
    expect(Array.from(stats.mean())).toEqual([2, 3]);
    // var x = (1-3)^2/2 = 2, var y = (5-1)^2/2 = 8, cov = (1-2)(5-3) + (3-2)(1-3) = -4 over 1
    expect(Array.from(stats.covariance())).toEqual([2, -4, -4, 8]);
  });

  it('a large common offset (1e6) does not cancel the covariance away', () => {
    const rng = new Rng('offset');
    const dim = 4;
    const rows = 500;
    const x = randomFeatures(rows, dim, rng, 1e6);
    const stats = new FeatureStats(dim);
    for (let s = 0; s < rows; s += 64) {
      const e = Math.min(rows, s + 64);
      stats.add(x.subarray(s * dim, e * dim), e - s);
    }
    const ref = gaussianFromFeatures(x, rows, dim);
    expect(relativeError(stats.covariance(), ref.cov)).toBeLessThan(1e-9);
  });

  it('addTensor reads [B, d] tensors without leaking', async () => {
    const rng = new Rng('tensor');
    const x = Float32Array.from(randomFeatures(20, 3, rng));
    const before = tf.memory().numTensors;
    const stats = new FeatureStats(3);
    const t1 = tf.tensor2d(x.subarray(0, 24), [8, 3]);
    const t2 = tf.tensor2d(x.subarray(24), [12, 3]);
    await stats.addTensor(t1);
    await stats.addTensor(t2);
    tf.dispose([t1, t2]);
    expect(tf.memory().numTensors).toBe(before);
    const ref = gaussianFromFeatures(x, 20, 3);
    expect(relativeError(stats.covariance(), ref.cov)).toBeLessThan(1e-12);
    const wrong = tf.zeros([2, 4]) as tf.Tensor2D;
    await expect(stats.addTensor(wrong)).rejects.toThrow('expected [B, 3], received [2,4]');
    wrong.dispose();
  });

  it('rejects non-finite features, bad lengths, and too few samples', () => {
    const stats = new FeatureStats(2);
    expect(() => stats.add(Float32Array.of(1, NaN))).toThrow('feature 1 of row 0 is NaN');
    expect(() => stats.add(Float32Array.of(1, 2, 3))).toThrow('3 values is not rows * dim');
    expect(() => stats.mean()).toThrow('no features added');
    stats.add(Float32Array.of(1, 2));
    expect(() => stats.covariance()).toThrow('needs at least 2 feature vectors, received 1');
    expect(() => new FeatureStats(0)).toThrow('dim must be a positive integer');
  });
});
