/**
 * Conditional accuracy of a class-conditional generator: the fraction of
 * images generated for label y that a trained classifier (classifier.ts)
 * labels y, overall and per requested class.
 *
 * Images of another size are prepared as for FID features (features.ts
 * prepareImages: 28x28 -> centre-padded to 32, other sizes bilinear-resized).
 */
import * as tf from '@tensorflow/tfjs';
import { Classifier } from './classifier';
import { prepareImages } from './features';

export interface ClassAccuracy {
  readonly label: number;
  /** Images requested with this label. */
  readonly n: number;
  /** Of those, how many the classifier labels `label`. */
  readonly correct: number;
  readonly accuracy: number;
}

export interface ConditionalAccuracy {
  /** Correct / total over all images. */
  readonly overall: number;
  /** One entry per label that was requested, ascending by label. */
  readonly perClass: ClassAccuracy[];
  /** The classifier's label for each image. */
  readonly predicted: Int32Array;
}

/** Predicted labels (argmax of the logits) for images [N, H, W, C] in [-1, 1], in batches. */
export async function classify(classifier: Classifier, images: tf.Tensor4D, batchSize = 256): Promise<Int32Array> {
  const cfg = classifier.config;
  const spec = { height: cfg.imageSize, width: cfg.imageSize, channels: cfg.channels, padFrom: cfg.padFrom };
  const n = images.shape[0];
  const out = new Int32Array(n);
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const pred = tf.tidy(() => {
      const x = tf.slice(images, [start, 0, 0, 0], [b, images.shape[1], images.shape[2], images.shape[3]]);
      return tf.argMax(classifier.apply(prepareImages(x, spec, 'classifier')), 1);
    });
    try {
      out.set((await pred.data()) as Int32Array, start);
    } finally {
      pred.dispose();
    }
  }
  return out;
}

/**
 * How often images generated for `requestedLabels[i]` are classified as that
 * label. images [N, H, W, C] in [-1, 1]; requestedLabels has N integers in
 * [0, numClasses).
 */
export async function conditionalAccuracy(
  images: tf.Tensor4D,
  requestedLabels: ArrayLike<number>,
  classifier: Classifier,
  options: { batchSize?: number } = {},
): Promise<ConditionalAccuracy> {
  const n = images.shape[0];
  if (requestedLabels.length !== n) throw new Error(`conditionalAccuracy: ${requestedLabels.length} labels for ${n} images`);
  if (n === 0) throw new Error('conditionalAccuracy: no images');
  const k = classifier.config.numClasses;
  for (let i = 0; i < n; i++) {
    const l = requestedLabels[i];
    if (!Number.isInteger(l) || l < 0 || l >= k) {
      throw new Error(`conditionalAccuracy: label ${l} at index ${i} is not an integer in [0, ${k}) (the classifier's classes)`);
    }
  }
  const predicted = await classify(classifier, images, options.batchSize);
  const total = new Map<number, number>();
  const hits = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const l = requestedLabels[i];
    total.set(l, (total.get(l) ?? 0) + 1);
    if (predicted[i] === l) {
      hits.set(l, (hits.get(l) ?? 0) + 1);
      correct++;
    }
  }
  const perClass = [...total.keys()].sort((a, b) => a - b).map((label) => {
    const cnt = total.get(label) ?? 0;
    const c = hits.get(label) ?? 0;
    return { label, n: cnt, correct: c, accuracy: c / cnt };
  });
  return { overall: correct / n, perClass, predicted };
}
