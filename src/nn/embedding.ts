/**
 * Embedding table lookup, as PyTorch's nn.Embedding.
 *
 * Forward is a gather. TF.js's gather gradient needs UnsortedSegmentSum, which the
 * WASM backend lacks, so the backward pass is a scatterND of dY into a zero table
 * (rows of repeated ids are summed), measured in notes/wasm-conv-gradients.md.
 *
 * Ids are checked against [0, numEmbeddings) before the lookup; this reads the ids
 * back to JS (cheap for token ids, but a sync point on GPU backends). Callers that
 * made the ids from values they already validated pass `checkRange: false`.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Rng, randomNormal } from '../backend/random';

function checkIds(ids: tf.Tensor, num: number): void {
  if (ids.dtype !== 'int32') throw new Error(`embeddingLookup: ids must be int32, got ${ids.dtype}`);
  const data = ids.dataSync() as Int32Array;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0 || data[i] >= num) {
      throw new Error(`embeddingLookup: id ${data[i]} at flat position ${i} is outside [0, ${num})`);
    }
  }
}

export interface EmbeddingLookupOptions {
  /** Read the ids back and check them against [0, num) (default true). */
  readonly checkRange?: boolean;
}

/** table [num, dim], ids int32 of any shape -> [...ids.shape, dim]. Differentiable w.r.t. table. */
export function embeddingLookup(table: tf.Tensor2D, ids: tf.Tensor, options: EmbeddingLookupOptions = {}): tf.Tensor {
  if (table.rank !== 2) throw new Error(`embeddingLookup: table must be [num, dim], got shape [${table.shape}]`);
  const [num, dim] = table.shape;
  if (ids.dtype !== 'int32') throw new Error(`embeddingLookup: ids must be int32, got ${ids.dtype}`);
  if (options.checkRange ?? true) checkIds(ids, num);
  return tf.tidy(() => {
    const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
    const n = flat.shape[0];
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const t = args[0] as tf.Tensor2D;
      const save = args[1] as tf.GradSaveFunc;
      save([flat]); // kept for the backward pass (this tidy disposes `flat`)
      return {
        value: tf.gather(t, flat),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor => tf.tidy((): tf.Tensor => tf.scatterND(tf.reshape(saved[0], [n, 1]), tf.reshape(dy, [n, dim]), [num, dim])),
      };
    });
    return tf.reshape(f(table), [...ids.shape, dim]);
  });
}

export interface EmbeddingArgs {
  numEmbeddings: number;
  dim: number;
  rng: Rng;
}

/** nn.Embedding: parameter `weight` [numEmbeddings, dim] initialised N(0, 1) like PyTorch. */
export class Embedding extends Module {
  readonly weight: tf.Variable;

  constructor(args: EmbeddingArgs) {
    super();
    const { numEmbeddings, dim } = args;
    for (const [name, v] of [['numEmbeddings', numEmbeddings], ['dim', dim]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Embedding: ${name} must be a positive integer, got ${v}`);
    }
    this.weight = this.addParameter('weight', randomNormal([numEmbeddings, dim], args.rng), 'plain');
  }

  /** ids int32 [...] -> [..., dim]. Throws on ids outside [0, numEmbeddings) unless `checkRange` is false. */
  apply(ids: tf.Tensor, options: EmbeddingLookupOptions = {}): tf.Tensor {
    return embeddingLookup(this.weight as tf.Tensor2D, ids, options);
  }
}
