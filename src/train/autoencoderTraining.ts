/**
 * Training the Stable-Diffusion-style autoencoder (models/autoencoder.ts) on
 * its own, before any diffusion (Rombach et al. 2022 train the first stage
 * separately and freeze it). One flat loop, as train/loop.ts:
 *
 *   for step in [start, steps):
 *     lr       = learningRate(step)
 *     x        <- data (seeded order, resumable), centre-padded to sampleSize with -1
 *     eps      <- keyed by (seed, 'posterior', step, example index)
 *     mean, logvar = encode(x);  z = mean + exp(logvar / 2) eps;  x^ = decode(z)
 *     loss     = rec(x^, x) + klWeight * kl
 *     clip, AdamW step, (EMA update)
 *     every logEvery: read the losses (a sync point), metrics line, progress
 *     every valEvery: L1 / MSE / PSNR on held-out images (deterministic: decode(mean))
 *     every sampleEvery: originals next to reconstructions (PNG)
 *     every checkpointEvery and at the end: weights + training state (atomic)
 *   at the end: the latent scale factor (train/latentScale.ts) into the weights' metadata
 *
 * The loss, both terms MEANS PER ELEMENT:
 *
 *   rec = mean over B*H*W*C of |x^ - x|   ('l1', SD's pixel term)   or (x^ - x)^2   ('mse')
 *   kl  = mean over B*h*w*z of 0.5 (mean^2 + exp(logvar) - 1 - logvar)     = KL(q(z|x) || N(0, I)) / (B h w z)
 *
 * Stable Diffusion instead SUMS both over each image and averages over the batch
 * (CompVis LPIPSWithDiscriminator: nll = sum|x - x^| / B, kl = sum KL / B, weight
 * kl_weight = 1e-6; plus LPIPS, a patch GAN and a learned output log-variance,
 * none of which are here). Dividing that loss by P = H*W*C gives ours with
 *
 *   klWeight (ours) = kl_weight (SD) * Q / P,     Q = h*w*z latent values per image,
 *
 * e.g. SD's 1e-6 at 32x32x1 -> 8x8x4 (Q / P = 1/4) is 2.5e-7 here. Per-element
 * means keep the loss near 0.01-0.1 whatever the image size, so one learning
 * rate and clipping threshold suit MNIST and CIFAR alike.
 *
 * Every random draw is keyed by (seed, step, example index), so a run resumed
 * from its training state reproduces the losses of an uninterrupted run exactly.
 *
 * Validation and sample grids use the shipped weights (the EMA when enabled),
 * decode the posterior mean, clip to [-1, 1], and crop back to the dataset's
 * image size (the padding is a training detail), so their L1 / MSE are not the
 * training loss, which includes the easy padded border.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Rng, keyedRng } from '../backend/random';
import { assertBatchFits, measureStepMemory, MemoryEstimate } from '../backend/memory';
import { BatchIterator, BatchIteratorState, fixedBatch, Batch } from '../data/batches';
import { ImageDataset } from '../data/dataset';
import { Autoencoder, AutoencoderConfig, autoencoderConfig, autoencoderCheckpointConfig, AutoencoderCheckpointConfig, AUTOENCODER_KIND, klDivergence } from '../models/autoencoder';
import { datasetSource } from '../eval/imageFolderStats';
import { evaluateReconstruction, ReconstructionMetrics } from '../eval/reconstruction';
import type { FeatureExtractor } from '../eval/features';
import { saveImageGrid } from '../io/png';
import { saveLinePlot } from '../io/plot';
import { AdamW, AdamWConfig, ADAMW_DEFAULTS } from './adamw';
import { EmaConfig, EMA_DEFAULTS, emaDecay, updateEma, copyWeights } from './ema';
import { learningRate } from './lr';
import { loadTrainingState, saveTrainingState, TrainingState, stateTensorsWithPrefix } from './checkpoint';
import { saveModelWeights } from '../io/checkpointFile';
import { autoencoderLoss, autoencoderLossAndGrads, AutoencoderLoss, posteriorNoise, ReconstructionLoss } from './autoencoderLoss';
export { autoencoderLoss, posteriorNoise };
export type { AutoencoderLoss, ReconstructionLoss };
import { computeLatentScale, saveScaleFactor, LatentScale } from './latentScale';
import { ProgressReporter, yieldToEventLoop } from './progress';
import { openMetricsLog, removeStaleTempFiles, RunFiles, RunStartOptions, startRun } from './runFolder';

// ---------------------------------------------------------------- config

export interface AutoencoderTrainConfig {
  readonly steps: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly lrDecay: 'constant' | 'cosine';
  readonly lrMinRatio: number;
  readonly adamw: AdamWConfig;
  readonly ema: EmaConfig | null;
  readonly loss: ReconstructionLoss;
  readonly klWeight: number;
  readonly logEvery: number;
  readonly valEvery: number;
  readonly valSize: number;
  readonly sampleEvery: number;
  readonly sampleCount: number;
  readonly checkpointEvery: number;
  readonly scaleImages: number;
}

export const AUTOENCODER_TRAIN_DEFAULTS: AutoencoderTrainConfig = {
  /** Optimiser steps of the run. */
  steps: 2000,
  /** Images per step. */
  batchSize: 32,
  /** One seed fixes data order, initialisation, posterior noise, the validation subset and the scale-factor subset. */
  seed: 0,
  /** Peak learning rate (a ~1M-parameter autoencoder is stable at 1e-3 with warm-up and clipping). */
  lr: 1e-3,
  /** Linear warm-up steps. */
  warmupSteps: 100,
  /** After warm-up: constant, or cosine decay to lr * lrMinRatio at the last step. */
  lrDecay: 'cosine',
  lrMinRatio: 0.1,
  /** AdamW; clipGradNorm 1 clips the global gradient norm. */
  adamw: { ...ADAMW_DEFAULTS },
  /** EMA of the weights (shipped and evaluated instead of the raw weights), or null for none (SD v1's autoencoder has none). */
  ema: null,
  /**
   * Pixel reconstruction term, mean per element: 'mse', or 'l1' (SD's, with LPIPS beside it). On MNIST L1 is a trap
   * early on: the per-pixel median of digits is the black background, so an all-black output is where L1 sits
   * until the decoder uses z (measured: still black after 150 steps of batch 16), while MSE's optimum without
   * information is the grey mean image and its gradient pulls the latent into use within ~30 steps.
   */
  loss: 'mse',
  /** Weight of the per-element KL mean (SD's kl_weight 1e-6 on per-image sums is 1e-6 * Q / P here, see the header). */
  klWeight: 1e-6,
  /** Read the losses (a sync point), write a metrics line and the progress line every N steps. */
  logEvery: 25,
  /** L1 / MSE / PSNR on held-out images every N steps and at the end (0 = never). */
  valEvery: 250,
  /** Held-out images (a seeded random subset of the validation split). */
  valSize: 512,
  /** Originals next to reconstructions every N steps (0 = only at the end). */
  sampleEvery: 250,
  /** Image pairs in that grid. */
  sampleCount: 32,
  /** Save weights + training state every N steps (and always at the end). */
  checkpointEvery: 250,
  /** Training images for the latent scale factor at the end (0 = do not measure). */
  scaleImages: 1024,
};

export type AutoencoderTrainConfigInput = Partial<Omit<AutoencoderTrainConfig, 'adamw' | 'ema'>> & {
  adamw?: Partial<AdamWConfig>;
  /** null = no EMA; an object (possibly empty) = EMA with these fields over EMA_DEFAULTS. */
  ema?: Partial<EmaConfig> | null;
};

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`autoencoder train config: ${name} must be an integer >= ${min}, got ${v}`);
}

export function autoencoderTrainConfig(partial: AutoencoderTrainConfigInput = {}): AutoencoderTrainConfig {
  const d = AUTOENCODER_TRAIN_DEFAULTS;
  const c: AutoencoderTrainConfig = {
    ...d,
    ...partial,
    adamw: { ...d.adamw, ...(partial.adamw ?? {}) },
    ema: partial.ema === undefined ? d.ema : partial.ema === null ? null : { ...EMA_DEFAULTS, ...partial.ema },
  };
  checkInt('steps', c.steps, 1);
  checkInt('batchSize', c.batchSize, 1);
  checkInt('seed', c.seed, 0);
  if (!(c.lr > 0)) throw new Error(`autoencoder train config: lr must be > 0, got ${c.lr}`);
  checkInt('warmupSteps', c.warmupSteps, 0);
  if (c.lrDecay !== 'constant' && c.lrDecay !== 'cosine') throw new Error(`autoencoder train config: lrDecay must be 'constant' or 'cosine', got ${String(c.lrDecay)}`);
  if (!(c.lrMinRatio >= 0 && c.lrMinRatio <= 1)) throw new Error(`autoencoder train config: lrMinRatio must be in [0, 1], got ${c.lrMinRatio}`);
  if (c.loss !== 'l1' && c.loss !== 'mse') throw new Error(`autoencoder train config: loss must be 'l1' or 'mse', got ${String(c.loss)}`);
  if (!(c.klWeight >= 0) || !Number.isFinite(c.klWeight)) throw new Error(`autoencoder train config: klWeight must be a finite number >= 0, got ${c.klWeight}`);
  checkInt('logEvery', c.logEvery, 1);
  checkInt('valEvery', c.valEvery, 0);
  checkInt('valSize', c.valSize, 0);
  checkInt('sampleEvery', c.sampleEvery, 0);
  checkInt('sampleCount', c.sampleCount, 0);
  checkInt('checkpointEvery', c.checkpointEvery, 1);
  checkInt('scaleImages', c.scaleImages, 0);
  if (c.ema !== null && !(c.ema.maxDecay >= 0 && c.ema.maxDecay < 1)) throw new Error(`autoencoder train config: ema.maxDecay must be in [0, 1), got ${c.ema.maxDecay}`);
  return c;
}

// ---------------------------------------------------------------- checkpoint format

export const STATE_FILE = 'state.safetensors';
export const WEIGHTS_FILE = 'autoencoder.safetensors';
export const METRICS_FILE = 'metrics.jsonl';
/** What an autoencoder run folder holds that a new run would replace. */
export const AUTOENCODER_RUN_FILES: RunFiles = { state: STATE_FILE, weights: WEIGHTS_FILE, logs: [METRICS_FILE, 'loss.png'], dirs: ['samples'] };


// ---------------------------------------------------------------- loss and helpers

/**
 * Deterministic reconstruction of images smaller than (or equal to) the model's
 * sampleSize: centre-pad with -1 (as BatchIterator's padTo), decode the posterior
 * mean, crop back -> [B, H, W, C] unclipped.
 */
export function reconstructImages(model: Autoencoder, images: tf.Tensor4D): tf.Tensor4D {
  const s = model.config.sampleSize;
  const [b, h, w, c] = images.shape;
  if (h > s || w > s) throw new Error(`reconstructImages: images are ${h}x${w}, larger than the autoencoder's sampleSize ${s}`);
  const top = Math.floor((s - h) / 2);
  const left = Math.floor((s - w) / 2);
  return tf.tidy(() => {
    const x = h === s && w === s ? images : (tf.pad(images, [[0, 0], [top, s - h - top], [left, s - w - left], [0, 0]], -1) as tf.Tensor4D);
    const { reconstruction } = model.apply(x, { sample: false });
    return h === s && w === s ? reconstruction : tf.slice(reconstruction, [0, top, left, 0], [b, h, w, c]);
  });
}

/**
 * Reconstruction metrics (L1, MSE, PSNR; rFID with an extractor) of `model` on
 * `count` images of `data` (a seeded random subset when fewer than all), at the
 * dataset's own image size (see reconstructImages).
 */
export async function evaluateAutoencoder(
  model: Autoencoder,
  data: ImageDataset,
  options: { count?: number; seed?: number; extractor?: FeatureExtractor | null; batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<ReconstructionMetrics> {
  const source = datasetSource(data, { limit: options.count ?? data.count, randomSubset: options.seed ?? 0 });
  return evaluateReconstruction((x) => reconstructImages(model, x), source, {
    extractor: options.extractor ?? null,
    batchSize: options.batchSize ?? 100,
    onProgress: options.onProgress,
  });
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

// ---------------------------------------------------------------- the loop

export interface AutoencoderMetricsRow {
  readonly step: number;
  /** Training loss (rec + klWeight * kl) of the step. */
  readonly loss: number;
  readonly rec: number;
  readonly kl: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly imagesPerSec: number;
  readonly wallSeconds: number;
  readonly valL1?: number;
  readonly valMse?: number;
  readonly valPsnr?: number;
}

export interface TrainAutoencoderOptions extends RunStartOptions {
  readonly train: ImageDataset;
  /** Held-out images for validation and sample grids (e.g. the test split), or null. */
  readonly validation: ImageDataset | null;
  /**
   * Architecture over AUTOENCODER_DEFAULTS; inChannels comes from the data and sampleSize
   * defaults to the next power of two of the image side. Ignored when resuming (the
   * saved state's architecture is used).
   */
  readonly autoencoder: Partial<AutoencoderConfig>;
  readonly config: AutoencoderTrainConfig;
  /** Run folder: autoencoder.safetensors, state.safetensors, metrics.jsonl, samples/, loss.png. */
  readonly outDir: string;
  readonly onLog?: (line: string) => void;
  readonly onMetrics?: (row: AutoencoderMetricsRow) => void;
  /** Stops the run cleanly after the current step (with a checkpoint), e.g. on SIGINT. */
  readonly signal?: AbortSignal;
  /** The command line recorded in checkpoints. */
  readonly command?: string;
  readonly isTTY?: boolean;
}

export interface TrainAutoencoderResult {
  readonly startStep: number;
  readonly endStep: number;
  /** Total loss of every step run in this call (index = step - startStep). */
  readonly losses: number[];
  readonly stoppedEarly: boolean;
  readonly config: AutoencoderCheckpointConfig;
  /** The last validation of this call, or null. */
  readonly validation: ReconstructionMetrics | null;
  /** Measured at the end of the run (null when stopped early or scaleImages = 0). */
  readonly latentScale: LatentScale | null;
  readonly memory: MemoryEstimate | null;
}

function disposeBatch(batch: Batch): void {
  tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
}

export async function trainAutoencoder(opts: TrainAutoencoderOptions): Promise<TrainAutoencoderResult> {
  const { train, config: cfg, outDir } = opts;
  const resuming = startRun(outDir, AUTOENCODER_RUN_FILES, opts, opts.onLog);
  fs.mkdirSync(path.join(outDir, 'samples'), { recursive: true });
  removeStaleTempFiles(outDir, opts.onLog);
  const statePath = path.join(outDir, STATE_FILE);
  const weightsPath = path.join(outDir, WEIGHTS_FILE);
  const metricsPath = path.join(outDir, METRICS_FILE);

  // ---- architecture: from the saved state when resuming, else from the options and the data
  let ckptConfig: AutoencoderCheckpointConfig;
  let state: TrainingState | null = null;
  if (resuming) {
    state = await loadTrainingState(statePath, 'autoencoder');
    try {
      ckptConfig = autoencoderCheckpointConfig(state.json.checkpointConfig, statePath);
    } catch (e) {
      tf.dispose([...state.tensors.values()]);
      throw e;
    }
  } else {
    const side = Math.max(train.height, train.width);
    ckptConfig = {
      autoencoder: autoencoderConfig({ sampleSize: nextPowerOfTwo(side), ...opts.autoencoder, inChannels: train.channels }),
      dataset: train.name,
      imageHeight: train.height,
      imageWidth: train.width,
      scaleFactor: null,
    };
  }
  const aeConfig = ckptConfig.autoencoder;
  const size = aeConfig.sampleSize;
  const problem =
    train.channels !== aeConfig.inChannels ? `dataset '${train.name}' has ${train.channels} channel(s), the autoencoder expects ${aeConfig.inChannels}`
      : train.height > size || train.width > size ? `dataset images are ${train.height}x${train.width}, larger than the autoencoder's sampleSize ${size}`
        : null;
  if (problem !== null) {
    if (state !== null) tf.dispose([...state.tensors.values()]);
    throw new Error(problem);
  }
  const padTo = train.height === size && train.width === size ? undefined : size;

  const model = new Autoencoder(aeConfig, new Rng(`${cfg.seed}/init`));
  const ema = cfg.ema === null ? null : new Autoencoder(aeConfig, new Rng(`${cfg.seed}/init`));
  const optimizer = new AdamW(cfg.adamw);
  try {
    return await runTraining({ opts, state, ckptConfig, padTo, model, ema, optimizer, statePath, weightsPath, metricsPath });
  } finally {
    model.dispose();
    ema?.dispose();
    optimizer.dispose();
  }
}

interface RunContext {
  readonly opts: TrainAutoencoderOptions;
  /** The loaded training state when resuming (its tensors are disposed here), else null. */
  readonly state: TrainingState | null;
  readonly ckptConfig: AutoencoderCheckpointConfig;
  readonly padTo: number | undefined;
  readonly model: Autoencoder;
  readonly ema: Autoencoder | null;
  readonly optimizer: AdamW;
  readonly statePath: string;
  readonly weightsPath: string;
  readonly metricsPath: string;
}

async function runTraining(ctx: RunContext): Promise<TrainAutoencoderResult> {
  const { opts, state, padTo, model, ema, optimizer, statePath, weightsPath, metricsPath } = ctx;
  let ckptConfig = ctx.ckptConfig;
  const { train, config: cfg, outDir } = opts;
  const log = opts.onLog ?? (() => undefined);
  const size = ckptConfig.autoencoder.sampleSize;
  const shipped = ema ?? model; // saved, validated, sampled
  const params = model.namedTrainableParameters();

  let startStep = 0;
  let iteratorState: BatchIteratorState = { epoch: 0, position: 0 };
  if (state !== null) {
    try {
      const saved = state.json.config as AutoencoderTrainConfig | undefined;
      if (saved !== undefined && (saved.batchSize !== cfg.batchSize || saved.seed !== cfg.seed || (saved.ema === null) !== (cfg.ema === null))) {
        throw new Error(
          `${statePath}: saved with batch ${saved.batchSize} / seed ${saved.seed} / ema ${saved.ema === null ? 'off' : 'on'}, resumed with batch ` +
            `${cfg.batchSize} / seed ${cfg.seed} / ema ${cfg.ema === null ? 'off' : 'on'}: resume needs the same values`,
        );
      }
      const pick = (prefix: string): Map<string, tf.Tensor> => stateTensorsWithPrefix(state, prefix);
      model.loadStateDict(pick('model.'), { source: statePath });
      ema?.loadStateDict(pick('ema.'), { source: statePath });
      optimizer.loadState(Number(state.json.optimizerStep), pick('optim.'));
      startStep = state.step;
      iteratorState = state.json.iterator as BatchIteratorState;
      log(`resumed from ${statePath} at step ${startStep}; architecture options on the command line are ignored`);
    } finally {
      tf.dispose([...state.tensors.values()]);
    }
  } else {
    if (ema !== null) copyWeights(ema, model);
  }
  log(`autoencoder: ${model.numParameters().toLocaleString('en-US')} parameters, ${size}x${size}x${ckptConfig.autoencoder.inChannels} -> ` +
    `${model.latentShape(1).slice(1).join('x')}; data: ${train.name} ${train.count} images ${train.height}x${train.width}x${train.channels}`);
  // a resumed run keeps its rows up to startStep (a torn last line from a kill is dropped); a fresh one starts empty
  const metrics = openMetricsLog<AutoencoderMetricsRow>(metricsPath, startStep, startStep > 0, log);
  const iterator = new BatchIterator(train, { batchSize: cfg.batchSize, seed: cfg.seed, padTo, state: iteratorState });

  const lossAndGrads = (batch: Batch, step: number, first: number): { losses: tf.Tensor1D; grads: Map<string, tf.Tensor> } => {
    const { loss, grads } = autoencoderLossAndGrads(model, params, { loss: cfg.loss, klWeight: cfg.klWeight, seed: cfg.seed }, batch, step, first);
    return { losses: loss, grads };
  };

  // ---- memory: measure a step at batch 1 and 2, refuse what will not fit the wasm heap
  let memory: MemoryEstimate | null = null;
  if (tf.getBackend() === 'wasm') {
    memory = await measureStepMemory((b) => {
      const probe = fixedBatch(train, Array.from({ length: b }, (_, i) => i), { padTo });
      try {
        const { losses, grads } = lossAndGrads(probe, 0, 0);
        tf.dispose([losses, ...grads.values()]);
      } finally {
        disposeBatch(probe);
      }
    });
    assertBatchFits(memory, cfg.batchSize);
  }

  // ---- held-out images: a seeded random subset for validation; the first sampleCount of the split for the grids
  const heldOut = opts.validation ?? train;
  const valCount = opts.validation === null || cfg.valEvery === 0 ? 0 : Math.min(cfg.valSize, opts.validation.count);
  const validate = async (): Promise<ReconstructionMetrics | null> => {
    if (opts.validation === null || valCount === 0) return null;
    return evaluateAutoencoder(shipped, opts.validation, { count: valCount, seed: cfg.seed, batchSize: Math.min(100, cfg.batchSize * 2) });
  };
  const gridCount = Math.min(cfg.sampleCount, heldOut.count);
  const writeGrid = async (step: number): Promise<void> => {
    if (gridCount === 0) return;
    const file = path.join(outDir, 'samples', `step_${String(step).padStart(6, '0')}.png`);
    const batch = fixedBatch(heldOut, Array.from({ length: gridCount }, (_, i) => i));
    const pairs = tf.tidy(() => {
      const rec = tf.clipByValue(reconstructImages(shipped, batch.x), -1, 1);
      const [b, h, w, c] = batch.x.shape;
      return tf.reshape(tf.stack([batch.x, rec], 1), [2 * b, h, w, c]) as tf.Tensor4D; // original, reconstruction, ...
    });
    try {
      await saveImageGrid(file, pairs, { cols: 2 * Math.min(8, gridCount) });
      log(`step ${step}: originals | reconstructions in ${file}`);
    } finally {
      disposeBatch(batch);
      pairs.dispose();
    }
  };

  // ---- checkpoint: shipped weights (self-describing) + full state for resume (both atomic)
  const checkpoint = async (step: number): Promise<void> => {
    await saveModelWeights(weightsPath, shipped, { kind: AUTOENCODER_KIND, config: ckptConfig, step, seed: cfg.seed, command: opts.command });
    const tensors = new Map<string, tf.Tensor>();
    for (const [n, v] of model.namedParameters()) tensors.set(`model.${n}`, v);
    if (ema !== null) for (const [n, v] of ema.namedParameters()) tensors.set(`ema.${n}`, v);
    for (const [n, t] of optimizer.stateTensors()) tensors.set(`optim.${n}`, t);
    await saveTrainingState(statePath, {
      step,
      tensors,
      json: { iterator: iterator.state(), optimizerStep: optimizer.stepCount, config: cfg, checkpointConfig: ckptConfig },
    }, 'autoencoder');
  };

  // ---- the loop
  const progress = new ProgressReporter({ total: cfg.steps, startStep, onLine: log, isTTY: opts.isTTY ?? false });
  const losses: number[] = [];
  let pending: tf.Tensor1D[] = [];
  let lastNorm: tf.Scalar | null = null;
  let lastCheckpoint = startStep;
  let lastValidation: ReconstructionMetrics | null = null;
  let windowStart = Date.now();
  let windowImages = 0;
  const runStart = Date.now() - (metrics.resumedRows.length > 0 ? metrics.resumedRows[metrics.resumedRows.length - 1].wallSeconds * 1000 : 0);
  let step = startStep;
  let stoppedEarly = false;
  try {
    while (step < cfg.steps) {
      const lr = learningRate(step, { peak: cfg.lr, warmupSteps: cfg.warmupSteps, decay: cfg.lrDecay, totalSteps: cfg.steps, minRatio: cfg.lrMinRatio });
      const batch = iterator.next();
      try {
        const { losses: parts, grads } = lossAndGrads(batch, step, 0);
        lastNorm?.dispose();
        lastNorm = optimizer.applyGradients(params, grads, lr);
        tf.dispose([...grads.values()]);
        pending.push(parts);
      } finally {
        disposeBatch(batch);
      }
      if (ema !== null && cfg.ema !== null) updateEma(ema, model, emaDecay(step + 1, cfg.ema));
      step += 1;
      windowImages += cfg.batchSize;

      if (step % cfg.logEvery === 0) await yieldToEventLoop(); // a pending Ctrl-C handler runs now, before the stop check
      const atEnd = step === cfg.steps || (opts.signal?.aborted ?? false);
      const doCheckpoint = step % cfg.checkpointEvery === 0 || atEnd;
      if (step % cfg.logEvery === 0 || doCheckpoint) {
        // Sync point: read the losses of the steps since the last read.
        const values = await Promise.all(pending.map(async (p) => Array.from(await p.data())));
        tf.dispose(pending);
        pending = [];
        const bad = values.findIndex((v) => !Number.isFinite(v[0]));
        if (bad >= 0) {
          throw new Error(
            `loss became ${values[bad][0]} at step ${step - values.length + bad + 1}: training stopped. ` +
              `The last good checkpoint (step ${lastCheckpoint}) is kept in ${outDir}. Lower --lr or enable gradient clipping.`,
          );
        }
        losses.push(...values.map((v) => v[0]));
        const last = values[values.length - 1];
        const gradNorm = (await (lastNorm as tf.Scalar).data())[0];
        const secs = (Date.now() - windowStart) / 1000;
        let val: Partial<AutoencoderMetricsRow> = {};
        if (cfg.valEvery > 0 && (step % cfg.valEvery === 0 || atEnd)) {
          lastValidation = await validate();
          if (lastValidation !== null) val = { valL1: lastValidation.l1, valMse: lastValidation.mse, valPsnr: lastValidation.psnr };
        }
        const row: AutoencoderMetricsRow = {
          step,
          loss: last[0],
          rec: last[1],
          kl: last[2],
          lr,
          gradNorm,
          imagesPerSec: windowImages / Math.max(secs, 1e-9),
          wallSeconds: (Date.now() - runStart) / 1000,
          ...val,
        };
        metrics.append(row);
        opts.onMetrics?.(row);
        const extra: Record<string, string> = { kl: row.kl.toExponential(2), lr: row.lr.toExponential(2), 'img/s': row.imagesPerSec.toFixed(1) };
        if (row.valPsnr !== undefined) extra['val PSNR'] = row.valPsnr.toFixed(2);
        progress.update(step, { loss: row.loss, extra });
        windowStart = Date.now();
        windowImages = 0;
      }
      if (doCheckpoint || (opts.signal?.aborted ?? false)) {
        await checkpoint(step);
        lastCheckpoint = step;
      }
      // After the checkpoint: a kill while the grid is drawn loses no steps.
      if ((cfg.sampleEvery > 0 && step % cfg.sampleEvery === 0) || atEnd) await writeGrid(step);
      if (opts.signal?.aborted && step < cfg.steps) {
        log(`stopped at step ${step} (checkpoint written); resume with the same command and --resume`);
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    tf.dispose(pending);
    lastNorm?.dispose();
  }
  progress.done();

  // ---- latent scale factor of the finished model, into the weights' metadata
  let latentScale: LatentScale | null = null;
  if (!stoppedEarly && step === cfg.steps && cfg.scaleImages > 0) {
    latentScale = await computeLatentScale(shipped, train, { count: cfg.scaleImages, seed: cfg.seed });
    await saveScaleFactor(weightsPath, latentScale.scaleFactor);
    ckptConfig = { ...ckptConfig, scaleFactor: latentScale.scaleFactor };
    log(`latent scale factor ${latentScale.scaleFactor.toPrecision(5)} (std ${latentScale.std.toPrecision(4)}, mean ${latentScale.mean.toPrecision(3)} ` +
      `of posterior samples of ${latentScale.images} training images) written to ${weightsPath}`);
  }

  // ---- loss curves of the whole run (including earlier sessions)
  const all = metrics.read(step);
  if (all.length > 1) {
    const series = [
      { name: 'train loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) },
      { name: 'train rec', xs: all.map((r) => r.step), ys: all.map((r) => r.rec) },
    ];
    const val = all.filter((r) => r.valL1 !== undefined && r.valMse !== undefined);
    if (val.length > 0) {
      series.push({ name: 'val L1', xs: val.map((r) => r.step), ys: val.map((r) => r.valL1 as number) });
      series.push({ name: 'val MSE', xs: val.map((r) => r.step), ys: val.map((r) => r.valMse as number) });
    }
    saveLinePlot(path.join(outDir, 'loss.png'), series, { width: 640, height: 400, logY: true, title: 'autoencoder loss' });
  }
  return { startStep, endStep: step, losses, stoppedEarly, config: ckptConfig, validation: lastValidation, latentScale, memory };
}
