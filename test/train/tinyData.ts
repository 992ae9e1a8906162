/**
 * Tiny synthetic training data shared by the trainers' tests and the loss fixtures
 * (lossFixtureRuns.ts): the same bytes for the same seed, built in a few milliseconds.
 */
import { Rng } from '../../src/backend/random';
import { ImageDataset } from '../../src/data/dataset';
import { EmbeddingPairs } from '../../src/train/priorTraining';

// ---------------------------------------------------------------- CLIP: colour patches

export const COLORS: Array<[string, [number, number, number]]> = [
  ['red', [230, 30, 30]],
  ['green', [30, 200, 40]],
  ['blue', [40, 60, 240]],
  ['white', [250, 250, 250]],
];

/** 32 noisy 8x8 colour patches captioned by colour name (8 of each: many duplicates per batch). */
export function colourDataset(): ImageDataset {
  const n = 32;
  const rng = new Rng('patches');
  const images = new Uint8Array(n * 8 * 8 * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 4;
    const rgb = COLORS[i % 4][1];
    for (let p = 0; p < 64; p++) for (let k = 0; k < 3; k++) images[(i * 64 + p) * 3 + k] = Math.max(0, Math.min(255, Math.round(rgb[k] + 30 * rng.normal())));
  }
  return {
    name: 'patches', split: 'train', images, count: n, height: 8, width: 8, channels: 3,
    labels, classNames: COLORS.map(([c]) => c), captions: Array.from(labels, (l) => COLORS[l][0]),
  };
}

// ---------------------------------------------------------------- autoencoder: squares

/** count images 6x6x1: a bright square at a seeded position on a dark background, plus noise. */
export function squaresDataset(count: number, seed: number): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 36);
  for (let i = 0; i < count; i++) {
    const oy = rng.int(3);
    const ox = rng.int(3);
    for (let y = 0; y < 6; y++) {
      for (let x = 0; x < 6; x++) {
        const on = y >= oy && y < oy + 3 && x >= ox && x < ox + 3;
        images[i * 36 + y * 6 + x] = Math.min(255, Math.max(0, Math.round((on ? 220 : 20) + 15 * rng.normal())));
      }
    }
  }
  return { name: 'tiny', split: 'train', images, count, height: 6, width: 6, channels: 1, labels: null, classNames: null, captions: null };
}

// ---------------------------------------------------------------- prior: rotated embedding pairs

function unitRows(n: number, e: number, rng: Rng): Float32Array {
  const out = new Float32Array(n * e);
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * e, (i + 1) * e);
    rng.fillNormal(row);
    const norm = Math.hypot(...row);
    for (let k = 0; k < e; k++) row[k] /= norm;
  }
  return out;
}

/** A random orthogonal E x E matrix (Gram-Schmidt of Gaussian rows), row-major. */
function randomRotation(e: number, rng: Rng): Float64Array {
  const q = new Float64Array(e * e);
  for (let i = 0; i < e; i++) {
    const v = Array.from({ length: e }, () => rng.normal());
    for (let j = 0; j < i; j++) {
      const dot = v.reduce((a, x, k) => a + x * q[j * e + k], 0);
      for (let k = 0; k < e; k++) v[k] -= dot * q[j * e + k];
    }
    const norm = Math.hypot(...v);
    for (let k = 0; k < e; k++) q[i * e + k] = v[k] / norm;
  }
  return q;
}

/** n pairs: random unit text embeddings, image = R text (still unit norm). */
export function rotatedPairs(n: number, e: number, seed: string): EmbeddingPairs {
  const rng = new Rng(seed);
  const r = randomRotation(e, new Rng('rotation'));
  const text = unitRows(n, e, rng);
  const image = new Float32Array(n * e);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < e; a++) {
      let s = 0;
      for (let b = 0; b < e; b++) s += r[a * e + b] * text[i * e + b];
      image[i * e + a] = s;
    }
  }
  return { count: n, embedDim: e, text, image, captions: Array.from({ length: n }, (_, i) => `pair ${i}`) };
}
