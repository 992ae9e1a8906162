/**
 * Training the unCLIP / DALL-E 2 diffusion prior (models/prior.ts; Ramesh et al.
 * 2022, sec. 2.1) on (CLIP text embedding, CLIP image embedding) pairs.
 *
 * Data: a frozen CLIP embeds every captioned image once (`clipEmbeddingPairs`);
 * training then touches only these [N, E] tables, so a step is cheap.
 *
 *   for step in [start, steps):
 *     lr         = warm-up + cosine (train/lr.ts)
 *     pairs      <- positions [step B, (step + 1) B) of the seeded epoch permutations
 *     x0         = imageEmbedScale * image embedding                             [B, E]
 *     t, eps     <- keyed by (seed, step, example index)
 *     keep       = 0 with probability condDropProb (keyed likewise), else 1     [B, 1]
 *     loss       = |prior(qSample(x0, t, eps), t, text, keep) - target|^2      (target per predictionType)
 *     grads      = d loss / d params; clip global norm; AdamW step; EMA update
 *     every logEvery: read the loss (a sync point), metrics row, progress line
 *     every valEvery and at the end: the EMA prior's validation (below)
 *     every checkpointEvery and at the end: EMA weights (kind 'prior') + training state
 *
 * The batch of a step and all its draws are pure functions of (seed, step), so a
 * run resumed from its training state reproduces an uninterrupted run exactly.
 *
 * Validation (the prior's quality number): for held-out pairs, the mean cosine
 * similarity between the sampled image embedding (DDIM, valSteps steps) and the
 * true image embedding, against the baseline of using the text embedding itself
 * as the image embedding (mean cos(text, image)). A prior that beats the
 * baseline has learned to map from the text side of CLIP space to the image side.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { fixedBatch } from '../data/batches';
import { ImageDataset } from '../data/dataset';
import { Clip } from '../models/clip';
import { DiffusionPrior, PriorConfig, PRIOR_CHECKPOINT_KIND, samplePriorEmbeddings } from '../models/prior';
import { Schedule } from '../schedule/schedule';
import { qSample } from '../schedule/noising';
import { trainingTarget } from '../schedule/parameterization';
import { AdamW } from './adamw';
import { EmaConfig, EMA_DEFAULTS } from './ema';
import { diffusionLoss } from './losses';
import { conditionDropMask } from './cfgDropout';
import { batchAndSeed, LoopConfig, ModelFamily, RunOptions, runTrainingLoop, StepGradients } from './loop';
import { familyRunFiles, RunFiles, RunStore } from './runStore';
import { FolderRun } from './folderRun';

// ---------------------------------------------------------------- embedding pairs

/** N (text, image) CLIP embedding pairs, row-major [N, E] tables of unit rows. */
export interface EmbeddingPairs {
  /** N. */
  readonly count: number;
  /** E. */
  readonly embedDim: number;
  /** Text embedding of pair i at [i E, (i + 1) E). */
  readonly text: Float32Array;
  /** Image embedding of pair i at [i E, (i + 1) E). */
  readonly image: Float32Array;
  /** The caption of pair i. */
  readonly captions: readonly string[];
}

/** Throws unless the tables and captions agree with count and embedDim. */
export function validatePairs(pairs: EmbeddingPairs, where = 'pairs'): EmbeddingPairs {
  const { count: n, embedDim: e } = pairs;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(e) || e < 1) throw new Error(`${where}: count and embedDim must be positive integers, got ${n} and ${e}`);
  if (pairs.text.length !== n * e || pairs.image.length !== n * e) {
    throw new Error(`${where}: text and image must hold count * embedDim = ${n * e} values, got ${pairs.text.length} and ${pairs.image.length}`);
  }
  if (pairs.captions.length !== n) throw new Error(`${where}: ${n} pairs but ${pairs.captions.length} captions`);
  return pairs;
}

/** Pairs [start, end) (copies). */
export function slicePairs(pairs: EmbeddingPairs, start: number, end: number): EmbeddingPairs {
  const { count: n, embedDim: e } = pairs;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end && end <= n)) {
    throw new Error(`slicePairs: need integers 0 <= start < end <= ${n}, got [${start}, ${end})`);
  }
  return {
    count: end - start,
    embedDim: e,
    text: pairs.text.slice(start * e, end * e),
    image: pairs.image.slice(start * e, end * e),
    captions: pairs.captions.slice(start, end),
  };
}

export interface ClipEmbeddingPairsOptions {
  /** Images (and distinct captions) embedded per forward pass. Default 64. */
  readonly batchSize?: number;
  readonly onLog?: (line: string) => void;
}

/**
 * Embeds every image of a captioned dataset and its own caption with a frozen
 * CLIP (images centre-padded to the CLIP's imageSize). Each distinct caption is
 * embedded once. Returns unit-norm [N, E] tables.
 */
export async function clipEmbeddingPairs(clip: Clip, dataset: ImageDataset, options: ClipEmbeddingPairsOptions = {}): Promise<EmbeddingPairs> {
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`clipEmbeddingPairs: batchSize must be a positive integer, got ${batchSize}`);
  const captions = dataset.captions;
  if (captions === null) throw new Error(`clipEmbeddingPairs: dataset '${dataset.name}' has no captions`);
  const { imageSize, inChannels, embedDim: E } = clip.config.image;
  if (dataset.channels !== inChannels) throw new Error(`clipEmbeddingPairs: dataset '${dataset.name}' has ${dataset.channels} channel(s), the CLIP expects ${inChannels}`);
  if (dataset.height > imageSize || dataset.width > imageSize) {
    throw new Error(`clipEmbeddingPairs: dataset images are ${dataset.height}x${dataset.width}, larger than the CLIP's imageSize ${imageSize}`);
  }
  const padTo = dataset.height === imageSize && dataset.width === imageSize ? undefined : imageSize;
  const N = dataset.count;
  const image = new Float32Array(N * E);
  for (let start = 0; start < N; start += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, N - start) }, (_, i) => start + i);
    const batch = fixedBatch(dataset, idx, { padTo });
    const emb = tf.tidy(() => clip.embedImages(batch.x));
    tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    image.set(await emb.data(), start * E);
    emb.dispose();
  }
  const distinct = [...new Set(captions)];
  const rowOf = new Map(distinct.map((c, i) => [c, i]));
  const distinctEmb = new Float32Array(distinct.length * E);
  const tokenizer = clip.tokenizer();
  let truncated = 0;
  for (let start = 0; start < distinct.length; start += batchSize) {
    const emb = clip.embedTexts(tokenizer, distinct.slice(start, start + batchSize), () => truncated++);
    distinctEmb.set(await emb.data(), start * E);
    emb.dispose();
  }
  if (truncated > 0) options.onLog?.(`warning: ${truncated} distinct caption(s) exceed the CLIP's ${tokenizer.maxLength - 2} tokens and were truncated`);
  const text = new Float32Array(N * E);
  captions.forEach((c, i) => {
    const r = rowOf.get(c) as number;
    text.set(distinctEmb.subarray(r * E, (r + 1) * E), i * E);
  });
  return { count: N, embedDim: E, text, image, captions: [...captions] };
}

// ---------------------------------------------------------------- config

export interface PriorTrainConfig {
  /** Optimiser steps. */
  readonly steps: number;
  /** Pairs per step. */
  readonly batchSize: number;
  /** Peak learning rate. */
  readonly lr: number;
  /** Linear warm-up steps. */
  readonly warmupSteps: number;
  /** After warm-up: hold, or cosine-decay to lr * lrMinRatio. */
  readonly lrDecay: 'constant' | 'cosine';
  readonly lrMinRatio: number;
  /** AdamW decoupled weight decay (matrices only). */
  readonly weightDecay: number;
  /** Global gradient-norm clip (0 = off). */
  readonly clipGradNorm: number;
  /** Probability of replacing an example's text embedding by the null embedding (CFG); DALL-E 2: 10%. */
  readonly condDropProb: number;
  /** EMA of the weights (the checkpoint holds the EMA). */
  readonly ema: EmaConfig;
  /** Seed of the batch order, t, noise and condition dropout. */
  readonly seed: number;
  /** Read the loss and write a metrics row every N steps. */
  readonly logEvery: number;
  /** Write weights + training state every N steps (and at the end). */
  readonly checkpointEvery: number;
  /** Validate (sampled vs true image embeddings) every N steps; 0 = only at the end. Needs validation pairs. */
  readonly valEvery: number;
  /** Held-out pairs used by the validation (the first valSize). */
  readonly valSize: number;
  /** DDIM steps of the validation sampling. */
  readonly valSteps: number;
  /** Guidance scale of the validation sampling (1 = none). */
  readonly valGuidance: number;
}

export const PRIOR_TRAIN_DEFAULTS: PriorTrainConfig = {
  steps: 5000,
  /** Embedding pairs are cheap: a large batch costs little. */
  batchSize: 256,
  /** Not tuned at this default size; the 16-pair overfit test learns at 3e-3 (width 64). */
  lr: 3e-4,
  warmupSteps: 100,
  lrDecay: 'cosine',
  lrMinRatio: 0.1,
  /** Not tuned: a common AdamW value for small MLPs. */
  weightDecay: 0.05,
  clipGradNorm: 1.0,
  /** DALL-E 2 sec. 2.1: "dropping the text conditioning information 10% of the time". */
  condDropProb: 0.1,
  ema: EMA_DEFAULTS,
  seed: 0,
  logEvery: 50,
  checkpointEvery: 1000,
  valEvery: 1000,
  valSize: 256,
  valSteps: 20,
  valGuidance: 1,
};

export function priorTrainConfig(partial: Partial<PriorTrainConfig> = {}): PriorTrainConfig {
  const cfg = { ...PRIOR_TRAIN_DEFAULTS, ...partial };
  for (const key of ['steps', 'batchSize', 'logEvery', 'checkpointEvery', 'valSize', 'valSteps'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0) throw new Error(`priorTrainConfig: ${key} must be a positive integer, got ${cfg[key]}`);
  }
  for (const key of ['warmupSteps', 'valEvery'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] < 0) throw new Error(`priorTrainConfig: ${key} must be a non-negative integer, got ${cfg[key]}`);
  }
  if (!(cfg.lr > 0)) throw new Error(`priorTrainConfig: lr must be > 0, got ${cfg.lr}`);
  if (cfg.lrDecay !== 'constant' && cfg.lrDecay !== 'cosine') throw new Error(`priorTrainConfig: lrDecay must be 'constant' or 'cosine', got '${String(cfg.lrDecay)}'`);
  if (!(cfg.lrMinRatio >= 0 && cfg.lrMinRatio <= 1)) throw new Error(`priorTrainConfig: lrMinRatio must be in [0, 1], got ${cfg.lrMinRatio}`);
  if (!(cfg.weightDecay >= 0) || !(cfg.clipGradNorm >= 0)) throw new Error(`priorTrainConfig: weightDecay and clipGradNorm must be >= 0, got ${cfg.weightDecay} and ${cfg.clipGradNorm}`);
  if (!(cfg.condDropProb >= 0 && cfg.condDropProb < 1)) throw new Error(`priorTrainConfig: condDropProb must be in [0, 1), got ${cfg.condDropProb}`);
  if (!(Number.isFinite(cfg.valGuidance) && cfg.valGuidance >= 0)) throw new Error(`priorTrainConfig: valGuidance must be a finite number >= 0, got ${cfg.valGuidance}`);
  const e = cfg.ema;
  if (!(e.maxDecay >= 0 && e.maxDecay < 1 && e.power > 0 && e.invGamma > 0)) {
    throw new Error(`priorTrainConfig: ema needs 0 <= maxDecay < 1, power > 0, invGamma > 0, got ${JSON.stringify(e)}`);
  }
  if (!Number.isInteger(cfg.seed)) throw new Error(`priorTrainConfig: seed must be an integer, got ${cfg.seed}`);
  return cfg;
}

// ---------------------------------------------------------------- types

/** A prior run's files: prior.safetensors, prior-state.safetensors, prior-metrics.jsonl, prior-loss.png, prior-run.json. */
export const PRIOR_RUN_FILES: RunFiles = familyRunFiles('prior.safetensors', 'prior-');
export const PRIOR_WEIGHTS_FILE = PRIOR_RUN_FILES.weights;
export const PRIOR_STATE_FILE = PRIOR_RUN_FILES.state;
export const PRIOR_METRICS_FILE = PRIOR_RUN_FILES.logs[0];

/** The prior's quality on held-out pairs (means over `count` pairs). */
export interface PriorValidation {
  readonly count: number;
  /** mean cos(sampled image embedding, true image embedding). */
  readonly sampledCosine: number;
  /** The baseline: mean cos(text embedding, true image embedding). */
  readonly textCosine: number;
}

export interface PriorMetricsRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly pairsPerSec: number;
  readonly wallSeconds: number;
  /** The EMA prior's validation at this step, if it ran. */
  readonly val?: PriorValidation;
}

export interface TrainPriorOptions extends RunOptions<PriorMetricsRow> {
  readonly prior: DiffusionPrior;
  /** A second prior of the same config holding the EMA weights (saved in the checkpoint). */
  readonly ema: DiffusionPrior;
  readonly schedule: Schedule;
  readonly pairs: EmbeddingPairs;
  /** Held-out pairs for the validation, or null. */
  readonly validation?: EmbeddingPairs | null;
  readonly config: PriorTrainConfig;
  /** Run folder: prior.safetensors, prior-state.safetensors, prior-metrics.jsonl, prior-loss.png. */
  readonly outDir: string;
  /** Where the run's files go instead of outDir's folder (e.g. a MemoryRun); default new FolderRun(outDir). */
  readonly store?: RunStore;
  /** Extra JSON stored with the weights' config, e.g. { clip: { file, config } } of the CLIP that made the pairs. */
  readonly checkpointConfig?: Record<string, unknown>;
}

export interface TrainPriorResult {
  readonly startStep: number;
  readonly endStep: number;
  /** Loss of every step of this call (index = step - startStep). */
  readonly losses: number[];
  /** The last validation (null if none ran). */
  readonly lastValidation: PriorValidation | null;
  readonly stoppedEarly: boolean;
}

// ---------------------------------------------------------------- helpers

/**
 * The pair indices of `step`: positions [step B, (step + 1) B) of the stream of
 * epoch permutations (epoch e: keyedRng(seed, 'prior-batches', e)). A pure
 * function of (count, batchSize, seed, step); caches the last permutation.
 */
export class PairOrder {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);

  constructor(readonly count: number, readonly batchSize: number, readonly seed: number) {}

  indices(step: number): Int32Array {
    const out = new Int32Array(this.batchSize);
    for (let j = 0; j < this.batchSize; j++) {
      const p = step * this.batchSize + j;
      const epoch = Math.floor(p / this.count);
      if (epoch !== this.epoch) {
        this.order = keyedRng(this.seed, 'prior-batches', epoch).shuffle(Int32Array.from({ length: this.count }, (_, i) => i)) as Int32Array;
        this.epoch = epoch;
      }
      out[j] = this.order[p % this.count];
    }
    return out;
  }
}

/** Rows `indices` of an [N, E] table as a [B, E] tensor, times `scale`. */
function gatherRows(table: Float32Array, embedDim: number, indices: ArrayLike<number>, scale = 1): tf.Tensor2D {
  const out = new Float32Array(indices.length * embedDim);
  for (let j = 0; j < indices.length; j++) {
    const r = indices[j];
    for (let k = 0; k < embedDim; k++) out[j * embedDim + k] = table[r * embedDim + k] * scale;
  }
  return tf.tensor2d(out, [indices.length, embedDim]);
}

/** Standard normal noise [B, E], row j keyed by (seed, 'noise', step, j). */
function trainingNoise(batch: number, embedDim: number, seed: number, step: number): tf.Tensor2D {
  const data = new Float32Array(batch * embedDim);
  for (let j = 0; j < batch; j++) keyedRng(seed, 'noise', step, j).fillNormal(data.subarray(j * embedDim, (j + 1) * embedDim));
  return tf.tensor2d(data, [batch, embedDim]);
}

function trainingTimesteps(batch: number, seed: number, step: number, T: number): Int32Array {
  return Int32Array.from({ length: batch }, (_, j) => keyedRng(seed, 't', step, j).int(T));
}

/** The loss of one batch (for tf.variableGrads): x0 scaled [B, E], text [B, E], keep [B, 1]. */
function priorLoss(prior: DiffusionPrior, schedule: Schedule, x0: tf.Tensor2D, text: tf.Tensor2D, keep: tf.Tensor2D, t: tf.Tensor1D, noise: tf.Tensor2D): tf.Scalar {
  const xt = qSample(x0, t, noise, schedule) as tf.Tensor2D;
  const target = trainingTarget(prior.config.predictionType, x0, noise, t, schedule);
  return diffusionLoss(prior.apply({ x: xt, t, textEmbedding: text, keep }), target, t, null);
}

/** Mean over rows of the dot product of two unit-row [N, E] arrays (rows [0, n)). */
function meanRowDot(a: ArrayLike<number>, b: ArrayLike<number>, n: number, e: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0;
    for (let k = 0; k < e; k++) dot += a[i * e + k] * b[i * e + k];
    total += dot;
  }
  return total / n;
}

export interface PriorValidationOptions {
  /** Use the first `size` pairs (default all). */
  readonly size?: number;
  /** DDIM steps. */
  readonly steps: number;
  /** Guidance scale (default 1). */
  readonly guidance?: number;
  /** Seed of the sampling noise; pair i uses noise index i. */
  readonly seed: number | string;
  /** Pairs sampled per call. Default 256. */
  readonly batchSize?: number;
}

/**
 * The prior's quality on held-out pairs: mean cos(sampled, true image embedding)
 * with DDIM, vs the baseline mean cos(text, true image embedding).
 */
export async function validatePrior(prior: DiffusionPrior, schedule: Schedule, pairs: EmbeddingPairs, opts: PriorValidationOptions): Promise<PriorValidation> {
  validatePairs(pairs, 'validatePrior');
  const E = pairs.embedDim;
  if (E !== prior.config.embedDim) throw new Error(`validatePrior: pairs have embedDim ${E}, the prior ${prior.config.embedDim}`);
  const n = Math.min(opts.size ?? pairs.count, pairs.count);
  const chunk = opts.batchSize ?? 256;
  const sampled = new Float32Array(n * E);
  for (let start = 0; start < n; start += chunk) {
    const idx = Array.from({ length: Math.min(chunk, n - start) }, (_, i) => start + i);
    const text = gatherRows(pairs.text, E, idx);
    try {
      const out = await samplePriorEmbeddings(prior, schedule, text, {
        sampler: 'ddim', steps: opts.steps, guidance: opts.guidance ?? 1, seed: opts.seed, firstIndex: start,
      });
      sampled.set(await out.data(), start * E);
      out.dispose();
    } finally {
      text.dispose();
    }
  }
  return { count: n, sampledCosine: meanRowDot(sampled, pairs.image, n, E), textCosine: meanRowDot(pairs.text, pairs.image, n, E) };
}

function sameConfig(a: PriorConfig, b: PriorConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}


// ---------------------------------------------------------------- the family

/** The loop's settings of a prior run. */
function priorLoopConfig(cfg: PriorTrainConfig): LoopConfig {
  return {
    steps: cfg.steps, batchSize: cfg.batchSize, gradAccum: 1, seed: cfg.seed,
    lr: cfg.lr, warmupSteps: cfg.warmupSteps, lrDecay: cfg.lrDecay, lrMinRatio: cfg.lrMinRatio, ema: cfg.ema,
    logEvery: cfg.logEvery, checkpointEvery: cfg.checkpointEvery, valEvery: cfg.valEvery, valAtEnd: true,
    sampleEvery: 0, snapshotEvery: 0, timeBudgetMinutes: null, workers: 1,
  };
}

/** The loss and gradients of the pairs of `step` (all draws keyed by (seed, step, index in the batch)). */
function priorStepGradients(opts: TrainPriorOptions, params: ReadonlyArray<[string, tf.Variable]>, order: PairOrder, step: number): StepGradients {
  const { prior, schedule, pairs, config: cfg } = opts;
  const B = cfg.batchSize;
  const E = prior.config.embedDim;
  const idx = order.indices(step);
  const drop = conditionDropMask(cfg.seed, step, Int32Array.from({ length: B }, (_, j) => j), cfg.condDropProb);
  const x0 = gatherRows(pairs.image, E, idx, prior.config.imageEmbedScale); // [B, E]
  const text = gatherRows(pairs.text, E, idx); // [B, E]
  const keep = tf.tensor2d(Float32Array.from(drop, (d) => 1 - d), [B, 1]);
  const t = tf.tensor1d(trainingTimesteps(B, cfg.seed, step, schedule.timesteps), 'int32');
  const noise = trainingNoise(B, E, cfg.seed, step);
  try {
    const { value, grads } = tf.variableGrads(() => priorLoss(prior, schedule, x0, text, keep, t, noise), params.map(([, v]) => v));
    const names = new Map(params.map(([n, v]) => [v.name, n]));
    return { loss: value, grads: new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])) };
  } finally {
    tf.dispose([x0, text, keep, t, noise]);
  }
}

export async function trainPrior(opts: TrainPriorOptions): Promise<TrainPriorResult> {
  const { prior, ema, schedule, config: cfg } = opts;
  const log = opts.onLog ?? (() => undefined);
  const pairs = validatePairs(opts.pairs, 'trainPrior: pairs');
  const validation = opts.validation ?? null;
  const E = prior.config.embedDim;
  if (pairs.embedDim !== E) throw new Error(`trainPrior: pairs have embedDim ${pairs.embedDim}, the prior expects ${E}`);
  if (validation !== null) {
    validatePairs(validation, 'trainPrior: validation');
    if (validation.embedDim !== E) throw new Error(`trainPrior: validation pairs have embedDim ${validation.embedDim}, the prior expects ${E}`);
  }
  if (!sameConfig(prior.config, ema.config)) throw new Error('trainPrior: the EMA prior must have the same config as the prior');

  const store = opts.store ?? new FolderRun(opts.outDir);
  const params = prior.namedTrainableParameters();
  const optimizer = new AdamW({ weightDecay: cfg.weightDecay, clipGradNorm: cfg.clipGradNorm });
  const order = new PairOrder(pairs.count, cfg.batchSize, cfg.seed);
  const family: ModelFamily<PriorMetricsRow> = {
    family: 'prior',
    files: PRIOR_RUN_FILES,
    model: prior,
    ema,
    optimizer,
    params,
    config: cfg,
    runIdentity: batchAndSeed,
    checkResume: (json, where) => {
      if (json.pairCount !== pairs.count) throw new Error(`${where}: saved with ${String(json.pairCount)} training pairs, resumed with ${pairs.count}: the batch order would differ`);
    },
    stateJson: () => ({ pairCount: pairs.count }),
    weights: () => ({ kind: PRIOR_CHECKPOINT_KIND, config: { ...(opts.checkpointConfig ?? {}), prior: prior.config, schedule: schedule.config } }),
    local: { next: (step) => priorStepGradients(opts, params, order, step) },
    microBatch: cfg.batchSize,
    validate: validation === null ? undefined : async (step) => {
      const val = await validatePrior(ema, schedule, validation, { size: cfg.valSize, steps: cfg.valSteps, guidance: cfg.valGuidance, seed: `${cfg.seed}/val` });
      log(`val at step ${step} (${val.count} pairs): cos(sampled, image) ${val.sampledCosine.toFixed(4)} vs baseline cos(text, image) ${val.textCosine.toFixed(4)}`);
      return { val };
    },
    plot: (all) => ({
      series: [{ name: 'prior loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) }],
      title: `diffusion prior loss (${prior.config.predictionType} prediction)`,
    }),
    throughput: 'pairsPerSec',
  };
  try {
    const result = await runTrainingLoop(family, priorLoopConfig(cfg), store, opts);
    return { startStep: result.startStep, endStep: result.endStep, losses: result.losses, lastValidation: result.lastValidation?.val ?? null, stoppedEarly: result.stoppedEarly };
  } finally {
    optimizer.dispose();
  }
}
