/**
 * Mini-batches from an in-memory ImageDataset.
 *
 * Order: epoch e visits the images in a permutation drawn from
 * keyedRng(seed, 'batches', e), so the whole iterator state is
 * { epoch, position } (position = how many entries of epoch e's permutation
 * have been consumed). Saving `state()` with a checkpoint and passing it back
 * as `options.state` continues with exactly the batches an uninterrupted run
 * would have produced.
 *
 * Pixels: uint8 p -> p / 127.5 - 1 in [-1, 1]. `padTo` centre-pads both
 * spatial dims to padTo x padTo with -1 (pixel value 0, black background),
 * e.g. MNIST 28x28 -> 32x32 with 2 pixels on each side, so a UNet can halve
 * the resolution several times.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { ImageDataset, imageSize } from './dataset';

export interface BatchIteratorState {
  /** Current epoch (0-based). */
  readonly epoch: number;
  /** Entries of this epoch's order already consumed. */
  readonly position: number;
}

export interface BatchOptions {
  /** Centre-pad height and width to padTo with -1 (default: no padding). */
  readonly padTo?: number;
  readonly resizeTo?: never;
}

export interface BatchIteratorOptions extends BatchOptions {
  readonly batchSize: number;
  /** Seed of the per-epoch permutations. */
  readonly seed: number | string;
  /** Draw a new permutation every epoch (default true); false visits 0..N-1 in order. */
  readonly shuffle?: boolean;
  /** Skip the last incomplete batch of each epoch (default true), so every batch has batchSize images. */
  readonly dropLast?: boolean;
  /** Where to resume (default { epoch: 0, position: 0 }). */
  readonly state?: BatchIteratorState;
}

export interface Batch {
  /** [B, H, W, C] float32: pixels in [-1, 1], or a float dataset's values (H, W = padTo when padding). The caller disposes it. */
  readonly x: tf.Tensor4D;
  /** [B] int32 class labels, or null when the dataset has none. The caller disposes it. */
  readonly labels: tf.Tensor1D | null;
  /** B captions, or null when the dataset has none. */
  readonly captions: string[] | null;
  /** Dataset indices of the B images. */
  readonly indices: Int32Array;
  /** Epoch the batch belongs to (-1 for fixedBatch). */
  readonly epoch: number;
}

// helpers

/** uint8 -> [-1, 1] lookup table. */
const SCALE = Float32Array.from({ length: 256 }, (_, p) => p / 127.5 - 1);

function outputSide(dataset: ImageDataset, padTo: number | undefined): { oh: number; ow: number } {
  if (padTo === undefined) return { oh: dataset.height, ow: dataset.width };
  if (!Number.isInteger(padTo) || padTo < dataset.height || padTo < dataset.width) {
    throw new Error(`padTo must be an integer >= the image size ${dataset.height}x${dataset.width}, received ${padTo}`);
  }
  return { oh: padTo, ow: padTo };
}

/** Builds the batch tensors for `indices` (two tensors created, nothing else allocated on the backend). */
function makeBatch(dataset: ImageDataset, indices: Int32Array, padTo: number | undefined, epoch: number): Batch {
  const { height: h, width: w, channels: c } = dataset;
  const { oh, ow } = outputSide(dataset, padTo);
  const top = Math.floor((oh - h) / 2);
  const left = Math.floor((ow - w) / 2);
  const size = imageSize(dataset);
  const b = indices.length;
  const float = dataset.images instanceof Float32Array; // values as they are (latents), padded with 0
  const out = new Float32Array(b * oh * ow * c).fill(float ? 0 : -1); // [B, oh, ow, C]
  for (let i = 0; i < b; i++) {
    const idx = indices[i];
    if (!Number.isInteger(idx) || idx < 0 || idx >= dataset.count) {
      throw new Error(`batch index ${idx} is outside [0, ${dataset.count}) of dataset '${dataset.name}'`);
    }
    const src = idx * size;
    for (let y = 0; y < h; y++) {
      const srcRow = src + y * w * c;
      const dstRow = ((i * oh + top + y) * ow + left) * c;
      if (float) out.set(dataset.images.subarray(srcRow, srcRow + w * c), dstRow);
      else for (let k = 0; k < w * c; k++) out[dstRow + k] = SCALE[dataset.images[srcRow + k]];
    }
  }
  const labelsArr = dataset.labels;
  const captionsArr = dataset.captions;
  return {
    x: tf.tensor4d(out, [b, oh, ow, c], 'float32'),
    labels: labelsArr === null ? null : tf.tensor1d(Int32Array.from(indices, (j) => labelsArr[j]), 'int32'),
    captions: captionsArr === null ? null : Array.from(indices, (j) => captionsArr[j]),
    indices: Int32Array.from(indices),
    epoch,
  };
}

// iterator

export class BatchIterator {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  readonly seed: number | string;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly padTo: number | undefined;
  private epoch: number;
  private position: number;
  private order: Int32Array | null = null; // permutation of this.epoch, built lazily
  private orderEpoch = -1;

  constructor(dataset: ImageDataset, options: BatchIteratorOptions) {
    const { batchSize, seed, shuffle = true, dropLast = true, padTo, state = { epoch: 0, position: 0 } } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`batchSize must be a positive integer, received ${batchSize}`);
    if (dataset.count === 0) throw new Error(`dataset '${dataset.name}' is empty`);
    if (dropLast && batchSize > dataset.count) {
      throw new Error(`batchSize ${batchSize} exceeds the ${dataset.count} images of '${dataset.name}' with dropLast: no batch would be produced`);
    }
    if (!Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.position) ||
        state.position < 0 || state.position > dataset.count) {
      throw new Error(`invalid iterator state ${JSON.stringify(state)}: expected integers epoch >= 0 and 0 <= position <= ${dataset.count}`);
    }
    outputSide(dataset, padTo); // validate padTo now
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = seed;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.padTo = padTo;
    this.epoch = state.epoch;
    this.position = state.position;
  }

  /** Batches per epoch (floor with dropLast, ceil without). */
  get batchesPerEpoch(): number {
    const n = this.dataset.count / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** Resumable state: pass it as `options.state` to continue from here. */
  state(): BatchIteratorState {
    return { epoch: this.epoch, position: this.position };
  }

  /** The visiting order of `epoch` (a seeded permutation, or 0..N-1 without shuffle). */
  epochOrder(epoch: number): Int32Array {
    const order = Int32Array.from({ length: this.dataset.count }, (_, i) => i);
    if (this.shuffle) keyedRng(this.seed, 'batches', epoch).shuffle(order);
    return order;
  }

  /** The next batch; rolls over to the next epoch when this one is exhausted. The caller disposes x and labels. */
  next(): Batch {
    const n = this.dataset.count;
    const remaining = n - this.position;
    if (remaining === 0 || (this.dropLast && remaining < this.batchSize)) {
      this.epoch++;
      this.position = 0;
    }
    if (this.orderEpoch !== this.epoch || this.order === null) {
      this.order = this.epochOrder(this.epoch);
      this.orderEpoch = this.epoch;
    }
    const end = Math.min(this.position + this.batchSize, n);
    const indices = this.order.subarray(this.position, end);
    const batch = makeBatch(this.dataset, indices, this.padTo, this.epoch);
    this.position = end;
    return batch;
  }
}

/** A batch of chosen images (e.g. a fixed validation set), epoch -1. The caller disposes x and labels. */
export function fixedBatch(dataset: ImageDataset, indices: ArrayLike<number>, options: BatchOptions = {}): Batch {
  if (indices.length === 0) throw new Error('fixedBatch: indices is empty');
  for (let i = 0; i < indices.length; i++) {
    if (!Number.isInteger(indices[i])) throw new Error(`fixedBatch: index ${indices[i]} at position ${i} is not an integer`);
  }
  return makeBatch(dataset, Int32Array.from(indices), options.padTo, -1);
}
