/**
 * CLIP training (models/clip.ts), flat and visible:
 *
 *   for step in [start, steps):
 *     lr      = warm-up + cosine (train/lr.ts)
 *     images, captions <- data (seeded order, resumable)
 *     ids, mask        <- the CLIP's tokenizer (bytes or byte-level BPE)
 *     Y                <- multi-positive targets (identical caption text = positive)
 *     loss    = symmetric InfoNCE(image tower(images), text tower(ids, mask), exp(logit_scale), Y)
 *     grads   = d loss / d trainable params; clip global norm; AdamW step
 *     every logEvery: read the loss (a sync point), metrics row, progress line
 *     every evalEvery and at the end: the caller's evaluation (zero-shot accuracy, ...)
 *     every checkpointEvery and at the end: weights (kind 'clip') + training state
 *
 * There is no other randomness than the batch order (no dropout, no augmentation),
 * so a run resumed from its training state continues with the same batches.
 *
 * The second half of the file is the dataset recipe used by the CLI and the
 * example: load + caption a dataset, build a CLIP for it, train, evaluate.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Batch } from '../data/batches';
import { LoopBatches } from './loopBatches';
import { ImageDataset } from '../data/dataset';
import { loadDataset } from '../data/load';
import { captionDataset, MNIST_CAPTION_THRESHOLDS, writeCaptionsFile, writeCaptionThresholdsFile, CIFAR10_SYNONYMS, FASHION_MNIST_SYNONYMS } from '../data/captions';
import { loadColoredMnist } from '../data/coloredMnist';
import { Clip, ClipConfigPartial, CLIP_CHECKPOINT_KIND, duplicateCaptionTargets } from '../models/clip';
import { ByteTokenizer, learnBpeMerges } from '../models/tokenizer';
import { coloredMnistAccuracy, digitPrompts, zeroShotAccuracy } from '../eval/clipScore';
import { AdamW } from './adamw';
import { readTrainingStateJson } from './checkpoint';
import { batchAndSeed, checkSameRun, LoopConfig, ModelFamily, RunOptions, runOptionsOf, runTrainingLoop, StepGradients } from './loop';
import { familyRunFiles, RunFiles, RunStore } from './runStore';
import { decideRunStart } from './runFolder';
import { FolderRun } from './folderRun';
import { startClipDataParallel } from './dataParallel';
import { dataParallelSource } from './dataParallelSource';

// ---------------------------------------------------------------- config

export interface ClipTrainConfig {
  /** Optimiser steps. */
  readonly steps: number;
  /** Image-caption pairs per step (the contrastive batch: more negatives help). */
  readonly batchSize: number;
  /** Peak learning rate. */
  readonly lr: number;
  /** Linear warm-up steps. */
  readonly warmupSteps: number;
  /** After warm-up: hold, or cosine-decay to lr * lrMinRatio. */
  readonly lrDecay: 'constant' | 'cosine';
  readonly lrMinRatio: number;
  /** AdamW decoupled weight decay (matrices and kernels only); CLIP used 0.2. */
  readonly weightDecay: number;
  /** Global gradient-norm clip (0 = off). */
  readonly clipGradNorm: number;
  /** Read the loss and write a metrics row every N steps. */
  readonly logEvery: number;
  /** Run the evaluation callback every N steps (0 = only at the end). */
  readonly evalEvery: number;
  /** Write weights + training state every N steps (and at the end). */
  readonly checkpointEvery: number;
  /** Seed of the batch order. */
  readonly seed: number;
  /** Data-parallel worker threads (train/dataParallel.ts; the embeddings are gathered, so every example still has the whole batch as negatives); 1 = this thread. */
  readonly workers: number;
}

export const CLIP_TRAIN_DEFAULTS: ClipTrainConfig = {
  steps: 3000,
  batchSize: 128,
  // Batch 64 on 512 MNIST digits: 5e-4 learned within 30 steps; 1e-3 collapsed to identical embeddings (loss log B,
  // where the gradient vanishes) and stayed there. Warm-up guards the first steps.
  lr: 5e-4,
  warmupSteps: 100,
  lrDecay: 'cosine',
  lrMinRatio: 0.05,
  weightDecay: 0.1,
  clipGradNorm: 1.0,
  logEvery: 10,
  evalEvery: 500,
  checkpointEvery: 500,
  seed: 0,
  workers: 1,
};

export function clipTrainConfig(partial: Partial<ClipTrainConfig> = {}): ClipTrainConfig {
  const cfg = { ...CLIP_TRAIN_DEFAULTS, ...partial };
  for (const key of ['steps', 'batchSize', 'logEvery', 'checkpointEvery', 'workers'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0) throw new Error(`clipTrainConfig: ${key} must be a positive integer, got ${cfg[key]}`);
  }
  for (const key of ['warmupSteps', 'evalEvery'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] < 0) throw new Error(`clipTrainConfig: ${key} must be a non-negative integer, got ${cfg[key]}`);
  }
  if (cfg.batchSize < 2) throw new Error(`clipTrainConfig: batchSize must be >= 2 (a contrastive batch needs negatives), got ${cfg.batchSize}`);
  if (!(cfg.lr > 0)) throw new Error(`clipTrainConfig: lr must be > 0, got ${cfg.lr}`);
  if (!(cfg.lrMinRatio >= 0 && cfg.lrMinRatio <= 1)) throw new Error(`clipTrainConfig: lrMinRatio must be in [0, 1], got ${cfg.lrMinRatio}`);
  if (cfg.lrDecay !== 'constant' && cfg.lrDecay !== 'cosine') throw new Error(`clipTrainConfig: lrDecay must be 'constant' or 'cosine', got '${String(cfg.lrDecay)}'`);
  if (!(cfg.weightDecay >= 0) || !(cfg.clipGradNorm >= 0)) throw new Error('clipTrainConfig: weightDecay and clipGradNorm must be >= 0');
  if (!Number.isInteger(cfg.seed)) throw new Error(`clipTrainConfig: seed must be an integer, got ${cfg.seed}`);
  return cfg;
}

// ---------------------------------------------------------------- types

/** A CLIP run's files: clip.safetensors, clip-state.safetensors, clip-metrics.jsonl, clip-loss.png, clip-run.json. */
export const CLIP_RUN_FILES: RunFiles = familyRunFiles('clip.safetensors', 'clip-');
export const CLIP_WEIGHTS_FILE = CLIP_RUN_FILES.weights;
export const CLIP_STATE_FILE = CLIP_RUN_FILES.state;
export const CLIP_METRICS_FILE = CLIP_RUN_FILES.logs[0];

export interface ClipMetricsRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  /** exp(logit_scale) as used (clamped). */
  readonly logitScale: number;
  readonly imagesPerSec: number;
  readonly wallSeconds: number;
  /** The evaluation callback's numbers at this step, if it ran. */
  readonly eval?: Record<string, number>;
}

export interface TrainClipOptions extends RunOptions<ClipMetricsRow> {
  readonly clip: Clip;
  /** Must have captions. */
  readonly train: ImageDataset;
  readonly config: ClipTrainConfig;
  /** Run folder: clip.safetensors, clip-state.safetensors, clip-metrics.jsonl, clip-loss.png. */
  readonly outDir: string;
  /** Where the run's files go instead of outDir's folder (e.g. a MemoryRun); default new FolderRun(outDir). */
  readonly store?: RunStore;
  /** Numbers to log, e.g. zero-shot accuracy; called every evalEvery steps and at the end. */
  readonly evaluate?: (clip: Clip, step: number) => Promise<Record<string, number>>;
  /** Extra JSON stored with the weights' config (dataset, caption settings, ...). */
  readonly checkpointConfig?: Record<string, unknown>;
}

export interface TrainClipResult {
  readonly startStep: number;
  readonly endStep: number;
  /** Loss of every step of this call (index = step - startStep). */
  readonly losses: number[];
  /** The last evaluation's numbers (null if none ran). */
  readonly lastEval: Record<string, number> | null;
  readonly stoppedEarly: boolean;
}

// ---------------------------------------------------------------- helpers

function formatEval(values: Record<string, number>): string {
  return Object.entries(values).map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(4) : String(v)}`).join(', ');
}


// ---------------------------------------------------------------- the family

/** The loop's settings of a CLIP run (no EMA, no gradient accumulation). */
function clipLoopConfig(cfg: ClipTrainConfig, workers: number): LoopConfig {
  return {
    steps: cfg.steps, batchSize: cfg.batchSize, gradAccum: 1, seed: cfg.seed,
    lr: cfg.lr, warmupSteps: cfg.warmupSteps, lrDecay: cfg.lrDecay, lrMinRatio: cfg.lrMinRatio, ema: null,
    logEvery: cfg.logEvery, checkpointEvery: cfg.checkpointEvery, valEvery: cfg.evalEvery, valAtEnd: true,
    sampleEvery: 0, snapshotEvery: 0, timeBudgetMinutes: null, workers,
  };
}

/**
 * The loss and gradients of one batch of images and captions: symmetric InfoNCE over the
 * whole batch, positives where the caption text is the same. The caller owns the tensors.
 */
export function clipBatchLossAndGrads(clip: Clip, params: ReadonlyArray<[string, tf.Variable]>, tokenizer: ByteTokenizer, batch: Batch): StepGradients {
  const captions = batch.captions as string[];
  const { ids, mask } = tokenizer.encodeTensors(captions);
  const b = batch.x.shape[0];
  const targets = tf.tensor2d(duplicateCaptionTargets(captions), [b, b]);
  try {
    const { value, grads } = tf.variableGrads(() => clip.loss(batch.x, ids, mask, targets), params.map(([, v]) => v));
    const names = new Map(params.map(([n, v]) => [v.name, n]));
    return { loss: value, grads: new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])) };
  } finally {
    tf.dispose([ids, mask, targets]);
  }
}

export async function trainClip(opts: TrainClipOptions): Promise<TrainClipResult> {
  const { clip, train, config: cfg } = opts;
  const log = opts.onLog ?? (() => undefined);
  const captions = train.captions;
  if (captions === null) throw new Error(`trainClip: dataset '${train.name}' has no captions (caption it with captionDataset first)`);
  const { imageSize, inChannels } = clip.config.image;
  if (train.channels !== inChannels) throw new Error(`trainClip: dataset '${train.name}' has ${train.channels} channel(s), the CLIP expects ${inChannels}`);
  if (train.height > imageSize || train.width > imageSize) {
    throw new Error(`trainClip: dataset images are ${train.height}x${train.width}, larger than the CLIP's imageSize ${imageSize}`);
  }
  const padTo = train.height === imageSize && train.width === imageSize ? undefined : imageSize;
  const tokenizer = clip.tokenizer();
  let truncated = 0;
  tokenizer.encode([...new Set(captions)], { onWarn: () => truncated++ });
  if (truncated > 0) log(`warning: ${truncated} distinct caption(s) exceed ${tokenizer.maxLength - 2} tokens and are truncated`);

  const store = opts.store ?? new FolderRun(opts.outDir);
  const params = clip.namedTrainableParameters();
  const optimizer = new AdamW({ weightDecay: cfg.weightDecay, clipGradNorm: cfg.clipGradNorm });
  const batches = new LoopBatches(train, { batchSize: cfg.batchSize, seed: cfg.seed, padTo });
  const family: ModelFamily<ClipMetricsRow> = {
    family: 'clip',
    files: CLIP_RUN_FILES,
    model: clip,
    ema: null,
    optimizer,
    params,
    config: cfg,
    runIdentity: batchAndSeed,
    restore: (json) => batches.restore(json),
    stateJson: () => batches.stateJson(),
    weights: () => ({ kind: CLIP_CHECKPOINT_KIND, config: { ...(opts.checkpointConfig ?? {}), clip: clip.config } }),
    local: { next: () => batches.withNext((batch) => clipBatchLossAndGrads(clip, params, tokenizer, batch)) },
    startWorkers: async (workers) => dataParallelSource(await startClipDataParallel({ workers, clip, dataset: train, padTo }), batches, cfg.batchSize),
    microBatch: cfg.batchSize,
    probe: (b) => batches.probe(b, (batch) => clipBatchLossAndGrads(clip, params, tokenizer, batch)),
    logFields: async () => {
      const scale = clip.scale();
      const logitScale = (await scale.data())[0];
      scale.dispose();
      return { logitScale };
    },
    validate: opts.evaluate === undefined ? undefined : async (step) => {
      const values = await (opts.evaluate as NonNullable<TrainClipOptions['evaluate']>)(clip, step);
      log(`eval at step ${step}: ${formatEval(values)}`);
      return { eval: values };
    },
    progress: (row) => ({ scale: row.logitScale.toFixed(1) }),
    plot: (all) => ({ series: [{ name: 'CLIP loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) }], title: 'CLIP contrastive loss' }),
  };
  try {
    const result = await runTrainingLoop(family, clipLoopConfig(cfg, cfg.workers), store, opts);
    const lastEval = (result.lastValidation?.eval as Record<string, number> | undefined) ?? null;
    return { startStep: result.startStep, endStep: result.endStep, losses: result.losses, lastEval, stoppedEarly: result.stoppedEarly };
  } finally {
    optimizer.dispose();
  }
}

// ---------------------------------------------------------------- dataset recipe

export const CLIP_DATASETS = ['mnist', 'colored-mnist', 'fashion-mnist', 'cifar10'] as const;
export type ClipDatasetName = (typeof CLIP_DATASETS)[number];

/** Default cap on BPE merges for trainClipOnDataset. */
export const DEFAULT_BPE_MERGES = 1000;

export interface ClipRecipeOptions extends RunOptions<ClipMetricsRow> {
  readonly dataset: ClipDatasetName;
  /** Folder of cifar10 (required) or fashion-mnist (optional). */
  readonly dataDir?: string;
  /** Use the first N training images (default all). */
  readonly limit?: number;
  /** MNIST: add measured attribute words to the captions. */
  readonly attributes: boolean;
  /** Test images used by the evaluation (default 1000). */
  readonly evalLimit?: number;
  /**
   * Byte-level BPE merges learned from the training captions (at most this
   * many; pairs seen fewer than twice are not merged). 0: plain bytes. Default
   * 1000, which on MNIST captions makes every caption word one token (about 4x
   * shorter sequences than bytes, the text tower's cost falls with them).
   */
  readonly bpeMerges?: number;
  /**
   * Colored MNIST only: the seed that colours the digits and picks the held-out
   * triples (default 0, the benchmark's dataset), apart from the training seed,
   * so CLIPs of other seeds see the same data.
   */
  readonly datasetSeed?: number;
  /** Architecture overrides (inChannels comes from the dataset). */
  readonly clip: ClipConfigPartial;
  readonly train: Partial<ClipTrainConfig>;
  readonly outDir: string;
}

/** Zero-shot prompt per class for the class-name datasets: "a photo of {first synonym}". */
function classPrompts(dataset: 'fashion-mnist' | 'cifar10'): string[] {
  const synonyms = dataset === 'fashion-mnist' ? FASHION_MNIST_SYNONYMS : CIFAR10_SYNONYMS;
  return synonyms.map((s) => `a photo of ${s[0]}`);
}

/**
 * Loads and captions `dataset` (writing <out>/captions-train.txt, and for MNIST
 * with attributes <out>/caption-thresholds.json), builds a CLIP for it, trains
 * it with trainClip, and evaluates on the test split: zero-shot accuracy
 * (MNIST: "a handwritten {n}"; Fashion-MNIST / CIFAR-10: "a photo of a {class}"),
 * or for Colored MNIST digit / colour / background retrieval on test digits
 * coloured with seen triples and, separately, with the held-out triples.
 */
export async function trainClipOnDataset(opts: ClipRecipeOptions): Promise<TrainClipResult & { clip: Clip }> {
  const log = opts.onLog ?? (() => undefined);
  const cfg = clipTrainConfig(opts.train);
  // Before the captions are written: refuses what would lose a run, and a resume of another run (batch, seed).
  if (decideRunStart(opts.outDir, CLIP_RUN_FILES, opts)) {
    const statePath = path.join(opts.outDir, CLIP_STATE_FILE);
    const saved = (await readTrainingStateJson(statePath)).config as Record<string, unknown> | undefined;
    if (saved !== undefined) checkSameRun(batchAndSeed(saved), batchAndSeed(cfg as unknown as Record<string, unknown>), statePath);
  }
  const evalLimit = opts.evalLimit ?? 1000;
  const dryRun = opts.dryRun === true; // writes nothing
  if (!dryRun) fs.mkdirSync(opts.outDir, { recursive: true });

  let train: ImageDataset;
  let evaluate: (clip: Clip) => Promise<Record<string, number>>;
  if (opts.dataset === 'colored-mnist') {
    if (opts.attributes) throw new Error('trainClipOnDataset: attribute words are for mnist; colored-mnist captions name colours instead');
    const datasetSeed = opts.datasetSeed ?? 0;
    train = loadColoredMnist('train', { seed: datasetSeed, limit: opts.limit }).dataset;
    // Two test sets over the same test digits: colours drawn from the seen triples, and from the held-out ones.
    const seen = loadColoredMnist('test', { seed: datasetSeed, limit: evalLimit, combinations: 'seen' });
    const heldOut = loadColoredMnist('test', { seed: datasetSeed, limit: evalLimit, combinations: 'held-out' });
    evaluate = async (clip) => {
      const s = (await coloredMnistAccuracy(clip, seen)).overall;
      const h = (await coloredMnistAccuracy(clip, heldOut)).overall;
      return {
        digit: s.digit,
        color: s.color,
        background: s.background,
        exact: s.all,
        heldOutDigit: h.digit,
        heldOutColor: h.color,
        heldOutBackground: h.background,
        heldOutExact: h.all,
      };
    };
  } else {
    const name = opts.dataset;
    const rawTrain = loadDataset(name, 'train', { dataDir: opts.dataDir, limit: opts.limit });
    // Thresholds from all 60k training digits, also with --limit (so captions do not depend on the limit).
    const thresholds = name === 'mnist' && opts.attributes ? MNIST_CAPTION_THRESHOLDS : undefined;
    train = captionDataset(rawTrain, { seed: cfg.seed, attributes: opts.attributes, thresholds });
    if (thresholds !== undefined && !dryRun) writeCaptionThresholdsFile(path.join(opts.outDir, 'caption-thresholds.json'), thresholds);
    const test = loadDataset(name, 'test', { dataDir: opts.dataDir, limit: evalLimit });
    const prompts = name === 'mnist' ? digitPrompts('a handwritten {n}') : classPrompts(name);
    evaluate = async (clip) => ({ zeroShot: (await zeroShotAccuracy(clip, test, prompts)).accuracy });
  }
  if (!dryRun) writeCaptionsFile(path.join(opts.outDir, 'captions-train.txt'), train.captions as string[]);
  log(`${train.name}: ${train.count} captioned training images, ${new Set(train.captions).size} distinct captions, e.g. "${(train.captions as string[])[0]}"`);

  // Tokenizer: BPE merges from the training captions (deterministic: they depend on the captions only).
  const bpeMerges = opts.bpeMerges ?? DEFAULT_BPE_MERGES;
  const merges = bpeMerges > 0 ? learnBpeMerges(train.captions as string[], { maxMerges: bpeMerges }) : [];
  // Sequence length: room for the longest caption (+ BOS, EOS), rounded up (bytes: a multiple of 16, >= 32; BPE: of 8, >= 16), unless given.
  const probe = new ByteTokenizer({ maxLength: 3, merges });
  const longest = [...new Set(train.captions as string[])].reduce((m, c) => Math.max(m, probe.tokens(c).length), 0);
  const [multiple, least] = merges.length > 0 ? [8, 16] : [16, 32];
  const maxLength = opts.clip.text?.maxLength ?? Math.max(least, Math.ceil((longest + 2) / multiple) * multiple);
  const clip = new Clip({
    ...opts.clip,
    image: { ...(opts.clip.image ?? {}), inChannels: train.channels },
    text: { ...(opts.clip.text ?? {}), maxLength, vocabSize: probe.vocabSize },
    tokenizer: { maxLength, merges },
  });
  log(`CLIP: ${clip.numParameters().toLocaleString('en-US')} parameters, text length ${maxLength} (longest caption ${longest} ${merges.length > 0 ? `tokens, ${merges.length} BPE merges` : 'bytes'}) ` +
    `(image ${clip.imageEncoder.numParameters().toLocaleString('en-US')}, text ${clip.textEncoder.numParameters().toLocaleString('en-US')})`);
  try {
    const result = await trainClip({
      clip,
      train,
      config: cfg,
      outDir: opts.outDir,
      ...runOptionsOf(opts),
      onLog: log,
      evaluate: (c) => evaluate(c),
      checkpointConfig: { dataset: opts.dataset, attributes: opts.attributes, limit: opts.limit ?? null },
    });
    return { ...result, clip };
  } catch (e) {
    clip.dispose();
    throw e;
  }
}
