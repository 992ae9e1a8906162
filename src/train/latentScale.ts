/**
 * The latent scale factor of latent diffusion (Rombach et al. 2022, Sec. 4.3.2
 * and App. G, "rescale the latent by the component-wise standard deviation";
 * CompVis `LatentDiffusion` with `scale_by_std`): diffusion runs on
 *
 *   z' = scaleFactor * z,     scaleFactor = 1 / std(z)
 *
 * so the latents it sees have unit variance like the N(0, I) noise, whatever
 * the KL weight left their spread at (SD v1's 0.18215 is this number for its
 * autoencoder). Decoding divides by it again.
 *
 * What is measured: z are POSTERIOR SAMPLES z = mean + sigma * eps (what
 * CompVis' `get_first_stage_encoding(encode(x))` and the diffusers training
 * scripts feed the diffusion model), or the posterior means with `latents:
 * 'mean'`. std is the unbiased standard deviation of all their elements about
 * their mean (torch.Tensor.std), over a seeded random subset of the training
 * images (CompVis uses the first training batch; a larger subset is steadier),
 * accumulated in float64. eps is keyed by (seed, 'latent-scale', image index).
 *
 * Where it lives: the autoencoder checkpoint's metadata `config` JSON, key
 * `scaleFactor` (null until measured).
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { ImageDataset } from '../data/dataset';
import { fixedBatch } from '../data/batches';
import { Autoencoder } from '../models/autoencoder';
import { readSafetensors, writeSafetensors } from '../io/safetensorsFile';
import { readModelConfig } from '../io/checkpointFile';

export interface LatentScaleOptions {
  /** Number of training images (a seeded random subset when fewer than the dataset). Default 1024. */
  readonly count?: number;
  /** Seed of the subset and of eps. Default 0. */
  readonly seed?: number;
  /** 'sample' (default, as SD): z = mean + sigma * eps; 'mean': the posterior means. */
  readonly latents?: 'sample' | 'mean';
  /** Images per forward pass. Default 64. */
  readonly batchSize?: number;
}

export interface LatentScale {
  /** 1 / std. */
  readonly scaleFactor: number;
  readonly std: number;
  /** Mean of the latent elements (should be near 0; diffusion assumes it). */
  readonly mean: number;
  readonly images: number;
  readonly latents: 'sample' | 'mean';
}

/** The seeded subset of image indices used for the scale factor (sorted). */
export function latentScaleIndices(datasetCount: number, count: number, seed: number): Int32Array {
  const all = Int32Array.from({ length: datasetCount }, (_, i) => i);
  if (count >= datasetCount) return all;
  keyedRng(seed, 'latent-scale', 'subset').shuffle(all);
  return all.slice(0, count).sort();
}

/** Standard-normal eps for the latents of the given image indices, keyed by (seed, 'latent-scale', index). */
function latentNoise(shape: [number, number, number, number], indices: Int32Array, seed: number): tf.Tensor4D {
  const per = shape[1] * shape[2] * shape[3];
  const data = new Float32Array(shape[0] * per);
  indices.forEach((idx, i) => keyedRng(seed, 'latent-scale', idx).fillNormal(data.subarray(i * per, (i + 1) * per)));
  return tf.tensor4d(data, shape);
}

/** Measures 1 / std of the latents of `dataset` (centre-padded to the model's sampleSize). */
export async function computeLatentScale(model: Autoencoder, dataset: ImageDataset, options: LatentScaleOptions = {}): Promise<LatentScale> {
  const count = Math.min(options.count ?? 1024, dataset.count);
  const seed = options.seed ?? 0;
  const latents = options.latents ?? 'sample';
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(count) || count < 1) throw new Error(`computeLatentScale: count must be a positive integer, got ${options.count}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`computeLatentScale: batchSize must be a positive integer, got ${batchSize}`);
  if (dataset.channels !== model.config.inChannels) {
    throw new Error(`computeLatentScale: dataset '${dataset.name}' has ${dataset.channels} channel(s), the autoencoder expects ${model.config.inChannels}`);
  }
  const size = model.config.sampleSize;
  const padTo = dataset.height === size && dataset.width === size ? undefined : size;
  const indices = latentScaleIndices(dataset.count, count, seed);
  // Sums in float64 about a shift (the first batch's mean) to avoid cancellation in sum(x^2) - n mean^2.
  let shift: number | null = null;
  let n = 0;
  let s1 = 0;
  let s2 = 0;
  for (let start = 0; start < count; start += batchSize) {
    const idx = indices.subarray(start, Math.min(start + batchSize, count));
    const batch = fixedBatch(dataset, idx, { padTo });
    batch.labels?.dispose();
    let z: tf.Tensor4D | null = null;
    try {
      z = tf.tidy(() => {
        const posterior = model.encode(batch.x);
        if (latents === 'mean') return posterior.mean;
        return model.sample(posterior, latentNoise(model.latentShape(idx.length), idx, seed));
      });
      const values = (await z.data()) as Float32Array;
      if (shift === null) shift = values.reduce((a, v) => a + v, 0) / values.length;
      for (let i = 0; i < values.length; i++) {
        const d = values[i] - shift;
        s1 += d;
        s2 += d * d;
      }
      n += values.length;
    } finally {
      batch.x.dispose();
      z?.dispose();
    }
  }
  if (n < 2) throw new Error(`computeLatentScale: needs at least 2 latent values, got ${n}`);
  const variance = (s2 - (s1 * s1) / n) / (n - 1);
  const std = Math.sqrt(variance);
  if (!(std > 0) || !Number.isFinite(std)) throw new Error(`computeLatentScale: latent std is ${std}; cannot scale`);
  return { scaleFactor: 1 / std, std, mean: (shift ?? 0) + s1 / n, images: count, latents };
}

/**
 * Writes `scaleFactor` into the metadata config of an autoencoder checkpoint
 * (tensors and their storage dtypes untouched; atomic).
 */
export async function saveScaleFactor(file: string, scaleFactor: number): Promise<void> {
  if (!(scaleFactor > 0) || !Number.isFinite(scaleFactor)) throw new Error(`${file}: scaleFactor must be a finite number > 0, got ${scaleFactor}`);
  const info = await readModelConfig(file); // validates the metadata
  if (typeof info.config !== 'object' || info.config === null || Array.isArray(info.config)) {
    throw new Error(`${file}: metadata config must be a JSON object to hold scaleFactor, got ${JSON.stringify(info.config)}`);
  }
  const { tensors, metadata } = await readSafetensors(file);
  const config = { ...(info.config as Record<string, unknown>), scaleFactor };
  await writeSafetensors(file, tensors, { ...metadata, config: JSON.stringify(config) });
}

/** The checkpoint's `scaleFactor`, or null when it was not measured yet. */
export async function readScaleFactor(file: string): Promise<number | null> {
  const info = await readModelConfig(file);
  const config = info.config as { scaleFactor?: unknown } | null;
  const v = config?.scaleFactor ?? null;
  if (v === null) return null;
  if (typeof v !== 'number' || !(v > 0)) throw new Error(`${file}: metadata config.scaleFactor must be a number > 0 or null, got ${JSON.stringify(v)}`);
  return v;
}
