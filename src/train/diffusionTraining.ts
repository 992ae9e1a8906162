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
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../backend/random';
import { assertBatchFits, measureStepMemory, MemoryEstimate } from '../backend/memory';
import { BatchIterator, BatchIteratorState, fixedBatch, Batch } from '../data/batches';
import { ImageDataset } from '../data/dataset';
import { UNet } from '../models/unet';
import { CaptionStateCache, NULL_PROMPT } from '../models/textEncoder';
import { WEIGHTS_FILE } from '../io/checkpoint';
import { LowResConfig, lowResOf, augmentLowRes, trainingAugLevels, augmentationNoise } from '../sample/lowResConditioning';
import { Schedule } from '../schedule/schedule';
import { qSample } from '../schedule/noising';
import { trainingTarget } from '../schedule/parameterization';
import { saveLinePlot } from '../io/plot';
import { AdamW } from './adamw';
import { emaDecay, updateEma, copyWeights } from './ema';
import { learningRate } from './lr';
import { diffusionLoss, minSnrWeights } from './losses';
import { conditionDropMask, dropLabels } from './cfgDropout';
import { saveTrainingState, loadTrainingState, TrainingState, stateTensorsWithPrefix } from './checkpoint';
import { saveModelWeights } from '../io/checkpointFile';
import { TrainConfig } from './trainConfig';
import { ProgressReporter, yieldToEventLoop } from './progress';
import { openMetricsLog, removeStaleTempFiles, RunFiles, RunStartOptions, startRun } from './runFolder';
import { profileKernels } from './profile';
import { startDataParallel, DataParallel, WorkerFault } from './dataParallel';

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

export interface TrainDiffusionOptions extends RunStartOptions {
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
  /** Extra JSON stored with the weights' config (e.g. the schedule and dataset), so a checkpoint is self-describing. */
  readonly checkpointConfig: Record<string, unknown>;
  /** Called with the EMA model to write a sample grid (step = steps taken). */
  readonly onSample?: (ema: UNet, step: number, file: string) => Promise<void>;
  /** Log lines (progress, events). */
  readonly onLog?: (line: string) => void;
  /** Every metrics row as it is written. */
  readonly onMetrics?: (row: MetricsRow) => void;
  /** Stops the run cleanly after the current step (with a checkpoint), e.g. on SIGINT. */
  readonly signal?: AbortSignal;
  /**
   * Wall-clock end (ms since the epoch) of a budget shared with other stages (see train/timeBudget.ts):
   * checked after every step like timeBudgetMinutes, and it ends the run the same way (checkpoint, not an
   * interruption). A deadline is checked here rather than by a timer aborting `signal`: a timer runs only
   * when the loop yields to the event loop (at log steps), so it would end the run up to logEvery steps late.
   */
  readonly deadline?: number;
  /** The command line recorded in checkpoints. */
  readonly command?: string;
  /** Whether the terminal supports a rewriting progress line. */
  readonly isTTY?: boolean;
  /** Before training, profile one micro-batch step and log its ten most expensive kernels. */
  readonly profile?: boolean;
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

export interface TrainResult {
  readonly startStep: number;
  readonly endStep: number;
  /** Loss of every step run in this call, read back at logEvery boundaries (index = step - startStep). */
  readonly losses: number[];
  readonly memory: MemoryEstimate | null;
  readonly stoppedEarly: boolean;
}

export const STATE_FILE = 'state.safetensors';
export const METRICS_FILE = 'metrics.jsonl';
/** What a diffusion run folder holds that a new run would replace. */
export const DIFFUSION_RUN_FILES: RunFiles = { state: STATE_FILE, weights: WEIGHTS_FILE, logs: [METRICS_FILE, 'loss.png'], dirs: ['samples', 'snapshots'] };

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

// ---------------------------------------------------------------- the loop

export async function trainDiffusion(opts: TrainDiffusionOptions): Promise<TrainResult> {
  const { model, schedule, config: cfg, outDir } = opts;
  const micro = cfg.batchSize / cfg.gradAccum;
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
  const padTo = opts.train.height === size && opts.train.width === size ? undefined : size;
  // Before any work: a new run never lands on top of another, a resume needs a state (train/runFolder.ts).
  const resuming = startRun(outDir, DIFFUSION_RUN_FILES, opts, opts.onLog);
  fs.mkdirSync(path.join(outDir, 'samples'), { recursive: true });
  removeStaleTempFiles(outDir, opts.onLog);
  const statePath = path.join(outDir, STATE_FILE);
  const weightsPath = path.join(outDir, WEIGHTS_FILE);
  const metricsPath = path.join(outDir, METRICS_FILE);

  const textStates = opts.textStates ?? null;
  if (model.config.contextDim !== null && model.config.imageEmbeddingDim === null && textStates === null) {
    throw new Error(`the model has cross-attention (contextDim ${model.config.contextDim}): pass textStates (encodeCaptionsCached of the training captions and NULL_PROMPT)`);
  }
  if (textStates !== null && !textStates.index.has(NULL_PROMPT)) {
    throw new Error('textStates must include NULL_PROMPT (the empty prompt): it is the condition of dropped examples');
  }

  const params = model.namedTrainableParameters();
  const optimizer = new AdamW(cfg.adamw);
  const snrWeights = cfg.minSnrGamma === null ? null : tf.tensor1d(Float32Array.from(minSnrWeights(schedule.snr, model.config.predictionType, cfg.minSnrGamma)));
  try {
    return await runTraining(opts, { params, optimizer, snrWeights, textStates, lowRes, imageEmbeddings, padTo, statePath, weightsPath, metricsPath, micro, resuming });
  } finally {
    snrWeights?.dispose();
    optimizer.dispose();
  }
}

interface RunParts {
  readonly params: ReadonlyArray<[string, tf.Variable]>;
  readonly optimizer: AdamW;
  readonly snrWeights: tf.Tensor1D | null;
  readonly textStates: CaptionStateCache | null;
  readonly lowRes: LowResConfig | null;
  readonly imageEmbeddings: ImageEmbeddingTable | null;
  readonly padTo: number | undefined;
  readonly statePath: string;
  readonly weightsPath: string;
  readonly metricsPath: string;
  readonly micro: number;
  /** Continue from the state at statePath (startRun decided). */
  readonly resuming: boolean;
}

/** The body of trainDiffusion once its owned tensors exist (the caller disposes snrWeights and the optimiser). */
async function runTraining(opts: TrainDiffusionOptions, parts: RunParts): Promise<TrainResult> {
  const { model, ema, schedule, config: cfg, outDir } = opts;
  const log = opts.onLog ?? (() => undefined);
  const T = schedule.timesteps;
  const { params, optimizer, snrWeights, textStates, lowRes, imageEmbeddings, padTo, statePath, weightsPath, metricsPath, micro, resuming } = parts;

  // ---- init or resume
  let startStep = 0;
  let iteratorState: BatchIteratorState = { epoch: 0, position: 0 };
  if (resuming) {
    const state = await loadTrainingState(statePath, 'diffusion');
    try {
      const savedCfg = state.json.config as TrainConfig | undefined;
      if (savedCfg !== undefined && (savedCfg.batchSize !== cfg.batchSize || savedCfg.seed !== cfg.seed)) {
        throw new Error(`${statePath}: saved with batch ${savedCfg.batchSize} / seed ${savedCfg.seed}, resumed with batch ${cfg.batchSize} / seed ${cfg.seed}: resume needs the same values`);
      }
      const pick = (prefix: string): Map<string, tf.Tensor> => stateTensorsWithPrefix(state, prefix);
      model.loadStateDict(pick('model.'), { source: statePath });
      ema.loadStateDict(pick('ema.'), { source: statePath });
      optimizer.loadState(Number(state.json.optimizerStep), pick('optim.'));
      startStep = state.step;
      iteratorState = state.json.iterator as BatchIteratorState;
      log(`resumed from ${statePath} at step ${startStep}`);
    } finally {
      tf.dispose([...state.tensors.values()]);
    }
  } else {
    copyWeights(ema, model);
  }
  // a resumed run keeps its rows up to startStep (a torn last line from a kill is dropped); a fresh one starts empty
  const metrics = openMetricsLog<MetricsRow>(metricsPath, startStep, startStep > 0, log);

  const iterator = new BatchIterator(opts.train, { batchSize: micro, seed: cfg.seed, padTo, state: iteratorState });

  const gradientContext: GradientContext = { model, schedule, params, seed: cfg.seed, condDropProb: cfg.condDropProb, snrWeights, textStates, lowRes, imageEmbeddings };

  // ---- memory: measure a step at micro-batch 1 and 2, refuse what will not fit the wasm heap
  let memory: MemoryEstimate | null = null;
  if (tf.getBackend() === 'wasm') {
    memory = await measureStepMemory((b) => {
      const probe = fixedBatch(opts.train, Array.from({ length: b }, (_, i) => i), { padTo });
      try {
        const { loss, grads } = lossAndGrads(gradientContext, probe, 0, 0);
        tf.dispose([loss, ...grads.values()]);
      } finally {
        tf.dispose([probe.x, ...(probe.labels ? [probe.labels] : [])]);
      }
    });
    assertBatchFits(memory, Math.ceil(micro / cfg.workers)); // each data-parallel worker has a heap of its own
  }

  // ---- --profile: where one micro-batch step spends its time (on a throwaway batch; nothing is updated)
  if (opts.profile === true) {
    const probe = fixedBatch(opts.train, Array.from({ length: micro }, (_, i) => i), { padTo });
    try {
      const prof = await profileKernels(() => {
        const { loss, grads } = lossAndGrads(gradientContext, probe, 0, 0);
        tf.dispose([loss, ...grads.values()]);
      }, 10);
      log(`profile of one step (micro-batch ${micro}): ${prof.wallMs.toFixed(0)} ms wall, ${prof.totalMs.toFixed(0)} ms in kernels; top kernels:`);
      for (const r of prof.rows) log(`  ${r.kernel.padEnd(28)} ${r.ms.toFixed(1).padStart(9)} ms  ${(100 * r.share).toFixed(1).padStart(5)}%  ${r.calls} calls`);
      log(`  ${'(other kernels)'.padEnd(28)} ${prof.otherMs.toFixed(1).padStart(9)} ms`);
    } finally {
      tf.dispose([probe.x, ...(probe.labels ? [probe.labels] : [])]);
    }
  }

  // ---- validation set: fixed examples, stratified timesteps, keyed noise
  const validationImageEmbeddings = opts.validationImageEmbeddings ?? null;
  const needsValidationEmbeddings = model.config.imageEmbeddingDim !== null && validationImageEmbeddings === null;
  if (needsValidationEmbeddings && opts.validation !== null && cfg.valEvery > 0) log('validation loss disabled: the model needs validationImageEmbeddings for the validation images');
  const valCount = opts.validation === null || cfg.valEvery === 0 || needsValidationEmbeddings ? 0 : Math.min(cfg.valSize, opts.validation.count);
  const validationLoss = (net: UNet): number => {
    if (opts.validation === null || valCount === 0) return NaN;
    let total = 0;
    for (let start = 0; start < valCount; start += micro) {
      const n = Math.min(micro, valCount - start);
      const idx = Array.from({ length: n }, (_, i) => start + i);
      const batch = fixedBatch(opts.validation, idx, { padTo });
      total += tf.tidy(() => {
        const t = tf.tensor1d(Int32Array.from(idx, (i) => Math.floor(((i + 0.5) * T) / valCount)), 'int32');
        const noise = trainingNoise(batch.x.shape, cfg.seed, -1, start);
        const labels = net.config.numClasses === null ? null : (batch.labels as tf.Tensor1D);
        const { context, contextMask } = textConditionFor(net, batch, null, textStates);
        const imageEmbedding = net.config.imageEmbeddingDim === null ? null : imageEmbeddingFor(net, batch, null, validationImageEmbeddings);
        const low = lowResInputsFor(lowRes, batch.x, schedule, cfg.seed, -1, start);
        const xt = qSample(batch.x, t, noise, schedule) as tf.Tensor4D;
        const target = trainingTarget(net.config.predictionType, batch.x, noise, t, schedule);
        const out = net.apply({ x: unetInput(xt, low), t, classLabels: labels, context, contextMask, imageEmbedding, augLevels: augLevelsFor(net, low) });
        return diffusionLoss(out, target, t, null).dataSync()[0] * n; // read: once per validation batch
      });
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
    return total / valCount;
  };

  // ---- checkpoint: EMA weights for sampling/shipping, full state for resume (both atomic)
  const checkpoint = async (step: number): Promise<void> => {
    const weightsConfig = { ...opts.checkpointConfig, unet: model.config };
    await saveModelWeights(weightsPath, ema, { kind: 'unet', config: weightsConfig, step, seed: cfg.seed, command: opts.command });
    const tensors = new Map<string, tf.Tensor>();
    for (const [n, v] of model.namedParameters()) tensors.set(`model.${n}`, v);
    for (const [n, v] of ema.namedParameters()) tensors.set(`ema.${n}`, v);
    for (const [n, t] of optimizer.stateTensors()) tensors.set(`optim.${n}`, t);
    const state: TrainingState = {
      step,
      tensors,
      json: { iterator: iterator.state(), optimizerStep: optimizer.stepCount, config: cfg, checkpointConfig: weightsConfig },
    };
    await saveTrainingState(statePath, state, 'diffusion');
  };

  // ---- the loop
  const runStart = Date.now() - (metrics.resumedRows.length > 0 ? metrics.resumedRows[metrics.resumedRows.length - 1].wallSeconds * 1000 : 0);
  // A time budget or a deadline may end the run before cfg.steps: the ETA is the sooner end.
  const secondsLeft = (): number | null => {
    const ends = [
      ...(cfg.timeBudgetMinutes !== null ? [runStart + cfg.timeBudgetMinutes * 60_000] : []),
      ...(opts.deadline !== undefined ? [opts.deadline] : []),
    ];
    return ends.length === 0 ? null : (Math.min(...ends) - Date.now()) / 1000;
  };
  const progress = new ProgressReporter({ total: cfg.steps, startStep, onLine: log, isTTY: opts.isTTY ?? false, secondsLeft });
  const losses: number[] = [];
  let pendingLosses: tf.Scalar[] = [];
  let lastNorm: tf.Scalar | null = null;
  let lastCheckpoint = startStep;
  let windowStart = Date.now();
  let windowImages = 0;
  let step = startStep;
  let stoppedEarly = false;
  let workers: DataParallel | null = null;
  try {
    if (cfg.workers > 1) {
      workers = await startDataParallel({
        workers: cfg.workers, model, schedule, dataset: opts.train, padTo, seed: cfg.seed, condDropProb: cfg.condDropProb,
        minSnrGamma: cfg.minSnrGamma, textStates: textStates ?? undefined, lowRes: lowRes ?? undefined,
        imageEmbeddings: imageEmbeddings ?? undefined, fault: opts.workerFault,
      });
      log(`data parallel: ${cfg.workers} workers (single-thread wasm each), micro-batch ${micro} split ${workers.sliceSizes(micro).join(' + ')}`);
    }
    while (step < cfg.steps) {
      const lr = learningRate(step, { peak: cfg.lr, warmupSteps: cfg.warmupSteps, decay: cfg.lrDecay, totalSteps: cfg.steps, minRatio: cfg.lrMinRatio });
      workers?.broadcastWeights(); // the workers' replicas take this step's weights
      let stepLoss: tf.Scalar | null = null;
      let gradSum: Map<string, tf.Tensor> | null = null;
      for (let m = 0; m < cfg.gradAccum; m++) {
        const batch = iterator.next(); // (with workers only batch.indices is used: each worker builds its slice)
        try {
          const { loss, grads: named } = workers === null
            ? lossAndGrads(gradientContext, batch, step, m * micro)
            : await workers.lossAndGrads(batch.indices, step, m * micro).catch((e: Error) => {
              const kept = lastCheckpoint > 0 ? `The last checkpoint (step ${lastCheckpoint}) is kept in ${outDir}.` : 'No checkpoint had been written yet.';
              throw new Error(`${e.message}. ${kept}`);
            });
          if (gradSum === null) {
            gradSum = named;
            stepLoss = loss;
          } else {
            const prevSum: Map<string, tf.Tensor> = gradSum;
            const prevLoss = stepLoss as tf.Scalar;
            gradSum = new Map([...prevSum].map(([n, g]) => [n, tf.add(g, named.get(n) as tf.Tensor)]));
            stepLoss = tf.add(prevLoss, loss) as tf.Scalar;
            tf.dispose([...prevSum.values(), ...named.values(), prevLoss, loss]);
          }
        } finally {
          tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
        }
      }
      const sum = gradSum as Map<string, tf.Tensor>;
      const grads = cfg.gradAccum === 1 ? sum : new Map([...sum].map(([n, g]) => [n, tf.div(g, cfg.gradAccum)]));
      const meanLoss = cfg.gradAccum === 1 ? (stepLoss as tf.Scalar) : (tf.div(stepLoss as tf.Scalar, cfg.gradAccum) as tf.Scalar);
      lastNorm?.dispose();
      lastNorm = optimizer.applyGradients(params, grads, lr);
      tf.dispose([...sum.values(), ...(grads !== sum ? grads.values() : []), ...(meanLoss !== stepLoss ? [stepLoss as tf.Scalar] : [])]);
      updateEma(ema, model, emaDecay(step + 1, cfg.ema));
      pendingLosses.push(meanLoss);
      step += 1;
      windowImages += cfg.batchSize;

      if (step % cfg.logEvery === 0) await yieldToEventLoop(); // a pending Ctrl-C handler runs now, before the stop check
      const deadlineReached = opts.deadline !== undefined && Date.now() >= opts.deadline;
      const budgetReached = (cfg.timeBudgetMinutes !== null && Date.now() - runStart >= cfg.timeBudgetMinutes * 60_000) || deadlineReached;
      const atEnd = step === cfg.steps || (opts.signal?.aborted ?? false) || budgetReached;
      const doCheckpoint = step % cfg.checkpointEvery === 0 || atEnd;
      if (step % cfg.logEvery === 0 || doCheckpoint) {
        // Sync point: read the losses of the steps since the last read.
        const values = await Promise.all(pendingLosses.map(async (l) => (await l.data())[0]));
        tf.dispose(pendingLosses);
        pendingLosses = [];
        const bad = values.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) {
          throw new Error(
            `loss became ${values[bad]} at step ${step - values.length + bad + 1}: training stopped. ` +
              `The last good checkpoint (step ${lastCheckpoint}) is kept in ${outDir}. Lower --lr or enable gradient clipping.`,
          );
        }
        losses.push(...values);
        const gradNorm = (await (lastNorm as tf.Scalar).data())[0];
        const secs = (Date.now() - windowStart) / 1000;
        const row: MetricsRow = {
          step,
          loss: values[values.length - 1],
          lr,
          gradNorm,
          imagesPerSec: windowImages / Math.max(secs, 1e-9),
          wallSeconds: (Date.now() - runStart) / 1000,
          ...(cfg.valEvery > 0 && (step % cfg.valEvery === 0 || atEnd) && valCount > 0
            ? { valLoss: validationLoss(model), valLossEma: validationLoss(ema) }
            : {}),
        };
        metrics.append(row);
        opts.onMetrics?.(row);
        progress.update(step, { loss: row.loss, extra: { lr: row.lr.toExponential(2), 'img/s': row.imagesPerSec.toFixed(1) } });
        windowStart = Date.now();
        windowImages = 0;
      }
      // A stop requested during this step (e.g. by a metrics callback) still gets its checkpoint.
      if (doCheckpoint || (opts.signal?.aborted ?? false)) {
        await checkpoint(step);
        lastCheckpoint = step;
      }
      // After the checkpoint: a kill while the grid samples loses no steps.
      if (opts.onSample && ((cfg.sampleEvery > 0 && step % cfg.sampleEvery === 0) || atEnd)) {
        await opts.onSample(ema, step, path.join(outDir, 'samples', `step_${String(step).padStart(6, '0')}.png`));
      }
      if (cfg.snapshotEvery > 0 && step % cfg.snapshotEvery === 0) {
        const file = path.join(outDir, 'snapshots', `step_${String(step).padStart(6, '0')}.safetensors`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        await saveModelWeights(file, ema, { kind: 'unet', config: { ...opts.checkpointConfig, unet: model.config }, step, seed: cfg.seed, command: opts.command, storage: 'float16' });
      }
      if (budgetReached && step < cfg.steps && !(opts.signal?.aborted ?? false)) {
        log(deadlineReached ? `deadline of the shared time budget reached at step ${step} (checkpoint written)`
          : `time budget of ${cfg.timeBudgetMinutes} min reached at step ${step} (checkpoint written)`);
        break;
      }
      if (opts.signal?.aborted && step < cfg.steps) {
        log(`stopped at step ${step} (checkpoint written); resume with the same command and --resume`);
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    await workers?.close();
    tf.dispose(pendingLosses);
    lastNorm?.dispose();
  }
  progress.done();

  // ---- loss curve of the whole run (including earlier sessions)
  const all = metrics.read(step);
  if (all.length > 1) {
    const series = [{ name: 'train loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) }];
    const val = all.filter((r) => r.valLoss !== undefined);
    if (val.length > 0) series.push({ name: 'val loss', xs: val.map((r) => r.step), ys: val.map((r) => r.valLoss as number) });
    const valEma = all.filter((r) => r.valLossEma !== undefined);
    if (valEma.length > 0) series.push({ name: 'val loss (EMA)', xs: valEma.map((r) => r.step), ys: valEma.map((r) => r.valLossEma as number) });
    saveLinePlot(path.join(outDir, 'loss.png'), series, { width: 640, height: 400, logY: true, title: 'loss' });
  }
  return { startStep, endStep: step, losses, memory, stoppedEarly };
}
