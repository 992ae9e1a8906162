/**
 * How well an autoencoder reproduces its input: L1, MSE, PSNR and a
 * reconstruction FID (rFID, as the Stable Diffusion paper reports for its
 * autoencoders, Rombach et al. 2022 Table 8), streamed batch by batch.
 *
 * Images are in [-1, 1]; PSNR is computed on them mapped to [0, 1]
 * (x01 = (x + 1) / 2, so MSE01 = MSE / 4) with peak 1:
 *
 *   PSNR = 10 log10(1 / MSE01)            (dB; identical images give +Infinity)
 *
 * Reported:
 *   l1, mse     mean |x - x^| and (x - x^)^2 over every pixel value, on the [-1, 1] scale
 *   psnr        from the mean MSE over all images (one number for the set)
 *   meanPsnr    the mean of per-image PSNRs (the usual "average PSNR"; +Infinity
 *               if any image is reproduced exactly)
 *   fid         Frechet distance between extractor features of the originals and
 *               of the reconstructions (null without an extractor)
 *
 * Reconstructions are clipped to [-1, 1] first (what a saved PNG would show).
 * Memory: one batch of images, its reconstruction and their features at a time,
 * plus the two float64 feature statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { FeatureStats } from './featureStats';
import { frechetDistance, FrechetResult } from './frechet';
import { FeatureExtractor } from './features';
import type { ImageSource } from './imageFolderStats';

/** PSNR in dB of an MSE measured on [0, 1] images (peak 1): 10 log10(1 / mse); mse 0 -> +Infinity. */
export function psnrFromMse(mse01: number): number {
  if (!(mse01 >= 0)) throw new Error(`psnrFromMse: mse must be >= 0, got ${mse01}`);
  return mse01 === 0 ? Infinity : -10 * Math.log10(mse01);
}

/**
 * Per-image PSNR of images in [-1, 1] (mapped to [0, 1]): [B] values, +Infinity
 * where an image is reproduced exactly. `b` is clipped to [-1, 1] first.
 */
export async function imagePsnr(a: tf.Tensor4D, b: tf.Tensor4D): Promise<Float64Array> {
  const sums = await perImageErrors(a, b);
  return Float64Array.from(sums.sq, (s) => psnrFromMse(s / sums.perImage / 4));
}

interface PerImageErrors {
  readonly abs: Float32Array; // sum |a - b| per image
  readonly sq: Float32Array; // sum (a - b)^2 per image
  readonly perImage: number; // H * W * C
}

async function perImageErrors(a: tf.Tensor4D, b: tf.Tensor4D): Promise<PerImageErrors> {
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new Error(`reconstruction: shapes differ, originals [${a.shape}] vs reconstructions [${b.shape}]`);
  const [abs, sq] = tf.tidy(() => {
    const d = tf.sub(a, tf.clipByValue(b, -1, 1));
    return [tf.sum(tf.abs(d), [1, 2, 3]), tf.sum(tf.square(d), [1, 2, 3])];
  });
  try {
    return { abs: (await abs.data()) as Float32Array, sq: (await sq.data()) as Float32Array, perImage: a.size / a.shape[0] };
  } finally {
    tf.dispose([abs, sq]);
  }
}

export interface ReconstructionMetrics {
  readonly source: string;
  readonly count: number;
  readonly l1: number;
  readonly mse: number;
  readonly psnr: number;
  readonly meanPsnr: number;
  /** Null when no feature extractor was given. */
  readonly fid: FrechetResult | null;
  /** The extractor's name, or null. */
  readonly features: string | null;
}

export interface ReconstructionOptions {
  /** Features for rFID (e.g. loadFeatureExtractor('mnist')); null/undefined = no FID. */
  readonly extractor?: FeatureExtractor | null;
  /** Images per batch (default 100). */
  readonly batchSize?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Streams `source` through `reconstruct` (images [b, H, W, C] in [-1, 1] -> the
 * same shape; e.g. decode(encode(x).mean)) and measures the reconstructions.
 * `reconstruct` must not dispose its input; its output is disposed here.
 */
export async function evaluateReconstruction(
  reconstruct: (images: tf.Tensor4D) => tf.Tensor4D,
  source: ImageSource,
  options: ReconstructionOptions = {},
): Promise<ReconstructionMetrics> {
  const batchSize = options.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, received ${batchSize}`);
  const extractor = options.extractor ?? null;
  const realStats = extractor === null ? null : new FeatureStats(extractor.featureDim);
  const fakeStats = extractor === null ? null : new FeatureStats(extractor.featureDim);
  let absSum = 0;
  let sqSum = 0;
  let psnrSum = 0;
  let values = 0;
  let done = 0;
  for await (const images of source.batches(batchSize)) {
    let recon: tf.Tensor4D | null = null;
    try {
      recon = reconstruct(images);
      const e = await perImageErrors(images, recon);
      for (let i = 0; i < e.abs.length; i++) {
        absSum += e.abs[i];
        sqSum += e.sq[i];
        psnrSum += psnrFromMse(e.sq[i] / e.perImage / 4);
      }
      values += images.size;
      if (extractor !== null && realStats !== null && fakeStats !== null) {
        const clipped = tf.clipByValue(recon, -1, 1) as tf.Tensor4D;
        const [fr, ff] = [extractor.extract(images), extractor.extract(clipped)];
        clipped.dispose();
        try {
          await realStats.addTensor(fr);
          await fakeStats.addTensor(ff);
        } finally {
          tf.dispose([fr, ff]);
        }
      }
      done += images.shape[0];
    } finally {
      images.dispose();
      recon?.dispose();
    }
    options.onProgress?.(done, source.count);
  }
  if (done === 0) throw new Error(`${source.name}: no images`);
  const mse = sqSum / values;
  return {
    source: source.name,
    count: done,
    l1: absSum / values,
    mse,
    psnr: psnrFromMse(mse / 4),
    meanPsnr: psnrSum / done,
    fid: realStats !== null && fakeStats !== null ? frechetDistance(realStats.gaussian(), fakeStats.gaussian()) : null,
    features: extractor === null ? null : extractor.name,
  };
}
