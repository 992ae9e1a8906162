/**
 * Feature statistics of an image source (a folder of PNGs, or an in-memory
 * dataset), streamed batch by batch: at most one batch of images and its
 * features exist as tensors at a time, whatever the number of images.
 *
 * A folder is every *.png directly inside it (not subfolders), in name order.
 * All its images must share height, width and channels (grayscale PNGs give 1
 * channel, colour ones 3; see io/png.ts): the PNG headers are checked before any
 * work, and a mismatch is an error naming the file.
 *
 * Memory: the float64 statistics (featureStats.ts) plus, when KID needs them,
 * the features themselves as float32 (n * F * 4 bytes: 10k images of 128-d
 * classifier features = 5 MB, of 2048-d Inception features = 80 MB).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { loadPng } from '../io/png';
import { ImageDataset } from '../data/dataset';
import { fixedBatch } from '../data/batches';
import { keyedRng } from '../backend/random';
import { FeatureStats } from './featureStats';
import type { FeatureMatrix } from './kid';
import { describePreparation, FeatureExtractor, ImageSize } from './features';

/** Images to evaluate. */
export interface ImageSource {
  /** For reports: the folder path, or e.g. 'mnist (test)'. */
  readonly name: string;
  readonly count: number;
  /** Shared by all images. */
  readonly size: ImageSize;
  /** Batches [b, H, W, C] in [-1, 1], in order; the caller disposes each. */
  batches(batchSize: number): AsyncGenerator<tf.Tensor4D>;
}

export interface SourceFeatures {
  readonly source: string;
  readonly count: number;
  readonly size: ImageSize;
  /** How the images were brought to the extractor's input (features.ts describePreparation). */
  readonly preparation: string;
  readonly stats: FeatureStats;
  /** The features themselves (row-major float32) when `keepFeatures`, else null. */
  readonly features: FeatureMatrix | null;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Height, width and channels of a PNG from its IHDR chunk (first 26 bytes), as loadPng will decode it. */
export function pngSize(file: string): ImageSize {
  const head = Buffer.alloc(26);
  const fd = fs.openSync(file, 'r');
  let read: number;
  try {
    read = fs.readSync(fd, head, 0, 26, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (read < 26 || PNG_SIGNATURE.some((b, i) => head[i] !== b) || head.toString('latin1', 12, 16) !== 'IHDR') {
    throw new Error(`${file}: not a PNG file (bad signature or no IHDR chunk)`);
  }
  const colorType = head[25];
  // pngjs (io/png.ts): colour types with the colour bit (2: RGB, 3: palette, 6: RGBA) give 3 channels, 0 and 4 give 1.
  return { width: head.readUInt32BE(16), height: head.readUInt32BE(20), channels: colorType & 2 ? 3 : 1 };
}

function sameSize(a: ImageSize, b: ImageSize): boolean {
  return a.height === b.height && a.width === b.width && a.channels === b.channels;
}

function sizeText(s: ImageSize): string {
  return `${s.height}x${s.width}x${s.channels}`;
}

/** The *.png files directly in `dir` (sorted), checked to share one size; `limit` keeps the first N. */
export function imageFolderSource(dir: string, options: { limit?: number } = {}): ImageSource {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`image folder ${dir} does not exist or is not a folder`);
  let files = fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.png')).sort();
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new Error(`image folder ${dir}: limit must be a positive integer, received ${options.limit}`);
    files = files.slice(0, options.limit);
  }
  if (files.length === 0) throw new Error(`image folder ${dir}: no *.png files`);
  const size = pngSize(path.join(dir, files[0]));
  for (const f of files.slice(1)) {
    const s = pngSize(path.join(dir, f));
    if (!sameSize(s, size)) {
      throw new Error(`image folder ${dir}: ${f} is ${sizeText(s)} (HxWxC), expected ${sizeText(size)} like ${files[0]}; ` +
        'all images in a folder must share size and channels');
    }
  }
  const perImage = size.height * size.width * size.channels;
  return {
    name: dir,
    count: files.length,
    size,
    async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
      for (let start = 0; start < files.length; start += batchSize) {
        const chunk = files.slice(start, start + batchSize);
        const data = new Float32Array(chunk.length * perImage);
        chunk.forEach((f, i) => {
          const img = loadPng(path.join(dir, f));
          if (!sameSize(img, size)) throw new Error(`image folder ${dir}: ${f} decodes to ${sizeText(img)}, expected ${sizeText(size)}`);
          for (let k = 0; k < perImage; k++) data[i * perImage + k] = img.data[k] / 127.5 - 1;
        });
        yield tf.tensor4d(data, [chunk.length, size.height, size.width, size.channels]);
      }
    },
  };
}

/**
 * An in-memory dataset as a source, unpadded: all images, the first `limit`, or with
 * `randomSubset: seed` a seeded random `limit` of them (dataset files are often
 * ordered, e.g. MNIST's test split puts its cleaner writers first, so the first N
 * are not a fair sample).
 */
export function datasetSource(data: ImageDataset, options: { limit?: number; randomSubset?: number | string } = {}): ImageSource {
  const count = Math.min(options.limit ?? data.count, data.count);
  if (!Number.isInteger(count) || count < 1) throw new Error(`dataset '${data.name}' (${data.split}): need at least 1 image, limit ${options.limit}, ${data.count} images`);
  let indices = Int32Array.from({ length: count }, (_, i) => i);
  let name = `${data.name} (${data.split})`;
  if (options.randomSubset !== undefined && count < data.count) {
    const all = Int32Array.from({ length: data.count }, (_, i) => i);
    keyedRng(options.randomSubset, 'subset', data.name, data.split).shuffle(all);
    indices = all.slice(0, count).sort();
    name += `, random ${count} of ${data.count} (seed ${options.randomSubset})`;
  }
  return {
    name,
    count,
    size: { height: data.height, width: data.width, channels: data.channels },
    async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
      for (let start = 0; start < count; start += batchSize) {
        const batch = fixedBatch(data, indices.subarray(start, start + batchSize));
        batch.labels?.dispose();
        yield batch.x;
      }
    },
  };
}

/** In-memory images [N, H, W, C] in [-1, 1] as a source (e.g. freshly generated samples; not disposed here). */
export function tensorSource(images: tf.Tensor4D, name = 'images'): ImageSource {
  const [n, height, width, channels] = images.shape;
  return {
    name,
    count: n,
    size: { height, width, channels },
    async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
      for (let start = 0; start < n; start += batchSize) {
        yield tf.slice(images, [start, 0, 0, 0], [Math.min(batchSize, n - start), height, width, channels]);
      }
    },
  };
}

/**
 * `count` images of independent uniform pixel values (uint8 0..255 -> [-1, 1], as a PNG
 * of noise would be), drawn from keyedRng(seed, 'noise', index): a "worst case" baseline.
 */
export function uniformNoiseSource(count: number, size: ImageSize, seed: number | string = 0): ImageSource {
  if (!Number.isInteger(count) || count < 1) throw new Error(`noise source: count must be a positive integer, received ${count}`);
  const perImage = size.height * size.width * size.channels;
  return {
    name: `uniform noise ${sizeText(size)} (seed ${seed})`,
    count,
    size,
    async *batches(batchSize: number): AsyncGenerator<tf.Tensor4D> {
      for (let start = 0; start < count; start += batchSize) {
        const b = Math.min(batchSize, count - start);
        const data = new Float32Array(b * perImage);
        for (let i = 0; i < b; i++) {
          const rng = keyedRng(seed, 'noise', start + i);
          for (let k = 0; k < perImage; k++) data[i * perImage + k] = rng.int(256) / 127.5 - 1;
        }
        yield tf.tensor4d(data, [b, size.height, size.width, size.channels]);
      }
    },
  };
}

export interface ExtractOptions {
  /** Images per forward pass (default 100). */
  readonly batchSize?: number;
  /** Also return the features (needed by KID). Default false. */
  readonly keepFeatures?: boolean;
  /** Called after each batch with the number of images done. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Streams `source` through `extractor`, accumulating float64 mean/covariance (and optionally the features). */
export async function extractSourceFeatures(source: ImageSource, extractor: FeatureExtractor, options: ExtractOptions = {}): Promise<SourceFeatures> {
  const batchSize = options.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, received ${batchSize}`);
  const preparation = describePreparation(source.size, extractor.inputSize, extractor.name); // throws early on a channel mismatch
  const stats = new FeatureStats(extractor.featureDim);
  const kept = options.keepFeatures ? new Float32Array(source.count * extractor.featureDim) : null;
  let done = 0;
  for await (const images of source.batches(batchSize)) {
    let features: tf.Tensor2D | null = null;
    try {
      features = extractor.extract(images);
      const values = (await features.data()) as Float32Array;
      stats.add(values, images.shape[0]);
      if (kept !== null) kept.set(values, done * extractor.featureDim);
      done += images.shape[0];
    } finally {
      images.dispose();
      features?.dispose();
    }
    options.onProgress?.(done, source.count);
  }
  if (done !== source.count) throw new Error(`${source.name}: read ${done} images, expected ${source.count}`);
  return {
    source: source.name,
    count: done,
    size: source.size,
    preparation,
    stats,
    features: kept === null ? null : { data: kept, count: done, dim: extractor.featureDim },
  };
}
