/**
 * Training the unCLIP parts (src/pipelines/unclipTraining.ts) for a few steps
 * on 8 MNIST digits with a tiny CLIP: the decoder's embedding table is the
 * CLIP image embedding of each padded image (cached in the run folder), its
 * checkpoint records the CLIP, the CLIP file is untouched, resume continues
 * and refuses a changed setup; the prior trains on clipEmbeddingPairs and
 * records the CLIP; the two runs assemble into an unclip pipeline folder that
 * loadTextPipeline samples 28x28 digits from. Tensor counts stay flat.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { Clip } from '../../src/models/clip';
import { learnBpeMerges } from '../../src/models/tokenizer';
import { loadCaptionedDataset } from '../../src/data/captioned';
import { fixedBatch } from '../../src/data/batches';
import { ImageDataset } from '../../src/data/dataset';
import { readModelConfig, saveModelWeights } from '../../src/train/checkpoint';
import { loadClip } from '../../src/train/clipTraining';
import { METRICS_FILE, WEIGHTS_FILE } from '../../src/train/loop';
import { PRIOR_WEIGHTS_FILE } from '../../src/train/priorTraining';
import { readSafetensors } from '../../src/io/safetensors';
import { fileSha256 } from '../../src/pipelines/latentData';
import { unclipDecoderCheckpointConfig, unclipPriorCheckpointConfig, writeUnclipPipeline } from '../../src/pipelines/unclip';
import { TRAIN_EMBEDDINGS_FILE, trainUnclipDecoder, trainUnclipPrior, UnclipDecoderTrainingOptions, VALIDATION_EMBEDDINGS_FILE } from '../../src/pipelines/unclipTraining';
import { loadTextPipeline } from '../../src/pipelines/loadPipeline';

beforeAll(async () => useBackend('wasm'));

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-unclip-train-'));
}

/** A tiny CLIP for 32x32 MNIST (E 8, BPE text tower of 24 tokens), saved with step 5 and the given seed. */
async function writeClip(file: string, seed = 0): Promise<void> {
  const clip = new Clip({
    image: { inChannels: 1, imageSize: 32, channels: [4, 8], groups: 2, embedDim: 8 },
    text: { maxLength: 24, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
    tokenizer: { merges: learnBpeMerges(['a handwritten 1', 'the digit seven', 'a thick 3'], { maxMerges: 6 }) },
    seed: 5,
  });
  await saveModelWeights(file, clip, { kind: 'clip', config: { clip: clip.config }, step: 5, seed });
  clip.dispose();
}

/** The CLIP image embeddings of a dataset's images, padded 28 -> 32 with -1, computed here directly. */
async function embeddingsOf(clip: Clip, d: ImageDataset): Promise<Float32Array> {
  const batch = fixedBatch(d, Array.from({ length: d.count }, (_, i) => i), { padTo: 32 });
  const e = clip.embedImages(batch.x);
  const out = (await e.data()) as Float32Array;
  tf.dispose([batch.x, e]);
  batch.labels?.dispose();
  return out;
}

async function cachedTable(file: string): Promise<Float32Array> {
  return (await readSafetensors(file)).tensors.get('image_embeddings')?.data as Float32Array;
}

const DECODER_OPTIONS = (clip: string, outDir: string): UnclipDecoderTrainingOptions => ({
  dataset: 'mnist', limit: 8, attributes: false, clip, preset: 'tiny',
  unet: { baseChannels: 8, heads: 2, timeEmbeddingDim: 16, timeEmbeddingInputDim: 16, imageEmbeddingTokens: 2 }, predictionType: 'v',
  schedule: { kind: 'cosine', timesteps: 50 },
  train: { steps: 2, batchSize: 2, warmupSteps: 0, logEvery: 1, valEvery: 2, valSize: 2, sampleEvery: 0, checkpointEvery: 2, condDropProb: 0.5 },
  outDir, resume: false, grid: { rows: 2, perImage: 1, sampler: 'ddim', steps: 2, guidance: 2 },
});

describe('trainUnclipDecoder, trainUnclipPrior and the assembled folder', () => {
  let root: string;
  let clipFile: string;
  beforeAll(async () => {
    root = tmpDir();
    clipFile = path.join(root, 'clip.safetensors');
    await writeClip(clipFile);
  });

  it('trains a decoder on the CLIP image embedding and the caption; the table is the CLIP embedding of each padded image; resumes', async () => {
    const sha = fileSha256(clipFile);
    const outDir = path.join(root, 'decoder');
    const before = tf.memory().numTensors;
    const r = await trainUnclipDecoder({ ...DECODER_OPTIONS(clipFile, outDir), withText: true });
    expect(tf.memory().numTensors).toBe(before);
    expect([r.startStep, r.endStep, r.losses.length]).toEqual([0, 2, 2]);
    expect(r.losses.every((l) => Number.isFinite(l))).toBe(true);
    const u = r.config.unet;
    expect([u.imageEmbeddingDim, u.imageEmbeddingTokens, u.contextDim, u.addPooledContextToTime, u.sampleSize, u.predictionType]).toEqual([8, 2, 8, true, 32, 'v']);
    expect(fileSha256(clipFile)).toBe(sha); // the CLIP is frozen and never written
    // the checkpoint is self-describing: pixel space, the CLIP (config, step, seed) and its text tower
    const saved = unclipDecoderCheckpointConfig((await readModelConfig(path.join(outDir, WEIGHTS_FILE))).config, 'decoder');
    expect([saved.space, saved.imageSize, saved.imageChannels, saved.imageEmbeddingDim, saved.dataset]).toEqual(['pixel', 28, 1, 8, 'mnist']);
    expect([saved.clip?.step, saved.clip?.seed]).toEqual([5, 0]);
    const clip = await loadClip(clipFile);
    try {
      expect(saved.clip?.config).toEqual(clip.config);
      expect(saved.textEncoder).toEqual({ text: clip.config.text, tokenizer: clip.config.tokenizer });
      // the embedding tables: clip.embedImages of the images padded to 32 (train, and the held-out images)
      const train = loadCaptionedDataset('mnist', 'train', { seed: 0, limit: 8 });
      const test = loadCaptionedDataset('mnist', 'test', { seed: 0, limit: 2 });
      await expectClose(await cachedTable(path.join(outDir, TRAIN_EMBEDDINGS_FILE)), await embeddingsOf(clip, train), 1e-6);
      await expectClose(await cachedTable(path.join(outDir, VALIDATION_EMBEDDINGS_FILE)), await embeddingsOf(clip, test), 1e-6);
    } finally {
      clip.dispose();
    }
    // the validation loss ran (it needs the held-out embeddings), and a variations grid was written
    const rows = fs.readFileSync(path.join(outDir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { valLoss?: number });
    expect(Number.isFinite(rows[rows.length - 1].valLoss)).toBe(true);
    expect(fs.readdirSync(path.join(outDir, 'samples')).filter((f) => f.endsWith('.png'))).toHaveLength(1);
    expect(fs.existsSync(path.join(outDir, 'pipeline.json'))).toBe(false);

    const resumed = await trainUnclipDecoder({ ...DECODER_OPTIONS(clipFile, outDir), withText: true, resume: true, train: { ...DECODER_OPTIONS(clipFile, outDir).train, steps: 3 } });
    expect([resumed.startStep, resumed.endStep]).toEqual([2, 3]);
    expect(tf.memory().numTensors).toBe(before);
    await expect(trainUnclipDecoder({ ...DECODER_OPTIONS(clipFile, outDir), withText: false, resume: true })).rejects.toThrow(
      /the run trains a decoder with captions, resumed with withText false: resume needs the same value/);
    const other = path.join(root, 'other-clip.safetensors');
    await writeClip(other, 1);
    await expect(trainUnclipDecoder({ ...DECODER_OPTIONS(other, outDir), withText: true, resume: true })).rejects.toThrow(
      /not the CLIP this run was started with .*: training seed 0 vs 1 differ/);
    expect(tf.memory().numTensors).toBe(before);
  }, 60000);

  // Needs train/loop.ts to train a UNet whose only context is the image embedding (no textStates):
  // it refuses today ("pass textStates"). Flip to `it` once the loop accepts image-only decoders.
  it('trains an image-embedding-only decoder (the default): no text tower, no pooled-text projection', async () => {
    const outDir = path.join(root, 'decoder-image-only');
    const before = tf.memory().numTensors;
    const r = await trainUnclipDecoder(DECODER_OPTIONS(clipFile, outDir));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.losses.every((l) => Number.isFinite(l))).toBe(true);
    const u = r.config.unet;
    expect([u.imageEmbeddingDim, u.contextDim, u.addPooledContextToTime]).toEqual([8, 8, false]);
    expect(r.config.textEncoder).toBeNull();
    const resumed = await trainUnclipDecoder({ ...DECODER_OPTIONS(clipFile, outDir), resume: true, train: { ...DECODER_OPTIONS(clipFile, outDir).train, steps: 3 } });
    expect([resumed.startStep, resumed.endStep]).toEqual([2, 3]);
    expect(tf.memory().numTensors).toBe(before);
  }, 60000);

  it('trains a prior on the CLIP embedding pairs (held-out pairs from the test split), resumes, and refuses another CLIP', async () => {
    const outDir = path.join(root, 'prior');
    const o = {
      dataset: 'mnist' as const, limit: 8, attributes: false, clip: clipFile, prior: { width: 16, depth: 1, timeEmbeddingDim: 8 },
      schedule: { kind: 'cosine' as const, timesteps: 40 },
      train: { steps: 2, batchSize: 4, warmupSteps: 0, logEvery: 1, checkpointEvery: 2, valEvery: 2, valSize: 4, valSteps: 2 }, outDir, resume: false,
    };
    const before = tf.memory().numTensors;
    const r = await trainUnclipPrior(o);
    expect(tf.memory().numTensors).toBe(before);
    expect([r.startStep, r.endStep, r.pairs, r.config.embedDim, r.lastValidation?.count]).toEqual([0, 2, 8, 8, 4]);
    const info = await readModelConfig(path.join(outDir, PRIOR_WEIGHTS_FILE));
    const saved = unclipPriorCheckpointConfig(info.config, 'prior');
    expect([info.kind, saved.prior.width, saved.clip?.step, saved.schedule.timesteps]).toEqual(['prior', 16, 5, 40]);
    const resumed = await trainUnclipPrior({ ...o, resume: true, train: { ...o.train, steps: 3 } });
    expect([resumed.startStep, resumed.endStep]).toEqual([2, 3]);
    const other = path.join(root, 'other-clip-2.safetensors');
    await writeClip(other, 2);
    await expect(trainUnclipPrior({ ...o, clip: other, resume: true })).rejects.toThrow(/not the CLIP this run was started with .*: training seed 0 vs 2 differ/);
    expect(tf.memory().numTensors).toBe(before);
  }, 30000);

  it('the two runs and the CLIP assemble into an unclip folder that loadTextPipeline samples 28x28 digits from', async () => {
    const out = path.join(root, 'pipeline');
    const before = tf.memory().numTensors;
    await writeUnclipPipeline(out, { clip: clipFile, priorRun: path.join(root, 'prior'), decoderRun: path.join(root, 'decoder'), defaults: { sampler: 'ddim', steps: 2, priorSteps: 2 } });
    const t = await loadTextPipeline(out);
    try {
      expect([t.design, t.dataset, t.imageSize, t.trainingStep]).toEqual(['unclip', 'mnist', 28, 3]);
      const x = await t.generate({ prompts: ['a handwritten 7'], n: 2, seed: 0 });
      expect(x.shape).toEqual([2, 28, 28, 1]);
      const v = x.dataSync();
      expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...v)).toBeLessThanOrEqual(1);
      x.dispose();
    } finally {
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  }, 30000);
});
