/**
 * The diffusion training loop, flat and visible (nanoGPT style):
 *
 *   for step in [start, steps):
 *     lr = learningRate(step)
 *     for each micro-batch:                       (gradient accumulation)
 *       x0, labels, captions <- data (seeded order, resumable)
 *       t, eps      <- keyed by (seed, step, example index)
 *       c           <- class label and/or frozen text states of the caption;
 *                      with probability condDropProb the null class / the
 *                      empty prompt's states (CFG)
 *       loss        =  w(t) * |model(qSample(x0, t, eps), t, c) - target|^2
 *       grads      +=  d loss / d params
 *     clip, AdamW step, EMA update
 *     every logEvery: read loss (a sync point), metrics line, progress
 *     every valEvery: held-out loss (fixed examples, timesteps, noise)
 *     every sampleEvery: sample grid from the EMA model (caller's callback)
 *     every checkpointEvery and at the end: weights + training state (atomic)
 *     every snapshotEvery: a float16 copy of the EMA weights (quality vs images seen)
 *
 * Every random draw is keyed by (seed, step, example index), never by batch
 * split, so a run resumed from its training state reproduces the losses of an
 * uninterrupted run exactly (same backend).
 *
 * Data parallel (config.workers > 1, ./dataParallel.ts): each micro-batch is
 * split into contiguous slices, one per worker thread; the workers return the
 * slice gradients weighted by slice size / micro-batch, which sum to the
 * micro-batch gradient. This thread still owns the data order, the optimiser,
 * the EMA, logging, validation, samples and checkpoints, so the run is the same
 * training as with one thread (to float tolerance; exactly the same draws of t,
 * noise and condition dropout). UNet dropout masks are drawn per slice, so with
 * dropout > 0 the equivalence holds in distribution only.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { fixedBatch, Batch } from '../data/batches';
import { ImageDataset } from '../data/dataset';
import { UNet } from '../models/unet';
import { CaptionStateCache, NULL_PROMPT } from '../models/textEncoder';
import { WEIGHTS_FILE } from '../io/checkpoint';
import { LowResConfig, lowResOf, augmentLowRes, trainingAugLevels, augmentationNoise } from '../sample/lowResConditioning';
import { Schedule } from '../schedule/schedule';
import { qSample } from '../schedule/noising';
import { trainingTarget } from '../schedule/parameterization';
import { AdamW } from './adamw';
import { diffusionLoss, minSnrWeights } from './losses';
import { conditionDropMask, dropLabels } from './cfgDropout';
import { TrainConfig } from './trainConfig';
import { batchAndSeed, LoopConfig, LoopResult, ModelFamily, RunOptions, runTrainingLoop, sampleFileName } from './loop';
import { disposeBatch, LoopBatches } from './loopBatches';
import { familyRunFiles, RunFiles, RunStore } from './runStore';
import { FolderRun } from './folderRun';
import { startDataParallel, WorkerFault } from './dataParallel';
import { dataParallelSource } from './dataParallelSource';

// ---------------------------------------------------------------- types

export interface MetricsRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly imagesPerSec: number;
  readonly valLoss?: number;
  readonly valLossEma?: number;
  readonly wallSeconds: number;
}

export interface TrainDiffusionOptions extends RunOptions<MetricsRow> {
  /** The network being trained. */
  readonly model: UNet;
  /** A second instance of the same architecture that holds the EMA weights. */
  readonly ema: UNet;
  readonly schedule: Schedule;
  readonly train: ImageDataset;
  /** Held-out data for the validation loss (e.g. the test split), or null. */
  readonly validation: ImageDataset | null;
  readonly config: TrainConfig;
  /** Run folder: state.safetensors, model.safetensors (EMA), metrics.jsonl, samples/, loss.png. */
  readonly outDir: string;
  /** Where the run's files go instead of outDir's folder (e.g. a MemoryRun); default new FolderRun(outDir). */
  readonly store?: RunStore;
  /** Extra JSON stored with the weights' config (e.g. the schedule and dataset), so a checkpoint is self-describing. */
  readonly checkpointConfig: Record<string, unknown>;
  /** Called with the EMA model to write a sample grid (step = steps taken; file = samples/step_NNNNNN.png in the run folder). */
  readonly onSample?: (ema: UNet, step: number, file: string) => Promise<void>;
  /**
   * Text-conditional models (UNet contextDim set): the frozen text encoder's
   * states of every training and validation caption and of NULL_PROMPT (the
   * condition-dropout / guidance null), from encodeCaptionsCached. Not owned.
   */
  readonly textStates?: CaptionStateCache;
  /** A super-resolution stage: the UNet also sees the noise-augmented low-res version of each image (sample/lowResConditioning.ts). */
  readonly lowRes?: LowResConfig;
  /** The DALL-E 2 decoder: a CLIP image embedding per training image (condition dropout zeroes it). */
  readonly imageEmbeddings?: ImageEmbeddingTable;
  /** ... and per validation image (without it the validation loss of such a model is skipped). */
  readonly validationImageEmbeddings?: ImageEmbeddingTable;
  /** Tests only: make a data-parallel worker fail at a step (config.workers > 1). */
  readonly workerFault?: WorkerFault;
}

export type TrainResult = Omit<LoopResult<MetricsRow>, 'lastValidation'>;

/** A diffusion run's files: model.safetensors (EMA), state.safetensors, metrics.jsonl, loss.png, run.json, samples/, snapshots/. */
export const DIFFUSION_RUN_FILES: RunFiles = familyRunFiles(WEIGHTS_FILE, '', ['samples', 'snapshots']);
export const STATE_FILE = DIFFUSION_RUN_FILES.state;
export const METRICS_FILE = DIFFUSION_RUN_FILES.logs[0];

// ---------------------------------------------------------------- helpers

/** Standard normal noise for examples [first, first + B) of `step`: keyed, so independent of batch split. */
function trainingNoise(shape: number[], seed: number, step: number, first: number): tf.Tensor {
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const data = new Float32Array(shape[0] * per);
  for (let i = 0; i < shape[0]; i++) keyedRng(seed, 'noise', step, first + i).fillNormal(data.subarray(i * per, (i + 1) * per));
  return tf.tensor(data, shape, 'float32');
}

function trainingTimesteps(count: number, seed: number, step: number, first: number, T: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => keyedRng(seed, 't', step, first + i).int(T));
}

interface ConditionInputs {
  readonly classLabels: tf.Tensor1D | null;
  readonly context: tf.Tensor3D | null;
  readonly contextMask: tf.Tensor2D | null;
  readonly imageEmbedding: tf.Tensor2D | null;
}

function disposeCondition(c: ConditionInputs): void {
  for (const t of [c.classLabels, c.context, c.contextMask, c.imageEmbedding]) t?.dispose();
}

/**
 * A fixed CLIP image embedding per dataset image (the DALL-E 2 decoder's
 * condition), row i = image i: [N, dim] row-major.
 */
export interface ImageEmbeddingTable {
  readonly values: Float32Array;
  readonly dim: number;
}

/** The image embeddings of the batch's images, zero rows where dropMask is 1 (DALL-E 2's null condition), or null. */
function imageEmbeddingFor(model: UNet, batch: Batch, dropMask: Uint8Array | null, table: ImageEmbeddingTable | null): tf.Tensor2D | null {
  const dim = model.config.imageEmbeddingDim;
  if (dim === null) return null;
  if (table === null) throw new Error(`the model is conditioned on CLIP image embeddings (imageEmbeddingDim ${dim}) but no imageEmbeddings table was given`);
  if (table.dim !== dim) throw new Error(`imageEmbeddings have width ${table.dim}, the model's imageEmbeddingDim is ${dim}`);
  const out = new Float32Array(batch.indices.length * dim);
  batch.indices.forEach((idx, i) => {
    if ((idx + 1) * dim > table.values.length) throw new Error(`imageEmbeddings has no row ${idx} (${table.values.length / dim} rows)`);
    if (dropMask === null || dropMask[i] !== 1) out.set(table.values.subarray(idx * dim, (idx + 1) * dim), i * dim);
  });
  return tf.tensor2d(out, [batch.indices.length, dim]);
}

/** The text condition of captions (each replaced by NULL_PROMPT where dropMask is 1), looked up in the cache. */
function textConditionFor(model: UNet, batch: Batch, dropMask: Uint8Array | null, textStates: CaptionStateCache | null): Pick<ConditionInputs, 'context' | 'contextMask'> {
  const dim = model.config.contextDim;
  // An image-embedding-only decoder (imageEmbeddingDim set, no text states) has context tokens from the embedding alone.
  if (dim === null || (textStates === null && model.config.imageEmbeddingDim !== null)) return { context: null, contextMask: null };
  if (textStates === null) throw new Error(`the model has cross-attention (contextDim ${dim}) but no text states were given (textStates: encodeCaptionsCached of the captions and NULL_PROMPT)`);
  if (batch.captions === null) throw new Error(`the model is text-conditional (contextDim ${dim}) but the dataset has no captions`);
  const captions = batch.captions.map((c, i) => (dropMask !== null && dropMask[i] === 1 ? NULL_PROMPT : c));
  const { context, mask, pooled } = textStates.lookup(captions);
  pooled.dispose();
  if (context.shape[2] !== dim) {
    tf.dispose([context, mask]);
    throw new Error(`text states have width ${context.shape[2]}, the model's contextDim is ${dim}`);
  }
  return { context, contextMask: mask };
}

/** The UNet's condition for a micro-batch, with condition dropout applied. */
function conditionFor(
  model: UNet,
  batch: Batch,
  dropMask: Uint8Array,
  textStates: CaptionStateCache | null,
  imageEmbeddings: ImageEmbeddingTable | null,
): ConditionInputs {
  const numClasses = model.config.numClasses;
  let classLabels: tf.Tensor1D | null = null;
  if (numClasses !== null) {
    if (batch.labels === null) throw new Error(`the model is class-conditional (numClasses ${numClasses}) but the dataset has no labels`);
    const labels = Int32Array.from(batch.labels.dataSync()); // int32 [B], tiny: a cheap read of an upload
    for (const l of labels) {
      if (l < 0 || l >= numClasses) throw new Error(`label ${l} outside [0, ${numClasses}) of the model's numClasses`);
    }
    classLabels = tf.tensor1d(dropLabels(labels, dropMask, numClasses), 'int32');
  }
  let text: Pick<ConditionInputs, 'context' | 'contextMask'> = { context: null, contextMask: null };
  try {
    text = textConditionFor(model, batch, dropMask, textStates);
    return { classLabels, ...text, imageEmbedding: imageEmbeddingFor(model, batch, dropMask, imageEmbeddings) };
  } catch (e) {
    for (const t of [classLabels, text.context, text.contextMask]) t?.dispose();
    throw e;
  }
}

/** A super-resolution stage's extra input: the noise-augmented low-res image [B, S, S, C] and its levels [B]. */
interface LowResInputs {
  readonly image: tf.Tensor4D;
  readonly levels: tf.Tensor1D;
}

/** The low-res conditioning of examples [first, first + B) of `step` (levels and noise keyed like t), or null. */
function lowResInputsFor(lowRes: LowResConfig | null, x0: tf.Tensor4D, schedule: Schedule, seed: number, step: number, first: number): LowResInputs | null {
  if (lowRes === null) return null;
  return tf.tidy(() => {
    const levels = tf.tensor1d(trainingAugLevels(x0.shape[0], seed, step, first, lowRes.maxAugLevel), 'int32');
    const noise = augmentationNoise(x0.shape, seed, step, first);
    return { image: augmentLowRes(lowResOf(x0, lowRes), levels, noise, schedule), levels };
  });
}

/** The UNet's input: x_t, or [x_t, low-res image] on the channel axis for a super-resolution stage. */
function unetInput(xt: tf.Tensor4D, lowRes: LowResInputs | null): tf.Tensor4D {
  return lowRes === null ? xt : (tf.concat([xt, lowRes.image], 3) as tf.Tensor4D);
}

/** The augmentation levels the UNet embeds (only a model with augLevelEmbedding takes them). */
function augLevelsFor(model: UNet, lowRes: LowResInputs | null): tf.Tensor1D | null {
  return model.config.augLevelEmbedding && lowRes !== null ? lowRes.levels : null;
}

/** One micro-batch's loss as a function of the weights (for tf.variableGrads). */
function microBatchLoss(
  model: UNet,
  schedule: Schedule,
  x0: tf.Tensor4D,
  t: tf.Tensor1D,
  noise: tf.Tensor,
  cond: ConditionInputs,
  lowRes: LowResInputs | null,
  weights: tf.Tensor1D | null,
  dropoutSeed: number,
): tf.Scalar {
  const xt = qSample(x0, t, noise, schedule) as tf.Tensor4D;
  const target = trainingTarget(model.config.predictionType, x0, noise, t, schedule);
  const out = model.apply({
    x: unetInput(xt, lowRes), t, classLabels: cond.classLabels, context: cond.context, contextMask: cond.contextMask, imageEmbedding: cond.imageEmbedding,
    augLevels: augLevelsFor(model, lowRes),
    checkLabels: false, training: true, dropoutSeed,
  }); // labels checked in conditionFor
  return diffusionLoss(out, target, t, weights);
}

/** What a micro-batch's loss depends on besides its examples (shared with the data-parallel workers). */
export interface GradientContext {
  readonly model: UNet;
  readonly schedule: Schedule;
  /** The parameters to differentiate, by name (model.namedTrainableParameters()). */
  readonly params: ReadonlyArray<[string, tf.Variable]>;
  readonly seed: number;
  readonly condDropProb: number;
  /** Min-SNR weights per timestep [T], or null for plain MSE. */
  readonly snrWeights: tf.Tensor1D | null;
  /** Caption -> frozen text states (text-conditional models), or null. */
  readonly textStates: CaptionStateCache | null;
  /** Super-resolution stage: how the low-res conditioning image is made from x0; null otherwise. */
  readonly lowRes: LowResConfig | null;
  /** Image-embedding-conditional models (the DALL-E 2 decoder): one CLIP image embedding per dataset image; null otherwise. */
  readonly imageEmbeddings: ImageEmbeddingTable | null;
}

/**
 * Loss (mean over the B examples) and its gradients by parameter name, for
 * examples [first, first + B) of `step`: t, noise and condition dropout are
 * keyed by (seed, step, first + i). The dropout seed is keyed by `first`, i.e.
 * by how the examples are split. The caller owns the returned tensors.
 */
export function lossAndGrads(ctx: GradientContext, batch: Batch, step: number, first: number): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const { model, schedule, seed } = ctx;
  const b = batch.x.shape[0];
  const ids = Int32Array.from({ length: b }, (_, i) => first + i);
  const cond = conditionFor(model, batch, conditionDropMask(seed, step, ids, ctx.condDropProb), ctx.textStates, ctx.imageEmbeddings); // may throw: nothing made yet
  const t = tf.tensor1d(trainingTimesteps(b, seed, step, first, schedule.timesteps), 'int32');
  const noise = trainingNoise(batch.x.shape, seed, step, first);
  const lowRes = lowResInputsFor(ctx.lowRes, batch.x, schedule, seed, step, first);
  try {
    const dropoutSeed = keyedRng(seed, 'dropout', step, first).int(2 ** 31);
    const { value, grads } = tf.variableGrads(
      () => microBatchLoss(model, schedule, batch.x, t, noise, cond, lowRes, ctx.snrWeights, dropoutSeed),
      ctx.params.map(([, v]) => v),
    );
    const names = new Map(ctx.params.map(([n, v]) => [v.name, n]));
    return { loss: value, grads: new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])) };
  } finally {
    tf.dispose([t, noise, ...(lowRes === null ? [] : [lowRes.image, lowRes.levels])]);
    disposeCondition(cond);
  }
}

// ---------------------------------------------------------------- the family

/** Throws unless the dataset, the conditioning inputs and the model fit each other (before any work). */
function checkInputs(opts: TrainDiffusionOptions): void {
  const { model } = opts;
  const size = model.config.sampleSize;
  const lowRes = opts.lowRes ?? null;
  const inputChannels = lowRes === null ? opts.train.channels : 2 * opts.train.channels; // SR: [x_t, low-res image]
  if (inputChannels !== model.config.inChannels || opts.train.channels !== model.config.outChannels) {
    throw new Error(`dataset '${opts.train.name}' has ${opts.train.channels} channel(s): the model must map ${inputChannels} to ${opts.train.channels} ` +
      `channels${lowRes === null ? '' : ' (x_t and the low-res image in, a super-resolution stage)'}, it maps ${model.config.inChannels} to ${model.config.outChannels}`);
  }
  const imageEmbeddings = opts.imageEmbeddings ?? null;
  if (model.config.imageEmbeddingDim !== null) {
    if (imageEmbeddings === null) throw new Error(`the model is conditioned on CLIP image embeddings (imageEmbeddingDim ${model.config.imageEmbeddingDim}): pass imageEmbeddings (one row per training image)`);
    if (imageEmbeddings.dim !== model.config.imageEmbeddingDim || imageEmbeddings.values.length !== opts.train.count * imageEmbeddings.dim) {
      throw new Error(`imageEmbeddings must be [${opts.train.count}, ${model.config.imageEmbeddingDim}] (one row per training image), got ${imageEmbeddings.values.length / imageEmbeddings.dim} rows of ${imageEmbeddings.dim}`);
    }
  }
  if (model.config.augLevelEmbedding && lowRes === null) throw new Error('the model embeds a noise-augmentation level (augLevelEmbedding) but no lowRes config was given: it is a super-resolution stage');
  if (opts.train.height > size || opts.train.width > size) {
    throw new Error(`dataset images are ${opts.train.height}x${opts.train.width}, larger than the model's sampleSize ${size}`);
  }
}

/** Throws unless the text states fit the model (checked after the run folder is claimed, as before). */
function checkTextStates(model: UNet, textStates: CaptionStateCache | null): void {
  if (model.config.contextDim !== null && model.config.imageEmbeddingDim === null && textStates === null) {
    throw new Error(`the model has cross-attention (contextDim ${model.config.contextDim}): pass textStates (encodeCaptionsCached of the training captions and NULL_PROMPT)`);
  }
  if (textStates !== null && !textStates.index.has(NULL_PROMPT)) {
    throw new Error('textStates must include NULL_PROMPT (the empty prompt): it is the condition of dropped examples');
  }
}

/** The loop's settings of a diffusion run. */
export function diffusionLoopConfig(cfg: TrainConfig): LoopConfig {
  return {
    steps: cfg.steps, batchSize: cfg.batchSize, gradAccum: cfg.gradAccum, seed: cfg.seed,
    lr: cfg.lr, warmupSteps: cfg.warmupSteps, lrDecay: cfg.lrDecay, lrMinRatio: cfg.lrMinRatio, ema: cfg.ema,
    logEvery: cfg.logEvery, checkpointEvery: cfg.checkpointEvery, valEvery: cfg.valEvery, valAtEnd: cfg.valEvery > 0,
    sampleEvery: cfg.sampleEvery, snapshotEvery: cfg.snapshotEvery, timeBudgetMinutes: cfg.timeBudgetMinutes, workers: cfg.workers,
  };
}

/** The held-out loss of `net` on the first valCount validation images: stratified timesteps, keyed noise (seed, step -1). */
function validationLoss(net: UNet, opts: TrainDiffusionOptions, ctx: GradientContext, valCount: number, micro: number, padTo: number | undefined): number {
  const { schedule, validation } = opts;
  if (validation === null || valCount === 0) return NaN;
  const T = schedule.timesteps;
  const seed = opts.config.seed;
  const embeddings = opts.validationImageEmbeddings ?? null;
  let total = 0;
  for (let start = 0; start < valCount; start += micro) {
    const n = Math.min(micro, valCount - start);
    const idx = Array.from({ length: n }, (_, i) => start + i);
    const batch = fixedBatch(validation, idx, { padTo });
    total += tf.tidy(() => {
      const t = tf.tensor1d(Int32Array.from(idx, (i) => Math.floor(((i + 0.5) * T) / valCount)), 'int32');
      const noise = trainingNoise(batch.x.shape, seed, -1, start);
      const labels = net.config.numClasses === null ? null : (batch.labels as tf.Tensor1D);
      const { context, contextMask } = textConditionFor(net, batch, null, ctx.textStates);
      const imageEmbedding = net.config.imageEmbeddingDim === null ? null : imageEmbeddingFor(net, batch, null, embeddings);
      const low = lowResInputsFor(ctx.lowRes, batch.x, schedule, seed, -1, start);
      const xt = qSample(batch.x, t, noise, schedule) as tf.Tensor4D;
      const target = trainingTarget(net.config.predictionType, batch.x, noise, t, schedule);
      const out = net.apply({ x: unetInput(xt, low), t, classLabels: labels, context, contextMask, imageEmbedding, augLevels: augLevelsFor(net, low) });
      return diffusionLoss(out, target, t, null).dataSync()[0] * n; // read: once per validation batch
    });
    disposeBatch(batch);
  }
  return total / valCount;
}

/** The UNet as a model family of the one loop (./loop.ts). */
function diffusionFamily(opts: TrainDiffusionOptions, ctx: GradientContext, optimizer: AdamW, store: RunStore, padTo: number | undefined): ModelFamily<MetricsRow> {
  const { model, ema, config: cfg } = opts;
  const micro = cfg.batchSize / cfg.gradAccum;
  const batches = new LoopBatches(opts.train, { batchSize: micro, seed: cfg.seed, padTo });
  const weightsConfig = (): Record<string, unknown> => ({ ...opts.checkpointConfig, unet: model.config });
  const validation = opts.validation;
  const needsValidationEmbeddings = model.config.imageEmbeddingDim !== null && opts.validationImageEmbeddings === undefined;
  const valCount = validation === null || cfg.valEvery === 0 || needsValidationEmbeddings ? 0 : Math.min(cfg.valSize, validation.count);
  if (needsValidationEmbeddings && validation !== null && cfg.valEvery > 0) opts.onLog?.('validation loss disabled: the model needs validationImageEmbeddings for the validation images');
  return {
    family: 'diffusion',
    files: DIFFUSION_RUN_FILES,
    model,
    ema,
    optimizer,
    params: ctx.params,
    config: cfg,
    runIdentity: batchAndSeed,
    restore: (json) => batches.restore(json),
    stateJson: () => batches.stateJson(),
    weights: () => ({ kind: 'unet', config: weightsConfig() }),
    local: { next: (step, m) => batches.withNext((batch) => lossAndGrads(ctx, batch, step, m * micro)) },
    startWorkers: async (workers) => {
      const pool = await startDataParallel({
        workers, model, schedule: opts.schedule, dataset: opts.train, padTo, seed: cfg.seed, condDropProb: cfg.condDropProb,
        minSnrGamma: cfg.minSnrGamma, textStates: ctx.textStates ?? undefined, lowRes: ctx.lowRes ?? undefined,
        imageEmbeddings: ctx.imageEmbeddings ?? undefined, fault: opts.workerFault,
      });
      return dataParallelSource(pool, batches, micro);
    },
    microBatch: micro,
    probe: (b) => batches.probe(b, (batch) => lossAndGrads(ctx, batch, 0, 0)),
    validate: async () => (valCount === 0 ? null : {
      valLoss: validationLoss(model, opts, ctx, valCount, micro, padTo),
      valLossEma: validationLoss(ema, opts, ctx, valCount, micro, padTo),
    }),
    sample: opts.onSample === undefined ? undefined : async (step) => {
      const file = store.path(sampleFileName(step));
      if (file !== null) await (opts.onSample as NonNullable<TrainDiffusionOptions['onSample']>)(ema, step, file);
    },
    plot: (all) => {
      const series = [{ name: 'train loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) }];
      const val = all.filter((r) => r.valLoss !== undefined);
      if (val.length > 0) series.push({ name: 'val loss', xs: val.map((r) => r.step), ys: val.map((r) => r.valLoss as number) });
      const valEma = all.filter((r) => r.valLossEma !== undefined);
      if (valEma.length > 0) series.push({ name: 'val loss (EMA)', xs: valEma.map((r) => r.step), ys: valEma.map((r) => r.valLossEma as number) });
      return { series, title: 'loss' };
    },
  };
}

// ---------------------------------------------------------------- the trainer

export async function trainDiffusion(opts: TrainDiffusionOptions): Promise<TrainResult> {
  const { model, schedule, config: cfg } = opts;
  checkInputs(opts);
  const size = model.config.sampleSize;
  const padTo = opts.train.height === size && opts.train.width === size ? undefined : size;
  // Before any work: a new run never lands on top of another, a resume needs a state (train/runStore.ts).
  const store = opts.store ?? new FolderRun(opts.outDir);
  store.decide(DIFFUSION_RUN_FILES, opts);
  const textStates = opts.textStates ?? null;
  checkTextStates(model, textStates);

  const params = model.namedTrainableParameters();
  const optimizer = new AdamW(cfg.adamw);
  const snrWeights = cfg.minSnrGamma === null ? null : tf.tensor1d(Float32Array.from(minSnrWeights(schedule.snr, model.config.predictionType, cfg.minSnrGamma)));
  const ctx: GradientContext = {
    model, schedule, params, seed: cfg.seed, condDropProb: cfg.condDropProb, snrWeights, textStates,
    lowRes: opts.lowRes ?? null, imageEmbeddings: opts.imageEmbeddings ?? null,
  };
  try {
    const result = await runTrainingLoop(diffusionFamily(opts, ctx, optimizer, store, padTo), diffusionLoopConfig(cfg), store, opts);
    return { startStep: result.startStep, endStep: result.endStep, losses: result.losses, memory: result.memory, stoppedEarly: result.stoppedEarly };
  } finally {
    snrWeights?.dispose();
    optimizer.dispose();
  }
}
