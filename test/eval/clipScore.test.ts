/**
 * CLIP-based evaluation: every number is recomputed by brute force from the
 * model's own embeddings (one image, one prompt at a time) and compared; batch
 * size must not matter; negative cosines score 0.
 */
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../../src/models/clip';
import { clipScore, coloredMnistAccuracy, digitPrompts, zeroShotAccuracy } from '../../src/eval/clipScore';
import { loadMnist } from '../../src/data/mnist';
import { fixedBatch } from '../../src/data/batches';
import { BACKGROUND_COLORS, coloredMnistPrompt, DIGIT_COLORS, isHeldOut, loadColoredMnist } from '../../src/data/coloredMnist';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

const TINY = (inChannels: number): ConstructorParameters<typeof Clip>[0] => ({
  image: { inChannels, imageSize: 32, channels: [4], groups: 2, embedDim: 8 },
  text: { maxLength: 48, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 7 },
  seed: 8,
});

/** cos(image i, prompt) for each prompt, one image and one prompt at a time. */
function bruteCosines(clip: Clip, image: tf.Tensor4D, prompts: readonly string[]): number[] {
  return tf.tidy(() => {
    const img = clip.embedImages(image);
    return prompts.map((p) => tf.sum(tf.mul(img, clip.embedTexts(clip.tokenizer(), [p]))).dataSync()[0]);
  });
}

describe('clipScore', () => {
  it('is 100 * max(cos, 0) per pair, independent of the batch size, with the mean', async () => {
    const before = tf.memory().numTensors;
    const clip = new Clip(TINY(1));
    const mnist = loadMnist('test', { limit: 6 });
    const batch = fixedBatch(mnist, [0, 1, 2, 3, 4, 5], { padTo: 32 });
    const prompts = ['a 7', 'a handwritten 2', 'one', 'zero', 'the digit four', '1'];
    const a = await clipScore(clip, batch.x, prompts, { batchSize: 4 });
    const b = await clipScore(clip, batch.x, prompts, { batchSize: 6 });
    const cosines = prompts.map((p, i) => {
      const one = tf.slice(batch.x, [i, 0, 0, 0], [1, -1, -1, -1]);
      const cos = bruteCosines(clip, one, [p])[0];
      one.dispose();
      return cos;
    });
    cosines.forEach((cos, i) => {
      expect(a.scores[i]).toBeCloseTo(100 * Math.max(cos, 0), 2); // float32 cos to ~1e-5
      expect(b.scores[i]).toBeCloseTo(a.scores[i], 2);
    });
    expect(a.mean).toBeCloseTo(a.scores.reduce((s, v) => s + v, 0) / 6, 4);
    // Negating the text projection negates every cosine: each pair now scores 100 * max(-cos, 0), clipped at 0.
    tf.tidy(() => clip.textEncoder.textProjection.weight.assign(tf.neg(clip.textEncoder.textProjection.weight)));
    const c = await clipScore(clip, batch.x, prompts);
    cosines.forEach((cos, i) => {
      expect(c.scores[i]).toBeCloseTo(100 * Math.max(-cos, 0), 2);
      expect(Math.min(a.scores[i], c.scores[i])).toBe(0);
    });
    await expect(clipScore(clip, batch.x, prompts.slice(1))).rejects.toThrow(/5 prompts for 6 images/);
    tf.dispose([batch.x, batch.labels as tf.Tensor]);
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('zeroShotAccuracy', () => {
  it('predicts the argmax prompt per image (28x28 padded to 32) and scores it against the labels', async () => {
    const before = tf.memory().numTensors;
    const clip = new Clip(TINY(1));
    const mnist = loadMnist('test', { limit: 10 });
    const prompts = digitPrompts();
    expect(prompts[7]).toBe('a handwritten 7');
    expect(digitPrompts('the digit {n}')[0]).toBe('the digit 0');
    const r = await zeroShotAccuracy(clip, mnist, prompts, { batchSize: 3 });
    const labels = mnist.labels as Int32Array;
    let hits = 0;
    for (let i = 0; i < 10; i++) {
      const batch = fixedBatch(mnist, [i], { padTo: 32 });
      const cos = bruteCosines(clip, batch.x, prompts);
      tf.dispose([batch.x, batch.labels as tf.Tensor]);
      expect(r.predictions[i]).toBe(cos.indexOf(Math.max(...cos)));
      if (r.predictions[i] === labels[i]) hits++;
    }
    expect(r.accuracy).toBeCloseTo(hits / 10, 10);
    expect(r.count).toBe(10);
    expect(r.perClass).toHaveLength(10);
    await expect(zeroShotAccuracy(clip, mnist, prompts.slice(0, 9))).rejects.toThrow(/9 prompts for the 10 classes/);
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('coloredMnistAccuracy', () => {
  it('digit / colour / background / exact retrieval equal brute force over the 480 prompts, split seen vs held-out', async () => {
    const before = tf.memory().numTensors;
    const clip = new Clip(TINY(3));
    const data = loadColoredMnist('test', { seed: 0, limit: 6 });
    const held = loadColoredMnist('test', { seed: 0, limit: 3, combinations: 'held-out' });
    const NC = DIGIT_COLORS.length;
    const NB = BACKGROUND_COLORS.length;
    const prompts: string[] = [];
    for (let d = 0; d < 10; d++) for (let c = 0; c < NC; c++) for (let b = 0; b < NB; b++) prompts.push(coloredMnistPrompt(d, c, b));
    const promptEmb = clip.embedTexts(clip.tokenizer(), prompts); // [480, E], one batch (the image side is what is checked)
    const cosines = (image: tf.Tensor4D): number[] => tf.tidy(() => Array.from(tf.matMul(promptEmb, tf.transpose(clip.embedImages(image))).dataSync()));
    for (const set of [data, held]) {
      const r = await coloredMnistAccuracy(clip, set, { batchSize: 4 });
      const labels = set.dataset.labels as Int32Array;
      const tally = { digit: 0, color: 0, background: 0, all: 0, heldOut: 0 };
      for (let i = 0; i < set.dataset.count; i++) {
        const batch = fixedBatch(set.dataset, [i]);
        const cos = cosines(batch.x);
        tf.dispose([batch.x, batch.labels as tf.Tensor]);
        const [d, c, b] = [labels[i], set.digitColor[i], set.background[i]];
        const at = (dd: number, cc: number, bb: number): number => cos[(dd * NC + cc) * NB + bb];
        const best = (n: number, f: (j: number) => number): number => Array.from({ length: n }, (_, j) => j).reduce((m, j) => (f(j) > f(m) ? j : m), 0);
        if (best(10, (j) => at(j, c, b)) === d) tally.digit++;
        if (best(NC, (j) => at(d, j, b)) === c) tally.color++;
        if (best(NB, (j) => at(d, c, j)) === b) tally.background++;
        if (best(prompts.length, (j) => cos[j]) === (d * NC + c) * NB + b) tally.all++;
        if (isHeldOut(d, c, b)) tally.heldOut++;
      }
      const n = set.dataset.count;
      expect(r.overall.count).toBe(n);
      expect(r.overall.digit).toBeCloseTo(tally.digit / n, 10);
      expect(r.overall.color).toBeCloseTo(tally.color / n, 10);
      expect(r.overall.background).toBeCloseTo(tally.background / n, 10);
      expect(r.overall.all).toBeCloseTo(tally.all / n, 10);
      expect(r.heldOut.count).toBe(tally.heldOut);
      expect(r.seen.count).toBe(n - tally.heldOut);
    }
    promptEmb.dispose();
    const r = await coloredMnistAccuracy(clip, held);
    expect(r.heldOut.count).toBe(3);
    expect(Number.isNaN(r.seen.digit)).toBe(true); // no seen images: NaN, not 0
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
