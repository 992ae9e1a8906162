/**
 * Training the evaluation classifier (classifier.ts) through the one training
 * loop (train/loop.ts), its run kept in memory (no files), no augmentation.
 *
 *   for each step: batch (shuffled per epoch, padded like the diffusion data)
 *                  -> logits -> mean cross-entropy -> grads -> AdamW (clip 1.0)
 *   lr: linear warm-up, then cosine decay to 0 over all steps
 *   loss read every 20 steps and at the last
 *   after the last epoch: accuracy on the test split
 *
 * Cross-entropy: L = -mean_b (z_b[y_b] - logsumexp(z_b)).
 *
 * Data (`loadClassifierSplit`): the `loadDataset` names, plus Colored MNIST
 * generated with seed 0 (COLORED_MNIST_CLASSIFIER_SEED, the seed the text
 * pipelines' evaluation uses): train = the 'seen' (digit, colour, background)
 * triples, test = all 480 triples (the ~4% held out of training included). Its
 * classifier predicts the digit (10 classes), whatever the colours.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchIterator, fixedBatch } from '../data/batches';
import { DatasetSplit, ImageDataset } from '../data/dataset';
import { DATASET_NAMES, loadDataset } from '../data/load';
import { loadColoredMnist } from '../data/coloredMnist';
import { AdamW } from '../train/adamw';
import { batchAndSeed, LoopConfig, LoopRow, ModelFamily, runTrainingLoop } from '../train/loop';
import { MemoryRun } from '../train/runStore';
import { Classifier, ClassifierConfig } from './classifier';

export interface TrainClassifierOptions {
  /** Labelled training images. */
  readonly train: ImageDataset;
  /** Labelled test images for the final accuracy, or null. */
  readonly test: ImageDataset | null;
  /**
   * Architecture overrides. imageSize defaults to 32 for 28x28 data (padded, padFrom 28)
   * and to the data size otherwise; channels, numClasses, classNames and dataset come from the data.
   */
  readonly config?: Partial<Pick<ClassifierConfig, 'imageSize' | 'convs' | 'groups' | 'featureDim'>>;
  /** Passes over the training set (default 3). */
  readonly epochs?: number;
  /** Default 128. */
  readonly batchSize?: number;
  /** Peak learning rate (default 2e-3). */
  readonly lr?: number;
  /** Linear warm-up steps (default 100). */
  readonly warmupSteps?: number;
  /** AdamW decoupled weight decay (default 0.01). */
  readonly weightDecay?: number;
  /** Initialisation and batch-order seed (default 0). */
  readonly seed?: number;
  /** Test-accuracy batch size (default 500). */
  readonly evalBatchSize?: number;
  /** Log lines (setup, test accuracy), without newline. */
  readonly onLog?: (line: string) => void;
  /** Progress text to write verbatim (ProgressReporter's onLine); default: lines through onLog. */
  readonly onProgress?: (text: string) => void;
  /** Rewrite one progress line with '\r' (terminals; needs onProgress). Default false. */
  readonly isTTY?: boolean;
}

export interface TrainClassifierResult {
  readonly model: Classifier;
  /** Test accuracy in [0, 1], or null without a test set. */
  readonly testAccuracy: number | null;
  readonly steps: number;
  /** Mean of the last 3 logged training losses (logged every 20 steps and at the last). */
  readonly finalLoss: number;
  readonly seconds: number;
}

// data

/** Datasets a classifier can be trained on: the loadDataset names and 'colored-mnist'. */
export const CLASSIFIER_DATASETS = [...DATASET_NAMES, 'colored-mnist'] as const;
export type ClassifierDatasetName = (typeof CLASSIFIER_DATASETS)[number];

/** Seed of the Colored MNIST colours the shipped classifier was trained and tested on. */
export const COLORED_MNIST_CLASSIFIER_SEED = 0;

export interface ClassifierSplitOptions {
  /** Folder of the data (cifar10, image-folder; overrides fashion-mnist's). */
  readonly dataDir?: string;
  /** Keep only the first `limit` images (default: all). */
  readonly limit?: number;
}

/** One labelled split for classifier training or testing (Colored MNIST: see the header). */
export function loadClassifierSplit(name: ClassifierDatasetName, split: DatasetSplit, options: ClassifierSplitOptions = {}): ImageDataset {
  if (name === 'colored-mnist') {
    // 'seen' is the only rule the train split allows; the test split takes every triple.
    const combinations = split === 'train' ? 'seen' : 'all';
    return loadColoredMnist(split, { seed: COLORED_MNIST_CLASSIFIER_SEED, limit: options.limit, combinations }).dataset;
  }
  if (!(DATASET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`train classifier: unknown dataset '${String(name)}', expected one of ${CLASSIFIER_DATASETS.join(', ')}`);
  }
  return loadDataset(name, split, { dataDir: options.dataDir, limit: options.limit });
}

// training

/** The training loss is read (a sync point) every this many steps, and at the last. */
const CLASSIFIER_LOG_EVERY = 20;

/** Mean cross-entropy of logits [B, K] against int32 labels [B]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[1];
    const logProbs = tf.sub(logits, tf.logSumExp(logits, 1, true));
    return tf.neg(tf.mean(tf.sum(tf.mul(logProbs, tf.oneHot(labels, k)), 1))) as tf.Scalar;
  });
}

/** The classifier config implied by a dataset (padding 28x28 data to 32 like the diffusion pipeline). */
export function classifierConfigFor(data: ImageDataset, overrides: TrainClassifierOptions['config'] = {}): Partial<ClassifierConfig> {
  if (data.height !== data.width) throw new Error(`train classifier: images must be square, '${data.name}' is ${data.height}x${data.width}`);
  if (data.labels === null) throw new Error(`train classifier: dataset '${data.name}' has no labels`);
  const imageSize = overrides.imageSize ?? (data.height === 28 ? 32 : data.height);
  if (imageSize < data.height) throw new Error(`train classifier: imageSize ${imageSize} is smaller than the data (${data.height}); resize the data first`);
  let numClasses = data.classNames?.length ?? 0;
  for (const l of data.labels) numClasses = Math.max(numClasses, l + 1);
  return {
    ...overrides,
    imageSize,
    channels: data.channels,
    numClasses,
    padFrom: imageSize > data.height ? data.height : null,
    dataset: data.name,
    classNames: data.classNames ?? null,
  };
}

/** Top-1 accuracy of `model` on a labelled dataset (padded as in training). */
export async function datasetAccuracy(
  model: Classifier,
  data: ImageDataset,
  batchSize = 500,
): Promise<{ accuracy: number; correct: number; count: number }> {
  if (data.labels === null) throw new Error(`accuracy: dataset '${data.name}' has no labels`);
  const padTo = model.config.padFrom === data.height ? model.config.imageSize : undefined;
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const batch = fixedBatch(data, idx, { padTo });
    try {
      const hits = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(model.apply(batch.x), 1), batch.labels as tf.Tensor1D), 'int32')));
      correct += (await hits.data())[0];
      hits.dispose();
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
  }
  return { accuracy: correct / data.count, correct, count: data.count };
}

/** Trains a classifier on `train` and measures it on `test` (see the header). */
export async function trainClassifier(options: TrainClassifierOptions): Promise<TrainClassifierResult> {
  const { train, test } = options;
  const epochs = options.epochs ?? 3;
  const batchSize = options.batchSize ?? 128;
  const seed = options.seed ?? 0;
  const onLog = options.onLog ?? ((): void => undefined);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`train classifier: epochs must be a positive integer, received ${epochs}`);
  const config = classifierConfigFor(train, options.config);
  if (test !== null && (test.height !== train.height || test.width !== train.width || test.channels !== train.channels)) {
    throw new Error(`train classifier: test images are ${test.height}x${test.width}x${test.channels}, training images ${train.height}x${train.width}x${train.channels}`);
  }
  const model = new Classifier(config, seed);
  const params = model.namedTrainableParameters();
  const optimizer = new AdamW({ weightDecay: options.weightDecay ?? 0.01, clipGradNorm: 1.0 });
  const iterator = new BatchIterator(train, {
    batchSize,
    seed,
    padTo: model.config.padFrom !== null ? model.config.imageSize : undefined,
  });
  const totalSteps = epochs * iterator.batchesPerEpoch;
  onLog(`classifier: ${model.numParameters()} parameters, features ${model.featureDim}-d, input ${model.config.imageSize}x${model.config.imageSize}x${model.config.channels}` +
    `${model.config.padFrom !== null ? ` (${model.config.padFrom}x${model.config.padFrom} data centre-padded with -1)` : ''}; ` +
    `${epochs} epochs x ${iterator.batchesPerEpoch} steps of ${batchSize}`);
  const loop: LoopConfig = {
    steps: totalSteps, batchSize, gradAccum: 1, seed,
    lr: options.lr ?? 2e-3, warmupSteps: Math.min(options.warmupSteps ?? 100, totalSteps), lrDecay: 'cosine', lrMinRatio: 0, ema: null,
    logEvery: CLASSIFIER_LOG_EVERY, checkpointEvery: totalSteps, valEvery: 0, valAtEnd: false, sampleEvery: 0, snapshotEvery: 0,
    timeBudgetMinutes: null, workers: 1,
  };
  const family: ModelFamily<LoopRow> = {
    family: 'classifier',
    files: { state: 'classifier-state', weights: 'classifier', logs: ['classifier-metrics'] },
    model,
    ema: null,
    optimizer,
    params,
    config: loop,
    runIdentity: batchAndSeed,
    stateJson: () => ({ iterator: iterator.state() }),
    weights: () => ({ kind: 'classifier', config: model.config as unknown as Record<string, unknown> }),
    local: {
      next: () => {
        const batch = iterator.next();
        try {
          const { value, grads } = tf.variableGrads(() => crossEntropy(model.apply(batch.x), batch.labels as tf.Tensor1D), params.map(([, v]) => v));
          return { loss: value, grads: new Map(params.map(([n, v]) => [n, grads[v.name]])) };
        } finally {
          tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
        }
      },
    },
    microBatch: batchSize,
    progress: () => ({ epoch: String(iterator.state().epoch) }),
  };
  // The run keeps no files: its checkpoint (at the end) and metrics stay in memory and are dropped.
  const store = new MemoryRun('classifier');
  const t0 = performance.now();
  const logged: number[] = [];
  try {
    await runTrainingLoop(family, loop, store, {
      resume: false,
      onLog,
      onProgress: options.onProgress ?? ((s) => onLog(s.trimEnd())),
      isTTY: options.onProgress !== undefined && (options.isTTY ?? false),
      onMetrics: (row) => logged.push(row.loss),
    });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    optimizer.dispose();
    store.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  let testAccuracy: number | null = null;
  if (test !== null) {
    const acc = await datasetAccuracy(model, test, options.evalBatchSize ?? 500);
    testAccuracy = acc.accuracy;
    onLog(`test accuracy: ${(100 * acc.accuracy).toFixed(2)}% (${acc.correct}/${acc.count})`);
  }
  const recent = logged.slice(-3);
  const finalLoss = recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length);
  return { model, testAccuracy, steps: totalSteps, finalLoss, seconds };
}
