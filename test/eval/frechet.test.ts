/**
 * frechetDistance and symmetricEigen (src/eval/frechet.ts) against closed forms:
 * diagonal and commuting (co-rotated) Gaussians, identical distributions, the
 * 2x2 trace-of-square-root identity, a Denman-Beavers sqrtm of C1 C2 computed
 * here (the non-symmetric route scipy.linalg.sqrtm takes), singular and
 * slightly indefinite covariances, and eigen-decomposition invariants.
 */
import { frechetDistance, symmetricEigen, EigenMethod } from '../../src/eval/frechet';
import type { GaussianStats } from '../../src/eval/featureStats';
import { Rng } from '../../src/backend/random';

// helpers (float64, row-major)

function randomVector(n: number, rng: Rng, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => scale * rng.normal());
}

function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}

/** Random orthogonal matrix: Gram-Schmidt on Gaussian columns. */
function randomOrthogonal(n: number, rng: Rng): Float64Array {
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const v = randomVector(n, rng);
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i] * q[i * n + k];
      for (let i = 0; i < n; i++) v[i] -= dot * q[i * n + k];
    }
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    for (let i = 0; i < n; i++) q[i * n + j] = v[i] / norm;
  }
  return q;
}

/** R diag(l) R^T. */
function fromSpectrum(r: Float64Array, l: ArrayLike<number>, n: number): Float64Array {
  const rl = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) rl[i * n + j] = r[i * n + j] * l[j];
  return matMul(rl, transpose(r, n), n);
}

function diag(l: ArrayLike<number>): Float64Array {
  const n = l.length;
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = l[i];
  return m;
}

/** A A^T / n + jitter I: a random SPD matrix. */
function randomSpd(n: number, rng: Rng, jitter = 0.1): Float64Array {
  const a = randomVector(n * n, rng);
  const c = matMul(a, transpose(a, n), n);
  for (let i = 0; i < n * n; i++) c[i] /= n;
  for (let i = 0; i < n; i++) c[i * n + i] += jitter;
  return c;
}

function gaussian(mean: Float64Array, cov: Float64Array): GaussianStats {
  return { dim: mean.length, mean, cov, count: null };
}

function closedFormCommuting(mu1: Float64Array, mu2: Float64Array, l1: ArrayLike<number>, l2: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < mu1.length; i++) s += (mu1[i] - mu2[i]) ** 2;
  for (let i = 0; i < l1.length; i++) s += (Math.sqrt(l1[i]) - Math.sqrt(l2[i])) ** 2;
  return s;
}

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}

/** Gauss-Jordan inverse with partial pivoting. */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = diag(new Float64Array(n).fill(1));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    for (let k = 0; k < n; k++) {
      [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]];
      [inv[c * n + k], inv[p * n + k]] = [inv[p * n + k], inv[c * n + k]];
    }
    const piv = m[c * n + c];
    for (let k = 0; k < n; k++) {
      m[c * n + k] /= piv;
      inv[c * n + k] /= piv;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c];
      for (let k = 0; k < n; k++) {
        m[r * n + k] -= f * m[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }
  return inv;
}

/** Denman-Beavers iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2 -> Y = A^(1/2) (A non-symmetric, no negative real eigenvalues). */
function sqrtmDenmanBeavers(a: Float64Array, n: number): Float64Array {
  let y = Float64Array.from(a);
  let z = diag(new Float64Array(n).fill(1));
  for (let it = 0; it < 100; it++) {
    const yi = inverse(y, n);
    const zi = inverse(z, n);
    const yNext = y.map((v, i) => 0.5 * (v + zi[i]));
    const zNext = z.map((v, i) => 0.5 * (v + yi[i]));
    let change = 0;
    for (let i = 0; i < n * n; i++) change = Math.max(change, Math.abs(yNext[i] - y[i]));
    y = yNext;
    z = zNext;
    if (change < 1e-15) break;
  }
  return y;
}

const METHODS: EigenMethod[] = ['tql2', 'jacobi'];

// symmetricEigen

describe('symmetricEigen', () => {
  it.each(METHODS)('%s: A v = lambda v, orthonormal rows, ascending, values-only agrees', (method) => {
    const rng = new Rng('eig');
    const n = 30;
    const s = randomVector(n * n, rng);
    const a = s.map((_, k) => s[k] + s[(k % n) * n + Math.floor(k / n)]); // S + S^T
    const { values, vectors } = symmetricEigen(a, n, { method });
    const v = vectors as Float64Array;
    let maxAbs = 0;
    for (const x of values) maxAbs = Math.max(maxAbs, Math.abs(x));
    for (let i = 0; i < n; i++) {
      if (i > 0) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
      for (let r = 0; r < n; r++) {
        let av = 0;
        for (let k = 0; k < n; k++) av += a[r * n + k] * v[i * n + k];
        expect(Math.abs(av - values[i] * v[i * n + r])).toBeLessThan(1e-12 * maxAbs);
      }
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let k = 0; k < n; k++) dot += v[i * n + k] * v[j * n + k];
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-12);
      }
    }
    const only = symmetricEigen(a, n, { method, vectors: false });
    expect(only.vectors).toBeNull();
    for (let i = 0; i < n; i++) expect(Math.abs(only.values[i] - values[i])).toBeLessThan(1e-12 * maxAbs);
  });

  it('tql2 and jacobi agree; repeated eigenvalues, diagonal and 1x1 inputs', () => {
    const rng = new Rng('eig2');
    const n = 12;
    const r = randomOrthogonal(n, rng);
    const spectrum = [3, 3, 3, 1, 1, 0, 0, 0, 2, 5, 5, 7];
    const a = fromSpectrum(r, spectrum, n);
    const sorted = [...spectrum].sort((x, y) => x - y);
    for (const method of METHODS) {
      const { values } = symmetricEigen(a, n, { method });
      values.forEach((x, i) => expect(Math.abs(x - sorted[i])).toBeLessThan(1e-12 * 7));
      const d = symmetricEigen(diag([4, -1, 2]), 3, { method });
      expect(Array.from(d.values)).toEqual([-1, 2, 4]);
      expect(Array.from(symmetricEigen(Float64Array.of(-2.5), 1, { method }).values)).toEqual([-2.5]);
    }
  });

  it('rejects non-symmetric, non-finite and mis-sized input', () => {
    expect(() => symmetricEigen(Float64Array.of(1, 2, 3, 4), 2)).toThrow('not symmetric');
    expect(() => symmetricEigen(Float64Array.of(1, NaN, NaN, 4), 2)).toThrow('must be finite');
    expect(() => symmetricEigen(Float64Array.of(1, 2, 3), 2)).toThrow('expected a 2 x 2 matrix');
  });
});

// frechetDistance

describe('frechetDistance', () => {
  it.each(METHODS)('%s: diagonal Gaussians: |dmu|^2 + sum (sqrt a - sqrt b)^2', (method) => {
    const rng = new Rng('diag');
    const n = 7;
    const mu1 = randomVector(n, rng);
    const mu2 = randomVector(n, rng);
    const a = Float64Array.from({ length: n }, () => 0.1 + rng.uniform() * 3);
    const b = Float64Array.from({ length: n }, () => 0.1 + rng.uniform() * 3);
    const res = frechetDistance(gaussian(mu1, diag(a)), gaussian(mu2, diag(b)), { eigenMethod: method });
    expect(relErr(res.distance, closedFormCommuting(mu1, mu2, a, b))).toBeLessThan(1e-12);
    expect(res.clamped).toEqual([]);
    expect(res.epsilon).toBe(0);
    expect(res.notes).toEqual([]);
  });

  it.each(METHODS)('%s: co-rotated Gaussians (commuting covariances) match the closed form', (method) => {
    const rng = new Rng('rot');
    const n = 20;
    const r = randomOrthogonal(n, rng);
    const l1 = Float64Array.from({ length: n }, () => 0.05 + rng.uniform() * 4);
    const l2 = Float64Array.from({ length: n }, () => 0.05 + rng.uniform() * 4);
    const mu1 = randomVector(n, rng);
    const mu2 = randomVector(n, rng);
    const res = frechetDistance(gaussian(mu1, fromSpectrum(r, l1, n)), gaussian(mu2, fromSpectrum(r, l2, n)), { eigenMethod: method });
    expect(relErr(res.distance, closedFormCommuting(mu1, mu2, l1, l2))).toBeLessThan(1e-9);
    let dm = 0;
    for (let i = 0; i < n; i++) dm += (mu1[i] - mu2[i]) ** 2;
    expect(relErr(res.meanTerm, dm)).toBeLessThan(1e-14);
  });

  it('identical distributions give 0', () => {
    const rng = new Rng('same');
    const n = 25;
    const c = randomSpd(n, rng);
    const mu = randomVector(n, rng);
    let trace = 0;
    for (let i = 0; i < n; i++) trace += c[i * n + i];
    for (const method of METHODS) {
      const res = frechetDistance(gaussian(mu, c), gaussian(Float64Array.from(mu), Float64Array.from(c)), { eigenMethod: method });
      expect(Math.abs(res.distance)).toBeLessThan(1e-12 * trace);
      expect(res.meanTerm).toBe(0);
    }
  });

  it('2x2: tr (C1 C2)^(1/2) = sqrt(tr(C1 C2) + 2 sqrt(det C1 det C2))', () => {
    const rng = new Rng('2x2');
    for (let trial = 0; trial < 5; trial++) {
      const c1 = randomSpd(2, rng, 0.01);
      const c2 = randomSpd(2, rng, 0.01);
      const mu1 = randomVector(2, rng);
      const mu2 = randomVector(2, rng);
      const p = matMul(c1, c2, 2);
      const det = (m: Float64Array): number => m[0] * m[3] - m[1] * m[2];
      const trSqrt = Math.sqrt(p[0] + p[3] + 2 * Math.sqrt(det(c1) * det(c2)));
      const expected = (mu1[0] - mu2[0]) ** 2 + (mu1[1] - mu2[1]) ** 2 + c1[0] + c1[3] + c2[0] + c2[3] - 2 * trSqrt;
      for (const method of METHODS) {
        const res = frechetDistance(gaussian(mu1, c1), gaussian(mu2, c2), { eigenMethod: method });
        expect(relErr(res.traceSqrt, trSqrt)).toBeLessThan(1e-12);
        expect(relErr(res.distance, expected)).toBeLessThan(1e-9);
      }
    }
  });

  it('general SPD covariances match a Denman-Beavers sqrtm of C1 C2 (the scipy route)', () => {
    const rng = new Rng('db');
    const n = 8;
    const c1 = randomSpd(n, rng);
    const c2 = randomSpd(n, rng);
    const root = sqrtmDenmanBeavers(matMul(c1, c2, n), n);
    let trRoot = 0;
    let tr12 = 0;
    for (let i = 0; i < n; i++) {
      trRoot += root[i * n + i];
      tr12 += c1[i * n + i] + c2[i * n + i];
    }
    const zero = new Float64Array(n);
    for (const method of METHODS) {
      const res = frechetDistance(gaussian(zero, c1), gaussian(zero, c2), { eigenMethod: method });
      expect(relErr(res.traceSqrt, trRoot)).toBeLessThan(1e-10);
      expect(relErr(res.distance, tr12 - 2 * trRoot)).toBeLessThan(1e-6);
    }
  });

  it('singular covariances need no regularisation (rank-deficient, all-zero)', () => {
    const rng = new Rng('sing');
    const n = 10;
    const r = randomOrthogonal(n, rng);
    const l1 = [2, 0, 0, 1, 0.5, 0, 3, 0, 0, 0];
    const l2 = [0, 0, 1, 1, 0, 0, 2, 0.1, 0, 0];
    const mu1 = randomVector(n, rng);
    const mu2 = randomVector(n, rng);
    for (const method of METHODS) {
      const res = frechetDistance(gaussian(mu1, fromSpectrum(r, l1, n)), gaussian(mu2, fromSpectrum(r, l2, n)), { eigenMethod: method });
      // A zero eigenvalue computed as ~1e-16 contributes sqrt(1e-16) = 1e-8: the square root
      // amplifies round-off near 0, so singular inputs are accurate to ~1e-8 absolute.
      expect(relErr(res.distance, closedFormCommuting(mu1, mu2, l1, l2))).toBeLessThan(1e-6);
      expect(res.epsilon).toBe(0);
      // Round-off around the zero eigenvalues may be clamped; it must be reported as tiny.
      for (const c of res.clamped) expect(c.relative).toBeLessThan(1e-12);
    }
    // C1 = 0: d^2 = |dmu|^2 + tr C2.
    const c2 = randomSpd(n, rng);
    let expected = 0;
    for (let i = 0; i < n; i++) expected += (mu1[i] - mu2[i]) ** 2 + c2[i * n + i];
    const res = frechetDistance(gaussian(mu1, new Float64Array(n * n)), gaussian(mu2, c2));
    expect(relErr(res.distance, expected)).toBeLessThan(1e-12);
    expect(res.traceSqrt).toBe(0);
  });

  it('clamps a negative eigenvalue of C1 to 0 and says so, with its size', () => {
    const rng = new Rng('neg');
    const n = 4;
    const r = randomOrthogonal(n, rng);
    const l1 = [1, 2, -1e-7, 3];
    const l2 = [2, 1, 1, 1];
    const zero = new Float64Array(n);
    const res = frechetDistance(gaussian(zero, fromSpectrum(r, l1, n)), gaussian(zero, fromSpectrum(r, l2, n)));
    const c1Report = res.clamped.find((c) => c.matrix === 'C1');
    expect(c1Report).toBeDefined();
    expect(c1Report?.count).toBe(1);
    expect(relErr(c1Report?.mostNegative ?? 0, -1e-7)).toBeLessThan(1e-6);
    expect(relErr(c1Report?.relative ?? 0, 1e-7 / 3)).toBeLessThan(1e-6);
    expect(res.notes[0]).toMatch(/clamped 1 negative eigenvalue\(s\) of C1 to 0 \(most negative -1\.000e-7, .*is the covariance PSD\?\)/);
    // tr(C1) keeps the -1e-7; the square root uses 0: closed form with l1[2] -> 0 plus -1e-7.
    const expected = closedFormCommuting(zero, zero, [1, 2, 0, 3], l2) - 1e-7;
    expect(Math.abs(res.distance - expected)).toBeLessThan(1e-12);
  });

  it('rejects mismatched dimensions and non-finite means', () => {
    const g2 = gaussian(new Float64Array(2), diag([1, 1]));
    const g3 = gaussian(new Float64Array(3), diag([1, 1, 1]));
    expect(() => frechetDistance(g2, g3)).toThrow('dimensions differ: 2 vs 3');
    expect(() => frechetDistance(g2, gaussian(Float64Array.of(NaN, 0), diag([1, 1])))).toThrow('mean entry 0 is not finite');
  });

  it('d = 160: tql2 and jacobi agree to 1e-9', () => {
    const rng = new Rng('big');
    const n = 160;
    const c1 = randomSpd(n, rng, 0.01);
    const c2 = randomSpd(n, rng, 0.01);
    const mu1 = randomVector(n, rng, 0.1);
    const mu2 = randomVector(n, rng, 0.1);
    const a = frechetDistance(gaussian(mu1, c1), gaussian(mu2, c2), { eigenMethod: 'tql2' });
    const b = frechetDistance(gaussian(mu1, c1), gaussian(mu2, c2), { eigenMethod: 'jacobi' });
    expect(relErr(a.traceSqrt, b.traceSqrt)).toBeLessThan(1e-12);
    expect(relErr(a.distance, b.distance)).toBeLessThan(1e-9);
  });
});
