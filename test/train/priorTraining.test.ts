/**
 * Training the diffusion prior (train/priorTraining.ts): CLIP embedding pairs
 * from a tiny CLIP, an overfit on synthetic pairs whose image embedding is a
 * fixed rotation of the text embedding (the loss falls, samples land on the
 * targets, the validation numbers are what they claim), a self-describing
 * checkpoint that reloads, exact resume, flat tensor counts, and refusals.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../../src/models/clip';
import { DiffusionPrior, samplePriorEmbeddings } from '../../src/models/prior';
import { makeSchedule } from '../../src/schedule/schedule';
import { Rng } from '../../src/backend/random';
import { ImageDataset } from '../../src/data/dataset';
import { readModelConfig } from '../../src/io/checkpointFile';
import { clipEmbeddingPairs, PairOrder, PRIOR_METRICS_FILE, PRIOR_WEIGHTS_FILE, priorTrainConfig, PriorTrainConfig, slicePairs, trainPrior, validatePairs } from '../../src/train/priorTraining';
import { loadPrior } from '../../src/node/pipelineParts';
import { expectClose, useBackend } from '../helpers';
import { rotatedPairs } from './tinyData';

beforeAll(async () => {
  await useBackend('wasm');
});

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'prior-train-'));
}


function meanRowCosine(a: ArrayLike<number>, b: ArrayLike<number>, n: number, e: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < e; k++) {
      dot += a[i * e + k] * b[i * e + k];
      na += a[i * e + k] ** 2;
      nb += b[i * e + k] ** 2;
    }
    total += dot / Math.sqrt(na * nb);
  }
  return total / n;
}

const PRIOR = { embedDim: 8, width: 64, depth: 2, mlpRatio: 2, timeEmbeddingDim: 32, seed: 3 };
const SCHEDULE = { kind: 'cosine', timesteps: 100 } as const;

// ---------------------------------------------------------------- pairs

describe('clipEmbeddingPairs', () => {
  it('embeds each (padded) image and its own caption with the frozen CLIP, independent of the batch size', async () => {
    const clip = new Clip({
      image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
      text: { maxLength: 12, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
      seed: 5,
    });
    const n = 5;
    const rng = new Rng('imgs');
    const pixels = Uint8Array.from({ length: n * 6 * 6 * 3 }, () => Math.floor(rng.uniform() * 256));
    const captions = ['red', 'blue', 'red', 'a green one', 'blue'];
    const dataset: ImageDataset = { name: 'tiny6', split: 'train', images: pixels, count: n, height: 6, width: 6, channels: 3, labels: null, classNames: null, captions };
    const before = tf.memory().numTensors;
    const pairs = await clipEmbeddingPairs(clip, dataset, { batchSize: 2 });
    const pairs5 = await clipEmbeddingPairs(clip, dataset, { batchSize: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(validatePairs(pairs)).toBe(pairs);
    expect(pairs.count).toBe(5);
    expect(pairs.embedDim).toBe(8);
    expect(pairs.captions).toEqual(captions);
    await expectClose(pairs5.image, pairs.image, 1e-5);
    await expectClose(pairs5.text, pairs.text, 1e-5);

    // Reference: pixels scaled to [-1, 1] by hand and padded by 1 with -1 on each side; captions embedded one by one.
    const images = tf.tidy(() => tf.pad(tf.sub(tf.div(tf.tensor4d(pixels, [n, 6, 6, 3], 'float32'), 127.5), 1), [[0, 0], [1, 1], [1, 1], [0, 0]], -1) as tf.Tensor4D);
    const refImage = clip.embedImages(images);
    await expectClose(pairs.image, await refImage.data(), 1e-5);
    const tokenizer = clip.tokenizer();
    for (let i = 0; i < n; i++) {
      const one = clip.embedTexts(tokenizer, [captions[i]]);
      await expectClose(pairs.text.subarray(i * 8, (i + 1) * 8), await one.data(), 1e-5);
      one.dispose();
    }
    tf.dispose([images, refImage]);

    expect(() => validatePairs({ ...pairs, captions: captions.slice(1) })).toThrow(/5 pairs but 4 captions/);
    expect(() => validatePairs({ ...pairs, text: pairs.text.subarray(8) })).toThrow(/count \* embedDim = 40 values, got 32 and 40/);
    await expect(clipEmbeddingPairs(clip, { ...dataset, captions: null })).rejects.toThrow(/has no captions/);
    await expect(clipEmbeddingPairs(clip, { ...dataset, images: new Uint8Array(n * 6 * 6), channels: 1 })).rejects.toThrow(/1 channel\(s\), the CLIP expects 3/);
    clip.dispose();
  });
});

describe('PairOrder', () => {
  it('visits each pair once per epoch and is a pure function of the step', () => {
    const order = new PairOrder(10, 4, 1);
    const stream = [0, 1, 2, 3, 4].flatMap((s) => Array.from(order.indices(s)));
    expect([...stream.slice(0, 10)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...stream.slice(10, 20)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(stream.slice(0, 10)).not.toEqual(stream.slice(10, 20));
    expect(Array.from(new PairOrder(10, 4, 1).indices(3))).toEqual(stream.slice(12, 16));
  });
});

// ---------------------------------------------------------------- training

describe('trainPrior', () => {
  it('overfits rotated pairs: loss falls > 5x, sampled embeddings reach the targets, validation numbers are right, checkpoint reloads', async () => {
    const before = tf.memory().numTensors;
    const out = tmpDir();
    const pairs = rotatedPairs(16, 8, 'overfit');
    const prior = new DiffusionPrior(PRIOR);
    const ema = new DiffusionPrior(PRIOR);
    const schedule = makeSchedule(SCHEDULE);
    const config = priorTrainConfig({
      steps: 200, batchSize: 16, lr: 3e-3, warmupSteps: 10, lrDecay: 'cosine', lrMinRatio: 0.1, weightDecay: 0, logEvery: 20,
      checkpointEvery: 200, valEvery: 0, valSize: 16, valSteps: 20, seed: 2, ema: { maxDecay: 0.99, power: 0.75, invGamma: 1 },
    });
    const result = await trainPrior({
      prior, ema, schedule, pairs, validation: pairs, config, outDir: out, resume: false, checkpointConfig: { clip: { file: 'clip.safetensors', embedDim: 8 } },
    });
    expect(result.losses).toHaveLength(200);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(result.losses.slice(0, 10));
    const last = mean(result.losses.slice(-20));
    // At init the output is 0, so the x0 loss is mean(x0^2) = 1 (x0 = sqrt(E) * unit vector).
    expect(first).toBeGreaterThan(0.5);
    expect(last).toBeLessThan(first / 5);

    // Samples from the trained prior (DDIM 20 steps) land on R text.
    const text = tf.tensor2d(pairs.text, [16, 8]);
    const sampled = await samplePriorEmbeddings(prior, schedule, text, { steps: 20, seed: 9 });
    const cos = meanRowCosine(await sampled.data(), pairs.image, 16, 8);
    expect(cos).toBeGreaterThan(0.9);
    tf.dispose([text, sampled]);

    // Validation (EMA prior, at the end): the baseline is mean cos(text, image); the sampled cosine beats it here.
    const val = result.lastValidation;
    expect(val).not.toBeNull();
    if (val === null) throw new Error('unreachable');
    expect(val.count).toBe(16);
    expect(val.textCosine).toBeCloseTo(meanRowCosine(pairs.text, pairs.image, 16, 8), 5);
    expect(val.sampledCosine).toBeGreaterThan(0.9);
    expect(val.sampledCosine).toBeGreaterThan(val.textCosine + 0.3);
    const rows = fs.readFileSync(path.join(out, PRIOR_METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; val?: unknown });
    expect(rows.map((r) => r.step)).toEqual([20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
    expect(rows[rows.length - 1].val).toEqual(val);
    expect(fs.existsSync(path.join(out, 'prior-loss.png'))).toBe(true);

    // The checkpoint holds the EMA weights and describes itself.
    const file = path.join(out, PRIOR_WEIGHTS_FILE);
    const info = await readModelConfig(file);
    expect(info.kind).toBe('prior');
    expect(info.step).toBe(200);
    const cfg = info.config as { prior: unknown; schedule: { kind: string; timesteps: number }; clip: unknown };
    expect(cfg.prior).toEqual(prior.config);
    expect(cfg.schedule).toMatchObject(SCHEDULE);
    expect(cfg.clip).toEqual({ file: 'clip.safetensors', embedDim: 8 });
    const loaded = await loadPrior(file);
    expect(loaded.prior.config).toEqual(prior.config);
    expect(loaded.schedule.alphasCumprod).toEqual(schedule.alphasCumprod);
    for (const [n, v] of loaded.prior.namedParameters()) await expectClose(v, ema.stateDict().get(n) as tf.Tensor, 0);
    loaded.prior.dispose();

    prior.dispose();
    ema.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes exactly: 6 + 6 steps == 12 steps (losses and weights); tensor count flat across steps', async () => {
    const before = tf.memory().numTensors;
    const pairs = rotatedPairs(20, 8, 'resume');
    const schedule = makeSchedule(SCHEDULE);
    const config: PriorTrainConfig = priorTrainConfig({ steps: 12, batchSize: 8, lr: 1e-3, warmupSteps: 3, logEvery: 1, checkpointEvery: 100, seed: 4 });
    const run = async (outDir: string, resume: boolean, stopAt: number | null): Promise<{ losses: number[]; counts: number[]; weights: Map<string, Float32Array> }> => {
      const prior = new DiffusionPrior(PRIOR);
      const ema = new DiffusionPrior(PRIOR);
      const controller = new AbortController();
      const counts: number[] = [];
      const result = await trainPrior({
        prior, ema, schedule, pairs, config, outDir, resume, signal: controller.signal,
        onMetrics: (row) => {
          counts.push(tf.memory().numTensors);
          if (row.step === stopAt) controller.abort();
        },
      });
      const weights = new Map<string, Float32Array>();
      for (const [n, v] of [...prior.namedParameters().map(([n, v]) => [`model.${n}`, v] as const), ...ema.namedParameters().map(([n, v]) => [`ema.${n}`, v] as const)]) {
        weights.set(n, (await v.data()) as Float32Array);
      }
      prior.dispose();
      ema.dispose();
      expect(result.stoppedEarly).toBe(stopAt !== null);
      return { losses: result.losses, counts, weights };
    };
    const whole = await run(tmpDir(), false, null);
    const split = tmpDir();
    const a = await run(split, false, 6);
    const b = await run(split, true, null);
    expect(a.losses).toHaveLength(6);
    expect(b.losses).toHaveLength(6);
    expect([...a.losses, ...b.losses]).toEqual(whole.losses);
    for (const [n, w] of whole.weights) expect(Array.from(b.weights.get(n) as Float32Array)).toEqual(Array.from(w));
    // Same tensors alive after every step (the optimiser's moments exist from step 1 on).
    expect(new Set(whole.counts).size).toBe(1);
    const rows = fs.readFileSync(path.join(split, PRIOR_METRICS_FILE), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(rows).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses bad configs, mismatched embedding widths, mismatched EMA and resume settings', async () => {
    expect(() => priorTrainConfig({ steps: 0 })).toThrow(/steps must be a positive integer, got 0/);
    expect(() => priorTrainConfig({ condDropProb: 1 })).toThrow(/condDropProb must be in \[0, 1\), got 1/);
    expect(() => priorTrainConfig({ lr: 0 })).toThrow(/lr must be > 0/);
    expect(() => priorTrainConfig({ valEvery: -1 })).toThrow(/valEvery must be a non-negative integer/);
    expect(() => priorTrainConfig({ lrDecay: 'linear' as never })).toThrow(/lrDecay must be 'constant' or 'cosine'/);
    expect(() => priorTrainConfig({ ema: { maxDecay: 1, power: 0.75, invGamma: 1 } })).toThrow(/ema needs 0 <= maxDecay < 1/);
    expect(() => slicePairs(rotatedPairs(4, 8, 'x'), 2, 5)).toThrow(/0 <= start < end <= 4/);

    const before = tf.memory().numTensors;
    const schedule = makeSchedule(SCHEDULE);
    const prior = new DiffusionPrior(PRIOR);
    const ema = new DiffusionPrior(PRIOR);
    const other = new DiffusionPrior({ ...PRIOR, width: 32 });
    const config = priorTrainConfig({ steps: 2, batchSize: 4, logEvery: 1, checkpointEvery: 1 });
    const out = tmpDir();
    await expect(trainPrior({ prior, ema, schedule, pairs: rotatedPairs(8, 6, 'e6'), config, outDir: out, resume: false }))
      .rejects.toThrow(/pairs have embedDim 6, the prior expects 8/);
    await expect(trainPrior({ prior, ema, schedule, pairs: rotatedPairs(8, 8, 'e8'), validation: rotatedPairs(4, 4, 'e4'), config, outDir: out, resume: false }))
      .rejects.toThrow(/validation pairs have embedDim 4, the prior expects 8/);
    await expect(trainPrior({ prior, ema: other, schedule, pairs: rotatedPairs(8, 8, 'e8'), config, outDir: out, resume: false }))
      .rejects.toThrow(/EMA prior must have the same config/);
    await trainPrior({ prior, ema, schedule, pairs: rotatedPairs(8, 8, 'e8'), config, outDir: out, resume: false });
    await expect(trainPrior({ prior, ema, schedule, pairs: rotatedPairs(8, 8, 'e8'), config: { ...config, steps: 4, batchSize: 2 }, outDir: out, resume: true }))
      .rejects.toThrow(/saved with batch 4 \/ seed 0, resumed with batch 2 \/ seed 0/);
    await expect(trainPrior({ prior, ema, schedule, pairs: rotatedPairs(9, 8, 'e8'), config: { ...config, steps: 4 }, outDir: out, resume: true }))
      .rejects.toThrow(/saved with 8 training pairs, resumed with 9/);
    await expect(loadPrior(path.join(out, 'prior-state.safetensors'))).rejects.toThrow(/expected a 'prior' checkpoint, got kind 'training-state'/);
    prior.dispose();
    ema.dispose();
    other.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
