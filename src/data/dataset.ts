/**
 * The in-memory image dataset shared by every loader (MNIST, Fashion-MNIST,
 * CIFAR-10, image folders) and consumed by `BatchIterator`.
 *
 * Pixels stay uint8 in [0, 255], NHWC, one flat buffer: 60k MNIST digits are
 * 47 MB this way instead of 188 MB as float32. Scaling to [-1, 1] happens per
 * batch (`batches.ts`). A float32 buffer instead holds values used as they are
 * (cached autoencoder latents for latent diffusion, any channel count).
 */

export type DatasetSplit = 'train' | 'test';

export interface ImageDataset {
  /** Short name, e.g. 'mnist', 'cifar10', or the image folder's name. */
  readonly name: string;
  readonly split: DatasetSplit;
  /** N*H*W*C values, NHWC, row-major: uint8 pixels in [0, 255], or float32 values taken as they are (latents). */
  readonly images: Uint8Array | Float32Array;
  /** N: number of images. */
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** 1 (grayscale) or 3 (RGB) for uint8 pixels; any positive count for float32 values. */
  readonly channels: number;
  /** One class index per image, or null when the dataset has no labels. */
  readonly labels: Int32Array | null;
  /** Name of each class index (labels[i] indexes this), or null. */
  readonly classNames: readonly string[] | null;
  /** One caption per image, or null. */
  readonly captions: readonly string[] | null;
}

/** Number of bytes of one image (H*W*C). */
export function imageSize(dataset: ImageDataset): number {
  return dataset.height * dataset.width * dataset.channels;
}

/**
 * Checks that the fields of a dataset agree with each other (buffer length,
 * label/caption counts, label range). Loaders call it before returning; call it
 * on a hand-built dataset to get a clear error instead of a wrong batch later.
 */
export function validateDataset(d: ImageDataset): ImageDataset {
  const where = `dataset '${d.name}' (${d.split})`;
  for (const [field, v] of [['count', d.count], ['height', d.height], ['width', d.width], ['channels', d.channels]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${where}: ${field} must be a non-negative integer, received ${v}`);
  }
  if (d.images instanceof Float32Array) {
    if (d.channels < 1) throw new Error(`${where}: channels must be positive, received ${d.channels}`);
  } else if (d.channels !== 1 && d.channels !== 3) throw new Error(`${where}: channels must be 1 or 3, received ${d.channels}`);
  const expected = d.count * d.height * d.width * d.channels;
  if (d.images.length !== expected) {
    throw new Error(`${where}: images has ${d.images.length} values, expected count*height*width*channels = ` +
      `${d.count}*${d.height}*${d.width}*${d.channels} = ${expected}`);
  }
  if (d.labels !== null) {
    if (d.labels.length !== d.count) throw new Error(`${where}: ${d.labels.length} labels for ${d.count} images`);
    const numClasses = d.classNames === null ? Infinity : d.classNames.length;
    for (let i = 0; i < d.labels.length; i++) {
      const l = d.labels[i];
      if (l < 0 || l >= numClasses) {
        throw new Error(`${where}: label ${l} at index ${i} is outside [0, ${numClasses})`);
      }
    }
  }
  if (d.captions !== null && d.captions.length !== d.count) {
    throw new Error(`${where}: ${d.captions.length} captions for ${d.count} images`);
  }
  return d;
}

/** A view of the first `n` images (no copy); `n` undefined returns the dataset unchanged. */
export function takeFirst(d: ImageDataset, n: number | undefined): ImageDataset {
  if (n === undefined) return d;
  if (!Number.isInteger(n) || n < 0) throw new Error(`limit must be a non-negative integer, received ${n}`);
  if (n >= d.count) return d;
  const size = imageSize(d);
  return {
    ...d,
    images: d.images.subarray(0, n * size),
    count: n,
    labels: d.labels === null ? null : d.labels.subarray(0, n),
    captions: d.captions === null ? null : d.captions.slice(0, n),
  };
}

/** The uint8 pixels of a dataset, or a clear error when it holds float values (latents) instead. */
export function pixelsOf(d: ImageDataset, what: string): Uint8Array {
  if (!(d.images instanceof Uint8Array)) throw new Error(`${what}: dataset '${d.name}' holds float32 values (e.g. latents), not uint8 pixels`);
  return d.images;
}
