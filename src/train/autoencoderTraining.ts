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
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../backend/random';
import type { MemoryEstimate } from '../backend/memory';
import { fixedBatch } from '../data/batches';
import { disposeBatch, LoopBatches } from './loopBatches';
import { ImageDataset } from '../data/dataset';
import { Autoencoder, AutoencoderConfig, autoencoderConfig, autoencoderCheckpointConfig, AutoencoderCheckpointConfig, AUTOENCODER_KIND } from '../models/autoencoder';
import { datasetSource } from '../eval/imageFolderStats';
import { evaluateReconstruction, ReconstructionMetrics } from '../eval/reconstruction';
import type { FeatureExtractor } from '../eval/features';
import { saveImageGrid } from '../io/png';
import { AdamW, AdamWConfig, ADAMW_DEFAULTS } from './adamw';
import { EmaConfig, EMA_DEFAULTS } from './ema';
import { autoencoderLoss, autoencoderLossAndGrads, AutoencoderLoss, posteriorNoise, ReconstructionLoss } from './autoencoderLoss';
import { computeLatentScale, saveScaleFactor, LatentScale } from './latentScale';
import { LoopConfig, ModelFamily, RunOptions, runTrainingLoop, sampleFileName } from './loop';
import { familyRunFiles, RunFiles, RunStore } from './runStore';
import { FolderRun } from './folderRun';
import { startAutoencoderDataParallel } from './dataParallel';
import { dataParallelSource } from './dataParallelSource';

export { autoencoderLoss, posteriorNoise };
export type { AutoencoderLoss, ReconstructionLoss };

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
  readonly workers: number;
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
  /** Data-parallel worker threads (train/dataParallel.ts), each a single-thread wasm backend with a replica; 1 = this thread. */
  workers: 1,
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
  checkInt('workers', c.workers, 1);
  if (c.ema !== null && !(c.ema.maxDecay >= 0 && c.ema.maxDecay < 1)) throw new Error(`autoencoder train config: ema.maxDecay must be in [0, 1), got ${c.ema.maxDecay}`);
  return c;
}

// ---------------------------------------------------------------- checkpoint format

/** An autoencoder run's files: autoencoder.safetensors, state.safetensors, metrics.jsonl, loss.png, run.json, samples/. */
export const AUTOENCODER_RUN_FILES: RunFiles = familyRunFiles('autoencoder.safetensors', '', ['samples']);
export const STATE_FILE = AUTOENCODER_RUN_FILES.state;
export const WEIGHTS_FILE = AUTOENCODER_RUN_FILES.weights;
export const METRICS_FILE = AUTOENCODER_RUN_FILES.logs[0];


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

export interface TrainAutoencoderOptions extends RunOptions<AutoencoderMetricsRow> {
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
  /** Where the run's files go instead of outDir's folder (e.g. a MemoryRun); default new FolderRun(outDir). */
  readonly store?: RunStore;
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

/** The loop's settings of an autoencoder run. */
function autoencoderLoopConfig(cfg: AutoencoderTrainConfig): LoopConfig {
  return {
    steps: cfg.steps, batchSize: cfg.batchSize, gradAccum: 1, seed: cfg.seed,
    lr: cfg.lr, warmupSteps: cfg.warmupSteps, lrDecay: cfg.lrDecay, lrMinRatio: cfg.lrMinRatio, ema: cfg.ema,
    logEvery: cfg.logEvery, checkpointEvery: cfg.checkpointEvery, valEvery: cfg.valEvery, valAtEnd: cfg.valEvery > 0,
    sampleEvery: cfg.sampleEvery, snapshotEvery: 0, timeBudgetMinutes: null, workers: cfg.workers,
  };
}

/** What a resume must keep: the data order (batch, seed) and whether the run ships an EMA. */
const autoencoderRunIdentity = (c: Record<string, unknown>): Record<string, string | number> =>
  ({ batch: c.batchSize as number, seed: c.seed as number, ema: c.ema === null ? 'off' : 'on' });

export async function trainAutoencoder(opts: TrainAutoencoderOptions): Promise<TrainAutoencoderResult> {
  const { train, config: cfg } = opts;
  const store = opts.store ?? new FolderRun(opts.outDir);
  // ---- architecture: from the saved state when resuming, else from the options and the data
  let ckptConfig: AutoencoderCheckpointConfig;
  const resuming = store.decide(AUTOENCODER_RUN_FILES, opts);
  if (resuming) {
    const json = await store.readStateJson(STATE_FILE, 'autoencoder');
    ckptConfig = autoencoderCheckpointConfig(json.checkpointConfig, store.path(STATE_FILE) ?? `${store.location}/${STATE_FILE}`);
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
  if (train.channels !== aeConfig.inChannels) throw new Error(`dataset '${train.name}' has ${train.channels} channel(s), the autoencoder expects ${aeConfig.inChannels}`);
  if (train.height > size || train.width > size) throw new Error(`dataset images are ${train.height}x${train.width}, larger than the autoencoder's sampleSize ${size}`);
  const padTo = train.height === size && train.width === size ? undefined : size;

  const model = new Autoencoder(aeConfig, new Rng(`${cfg.seed}/init`));
  const ema = cfg.ema === null ? null : new Autoencoder(aeConfig, new Rng(`${cfg.seed}/init`));
  const optimizer = new AdamW(cfg.adamw);
  try {
    return await runAutoencoder({ opts, store, ckptConfig, padTo, model, ema, optimizer, resuming });
  } finally {
    model.dispose();
    ema?.dispose();
    optimizer.dispose();
  }
}

interface RunContext {
  readonly opts: TrainAutoencoderOptions;
  readonly store: RunStore;
  readonly ckptConfig: AutoencoderCheckpointConfig;
  readonly padTo: number | undefined;
  readonly model: Autoencoder;
  readonly ema: Autoencoder | null;
  readonly optimizer: AdamW;
  readonly resuming: boolean;
}

async function runAutoencoder(ctx: RunContext): Promise<TrainAutoencoderResult> {
  const { opts, store, padTo, model, ema, optimizer } = ctx;
  let ckptConfig = ctx.ckptConfig;
  const { train, config: cfg } = opts;
  const log = opts.onLog ?? (() => undefined);
  const size = ckptConfig.autoencoder.sampleSize;
  const shipped = ema ?? model; // saved, validated, sampled
  const params = model.namedTrainableParameters();
  const lossOptions = { loss: cfg.loss, klWeight: cfg.klWeight, seed: cfg.seed };

  const batches = new LoopBatches(train, { batchSize: cfg.batchSize, seed: cfg.seed, padTo });
  log(`autoencoder: ${model.numParameters().toLocaleString('en-US')} parameters, ${size}x${size}x${ckptConfig.autoencoder.inChannels} -> ` +
    `${model.latentShape(1).slice(1).join('x')}; data: ${train.name} ${train.count} images ${train.height}x${train.width}x${train.channels}` +
    (ctx.resuming ? '; resuming: architecture options on the command line are ignored' : ''));

  // ---- held-out images: a seeded random subset for validation; the first sampleCount of the split for the grids
  const heldOut = opts.validation ?? train;
  const valCount = opts.validation === null || cfg.valEvery === 0 ? 0 : Math.min(cfg.valSize, opts.validation.count);
  const gridCount = Math.min(cfg.sampleCount, heldOut.count);
  let lastValidation: ReconstructionMetrics | null = null;
  const writeGrid = async (step: number): Promise<void> => {
    const file = store.path(sampleFileName(step));
    if (gridCount === 0 || file === null) return;
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

  const family: ModelFamily<AutoencoderMetricsRow> = {
    family: 'autoencoder',
    files: AUTOENCODER_RUN_FILES,
    model,
    ema,
    optimizer,
    params,
    config: cfg,
    runIdentity: autoencoderRunIdentity,
    restore: (json) => batches.restore(json),
    stateJson: () => batches.stateJson(),
    weights: () => ({ kind: AUTOENCODER_KIND, config: ckptConfig as unknown as Record<string, unknown> }),
    local: { next: (step) => batches.withNext((batch) => autoencoderLossAndGrads(model, params, lossOptions, batch, step, 0)) },
    startWorkers: async (workers) => dataParallelSource(await startAutoencoderDataParallel({ workers, model, dataset: train, padTo, loss: lossOptions }), batches, cfg.batchSize),
    microBatch: cfg.batchSize,
    probe: (b) => batches.probe(b, (batch) => autoencoderLossAndGrads(model, params, lossOptions, batch, 0, 0)),
    rowFields: (parts) => ({ rec: parts[1], kl: parts[2] }),
    validate: async () => {
      if (opts.validation === null || valCount === 0) return null;
      lastValidation = await evaluateAutoencoder(shipped, opts.validation, { count: valCount, seed: cfg.seed, batchSize: Math.min(100, cfg.batchSize * 2) });
      return { valL1: lastValidation.l1, valMse: lastValidation.mse, valPsnr: lastValidation.psnr };
    },
    sample: writeGrid,
    progress: (row) => ({ kl: row.kl.toExponential(2), ...(row.valPsnr !== undefined ? { 'val PSNR': row.valPsnr.toFixed(2) } : {}) }),
    plot: (all) => {
      const series = [
        { name: 'train loss', xs: all.map((r) => r.step), ys: all.map((r) => r.loss) },
        { name: 'train rec', xs: all.map((r) => r.step), ys: all.map((r) => r.rec) },
      ];
      const val = all.filter((r) => r.valL1 !== undefined && r.valMse !== undefined);
      if (val.length > 0) {
        series.push({ name: 'val L1', xs: val.map((r) => r.step), ys: val.map((r) => r.valL1 as number) });
        series.push({ name: 'val MSE', xs: val.map((r) => r.step), ys: val.map((r) => r.valMse as number) });
      }
      return { series, title: 'autoencoder loss' };
    },
  };
  const result = await runTrainingLoop(family, autoencoderLoopConfig(cfg), store, opts);

  // ---- latent scale factor of the finished model, into the weights' metadata
  let latentScale: LatentScale | null = null;
  const weightsPath = opts.dryRun === true ? null : store.path(WEIGHTS_FILE);
  if (!result.stoppedEarly && result.endStep === cfg.steps && cfg.scaleImages > 0 && weightsPath !== null) {
    latentScale = await computeLatentScale(shipped, train, { count: cfg.scaleImages, seed: cfg.seed });
    await saveScaleFactor(weightsPath, latentScale.scaleFactor);
    ckptConfig = { ...ckptConfig, scaleFactor: latentScale.scaleFactor };
    log(`latent scale factor ${latentScale.scaleFactor.toPrecision(5)} (std ${latentScale.std.toPrecision(4)}, mean ${latentScale.mean.toPrecision(3)} ` +
      `of posterior samples of ${latentScale.images} training images) written to ${weightsPath}`);
  }
  return {
    startStep: result.startStep, endStep: result.endStep, losses: result.losses, stoppedEarly: result.stoppedEarly,
    config: ckptConfig, validation: lastValidation, latentScale, memory: result.memory,
  };
}
