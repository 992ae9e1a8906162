/**
 * The conditioning image of a super-resolution diffusion model (the second
 * stage of an Imagen-style cascade; Saharia et al. 2022, sec. 2.5, and Ho et
 * al. 2022, "Cascaded Diffusion Models", sec. 3, "conditioning augmentation"):
 *
 *   low = avgpool_f(x0)                          the base model's resolution (S / f)
 *   up  = resize(low, S)                         bilinear (Imagen), or nearest
 *   z_s = sqrt(abar_s) up + sqrt(1 - abar_s) e   Gaussian noise augmentation at level s
 *
 * The SR UNet sees concat([x_t, z_s]) on the channel axis and the level s
 * (embedded like a timestep and added to the time embedding), so at sampling
 * time it can be told how corrupted the base sample is. During training s is
 * drawn uniformly from {0, ..., maxAugLevel} per example (keyed like t); at
 * sampling time it is a parameter (Imagen found a small fixed level best).
 * The levels index the diffusion schedule itself (abar_s), so s = 0 is almost
 * clean and s = T - 1 pure noise.
 *
 * Noise keys: training draws s and e per (seed, step, example index), like t
 * and the diffusion noise (independent of batch split and workers); sampling
 * draws e per (seed, 'cascade-aug', image index), like the sampler's noise.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { Schedule } from '../schedule/schedule';
import { qSample } from '../schedule/noising';

export type ResizeMode = 'bilinear' | 'nearest';

export interface LowResConfig {
  /** High-res side / low-res side (2: 16x16 -> 32x32). */
  readonly factor: number;
  /** Training draws augmentation levels from {0, ..., maxAugLevel} (timestep indices of the schedule). */
  readonly maxAugLevel: number;
  /** How the low-res image is brought back to the high resolution. */
  readonly resize: ResizeMode;
}

export const LOW_RES_DEFAULTS: LowResConfig = {
  factor: 2,
  // Up to abar ~ 0.5 on the cosine schedule (T = 1000): corrupt enough that the SR model does not copy base-model artefacts.
  maxAugLevel: 500,
  resize: 'bilinear',
};

export function lowResConfig(partial: Partial<LowResConfig> = {}): LowResConfig {
  const cfg = { ...LOW_RES_DEFAULTS, ...partial };
  if (!Number.isInteger(cfg.factor) || cfg.factor < 2) throw new Error(`lowResConfig: factor must be an integer >= 2, got ${cfg.factor}`);
  if (!Number.isInteger(cfg.maxAugLevel) || cfg.maxAugLevel < 0) throw new Error(`lowResConfig: maxAugLevel must be an integer >= 0, got ${cfg.maxAugLevel}`);
  if (cfg.resize !== 'bilinear' && cfg.resize !== 'nearest') throw new Error(`lowResConfig: resize must be 'bilinear' or 'nearest', got ${JSON.stringify(cfg.resize)}`);
  const unknown = Object.keys(cfg).filter((k) => !(k in LOW_RES_DEFAULTS));
  if (unknown.length > 0) throw new Error(`lowResConfig: unknown field(s) ${unknown.join(', ')} (known: ${Object.keys(LOW_RES_DEFAULTS).join(', ')})`);
  return { factor: cfg.factor, maxAugLevel: cfg.maxAugLevel, resize: cfg.resize };
}

/** Throws unless `level` is a level the stage was trained on: an integer in [0, maxAugLevel]. */
export function checkAugLevel(level: number, cfg: LowResConfig, where: string): void {
  if (!Number.isInteger(level) || level < 0 || level > cfg.maxAugLevel) {
    throw new Error(`${where}: augLevel must be an integer in [0, ${cfg.maxAugLevel}] (the levels the super-resolution stage was trained with), got ${level}`);
  }
}

/** x [B, S, S, C] -> [B, S/f, S/f, C], the mean of each f x f block. */
export function downsampleAverage(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (h % factor !== 0 || w % factor !== 0) throw new Error(`downsampleAverage: ${h}x${w} is not divisible by factor ${factor}`);
  return tf.tidy(() => tf.avgPool(x, factor, factor, 'valid'));
}

/** x [B, s, s, C] -> [B, size, size, C] (bilinear with half-pixel centres, as PyTorch's align_corners=False; or nearest). */
export function resizeTo(x: tf.Tensor4D, size: number, mode: ResizeMode): tf.Tensor4D {
  return tf.tidy(() => (mode === 'bilinear'
    ? tf.image.resizeBilinear(x, [size, size], false, true)
    : tf.image.resizeNearestNeighbor(x, [size, size], false, false)));
}

/** The un-augmented conditioning image of high-res images: resize(avgpool_f(x0), S). */
export function lowResOf(x0: tf.Tensor4D, cfg: LowResConfig): tf.Tensor4D {
  return tf.tidy(() => resizeTo(downsampleAverage(x0, cfg.factor), x0.shape[1], cfg.resize));
}

/** z_s = qSample(up, s, noise): Gaussian conditioning augmentation at levels s [B]. */
export function augmentLowRes(up: tf.Tensor4D, levels: tf.Tensor1D, noise: tf.Tensor4D, schedule: Schedule): tf.Tensor4D {
  return qSample(up, levels, noise, schedule) as tf.Tensor4D;
}

/** Augmentation levels of examples [first, first + count) of `step`, keyed like the timesteps (independent of batch split). */
export function trainingAugLevels(count: number, seed: number, step: number, first: number, maxAugLevel: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => keyedRng(seed, 'aug-level', step, first + i).int(maxAugLevel + 1));
}

/** Noise of the augmentation for examples [first, first + B) of `step` (keyed, like the training noise). */
export function augmentationNoise(shape: [number, number, number, number], seed: number, step: number, first: number): tf.Tensor4D {
  const per = shape[1] * shape[2] * shape[3];
  const data = new Float32Array(shape[0] * per);
  for (let i = 0; i < shape[0]; i++) keyedRng(seed, 'aug-noise', step, first + i).fillNormal(data.subarray(i * per, (i + 1) * per));
  return tf.tensor4d(data, shape, 'float32');
}

/** Noise of the sampling-time augmentation of images [firstIndex, firstIndex + B): keyed by (seed, 'cascade-aug', image index). */
export function samplingAugmentationNoise(shape: [number, number, number, number], seed: number | string, firstIndex: number): tf.Tensor4D {
  const per = shape[1] * shape[2] * shape[3];
  const data = new Float32Array(shape[0] * per);
  for (let i = 0; i < shape[0]; i++) keyedRng(seed, 'cascade-aug', firstIndex + i).fillNormal(data.subarray(i * per, (i + 1) * per));
  return tf.tensor4d(data, shape, 'float32');
}
