/**
 * KID (src/eval/kid.ts) against clean-fid's formula written out here, on tiny
 * data; same-distribution samples give ~0 within the subset spread, shifted
 * samples a clearly positive value; tensors are not leaked.
 *
 * clean-fid (cleanfid/fid.py, kernel_distance), per subset of size m:
 *   a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
 *   b = (x @ y.T / n + 1) ** 3
 *   t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
 *   kid = t / num_subsets / m
 */
import * as tf from '@tensorflow/tfjs';
import { FeatureMatrix, kernelInceptionDistance, mmd2PolynomialDirect } from '../../src/eval/kid';
import { Rng } from '../../src/backend/random';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

function gaussianFeatures(count: number, dim: number, rng: Rng, shift = 0): FeatureMatrix {
  const data = new Float32Array(count * dim);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() + shift;
  return { data, count, dim };
}

/** clean-fid's per-subset expression (see the header), float64. */
function cleanFidSubset(x: FeatureMatrix, y: FeatureMatrix): number {
  const m = x.count;
  const n = x.dim;
  const dot = (p: Float32Array, i: number, q: Float32Array, j: number): number => {
    let s = 0;
    for (let k = 0; k < n; k++) s += p[i * n + k] * q[j * n + k];
    return s;
  };
  let aSum = 0;
  let aDiag = 0;
  let bSum = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const a = (dot(x.data, i, x.data, j) / n + 1) ** 3 + (dot(y.data, i, y.data, j) / n + 1) ** 3;
      aSum += a;
      if (i === j) aDiag += a;
      bSum += (dot(x.data, i, y.data, j) / n + 1) ** 3;
    }
  }
  return ((aSum - aDiag) / (m - 1) - (bSum * 2) / m) / m;
}

describe('KID', () => {
  it('direct MMD^2_u equals clean-fid formula; one full-size subset equals it too', async () => {
    const rng = new Rng('kid-direct');
    const x = gaussianFeatures(12, 5, rng);
    const y = gaussianFeatures(12, 5, rng, 0.4);
    const ref = cleanFidSubset(x, y);
    expect(Math.abs(mmd2PolynomialDirect(x, y) - ref)).toBeLessThan(1e-12 * Math.max(1, Math.abs(ref)));
    // A subset of all 12 rows is a permutation: MMD^2_u does not change.
    const before = tf.memory().numTensors;
    const kid = await kernelInceptionDistance(x, y, { numSubsets: 3, subsetSize: 12 });
    expect(tf.memory().numTensors).toBe(before);
    expect(kid.subsetSize).toBe(12);
    for (const v of kid.values) expect(Math.abs(v - ref) / Math.abs(ref)).toBeLessThan(1e-5); // float32 Gram
    expect(kid.std).toBeLessThan(1e-5 * Math.abs(ref));
  });

  it('same distribution: ~0 within the subset spread; shifted: clearly > 0', async () => {
    const rng = new Rng('kid-dist');
    const a = gaussianFeatures(400, 16, rng);
    const b = gaussianFeatures(400, 16, rng);
    const c = gaussianFeatures(400, 16, rng, 0.5);
    const same = await kernelInceptionDistance(a, b, { numSubsets: 20, subsetSize: 100, seed: 1 });
    const shifted = await kernelInceptionDistance(a, c, { numSubsets: 20, subsetSize: 100, seed: 1 });
    expect(Math.abs(same.mean)).toBeLessThan(same.std);
    expect(shifted.mean).toBeGreaterThan(5 * shifted.std);
    expect(shifted.mean).toBeGreaterThan(20 * Math.abs(same.mean));
    // Seeded: the same call gives the same numbers.
    const again = await kernelInceptionDistance(a, b, { numSubsets: 20, subsetSize: 100, seed: 1 });
    expect(Array.from(again.values)).toEqual(Array.from(same.values));
  });

  it('defaults: 100 subsets of min(1000, nA, nB); errors name the problem', async () => {
    const rng = new Rng('kid-def');
    const a = gaussianFeatures(30, 3, rng);
    const b = gaussianFeatures(20, 3, rng);
    const kid = await kernelInceptionDistance(a, b, { numSubsets: 2 });
    expect(kid.subsetSize).toBe(20);
    await expect(kernelInceptionDistance(a, b, { subsetSize: 25 })).rejects.toThrow('subsetSize must be an integer in [2, min(nA, nB) = 20], received 25');
    await expect(kernelInceptionDistance(a, gaussianFeatures(5, 4, rng))).rejects.toThrow('feature dimensions differ: 3 vs 4');
  });
});
