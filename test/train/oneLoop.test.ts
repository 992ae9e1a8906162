/**
 * The one training loop (src/train/loop.ts) beyond what each family's own tests check:
 * - a run kept in memory (MemoryRun: no files, the store a browser tab would use)
 *   stopped and resumed reproduces the losses of an uninterrupted run exactly, and
 *   follows a folder's rules (no new run over a run without overwrite);
 * - CLIP and the autoencoder with 2 data-parallel workers train as one thread does
 *   (CLIP's contrastive loss keeps its negatives from the whole batch).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { relativeError, tinyTwoClassDataset, useBackend } from '../helpers';
import { colourDataset, squaresDataset } from './tinyData';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig } from '../../src/models/unet';
import { Clip } from '../../src/models/clip';
import { makeSchedule } from '../../src/schedule/schedule';
import { trainDiffusion, DIFFUSION_RUN_FILES } from '../../src/train/diffusionTraining';
import { trainConfig } from '../../src/train/trainConfig';
import { clipTrainConfig, trainClip } from '../../src/train/clipTraining';
import { autoencoderTrainConfig, trainAutoencoder } from '../../src/train/autoencoderTraining';
import { MemoryRun } from '../../src/train/runStore';

beforeAll(async () => useBackend('wasm'));

const CORES = os.cpus().length;
const itMulticore = CORES >= 2 ? it : it.skip;

const UNET = unetConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, numClasses: 2 });
const DIFFUSION = trainConfig({ steps: 6, batchSize: 4, lr: 2e-3, warmupSteps: 2, logEvery: 1, valEvery: 0, sampleEvery: 0, checkpointEvery: 2, seed: 3 });
const NOWHERE = path.join(os.tmpdir(), 'tfjs-diffusion-never-written'); // outDir of the memory runs: must stay absent

async function diffusionInMemory(store: MemoryRun, opts: { resume: boolean; stopAfter?: number }): Promise<number[]> {
  const model = new UNet(UNET, new Rng('3/init'));
  const ema = new UNet(UNET, new Rng('3/init'));
  const controller = new AbortController();
  try {
    const r = await trainDiffusion({
      model, ema, schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train: tinyTwoClassDataset(12, 1), validation: null,
      config: DIFFUSION, outDir: NOWHERE, store, checkpointConfig: {}, resume: opts.resume, signal: controller.signal,
      onMetrics: (row) => {
        if (row.step === opts.stopAfter) controller.abort();
      },
    });
    return r.losses;
  } finally {
    model.dispose();
    ema.dispose();
  }
}

describe('a run kept in memory (MemoryRun)', () => {
  it('stopped at step 3 and resumed, gives the losses of an uninterrupted run exactly; writes no file; tensors freed', async () => {
    const before = tf.memory().numTensors;
    const full = new MemoryRun('full');
    const reference = await diffusionInMemory(full, { resume: false });
    expect(reference).toHaveLength(6);
    expect(full.weights(DIFFUSION_RUN_FILES.weights)?.meta.step).toBe(6);

    const split = new MemoryRun('split');
    const first = await diffusionInMemory(split, { resume: false, stopAfter: 3 });
    expect(first).toHaveLength(3);
    const rest = await diffusionInMemory(split, { resume: true });
    expect([...first, ...rest]).toEqual(reference);
    expect(fs.existsSync(NOWHERE)).toBe(false);

    // A folder's rules: a new run over the run is refused, overwrite starts over.
    await expect(diffusionInMemory(split, { resume: false })).rejects.toThrow(/memory:split holds a run \(state\.safetensors, model\.safetensors\)/);
    full.dispose();
    split.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 120000);
});

describe('data-parallel workers for CLIP and the autoencoder (2 workers = one thread)', () => {
  const CLIP_MODEL = {
    image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
    text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
    seed: 5,
  };

  async function clipRun(workers: number): Promise<{ losses: number[]; weights: Float32Array }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-oneloop-clip-'));
    const clip = new Clip(CLIP_MODEL);
    try {
      // batch 7 of 32 captions in 4 colours: an uneven 4 + 3 split, positives in both slices
      const config = clipTrainConfig({ steps: 4, batchSize: 7, lr: 3e-3, warmupSteps: 1, lrDecay: 'constant', logEvery: 1, evalEvery: 0, checkpointEvery: 4, seed: 1, workers });
      const r = await trainClip({ clip, train: colourDataset(), config, outDir: dir, resume: false });
      const weights = Float32Array.from(clip.namedParameters().flatMap(([, v]) => Array.from(v.dataSync())));
      return { losses: r.losses, weights };
    } finally {
      clip.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  itMulticore('CLIP: the losses of 2 workers equal one thread\'s (<= 1e-5), the trained weights to Adam\'s rounding (<= 1e-4)', async () => {
    const one = await clipRun(1);
    const two = await clipRun(2);
    expect(one.losses).toHaveLength(4);
    expect(relativeError(two.losses, one.losses)).toBeLessThanOrEqual(1e-5);
    // The gradients agree to ~1e-7 (test/train/dataParallelFamilies.test.ts); Adam's g / (sqrt(v) + eps) turns
    // rounding-level differences of near-zero gradient entries into steps of up to lr (measured 4e-5 after 4 steps).
    expect(relativeError(two.weights, one.weights)).toBeLessThanOrEqual(1e-4);
  }, 120000);

  async function autoencoderRun(workers: number): Promise<number[]> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-oneloop-ae-'));
    try {
      const config = autoencoderTrainConfig({ steps: 4, batchSize: 5, seed: 3, lr: 2e-3, warmupSteps: 1, logEvery: 1, valEvery: 0, sampleEvery: 0, checkpointEvery: 4, scaleImages: 0, klWeight: 1e-3, workers });
      const r = await trainAutoencoder({
        train: squaresDataset(20, 1), validation: null, autoencoder: { baseChannels: 8, channelMults: [1, 2], groups: 4, latentChannels: 2, heads: 2 }, config, outDir: dir, resume: false,
      });
      return r.losses;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  itMulticore('autoencoder: the losses of 2 workers equal one thread\'s (<= 1e-5)', async () => {
    const one = await autoencoderRun(1);
    const two = await autoencoderRun(2);
    expect(one).toHaveLength(4);
    expect(relativeError(two, one)).toBeLessThanOrEqual(1e-5);
  }, 120000);
});
