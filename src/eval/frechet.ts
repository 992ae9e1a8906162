/**
 * Frechet distance between two Gaussians, the "F" of FID (Heusel et al. 2017,
 * https://arxiv.org/abs/1706.08500), all in float64 JavaScript:
 *
 *   d^2 = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))
 *
 * The trace of the matrix square root is taken through symmetric matrices only
 * (no non-symmetric sqrtm as scipy.linalg.sqrtm in pytorch-fid):
 *
 *   C1 = V diag(l) V^T                 (symmetric eigendecomposition)
 *   M  = diag(sqrt l) V^T C2 V diag(sqrt l)
 *      = V^T (C1^(1/2) C2 C1^(1/2)) V   (similar to C1^(1/2) C2 C1^(1/2), which is
 *                                        similar to C1 C2, and PSD)
 *   tr((C1 C2)^(1/2)) = sum_i sqrt(mu_i),  mu = eigenvalues of M
 *
 * Round-off can leave eigenvalues of C1 or M slightly negative; they are clamped
 * to 0 and the result says how many and by how much (`clamped`). Singular
 * covariances (fewer samples than dimensions, constant features) need no
 * regularisation on this route: a zero eigenvalue has square root 0. An
 * eps * I offset is added to both covariances only if the eigensolver fails
 * to converge, and the result reports it (`epsilon`). Accuracy: ~1e-12 relative
 * for well-conditioned covariances; near-zero eigenvalues carry round-off of
 * ~1e-16 * max eigenvalue whose square root (~1e-8 * sqrt(max)) enters the trace,
 * so singular inputs are accurate to about 1e-8 absolute.
 *
 * Eigensolvers (both exported, both O(d^3)):
 *   'tql2'   Householder tridiagonalisation + implicit QL (EISPACK tred2/tql2,
 *            via the public-domain JAMA port). Default: about 9 d^3 flops with
 *            eigenvectors, (4/3) d^3 without. Whole distance: d = 512 in 1 s,
 *            d = 2048 (Inception features) in 94 s (measured, busy 2-core machine).
 *   'jacobi' Cyclic Jacobi rotations: slower (several sweeps of ~8 d^3) but
 *            very accurate; kept as an independent check and for d <= 256.
 */
import type { GaussianStats } from './featureStats';

export type EigenMethod = 'tql2' | 'jacobi';

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  readonly values: Float64Array; // [n]
  /** Eigenvectors as ROWS (row i belongs to values[i]), row-major n x n; null when not requested. */
  readonly vectors: Float64Array | null;
}

/** One group of eigenvalues that were negative and set to 0. */
export interface ClampReport {
  /** Which matrix: 'C1' or 'M' (= C1^(1/2) C2 C1^(1/2) in C1's eigenbasis). */
  readonly matrix: 'C1' | 'M';
  /** How many eigenvalues were negative. */
  readonly count: number;
  /** The most negative eigenvalue (before clamping). */
  readonly mostNegative: number;
  /** |mostNegative| / largest eigenvalue: ~1e-16..1e-12 is round-off; larger means the input was not PSD. */
  readonly relative: number;
}

export interface FrechetOptions {
  /** Default 'tql2'. */
  readonly eigenMethod?: EigenMethod;
  /** Offset added to both diagonals if (and only if) the eigensolver fails. Default 1e-6 (pytorch-fid's). */
  readonly eps?: number;
}

export interface FrechetResult {
  /** The squared Frechet distance (what "FID" reports). */
  readonly distance: number;
  /** |mu1 - mu2|^2. */
  readonly meanTerm: number;
  /** tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2)). */
  readonly covarianceTerm: number;
  /** tr((C1 C2)^(1/2)). */
  readonly traceSqrt: number;
  /** Negative eigenvalues set to 0 (empty when none). */
  readonly clamped: readonly ClampReport[];
  /** The eps * I added to both covariances (0 when not needed). */
  readonly epsilon: number;
  /** Human-readable notes on clamping / regularisation (empty when nothing happened). */
  readonly notes: readonly string[];
}

// helpers

function hypot(a: number, b: number): number {
  // Math.hypot is exact but slow in V8's hot loops; this scaled form avoids overflow.
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) {
    const r = y / x;
    return x * Math.sqrt(1 + r * r);
  }
  if (y === 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
}

function checkSquare(a: Float64Array, n: number, what: string): void {
  if (!Number.isInteger(n) || n <= 0 || a.length !== n * n) {
    throw new Error(`${what}: expected a ${n} x ${n} matrix (${n * n} values), received ${a.length} values`);
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${what}: entry (${Math.floor(i / n)}, ${i % n}) is ${a[i]}; must be finite`);
  }
}

/** (A + A^T) / 2 as a fresh array; throws when A is clearly not symmetric. */
function symmetrised(a: Float64Array, n: number, what: string): Float64Array {
  const out = new Float64Array(n * n);
  let maxAbs = 0;
  let maxAsym = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const x = a[i * n + j];
      const y = a[j * n + i];
      maxAbs = Math.max(maxAbs, Math.abs(x));
      maxAsym = Math.max(maxAsym, Math.abs(x - y));
      out[i * n + j] = 0.5 * (x + y);
    }
  }
  if (maxAsym > 1e-8 * Math.max(maxAbs, 1e-300)) {
    throw new Error(`${what} is not symmetric: max |A - A^T| = ${maxAsym.toExponential(3)} vs max |A| = ${maxAbs.toExponential(3)}`);
  }
  return out;
}

// symmetric eigendecomposition: Householder + implicit QL (tred2 / tql2)

/**
 * tred2: reduces the symmetric matrix held in `w` (n x n, overwritten) to
 * tridiagonal form: diagonal -> d, subdiagonal -> e[1..n-1]. With `vectors`,
 * w ends up holding the orthogonal transformation TRANSPOSED (its rows are the
 * columns of JAMA's V): all loops then run along contiguous rows.
 */
function tred2(w: Float64Array, n: number, d: Float64Array, e: Float64Array, vectors: boolean): void {
  // JAMA's V[r][c] is w[c * n + r] here.
  for (let j = 0; j < n; j++) d[j] = w[j * n + (n - 1)];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = w[j * n + (i - 1)];
        w[j * n + i] = 0;
        w[i * n + j] = 0;
      }
    } else {
      // Householder vector.
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      // Similarity transformation of the remaining columns.
      for (let j = 0; j < i; j++) {
        f = d[j];
        w[i * n + j] = f;
        const rowJ = j * n;
        g = e[j] + w[rowJ + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += w[rowJ + k] * d[k];
          e[k] += w[rowJ + k] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        const rowJ = j * n;
        for (let k = j; k <= i - 1; k++) w[rowJ + k] -= f * e[k] + g * d[k];
        d[j] = w[rowJ + (i - 1)];
        w[rowJ + i] = 0;
      }
    }
    d[i] = h;
  }
  if (!vectors) {
    // The tridiagonal's diagonal is left on w's diagonal (see JAMA's accumulation step).
    for (let i = 0; i < n; i++) d[i] = w[i * n + i];
    e[0] = 0;
    return;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    w[i * n + (n - 1)] = w[i * n + i];
    w[i * n + i] = 1;
    const h = d[i + 1];
    const rowI1 = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = w[rowI1 + k] / h;
      for (let j = 0; j <= i; j++) {
        const rowJ = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += w[rowI1 + k] * w[rowJ + k];
        for (let k = 0; k <= i; k++) w[rowJ + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) w[rowI1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = w[j * n + (n - 1)];
    w[j * n + (n - 1)] = 0;
  }
  w[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/**
 * tql2: eigenvalues (and, with `vectors`, eigenvectors accumulated into the rows
 * of w) of the symmetric tridiagonal matrix (d, e) by the implicit QL method.
 * Returns false if some eigenvalue needed more than `maxIter` iterations.
 */
function tql2(w: Float64Array, n: number, d: Float64Array, e: Float64Array, vectors: boolean, maxIter = 60): boolean {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    // Find a small subdiagonal element.
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m === n) m = n - 1; // e[n-1] = 0, so this only guards the index
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > maxIter) return false;
        // Implicit shift.
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        // Implicit QL transformation.
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (vectors) {
            const rowI = i * n;
            const rowI1 = (i + 1) * n;
            for (let k = 0; k < n; k++) {
              const hk = w[rowI1 + k];
              w[rowI1 + k] = s * w[rowI + k] + c * hk;
              w[rowI + k] = c * w[rowI + k] - s * hk;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  return true;
}

/** Sorts eigenvalues ascending, permuting the eigenvector rows with them. */
function sortEigen(d: Float64Array, w: Float64Array | null, n: number): void {
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i];
    for (let j = i + 1; j < n; j++) {
      if (d[j] < p) {
        k = j;
        p = d[j];
      }
    }
    if (k !== i) {
      d[k] = d[i];
      d[i] = p;
      if (w !== null) {
        for (let j = 0; j < n; j++) {
          const t = w[i * n + j];
          w[i * n + j] = w[k * n + j];
          w[k * n + j] = t;
        }
      }
    }
  }
}

function eigenTql2(a: Float64Array, n: number, vectors: boolean): SymmetricEigen | null {
  const w = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(w, n, d, e, vectors);
  if (!tql2(w, n, d, e, vectors)) return null;
  sortEigen(d, vectors ? w : null, n);
  return { values: d, vectors: vectors ? w : null };
}

// symmetric eigendecomposition: cyclic Jacobi

/**
 * Cyclic Jacobi: rotations A <- J^T A J zeroing a_pq with t = tan(theta) the
 * smaller root of t^2 + 2 t (a_qq - a_pp) / (2 a_pq) - 1 = 0, until the
 * off-diagonal mass is below 1e-15 of the total (or 100 sweeps: returns null).
 */
function eigenJacobi(a0: Float64Array, n: number, vectors: boolean): SymmetricEigen | null {
  const a = Float64Array.from(a0);
  const v = new Float64Array(n * n); // V, eigenvectors as columns during the sweeps
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < a.length; i++) total += a[i] * a[i];
  let converged = false;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * total) {
      converged = true;
      break;
    }
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        a[p * n + q] = 0;
        a[q * n + p] = 0;
        if (vectors) {
          for (let k = 0; k < n; k++) {
            const vkp = v[k * n + p];
            const vkq = v[k * n + q];
            v[k * n + p] = c * vkp - s * vkq;
            v[k * n + q] = s * vkp + c * vkq;
          }
        }
      }
    }
  }
  if (!converged) return null;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = a[i * n + i];
  let rows: Float64Array | null = null;
  if (vectors) {
    rows = new Float64Array(n * n); // transpose: eigenvectors as rows
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) rows[i * n + k] = v[k * n + i];
  }
  sortEigen(d, rows, n);
  return { values: d, vectors: rows };
}

/**
 * Eigenvalues (ascending) and optionally eigenvectors (as rows) of a symmetric
 * n x n row-major matrix. Throws if the matrix is not symmetric or not finite,
 * or if the method does not converge.
 */
export function symmetricEigen(
  a: Float64Array,
  n: number,
  options: { method?: EigenMethod; vectors?: boolean } = {},
): SymmetricEigen {
  const method = options.method ?? 'tql2';
  const vectors = options.vectors ?? true;
  checkSquare(a, n, 'symmetricEigen');
  const sym = symmetrised(a, n, 'symmetricEigen: matrix');
  const out = method === 'jacobi' ? eigenJacobi(sym, n, vectors) : eigenTql2(sym, n, vectors);
  if (out === null) throw new Error(`symmetricEigen: the ${method} method did not converge (n = ${n})`);
  return out;
}

// the Frechet distance

/** C = A B for row-major n x n matrices (i-k-j order: contiguous inner loop). */
function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const rowC = i * n;
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      const rowB = k * n;
      for (let j = 0; j < n; j++) c[rowC + j] += aik * b[rowB + j];
    }
  }
  return c;
}

/** C = A B^T for row-major n x n matrices (row-by-row dot products). */
function matMulTransposeB(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const rowA = i * n;
    for (let j = 0; j < n; j++) {
      const rowB = j * n;
      let s = 0;
      for (let k = 0; k < n; k++) s += a[rowA + k] * b[rowB + k];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Sets negative entries to 0 in place; returns a report, or null when none were negative. */
function clampNegative(values: Float64Array, matrix: 'C1' | 'M'): ClampReport | null {
  let count = 0;
  let mostNegative = 0;
  let largest = 0;
  for (let i = 0; i < values.length; i++) {
    largest = Math.max(largest, values[i]);
    if (values[i] < 0) {
      count++;
      mostNegative = Math.min(mostNegative, values[i]);
      values[i] = 0;
    }
  }
  if (count === 0) return null;
  return { matrix, count, mostNegative, relative: largest > 0 ? -mostNegative / largest : Infinity };
}

/** tr((C1 C2)^(1/2)) via C1's eigendecomposition; null if an eigensolver failed. */
function traceSqrtProduct(
  c1: Float64Array,
  c2: Float64Array,
  n: number,
  method: EigenMethod,
  clamped: ClampReport[],
): number | null {
  const out1 = method === 'jacobi' ? eigenJacobi(c1, n, true) : eigenTql2(c1, n, true);
  if (out1 === null) return null;
  const values = Float64Array.from(out1.values);
  const r1 = clampNegative(values, 'C1');
  if (r1 !== null) clamped.push(r1);
  const rootL = values.map(Math.sqrt);
  const e = out1.vectors as Float64Array; // rows = eigenvectors: E = V^T
  // M = diag(sqrt l) (E C2 E^T) diag(sqrt l)
  const m = matMulTransposeB(matMul(e, c2, n), e, n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = 0.5 * (m[i * n + j] + m[j * n + i]) * rootL[i] * rootL[j];
      m[i * n + j] = v;
      m[j * n + i] = v;
    }
  }
  const out2 = method === 'jacobi' ? eigenJacobi(m, n, false) : eigenTql2(m, n, false);
  if (out2 === null) return null;
  const mu = Float64Array.from(out2.values);
  const r2 = clampNegative(mu, 'M');
  if (r2 !== null) clamped.push(r2);
  let tr = 0;
  for (let i = 0; i < n; i++) tr += Math.sqrt(mu[i]);
  return tr;
}

function describeClamp(r: ClampReport): string {
  const what = r.matrix === 'C1' ? 'C1' : 'C1^(1/2) C2 C1^(1/2)';
  const kind = r.relative < 1e-10 ? 'round-off' : 'larger than round-off: is the covariance PSD?';
  return `clamped ${r.count} negative eigenvalue(s) of ${what} to 0 (most negative ${r.mostNegative.toExponential(3)}, ` +
    `${r.relative.toExponential(2)} of the largest; ${kind})`;
}

/**
 * Squared Frechet distance between N(mu1, C1) and N(mu2, C2) (see the header).
 * Covariances must be symmetric d x d (row-major); they are used as given
 * (FeatureStats makes them unbiased, N - 1).
 */
export function frechetDistance(a: GaussianStats, b: GaussianStats, options: FrechetOptions = {}): FrechetResult {
  const n = a.dim;
  if (b.dim !== n) throw new Error(`frechetDistance: dimensions differ: ${a.dim} vs ${b.dim}`);
  if (a.mean.length !== n || b.mean.length !== n) {
    throw new Error(`frechetDistance: means must have ${n} entries, received ${a.mean.length} and ${b.mean.length}`);
  }
  checkSquare(a.cov, n, 'frechetDistance: first covariance');
  checkSquare(b.cov, n, 'frechetDistance: second covariance');
  const method = options.eigenMethod ?? 'tql2';
  const eps = options.eps ?? 1e-6;
  let meanTerm = 0;
  for (let i = 0; i < n; i++) {
    const dm = a.mean[i] - b.mean[i];
    if (!Number.isFinite(dm)) throw new Error(`frechetDistance: mean entry ${i} is not finite (${a.mean[i]}, ${b.mean[i]})`);
    meanTerm += dm * dm;
  }
  const c1 = symmetrised(a.cov, n, 'frechetDistance: first covariance');
  const c2 = symmetrised(b.cov, n, 'frechetDistance: second covariance');
  let clamped: ClampReport[] = [];
  let epsilon = 0;
  let traceSqrt = traceSqrtProduct(c1, c2, n, method, clamped);
  if (traceSqrt === null) {
    // The eigensolver failed (not seen on PSD input; kept as pytorch-fid's fallback).
    epsilon = eps;
    for (let i = 0; i < n; i++) {
      c1[i * n + i] += eps;
      c2[i * n + i] += eps;
    }
    clamped = [];
    traceSqrt = traceSqrtProduct(c1, c2, n, method, clamped);
    if (traceSqrt === null) throw new Error(`frechetDistance: the ${method} eigensolver did not converge even with ${eps} * I added`);
  }
  let trace1 = 0;
  let trace2 = 0;
  for (let i = 0; i < n; i++) {
    trace1 += c1[i * n + i];
    trace2 += c2[i * n + i];
  }
  const covarianceTerm = trace1 + trace2 - 2 * traceSqrt;
  const notes = clamped.map(describeClamp);
  if (epsilon > 0) notes.push(`the ${method} eigensolver did not converge; added ${epsilon} * I to both covariances`);
  return { distance: meanTerm + covarianceTerm, meanTerm, covarianceTerm, traceSqrt, clamped, epsilon, notes };
}
