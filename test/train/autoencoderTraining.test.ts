import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng, keyedRng } from '../../src/backend/random';
import { fixedBatch } from '../../src/data/batches';
import { Autoencoder, autoencoderConfig, AutoencoderConfig } from '../../src/models/autoencoder';
import { autoencoderLoss, autoencoderTrainConfig, AutoencoderTrainConfig, METRICS_FILE, posteriorNoise, reconstructImages, STATE_FILE, trainAutoencoder, WEIGHTS_FILE } from '../../src/train/autoencoderTraining';
import { loadAutoencoder } from '../../src/node/pipelineParts';
import { AUTOENCODER_KIND } from '../../src/models/autoencoder';
import { computeLatentScale, latentScaleIndices, readScaleFactor, saveScaleFactor } from '../../src/train/latentScale';
import { readModelConfig, saveModelWeights } from '../../src/io/checkpointFile';

import { squaresDataset } from './tinyData';

beforeAll(async () => useBackend('wasm'));


/** 6x6 images are padded to 8x8 (next power of two) -> 4x4x2 latents. */
const AE: Partial<AutoencoderConfig> = { baseChannels: 8, channelMults: [1, 2], groups: 4, latentChannels: 2, heads: 2 };

const BASE: AutoencoderTrainConfig = autoencoderTrainConfig({
  steps: 6, batchSize: 4, seed: 3, lr: 2e-3, warmupSteps: 2, logEvery: 1, valEvery: 3, valSize: 8, sampleEvery: 3, sampleCount: 4,
  checkpointEvery: 3, scaleImages: 16, ema: {}, klWeight: 1e-3,
});

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-ae-'));
}

async function run(cfg: AutoencoderTrainConfig, outDir: string, resume: boolean, abortAfter?: number): Promise<number[]> {
  const controller = new AbortController();
  const result = await trainAutoencoder({
    train: squaresDataset(24, 1), validation: squaresDataset(10, 2), autoencoder: AE, config: cfg, outDir, resume, signal: controller.signal,
    onMetrics: (row) => {
      if (abortAfter !== undefined && row.step >= abortAfter) controller.abort();
    },
  });
  return result.losses;
}

describe('trainAutoencoder', () => {
  it('resumed after a stop, reproduces the losses of an uninterrupted run exactly (with EMA), and writes a self-describing checkpoint', async () => {
    const full = await run(BASE, tmpDir(), false);
    expect(full).toHaveLength(6);
    const dir = tmpDir();
    const first = await run(BASE, dir, false, 2); // stops after step 2, checkpointing there
    expect(first).toHaveLength(2);
    expect(await readScaleFactor(path.join(dir, WEIGHTS_FILE))).toBeNull(); // measured only at the end
    const rest = await run(BASE, dir, true);
    expect([...first, ...rest]).toEqual(full);

    const rows = fs.readFileSync(path.join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; valPsnr?: number; rec: number; kl: number });
    expect(rows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.filter((r) => r.valPsnr !== undefined).map((r) => r.step)).toEqual([3, 6]); // every 3 and at the end
    for (const r of rows) expect(r.rec > 0 && r.kl > 0).toBe(true);
    for (const f of [STATE_FILE, 'loss.png', 'samples/step_000003.png', 'samples/step_000006.png']) expect(fs.existsSync(path.join(dir, f))).toBe(true);

    const info = await readModelConfig(path.join(dir, WEIGHTS_FILE));
    expect(info.kind).toBe(AUTOENCODER_KIND);
    expect(info.step).toBe(6);
    const config = info.config as { autoencoder: AutoencoderConfig; imageHeight: number; scaleFactor: number };
    expect(config.autoencoder.sampleSize).toBe(8);
    expect(config.imageHeight).toBe(6);
    expect(config.scaleFactor).toBeGreaterThan(0);

    // The mismatched batch size is refused on resume.
    await expect(run({ ...BASE, batchSize: 2 }, dir, true)).rejects.toThrow(/saved with batch 4 .* resumed with batch 2 .* resume needs the same values/);
  });

  it('keeps the number of live tensors flat across steps, and frees everything at the end', async () => {
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    const result = await trainAutoencoder({
      train: squaresDataset(24, 1), validation: squaresDataset(10, 2), autoencoder: AE,
      config: { ...BASE, steps: 5, ema: null, valEvery: 2, sampleEvery: 2, checkpointEvery: 100, scaleImages: 0 }, outDir: tmpDir(), resume: false,
      onMetrics: () => counts.push(tf.memory().numTensors),
    });
    expect(counts).toHaveLength(5);
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    expect(result.latentScale).toBeNull();
    expect(result.validation?.count).toBe(8);
  });
});

describe('autoencoderLoss', () => {
  it('is rec + klWeight * kl with both terms means per element (closed form)', () => {
    const x = tf.tensor4d([0, 0.5, -1, 1], [1, 2, 2, 1]);
    const rec = tf.tensor4d([0.5, 0.5, -0.5, 0], [1, 2, 2, 1]); // errors 0.5, 0, 0.5, -1
    const mean = tf.tensor4d([1, -1], [1, 1, 1, 2]);
    const logvar = tf.tensor4d([0, Math.log(2)], [1, 1, 1, 2]);
    const kl = (0.5 * (1 + 1 - 1 - 0) + 0.5 * (1 + 2 - 1 - Math.log(2))) / 2; // mean over the 2 latent values
    for (const [loss, recExpected] of [['l1', (0.5 + 0 + 0.5 + 1) / 4], ['mse', (0.25 + 0 + 0.25 + 1) / 4]] as const) {
      const l = autoencoderLoss(x, { reconstruction: rec, mean, logvar }, { loss, klWeight: 0.1 });
      expect(l.reconstruction.dataSync()[0]).toBeCloseTo(recExpected, 6);
      expect(l.kl.dataSync()[0]).toBeCloseTo(kl, 6);
      expect(l.total.dataSync()[0]).toBeCloseTo(recExpected + 0.1 * kl, 6);
      tf.dispose([l.total, l.reconstruction, l.kl]);
    }
    tf.dispose([x, rec, mean, logvar]);
  });

  it('posterior noise is keyed by example index, not by how a batch is split', () => {
    const all = posteriorNoise([4, 2, 2, 3], 5, 7, 0);
    const tail = posteriorNoise([2, 2, 2, 3], 5, 7, 2);
    expect(Array.from(all.slice([2], [2]).dataSync())).toEqual(Array.from(tail.dataSync()));
    const other = posteriorNoise([2, 2, 2, 3], 5, 8, 2);
    expect(Array.from(other.dataSync())).not.toEqual(Array.from(tail.dataSync()));
    tf.dispose([all, tail, other]);
  });
});

describe('reconstructImages', () => {
  it('centre-pads with -1 like BatchIterator, decodes the mean and crops back', () => {
    const ae = new Autoencoder(autoencoderConfig({ ...AE, sampleSize: 8 }), new Rng(1));
    const data = squaresDataset(3, 4);
    const small = fixedBatch(data, [0, 1, 2]);
    const padded = fixedBatch(data, [0, 1, 2], { padTo: 8 });
    const crop = reconstructImages(ae, small.x);
    const full = tf.tidy(() => tf.slice(ae.apply(padded.x, { sample: false }).reconstruction, [0, 1, 1, 0], [3, 6, 6, 1]));
    expect(crop.shape).toEqual([3, 6, 6, 1]);
    expect(Array.from(crop.dataSync())).toEqual(Array.from(full.dataSync()));
    expect(() => reconstructImages(ae, tf.zeros([1, 9, 9, 1]) as tf.Tensor4D)).toThrow(/images are 9x9, larger than the autoencoder's sampleSize 8/);
    tf.dispose([small.x, padded.x, crop, full]);
    ae.dispose();
  });
});

describe('autoencoderTrainConfig', () => {
  it('merges and validates', () => {
    expect(autoencoderTrainConfig().ema).toBeNull();
    expect(autoencoderTrainConfig({ ema: { maxDecay: 0.99 } }).ema).toEqual({ maxDecay: 0.99, power: 0.75, invGamma: 1 });
    expect(autoencoderTrainConfig({ adamw: { clipGradNorm: 0 } }).adamw.beta1).toBe(0.9);
    expect(() => autoencoderTrainConfig({ loss: 'l2' as 'l1' })).toThrow(/loss must be 'l1' or 'mse', got l2/);
    expect(() => autoencoderTrainConfig({ klWeight: -1 })).toThrow(/klWeight must be a finite number >= 0, got -1/);
    expect(() => autoencoderTrainConfig({ steps: 0 })).toThrow(/steps must be an integer >= 1, got 0/);
  });
});

describe('latent scale factor', () => {
  /** Unbiased std of all values, two-pass float64. */
  function std(values: number[]): number {
    const m = values.reduce((a, b) => a + b, 0) / values.length;
    return Math.sqrt(values.reduce((a, v) => a + (v - m) * (v - m), 0) / (values.length - 1));
  }

  it('is 1 / std of the posterior means, or of posterior samples with eps keyed by image index, over the seeded subset', async () => {
    const ae = new Autoencoder(autoencoderConfig({ ...AE, sampleSize: 8 }), new Rng(2));
    const data = squaresDataset(20, 6);
    const indices = latentScaleIndices(20, 10, 1);
    expect(indices).toHaveLength(10);
    expect(new Set(indices).size).toBe(10);
    expect(Array.from(indices)).toEqual([...indices].sort((a, b) => a - b));
    expect(Array.from(latentScaleIndices(20, 10, 2))).not.toEqual(Array.from(indices));
    // Reference: one image at a time; z = mean + exp(logvar / 2) * eps in float64 here.
    const means: number[] = [];
    const samples: number[] = [];
    for (const idx of indices) {
      const b = fixedBatch(data, [idx], { padTo: 8 });
      const p = ae.encode(b.x);
      const m = p.mean.dataSync();
      const lv = p.logvar.dataSync();
      const eps = new Float32Array(m.length);
      keyedRng(1, 'latent-scale', idx).fillNormal(eps);
      m.forEach((v, i) => {
        means.push(v);
        samples.push(v + Math.exp(lv[i] / 2) * eps[i]);
      });
      tf.dispose([b.x, p.mean, p.logvar]);
    }
    const before = tf.memory().numTensors;
    const byMean = await computeLatentScale(ae, data, { count: 10, seed: 1, latents: 'mean', batchSize: 3 });
    const bySample = await computeLatentScale(ae, data, { count: 10, seed: 1, batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(byMean.latents).toBe('mean');
    expect(bySample.latents).toBe('sample');
    expect(Math.abs(byMean.std - std(means)) / std(means)).toBeLessThan(1e-5);
    expect(Math.abs(byMean.scaleFactor - 1 / std(means)) * std(means)).toBeLessThan(1e-5);
    expect(Math.abs(bySample.std - std(samples)) / std(samples)).toBeLessThan(1e-5);
    expect(bySample.std).not.toBeCloseTo(byMean.std, 6);
    expect(byMean.images).toBe(10);
    ae.dispose();
  });

  it('is stored in the checkpoint metadata config and read back, weights untouched', async () => {
    const cfg = autoencoderConfig({ ...AE, sampleSize: 8 });
    const ae = new Autoencoder(cfg, new Rng(3));
    const file = path.join(tmpDir(), WEIGHTS_FILE);
    await saveModelWeights(file, ae, { kind: AUTOENCODER_KIND, config: { autoencoder: cfg, dataset: 'tiny', imageHeight: 6, imageWidth: 6, scaleFactor: null }, step: 4, storage: 'float16' });
    expect(await readScaleFactor(file)).toBeNull();
    await saveScaleFactor(file, 0.1825);
    expect(await readScaleFactor(file)).toBe(0.1825);
    const info = await readModelConfig(file);
    expect(info.step).toBe(4);
    expect((info.config as { dataset: string }).dataset).toBe('tiny');
    const loaded = await loadAutoencoder(file);
    expect(loaded.config.scaleFactor).toBe(0.1825);
    expect(loaded.config.imageHeight).toBe(6);
    const [name, w] = ae.namedParameters()[2];
    const w2 = new Map(loaded.model.namedParameters()).get(name) as tf.Variable;
    // float16 storage: equal to half precision.
    const a = w.dataSync();
    const b = w2.dataSync();
    a.forEach((v, i) => expect(Math.abs(b[i] - v)).toBeLessThan(1e-3 * Math.max(1, Math.abs(v))));
    await expect(saveScaleFactor(file, -1)).rejects.toThrow(/scaleFactor must be a finite number > 0, got -1/);
    loaded.model.dispose();
    ae.dispose();
  });
});
