/**
 * Latent diffusion's training data: every image encoded ONCE by the frozen
 * autoencoder and scaled (Rombach et al. 2022: z' = scaleFactor * z, see
 * train/latentScale.ts), kept as a float32 dataset the training loop batches
 * like pixels; labels and captions carry over unchanged.
 *
 * The latent of an image is its posterior MEAN (SD's `posterior.mode()`): a
 * cache holds one latent per image, and a single frozen posterior draw would
 * bake one arbitrary noise sample into the data for the whole run. (The
 * autoencoder's posterior sigma is small next to the spread of the means; the
 * scale factor itself is measured on samples, as SD does.)
 *
 * `cachedLatentDataset` also keeps the encoding on disk (safetensors, atomic),
 * keyed by the autoencoder file's SHA-256 and the dataset's identity, so a
 * resumed run does not re-encode, and a changed autoencoder is never silently
 * paired with stale latents.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { ImageDataset, validateDataset } from '../data/dataset';
import { fixedBatch } from '../data/batches';
import { Autoencoder } from '../models/autoencoder';
import { readSafetensors, writeSafetensors } from '../io/safetensorsFile';

export interface LatentEncodingOptions {
  /** z' = scaleFactor * mean(q(z | x)). */
  readonly scaleFactor: number;
  /** Images per encoder forward pass (default 128). */
  readonly batchSize?: number;
  /** Told the number of images encoded so far, after each batch. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Encodes every image (centre-padded to the autoencoder's sampleSize) to scaled latent means: a float32 dataset [N, h, w, z]. */
export async function encodeLatentDataset(autoencoder: Autoencoder, dataset: ImageDataset, options: LatentEncodingOptions): Promise<ImageDataset> {
  const { scaleFactor } = options;
  const batchSize = options.batchSize ?? 128;
  if (!(Number.isFinite(scaleFactor) && scaleFactor > 0)) throw new Error(`encodeLatentDataset: scaleFactor must be a positive number, got ${scaleFactor}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`encodeLatentDataset: batchSize must be a positive integer, got ${batchSize}`);
  if (dataset.images instanceof Float32Array) throw new Error(`encodeLatentDataset: dataset '${dataset.name}' already holds float values (latents?), expected uint8 pixels`);
  const { sampleSize, inChannels } = autoencoder.config;
  if (dataset.channels !== inChannels) throw new Error(`encodeLatentDataset: dataset '${dataset.name}' has ${dataset.channels} channel(s), the autoencoder expects ${inChannels}`);
  if (dataset.height > sampleSize || dataset.width > sampleSize) {
    throw new Error(`encodeLatentDataset: images ${dataset.height}x${dataset.width} are larger than the autoencoder's sampleSize ${sampleSize}`);
  }
  const padTo = dataset.height === sampleSize && dataset.width === sampleSize ? undefined : sampleSize;
  const [, h, w, z] = autoencoder.latentShape(1);
  const per = h * w * z;
  const values = new Float32Array(dataset.count * per);
  for (let start = 0; start < dataset.count; start += batchSize) {
    const n = Math.min(batchSize, dataset.count - start);
    const batch = fixedBatch(dataset, Array.from({ length: n }, (_, i) => start + i), { padTo });
    try {
      const scaled = tf.tidy(() => {
        const posterior = autoencoder.encode(batch.x);
        return tf.mul(posterior.mean, scaleFactor);
      });
      values.set(await scaled.data(), start * per);
      scaled.dispose();
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
    options.onProgress?.(start + n, dataset.count);
  }
  return validateDataset({ ...dataset, name: `${dataset.name}-latents`, images: values, height: h, width: w, channels: z });
}

/** SHA-256 of a file's bytes, hex. */
export function fileSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

interface LatentCacheKey {
  readonly autoencoderSha256: string;
  readonly dataset: string;
  readonly split: string;
  readonly count: number;
  readonly scaleFactor: number;
  readonly latent: 'posterior-mean';
}

/**
 * encodeLatentDataset with a disk cache at `cacheFile`: reused when its key
 * (autoencoder file hash, dataset name / split / count, scale factor) matches,
 * else (re)encoded and written atomically. Labels and captions come from `dataset`.
 */
export async function cachedLatentDataset(
  cacheFile: string,
  autoencoderFile: string,
  autoencoder: Autoencoder,
  dataset: ImageDataset,
  options: LatentEncodingOptions & { readonly onLog?: (line: string) => void },
): Promise<ImageDataset> {
  const key: LatentCacheKey = {
    autoencoderSha256: fileSha256(autoencoderFile),
    dataset: dataset.name,
    split: dataset.split,
    count: dataset.count,
    scaleFactor: options.scaleFactor,
    latent: 'posterior-mean',
  };
  const [, h, w, z] = autoencoder.latentShape(1);
  if (fs.existsSync(cacheFile)) {
    try {
      const file = await readSafetensors(cacheFile);
      const latents = file.tensors.get('latents');
      if (file.metadata.key === JSON.stringify(key) && latents !== undefined && latents.data instanceof Float32Array &&
          latents.shape.join(',') === [dataset.count, h, w, z].join(',')) {
        options.onLog?.(`latents: ${dataset.count} cached in ${cacheFile}`);
        return validateDataset({ ...dataset, name: `${dataset.name}-latents`, images: latents.data, height: h, width: w, channels: z });
      }
      options.onLog?.(`latents: ${cacheFile} was made from another autoencoder, dataset or scale factor: encoding again`);
    } catch (e) {
      options.onLog?.(`latents: ${cacheFile} is unreadable (${(e as Error).message}): encoding again`);
    }
  }
  const encoded = await encodeLatentDataset(autoencoder, dataset, options);
  await writeSafetensors(
    cacheFile,
    new Map([['latents', { dtype: 'F32' as const, shape: [dataset.count, h, w, z], data: encoded.images as Float32Array }]]),
    { kind: 'latent-cache', key: JSON.stringify(key) },
  );
  options.onLog?.(`latents: encoded ${dataset.count} images to [${h}, ${w}, ${z}], cached in ${cacheFile}`);
  return encoded;
}
