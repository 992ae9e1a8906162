/**
 * CLIP gradients in two phases (the "gradient cache" of Gao et al. 2021,
 * "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
 * https://arxiv.org/abs/2101.06983): how data-parallel workers (./dataParallel.ts)
 * train a CLIP whose loss needs the negatives of the WHOLE batch.
 *
 * Notation (models/clip.ts): I = f(x; theta_I), T = g(ids; theta_T) the unit-norm
 * image and text embeddings [B, E] (the inputs of clipLoss), s = exp(min(logit_scale,
 * logitScaleMax)), Y the multi-positive targets [B, B], L(I, T, logit_scale) = clipLoss.
 *
 * The towers are per example (GroupNorm, attention within a caption): row i of
 * I depends only on example i. So by the chain rule
 *
 *   dL/dtheta_I = sum_i (dI_i/dtheta_I)^T dL/dI_i                                (1)
 *
 * and a slice r of rows contributes the vector-Jacobian product
 *
 *   v_r = d/dtheta [ sum(I[r] * G_I[r]) + sum(T[r] * G_T[r]) ],  G = dL/dI, dL/dT    (2)
 *
 * with G held constant. The phases:
 *
 *   (a) embed:  per slice r, I[r] and T[r] (forward only, no tape)
 *   (b) loss:   on the gathered [B, E] matrices: L, G_I, G_T and dL/dlogit_scale
 *               (logit_scale enters only here, through clip.scale() and its clamp)
 *   (c) VJP:    per slice r, recompute the forward of slice r with a tape and take (2)
 *
 *   dL/dtheta = sum_r v_r, dL/dlogit_scale from (b): the one-batch gradient up to
 *   float rounding, at the cost of one extra forward pass per slice.
 *
 * `clipLossAndGradsBySlices` runs the three phases in one thread (the reference
 * the workers are tested against; with one slice it is just a slower direct grad).
 */
import * as tf from '@tensorflow/tfjs';
import { Clip, clipLoss } from '../models/clip';

// ---------------------------------------------------------------- types

/** One contrastive batch: images and the tokenised captions, row i of each the same example. */
export interface ClipBatch {
  readonly images: tf.Tensor4D; // [B, S, S, C]
  readonly ids: tf.Tensor2D; // [B, L] int32
  readonly mask: tf.Tensor2D; // [B, L]
}

export interface ClipEmbeddingGrads {
  readonly loss: tf.Scalar;
  /** dL/dI [B, E]. */
  readonly dImage: tf.Tensor2D;
  /** dL/dT [B, E]. */
  readonly dText: tf.Tensor2D;
  /** dL/dlogit_scale (0 above the clamp). */
  readonly dLogitScale: tf.Scalar;
}

// ---------------------------------------------------------------- the phases

/** Phase (a): the unit-norm embeddings I, T [B, E] that enter clipLoss (no tape kept). The caller owns them. */
export function clipEmbeddings(clip: Clip, batch: ClipBatch): { image: tf.Tensor2D; text: tf.Tensor2D } {
  return tf.tidy(() => ({ image: clip.embedImages(batch.images), text: clip.embedTokens(batch.ids, batch.mask) }));
}

/**
 * Phase (b): L = clipLoss(I, T, clip.scale(), Y) and its gradients w.r.t. I, T and
 * logit_scale. The caller owns the returned tensors.
 */
export function clipEmbeddingGrads(clip: Clip, image: tf.Tensor2D, text: tf.Tensor2D, targets: tf.Tensor2D): ClipEmbeddingGrads {
  // logit_scale is passed among the xs but f reaches it only through clip.scale(), so the tape
  // returns its gradient through the same exp(min(., logitScaleMax)) the model uses (0 above the clamp).
  const f = (i: tf.Tensor, t: tf.Tensor): tf.Scalar => clipLoss(i as tf.Tensor2D, t as tf.Tensor2D, clip.scale(), targets);
  const { value, grads } = tf.valueAndGrads(f)([image, text, clip.logitScale]);
  return { loss: value as tf.Scalar, dImage: grads[0] as tf.Tensor2D, dText: grads[1] as tf.Tensor2D, dLogitScale: grads[2] as tf.Scalar };
}

/**
 * Phase (c): eq. (2) for one slice, dImage / dText its rows of G_I / G_T [b, E].
 * Gradients by name of every parameter of `params` except logit_scale (which does
 * not enter the towers); a parameter the towers do not reach gets zeros.
 * The caller owns the returned tensors.
 */
export function clipEmbeddingVjp(
  clip: Clip,
  params: ReadonlyArray<[string, tf.Variable]>,
  slice: ClipBatch,
  dImage: tf.Tensor2D,
  dText: tf.Tensor2D,
): Map<string, tf.Tensor> {
  const [b, e] = [slice.images.shape[0], clip.config.image.embedDim];
  for (const [what, d] of [['dImage', dImage], ['dText', dText]] as const) {
    if (d.rank !== 2 || d.shape[0] !== b || d.shape[1] !== e) throw new Error(`clipEmbeddingVjp: ${what} must be [${b}, ${e}] (the slice's rows of G), got [${d.shape}]`);
  }
  const tower = params.filter(([, v]) => v !== clip.logitScale);
  const { value, grads } = tf.variableGrads(
    () => tf.tidy(() => tf.add(tf.sum(tf.mul(clip.embedImages(slice.images), dImage)), tf.sum(tf.mul(clip.embedTokens(slice.ids, slice.mask), dText))) as tf.Scalar),
    tower.map(([, v]) => v),
  );
  value.dispose();
  return new Map(tower.map(([n, v]) => [n, grads[v.name] ?? tf.zerosLike(v)]));
}

// ---------------------------------------------------------------- in one thread

/** Rows [start, start + size) of a batch (new tensors; the caller disposes them). */
function sliceRows(batch: ClipBatch, start: number, size: number): ClipBatch {
  return {
    images: tf.slice(batch.images, [start, 0, 0, 0], [size, -1, -1, -1]),
    ids: tf.slice(batch.ids, [start, 0], [size, -1]),
    mask: tf.slice(batch.mask, [start, 0], [size, -1]),
  };
}

/**
 * Loss and gradients by name (over `params`) of clip.loss(images, ids, mask, targets),
 * computed with the three phases over contiguous slices of `sizes` examples
 * (summing to B): what the data-parallel workers compute, in one thread.
 * The caller owns the returned tensors.
 */
export function clipLossAndGradsBySlices(
  clip: Clip,
  params: ReadonlyArray<[string, tf.Variable]>,
  batch: ClipBatch,
  targets: tf.Tensor2D,
  sizes: readonly number[],
): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const b = batch.images.shape[0];
  if (sizes.reduce((a, n) => a + n, 0) !== b || sizes.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`clipLossAndGradsBySlices: slice sizes [${sizes}] must be positive integers summing to the batch size ${b}`);
  }
  const starts = sizes.map((_, r) => sizes.slice(0, r).reduce((a, n) => a + n, 0));
  // (a) embeddings per slice, gathered.
  const { image, text } = tf.tidy(() => {
    const parts = sizes.map((n, r) => clipEmbeddings(clip, sliceRows(batch, starts[r], n)));
    return { image: tf.concat(parts.map((p) => p.image)) as tf.Tensor2D, text: tf.concat(parts.map((p) => p.text)) as tf.Tensor2D };
  });
  // (b) the whole-batch loss and its embedding gradients.
  const g = clipEmbeddingGrads(clip, image, text, targets);
  tf.dispose([image, text]);
  const grads = new Map<string, tf.Tensor>();
  try {
    // (c) per-slice VJPs, summed in slice order.
    sizes.forEach((n, r) => {
      const slice = sliceRows(batch, starts[r], n);
      const dImage = tf.slice(g.dImage, [starts[r], 0], [n, -1]);
      const dText = tf.slice(g.dText, [starts[r], 0], [n, -1]);
      let part: Map<string, tf.Tensor>;
      try {
        part = clipEmbeddingVjp(clip, params, slice, dImage, dText);
      } finally {
        tf.dispose([slice.images, slice.ids, slice.mask, dImage, dText]);
      }
      for (const [name, v] of part) {
        const sum = grads.get(name);
        grads.set(name, sum === undefined ? v : tf.add(sum, v));
        if (sum !== undefined) tf.dispose([sum, v]);
      }
    });
    const scaleEntry = params.find(([, v]) => v === clip.logitScale);
    if (scaleEntry !== undefined) grads.set(scaleEntry[0], g.dLogitScale.clone());
  } catch (e) {
    tf.dispose([g.loss, ...grads.values()]);
    throw e;
  } finally {
    tf.dispose([g.dImage, g.dText, g.dLogitScale]);
  }
  // Back in `params` order.
  return { loss: g.loss, grads: new Map(params.map(([n]) => [n, grads.get(n) as tf.Tensor])) };
}
