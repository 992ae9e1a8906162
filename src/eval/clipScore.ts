/**
 * Text-image agreement measured with a trained CLIP (models/clip.ts).
 *
 * CLIPScore (Hessel et al. 2021, https://arxiv.org/abs/2104.08718, eq. 1 with w = 100,
 * as torchmetrics' CLIPScore):
 *
 *   score(image, prompt) = 100 * max(cos(E_I(image), E_T(prompt)), 0)
 *
 * Zero-shot classification (Radford et al. 2021, sec. 3.1.2): embed one prompt
 * per class ("a handwritten {n}"), predict the class whose prompt embedding is
 * most similar to the image embedding.
 *
 * Colored MNIST retrieval: every image is compared with the canonical prompts
 * of all 480 (digit, colour, background) triples. The digit is right when,
 * among the 10 prompts that keep the true colour and background, the true
 * digit's prompt scores highest; likewise colour (8 prompts) and background (6);
 * "all" needs the exact triple to win among all 480. Seen and held-out triples
 * (data/coloredMnist.ts) are reported separately.
 *
 * Images are [-1, 1] NHWC at the CLIP's imageSize (datasets are centre-padded
 * to it with -1, as in training). Evaluation reads one [b, E] / [b, K] block
 * back per batch.
 */
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../models/clip';
import { ImageDataset } from '../data/dataset';
import { fixedBatch } from '../data/batches';
import { BACKGROUND_COLORS, ColoredMnist, coloredMnistPrompt, DIGIT_COLORS, isHeldOut } from '../data/coloredMnist';

export interface EvalOptions {
  /** Images per forward pass (default 128). */
  readonly batchSize?: number;
  /** Told about prompts longer than the tokenizer's maxLength. */
  readonly onWarn?: (message: string) => void;
}

function batchSizeOf(options: EvalOptions): number {
  const b = options.batchSize ?? 128;
  if (!Number.isInteger(b) || b <= 0) throw new Error(`batchSize must be a positive integer, got ${b}`);
  return b;
}

/** padTo for a dataset evaluated by `clip` (undefined when the sizes already match). */
function padFor(clip: Clip, dataset: ImageDataset): number | undefined {
  const { imageSize, inChannels } = clip.config.image;
  if (dataset.channels !== inChannels) throw new Error(`dataset '${dataset.name}' has ${dataset.channels} channel(s), the CLIP expects ${inChannels}`);
  if (dataset.height > imageSize || dataset.width > imageSize) {
    throw new Error(`dataset '${dataset.name}' images are ${dataset.height}x${dataset.width}, larger than the CLIP's imageSize ${imageSize}`);
  }
  return dataset.height === imageSize && dataset.width === imageSize ? undefined : imageSize;
}

/** Images [B, h, w, C] centre-padded with -1 to the CLIP's side (as its training data was). A new tensor. */
export function toClipInput(clip: Clip, images: tf.Tensor4D): tf.Tensor4D {
  const s = clip.config.image.imageSize;
  const [, h, w] = images.shape;
  return tf.tidy(() => {
    const top = Math.floor((s - h) / 2);
    const left = Math.floor((s - w) / 2);
    return h === s && w === s ? tf.clone(images) : tf.pad(images, [[0, 0], [top, s - h - top], [left, s - w - left], [0, 0]], -1);
  });
}

/** Unit text embeddings of prompts, [K, E] (the caller disposes). */
function embedPrompts(clip: Clip, prompts: readonly string[], options: EvalOptions): tf.Tensor2D {
  const tokenizer = clip.tokenizer();
  const b = batchSizeOf(options);
  const parts: tf.Tensor2D[] = [];
  try {
    for (let s = 0; s < prompts.length; s += b) parts.push(clip.embedTexts(tokenizer, prompts.slice(s, s + b), options.onWarn));
    return parts.length === 1 ? tf.clone(parts[0]) : (tf.concat(parts, 0) as tf.Tensor2D);
  } finally {
    tf.dispose(parts);
  }
}

/**
 * Cosine similarities [n, K] (row-major, host) of dataset images [0, n) with
 * `textEmb` [K, E], computed in batches.
 */
async function imageTextSimilarities(clip: Clip, dataset: ImageDataset, count: number, textEmb: tf.Tensor2D, options: EvalOptions): Promise<Float32Array> {
  const b = batchSizeOf(options);
  const padTo = padFor(clip, dataset);
  const K = textEmb.shape[0];
  const out = new Float32Array(count * K);
  const textT = tf.transpose(textEmb); // [E, K]
  try {
    for (let s = 0; s < count; s += b) {
      const n = Math.min(b, count - s);
      const batch = fixedBatch(dataset, Array.from({ length: n }, (_, i) => s + i), { padTo });
      const sims = tf.tidy(() => tf.matMul(clip.embedImages(batch.x), textT));
      try {
        out.set(await sims.data(), s * K);
      } finally {
        tf.dispose([sims, batch.x, ...(batch.labels ? [batch.labels] : [])]);
      }
    }
  } finally {
    textT.dispose();
  }
  return out;
}

// ---------------------------------------------------------------- CLIPScore

export interface ClipScoreResult {
  /** Per (image i, prompt i) pair: 100 * max(cos, 0). */
  readonly scores: Float32Array;
  readonly mean: number;
}

/** CLIPScore of images [N, S, S, C] in [-1, 1] against prompts[i] (one prompt per image). */
export async function clipScore(clip: Clip, images: tf.Tensor4D, prompts: readonly string[], options: EvalOptions = {}): Promise<ClipScoreResult> {
  const n = images.shape[0];
  if (prompts.length !== n) throw new Error(`clipScore: ${prompts.length} prompts for ${n} images (one prompt per image)`);
  if (n === 0) throw new Error('clipScore: no images');
  const b = batchSizeOf(options);
  const tokenizer = clip.tokenizer();
  const scores = new Float32Array(n);
  for (let s = 0; s < n; s += b) {
    const m = Math.min(b, n - s);
    const cos = tf.tidy(() => {
      const x = tf.slice(images, [s, 0, 0, 0], [m, -1, -1, -1]);
      const img = clip.embedImages(x);
      const txt = clip.embedTexts(tokenizer, prompts.slice(s, s + m), options.onWarn);
      return tf.sum(tf.mul(img, txt), 1); // [m]
    });
    try {
      const v = await cos.data();
      for (let i = 0; i < m; i++) scores[s + i] = 100 * Math.max(v[i], 0);
    } finally {
      cos.dispose();
    }
  }
  return { scores, mean: scores.reduce((a, v) => a + v, 0) / n };
}

// ---------------------------------------------------------------- zero-shot classification

/** One prompt per digit from a template with {n}: digitPrompts() = ['a handwritten 0', ..., 'a handwritten 9']. */
export function digitPrompts(template = 'a handwritten {n}'): string[] {
  if (!template.includes('{n}')) throw new Error(`digitPrompts: template must contain {n}, got "${template}"`);
  return Array.from({ length: 10 }, (_, d) => template.split('{n}').join(String(d)));
}

export interface ZeroShotResult {
  /** Fraction of images whose label's prompt scores highest. */
  readonly accuracy: number;
  /** Accuracy per class (NaN for a class with no images). */
  readonly perClass: number[];
  /** Predicted class per image. */
  readonly predictions: Int32Array;
  readonly count: number;
}

/** Zero-shot accuracy on the first `limit` images (default all): prompts[k] describes class k. */
export async function zeroShotAccuracy(
  clip: Clip,
  dataset: ImageDataset,
  prompts: readonly string[],
  options: EvalOptions & { limit?: number } = {},
): Promise<ZeroShotResult> {
  const labels = dataset.labels;
  if (labels === null) throw new Error(`zeroShotAccuracy: dataset '${dataset.name}' has no labels`);
  const K = prompts.length;
  if (dataset.classNames !== null && dataset.classNames.length !== K) {
    throw new Error(`zeroShotAccuracy: ${K} prompts for the ${dataset.classNames.length} classes of '${dataset.name}' (one prompt per class)`);
  }
  const count = Math.min(options.limit ?? dataset.count, dataset.count);
  if (count === 0) throw new Error('zeroShotAccuracy: no images');
  const textEmb = embedPrompts(clip, prompts, options);
  let sims: Float32Array;
  try {
    sims = await imageTextSimilarities(clip, dataset, count, textEmb, options);
  } finally {
    textEmb.dispose();
  }
  const predictions = new Int32Array(count);
  const correct = new Array<number>(K).fill(0);
  const total = new Array<number>(K).fill(0);
  let hits = 0;
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (sims[i * K + k] > sims[i * K + best]) best = k;
    predictions[i] = best;
    total[labels[i]]++;
    if (best === labels[i]) {
      hits++;
      correct[labels[i]]++;
    }
  }
  return { accuracy: hits / count, perClass: correct.map((c, k) => (total[k] > 0 ? c / total[k] : NaN)), predictions, count };
}

// ---------------------------------------------------------------- Colored MNIST

export interface AttributeAccuracy {
  readonly digit: number;
  readonly color: number;
  readonly background: number;
  /** The exact triple among all 480 prompts. */
  readonly all: number;
  /** Images counted (accuracies are NaN when 0). */
  readonly count: number;
}

export interface ColoredMnistScores {
  readonly overall: AttributeAccuracy;
  /** Images whose triple occurs in training. */
  readonly seen: AttributeAccuracy;
  /** Images whose triple is in COLORED_MNIST_HELD_OUT. */
  readonly heldOut: AttributeAccuracy;
}

/** Digit / colour / background / exact retrieval accuracy on the first `limit` images (default all). */
export async function coloredMnistAccuracy(clip: Clip, data: ColoredMnist, options: EvalOptions & { limit?: number } = {}): Promise<ColoredMnistScores> {
  const { dataset, digitColor, background } = data;
  const labels = dataset.labels as Int32Array;
  const NC = DIGIT_COLORS.length;
  const NB = BACKGROUND_COLORS.length;
  const K = 10 * NC * NB;
  const key = (d: number, c: number, b: number): number => (d * NC + c) * NB + b;
  const prompts: string[] = [];
  for (let d = 0; d < 10; d++) for (let c = 0; c < NC; c++) for (let b = 0; b < NB; b++) prompts.push(coloredMnistPrompt(d, c, b));
  const count = Math.min(options.limit ?? dataset.count, dataset.count);
  if (count === 0) throw new Error('coloredMnistAccuracy: no images');
  const textEmb = embedPrompts(clip, prompts, options);
  let sims: Float32Array;
  try {
    sims = await imageTextSimilarities(clip, dataset, count, textEmb, options);
  } finally {
    textEmb.dispose();
  }
  type Tally = { digit: number; color: number; background: number; all: number; count: number };
  const tallies = { overall: zeroTally(), seen: zeroTally(), heldOut: zeroTally() };
  for (let i = 0; i < count; i++) {
    const row = sims.subarray(i * K, (i + 1) * K);
    const d = labels[i];
    const c = digitColor[i];
    const b = background[i];
    const argmax = (n: number, at: (j: number) => number): number => {
      let best = 0;
      for (let j = 1; j < n; j++) if (row[at(j)] > row[at(best)]) best = j;
      return best;
    };
    const hit = {
      digit: argmax(10, (j) => key(j, c, b)) === d,
      color: argmax(NC, (j) => key(d, j, b)) === c,
      background: argmax(NB, (j) => key(d, c, j)) === b,
      all: argmax(K, (j) => j) === key(d, c, b),
    };
    for (const t of [tallies.overall, isHeldOut(d, c, b) ? tallies.heldOut : tallies.seen] as Tally[]) {
      t.count++;
      if (hit.digit) t.digit++;
      if (hit.color) t.color++;
      if (hit.background) t.background++;
      if (hit.all) t.all++;
    }
  }
  const rate = (t: Tally): AttributeAccuracy => ({
    digit: t.digit / t.count,
    color: t.color / t.count,
    background: t.background / t.count,
    all: t.all / t.count,
    count: t.count,
  });
  return { overall: rate(tallies.overall), seen: rate(tallies.seen), heldOut: rate(tallies.heldOut) };
}

function zeroTally(): { digit: number; color: number; background: number; all: number; count: number } {
  return { digit: 0, color: 0, background: 0, all: 0, count: 0 };
}
