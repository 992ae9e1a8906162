/**
 * Trains a text-conditional diffusion UNet, in pixel space or in a frozen
 * autoencoder's latent space, on the frozen text encoder of a trained CLIP:
 *
 *   1. data: a captioned dataset (one caption per image, seeded);
 *   2. text: the CLIP's text tower, frozen; the token states of every distinct
 *      caption (and of the empty prompt, the condition-dropout null) computed
 *      once and looked up per batch (models/textEncoder.ts CaptionStateCache);
 *   3. latent space only: every image encoded once to its scaled posterior mean
 *      (recipes/latentData.ts, cached on disk in the run folder), with the
 *      autoencoder's measured scale factor;
 *   4. the UNet (cross-attention to the token states) trained with the loop of
 *      train/loop.ts: condition dropout to the empty prompt, EMA, checkpoints,
 *      resume, sample grids of fixed prompts;
 *   5. the run folder is itself a pipeline: pipeline.json names model.safetensors
 *      (EMA UNet), text_encoder.safetensors and, latent, autoencoder.safetensors.
 *
 * Cascade stages (pipelines/cascade.ts; pixel space only), chosen by `stage`:
 *   base              the data padded to the next power of two and block-averaged
 *                     by `factor` (data/resize.ts; MNIST 28 -> 32 -> 16x16); the
 *                     recorded imageSize is the data's size / factor (14), so its
 *                     own samples crop as before. The run folder is a pixel pipeline.
 *   super-resolution  the full-size data; the UNet maps [x_t, z_s] (2C channels)
 *                     to C and embeds the augmentation level s; the loop makes z_s
 *                     from each image (sample/lowResConditioning.ts). Its sample
 *                     grids super-resolve fixed test images' low-res versions
 *                     (augmented at a fixed small level) from their own captions:
 *                     each row shows the conditioning image, then the samples. The
 *                     run folder has no pipeline.json: ship it with its base as a
 *                     cascade (writeCascadePipeline).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { decideRunStart } from '../train/runFolder';
import { RunOptions, runOptionsOf } from '../train/loop';
import { DIFFUSION_RUN_FILES } from '../train/diffusionTraining';
import { Rng } from '../backend/random';
import { ImageDataset, takeFirst } from '../data/dataset';
import { downsampleDataset } from '../data/resize';
import { fixedBatch } from '../data/batches';
import { CaptionedDatasetName, loadCaptionedDataset } from '../data/captioned';
import { writeCaptionsFile } from '../data/captions';
import { UNet, unetConfig, UNetConfigInput } from '../models/unet';
import { UNET_PRESETS, UNetPreset } from '../models/unetPresets';
import { Autoencoder } from '../models/autoencoder';
import { encodeCaptionsCached, CaptionStateCache } from '../models/textEncoder';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { PredictionType } from '../schedule/parameterization';
import { trainDiffusion, TrainResult, STATE_FILE, MetricsRow } from '../train/diffusionTraining';
import { NULL_PROMPT } from '../models/textEncoder';
import { WEIGHTS_FILE } from '../io/checkpoint';
import { trainConfig } from '../train/trainConfig';
import { loadTrainingState } from '../train/checkpoint';
import { loadAutoencoder } from '../node/pipelineParts';
import { TrainConfig } from '../train/trainConfig';
import { downsampleAverage, LowResConfig, lowResConfig } from '../sample/lowResConditioning';
import { saveImageGrid } from '../io/png';
import { writePipelineManifest } from '../io/pipeline';
import { PipelinePart } from '../io/pipelineManifest';
import { writeFileAtomic } from '../io/atomicWrite';
import { SamplerName } from '../sample/types';
import { nextPowerOfTwo } from './pixelTraining';
import { encodeLatentDataset, cachedLatentDataset } from './latentData';
import { FrozenTextEncoder } from '../pipelines/textConditioning';
import { loadTextEncoder, saveTextEncoder } from '../node/pipelineParts';
import {
  AUTOENCODER_FILE, DiffusionSpace, DiffusionStage, generateFromText, SINGLE_STAGE, stageOf, TEXT_ENCODER_FILE, TextToImagePipeline,
  TextUNetCheckpointConfig, textUNetCheckpointConfig,
} from '../pipelines/textToImage';
import { CASCADE_GENERATE_DEFAULTS, sampledLowResCondition, SuperResolutionStage, superResolve } from '../pipelines/cascade';

export { TEXT_ENCODER_FILE, AUTOENCODER_FILE };

/** A cascade stage to train instead of a single model (see the header). */
export type TrainingStage =
  | { readonly kind: 'base'; /** Side reduction of the data (2: 32x32 padded MNIST -> 16x16). */ readonly factor: number }
  | { readonly kind: 'super-resolution'; readonly lowRes: Partial<LowResConfig> };

export interface TextTrainingOptions extends RunOptions<MetricsRow> {
  readonly dataset: CaptionedDatasetName;
  readonly dataDir?: string;
  /** First N training images only. */
  readonly limit?: number;
  /** MNIST: measured attribute words in the captions. */
  readonly attributes: boolean;
  /** A 'clip' (or 'text-encoder') checkpoint: its text tower conditions the UNet, frozen. */
  readonly textEncoder: string;
  readonly space: DiffusionSpace;
  /** latent: the autoencoder checkpoint (its metadata must hold the scale factor). */
  readonly autoencoder?: string;
  readonly preset: UNetPreset;
  readonly unet?: UNetConfigInput;
  readonly predictionType: PredictionType;
  readonly schedule: Partial<ScheduleConfig>;
  readonly train: Partial<TrainConfig>;
  readonly outDir: string;
  /** Prompts of the periodic sample grids (one row each) and how they are sampled. */
  readonly gridPrompts: readonly string[];
  /**
   * augLevel: super-resolution grids only, the level the test images' low-res versions are augmented at
   * (default the cascade's default level, or maxAugLevel when that is smaller).
   */
  readonly gridSampler: { sampler: SamplerName; steps: number; guidance: number; perPrompt: number; augLevel?: number };
  /** Train a cascade stage (default: a single-stage model of the data at its size). */
  readonly stage?: TrainingStage;

}

/** Copies a file atomically (write to a temporary name, then rename). */
async function copyFileAtomic(from: string, to: string): Promise<void> {
  if (path.resolve(from) === path.resolve(to)) return;
  await writeFileAtomic(to, fs.readFileSync(from));
}

/** A cascade base stage's data (see the header), also the data of a reduced unCLIP decoder (recipes/unclipTraining.ts). */
export interface BaseStageData {
  /** The images centre-padded to padTo x padTo (black) and block-averaged by the factor: [padTo / f, padTo / f]. */
  readonly data: ImageDataset;
  /** The next power of two of the data's side: the size of the SR stage's (padded) images. */
  readonly padTo: number;
  /** The side the checkpoint records as imageSize: the data's height / f, rounded (MNIST 28 / 2 = 14), so samples crop as the full-size ones do. */
  readonly imageSize: number;
}

/**
 * `pixels` padded to the size the SR stage works at (the next power of two), then block-averaged by `factor`
 * (data/resize.ts): the images an SR stage of that factor is conditioned on. Throws (downsampleDataset) unless
 * `factor` is an integer >= 1 dividing the padded size.
 */
export function baseStageData(pixels: ImageDataset, factor: number): BaseStageData {
  const padTo = nextPowerOfTwo(Math.max(pixels.height, pixels.width));
  return { data: downsampleDataset(pixels, { padTo, factor }), padTo, imageSize: Math.round(pixels.height / factor) };
}

/** The model config a run's training state holds (what its resume continues). */
async function savedCheckpointConfig(statePath: string): Promise<TextUNetCheckpointConfig> {
  const state = await loadTrainingState(statePath, 'diffusion');
  tf.dispose([...state.tensors.values()]);
  return textUNetCheckpointConfig(state.json.checkpointConfig, statePath);
}

/** Images a latent dry run encodes (its memory probe reads the first two). */
const DRY_RUN_IMAGES = 8;

export async function trainTextDiffusion(opts: TextTrainingOptions): Promise<TrainResult & { config: TextUNetCheckpointConfig }> {
  const log = opts.onLog ?? (() => undefined);
  const cfg = trainConfig(opts.train);
  const resuming = decideRunStart(opts.outDir, DIFFUSION_RUN_FILES, opts); // before any work: refuses what would lose a run
  if (opts.gridPrompts.length === 0) throw new Error('trainTextDiffusion: gridPrompts must list at least one prompt');
  // Resuming: the run's own config, read before anything is written, so that a wrong --text-encoder or
  // --autoencoder is refused with the run folder (itself a pipeline) untouched.
  const statePath = path.join(opts.outDir, STATE_FILE);
  const savedConfig = resuming ? await savedCheckpointConfig(statePath) : null;
  const dryRun = opts.dryRun === true;
  if (!dryRun) fs.mkdirSync(opts.outDir, { recursive: true });

  // ---- data and captions (seeded by the run's seed)
  const pixels = loadCaptionedDataset(opts.dataset, 'train', { seed: cfg.seed, attributes: opts.attributes, limit: opts.limit, dataDir: opts.dataDir });
  let pixelValidation: ImageDataset | null = null;
  if (cfg.valEvery > 0) {
    try {
      pixelValidation = loadCaptionedDataset(opts.dataset, 'test', { seed: cfg.seed, attributes: opts.attributes, limit: cfg.valSize, dataDir: opts.dataDir });
    } catch (e) {
      log(`no validation split (${(e as Error).message.split('\n')[0]}); validation loss disabled`);
    }
  }
  const stageOption = opts.stage;
  if (stageOption !== undefined && opts.space !== 'pixel') throw new Error(`trainTextDiffusion: cascade stages work in pixel space, got space '${opts.space}'`);
  const trainCaptions = pixels.captions as string[];
  if (!dryRun) writeCaptionsFile(path.join(opts.outDir, 'captions-train.txt'), trainCaptions);
  log(`${pixels.name}: ${pixels.count} captioned images ${pixels.height}x${pixels.width}x${pixels.channels}, ${new Set(trainCaptions).size} distinct captions, e.g. "${trainCaptions[0]}"`);

  // ---- the frozen text encoder, shipped with the run
  const text: FrozenTextEncoder = await loadTextEncoder(opts.textEncoder);
  let autoencoder: Autoencoder | null = null;
  let textStates: CaptionStateCache | null = null;
  let model: UNet | null = null;
  let ema: UNet | null = null;
  try {
    if (savedConfig !== null && JSON.stringify(savedConfig.textEncoder) !== JSON.stringify(text.config)) {
      throw new Error(`${opts.textEncoder}: not the text encoder this run was started with (resume needs the same --text-encoder)`);
    }
    if (!dryRun) await saveTextEncoder(path.join(opts.outDir, TEXT_ENCODER_FILE), text, { command: opts.command });
    log(`text encoder: ${text.encoder.numParameters().toLocaleString('en-US')} parameters (frozen) from ${opts.textEncoder}; ` +
      `${text.tokenizer.maxLength} tokens, vocabulary ${text.tokenizer.vocabSize}`);

    // ---- latent space: the frozen autoencoder and the encoded data
    let train = pixels;
    let validation = pixelValidation;
    let scaleFactor: number | null = null;
    let baseImageSize: number | null = null;
    if (stageOption?.kind === 'base') {
      const reduced = baseStageData(pixels, stageOption.factor);
      train = reduced.data;
      baseImageSize = reduced.imageSize;
      validation = pixelValidation === null ? null : baseStageData(pixelValidation, stageOption.factor).data;
      log(`base stage: ${pixels.height}x${pixels.width} padded to ${reduced.padTo}x${reduced.padTo} and reduced by ${stageOption.factor} to ${train.height}x${train.width}`);
    }
    if (opts.space === 'latent') {
      if (opts.autoencoder === undefined) throw new Error('trainTextDiffusion: latent space needs an autoencoder checkpoint');
      const loaded = await loadAutoencoder(opts.autoencoder);
      autoencoder = loaded.model;
      scaleFactor = loaded.config.scaleFactor;
      if (scaleFactor === null) {
        throw new Error(`${opts.autoencoder}: no latent scale factor in its metadata (train-autoencoder measures it at the end of training)`);
      }
      if (savedConfig !== null && savedConfig.latentScaleFactor !== scaleFactor) {
        throw new Error(`${opts.autoencoder}: scale factor ${scaleFactor}, the run was started with ${savedConfig.latentScaleFactor} (resume needs the same autoencoder)`);
      }
      if (!dryRun) await copyFileAtomic(opts.autoencoder, path.join(opts.outDir, AUTOENCODER_FILE));
      // A dry run needs only the examples its memory probe reads: it encodes a few, uncached.
      const encode = (d: ImageDataset, file: string): Promise<ImageDataset> => dryRun
        ? encodeLatentDataset(autoencoder as Autoencoder, takeFirst(d, DRY_RUN_IMAGES), { scaleFactor: scaleFactor as number })
        : cachedLatentDataset(path.join(opts.outDir, file), opts.autoencoder as string, autoencoder as Autoencoder, d, {
          scaleFactor: scaleFactor as number,
          onLog: log,
          onProgress: (done, total) => {
            if (done === total || Math.floor((10 * done) / total) > Math.floor((10 * (done - 128)) / total)) log(`latents: encoding ${file}: ${done}/${total}`);
          },
        });
      train = await encode(pixels, 'latents-train.safetensors');
      validation = pixelValidation === null ? null : await encode(pixelValidation, 'latents-test.safetensors');
    }

    // ---- the model config: from the saved state when resuming, else from the options
    let config: TextUNetCheckpointConfig;
    if (savedConfig !== null) {
      config = savedConfig;
      log(`resuming the model saved in ${statePath}; model options on the command line are ignored`);
      const saved = stageOf(config);
      const asked = stageOption?.kind ?? 'single';
      if (saved.kind !== asked || (saved.kind === 'base' && stageOption?.kind === 'base' && saved.factor !== stageOption.factor)) {
        throw new Error(`${statePath}: the run trains a '${saved.kind}' stage${saved.kind === 'base' ? ` (factor ${saved.factor})` : ''}, ` +
          `resumed as '${asked}'${stageOption?.kind === 'base' ? ` (factor ${stageOption.factor})` : ''}: resume needs the same stage`);
      }
    } else {
      const sr = stageOption?.kind === 'super-resolution';
      const stage: DiffusionStage = stageOption === undefined
        ? SINGLE_STAGE
        : stageOption.kind === 'base' ? { kind: 'base', factor: stageOption.factor } : { kind: 'super-resolution', lowRes: lowResConfig(stageOption.lowRes) };
      const unet = unetConfig({
        ...UNET_PRESETS[opts.preset],
        ...(opts.unet ?? {}),
        inChannels: sr ? 2 * train.channels : train.channels, // SR: [x_t, low-res image]
        outChannels: train.channels,
        sampleSize: nextPowerOfTwo(Math.max(train.height, train.width)),
        contextDim: text.config.text.dim,
        numClasses: null,
        augLevelEmbedding: sr,
        predictionType: opts.predictionType,
      });
      // Validated like a loaded checkpoint (stage vs channels, levels, ...).
      config = textUNetCheckpointConfig({
        unet,
        schedule: scheduleConfig(opts.schedule),
        dataset: opts.dataset,
        imageSize: baseImageSize ?? pixels.height,
        imageChannels: pixels.channels,
        space: opts.space,
        latentScaleFactor: scaleFactor,
        textEncoder: text.config,
        stage,
      }, 'trainTextDiffusion');
    }
    const stage = stageOf(config);
    const lowRes = stage.kind === 'super-resolution' ? stage.lowRes : null;
    if (lowRes !== null && lowRes.maxAugLevel >= config.schedule.timesteps) {
      throw new Error(`trainTextDiffusion: lowRes.maxAugLevel ${lowRes.maxAugLevel} must be below the schedule's ${config.schedule.timesteps} timesteps`);
    }
    if (JSON.stringify(config.textEncoder) !== JSON.stringify(text.config)) {
      throw new Error(`${opts.textEncoder}: not the text encoder this run was started with (resume needs the same --text-encoder)`);
    }
    if (config.space === 'latent' && config.latentScaleFactor !== scaleFactor) {
      throw new Error(`${opts.autoencoder}: scale factor ${scaleFactor}, the run was started with ${config.latentScaleFactor} (resume needs the same autoencoder)`);
    }

    // ---- token states of every caption, once
    const captions = [...trainCaptions, ...(validation?.captions ?? []), NULL_PROMPT];
    let truncated = 0;
    textStates = encodeCaptionsCached(text.encoder, text.tokenizer, captions, { onWarn: () => truncated++ });
    log(`text states: ${textStates.size} distinct captions (with the empty prompt) encoded once${truncated > 0 ? `; ${truncated} truncated to ${text.tokenizer.maxLength - 2} tokens` : ''}`);

    model = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
    ema = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
    log(`UNet: ${model.numParameters().toLocaleString('en-US')} parameters, ${config.space} space ${config.unet.sampleSize}x${config.unet.sampleSize}x${config.unet.inChannels}, ` +
      `${config.unet.predictionType}-prediction; conditioning: ${model.describeConditioning()}`);
    const schedule = makeSchedule(config.schedule);

    const grid = opts.gridSampler;
    const prompts = opts.gridPrompts.flatMap((p) => Array.from({ length: grid.perPrompt }, () => p));
    const onSampleText = async (net: UNet, step: number, file: string): Promise<void> => {
      const pipeline: TextToImagePipeline = {
        space: config.space, unet: net, schedule, config, text, autoencoder, defaults: {}, source: opts.outDir, trainingStep: step, dispose: () => undefined,
      };
      const images = await generateFromText(pipeline, { prompts, n: prompts.length, sampler: grid.sampler, steps: grid.steps, guidance: grid.guidance, seed: cfg.seed });
      try {
        await saveImageGrid(file, images, { cols: grid.perPrompt });
        log(`step ${step}: sample grid ${file} (rows: ${opts.gridPrompts.map((p) => `"${p}"`).join(', ')})`);
      } finally {
        images.dispose();
      }
    };
    const onSample = lowRes === null
      ? onSampleText
      : superResolutionGrid({ source: pixelValidation ?? pixels, rows: opts.gridPrompts.length, lowRes, config, schedule, text, grid, seed: cfg.seed, log });

    const result = await trainDiffusion({
      model,
      ema,
      schedule,
      train,
      validation,
      config: cfg,
      outDir: opts.outDir,
      ...runOptionsOf(opts),
      onLog: log,
      checkpointConfig: {
        schedule: config.schedule,
        dataset: config.dataset,
        imageSize: config.imageSize,
        imageChannels: config.imageChannels,
        space: config.space,
        latentScaleFactor: config.latentScaleFactor,
        textEncoder: config.textEncoder,
        stage: config.stage,
        attributes: opts.attributes,
      },
      textStates,
      lowRes: lowRes ?? undefined,
      onSample,
    });
    if (dryRun) return { ...result, config };
    if (stage.kind === 'super-resolution') {
      log(`super-resolution stage: ${opts.outDir} has no pipeline.json; ship it with its base stage as a cascade (writeCascadePipeline)`);
      return { ...result, config };
    }
    const parts: Record<string, PipelinePart> = {
      unet: {
        file: WEIGHTS_FILE, kind: 'unet',
        description: `text-conditional ${config.space} UNet${stage.kind === 'base' ? ` (cascade base stage, ${config.unet.sampleSize}x${config.unet.sampleSize})` : ''} (EMA), ${config.dataset}, step ${result.endStep}`,
      },
      text_encoder: { file: TEXT_ENCODER_FILE, kind: 'text-encoder', description: `frozen CLIP text tower from ${opts.textEncoder}` },
      ...(config.space === 'latent' ? { vae: { file: AUTOENCODER_FILE, kind: 'autoencoder', description: `frozen autoencoder from ${opts.autoencoder}` } } : {}),
    };
    await writePipelineManifest(opts.outDir, {
      design: config.space,
      parts,
      defaults: { sampler: grid.sampler, steps: grid.steps, guidance: grid.guidance },
    });
    return { ...result, config };
  } finally {
    text.dispose();
    autoencoder?.dispose();
    textStates?.dispose();
    model?.dispose();
    ema?.dispose();
  }
}

// ---------------------------------------------------------------- super-resolution sample grids

interface SuperResolutionGridOptions {
  /** Images whose low-res versions are super-resolved (the test split when there is one). */
  readonly source: ImageDataset;
  readonly rows: number;
  readonly lowRes: LowResConfig;
  readonly config: TextUNetCheckpointConfig;
  readonly schedule: Schedule;
  readonly text: FrozenTextEncoder;
  readonly grid: TextTrainingOptions['gridSampler'];
  readonly seed: number;
  readonly log: (line: string) => void;
}

/**
 * The sample-grid callback of a super-resolution run: row r is test image r's
 * conditioning image (its low-res version, upsampled and augmented at a fixed
 * level), then `perPrompt` samples from it and its own caption.
 */
function superResolutionGrid(o: SuperResolutionGridOptions): (net: UNet, step: number, file: string) => Promise<void> {
  const rows = Math.min(o.rows, o.source.count);
  const captions = o.source.captions;
  if (rows < 1 || captions === null) throw new Error(`trainTextDiffusion: the super-resolution grids need captioned images, '${o.source.name}' has ${o.source.count}${captions === null ? ' without captions' : ''}`);
  const rowCaptions = captions.slice(0, rows);
  const augLevel = o.grid.augLevel ?? Math.min(CASCADE_GENERATE_DEFAULTS.augLevel, o.lowRes.maxAugLevel);
  const { perPrompt } = o.grid;
  const size = o.config.unet.sampleSize;
  return async (net: UNet, step: number, file: string): Promise<void> => {
    const stage: SuperResolutionStage = { unet: net, schedule: o.schedule, config: o.config, lowRes: o.lowRes };
    const batch = fixedBatch(o.source, Array.from({ length: rows }, (_, i) => i), { padTo: size === o.source.height && size === o.source.width ? undefined : size });
    let z: tf.Tensor4D;
    try {
      z = tf.tidy(() => {
        const low = downsampleAverage(batch.x, o.lowRes.factor);
        const cond = sampledLowResCondition(stage, low, augLevel, o.seed, 0); // [rows, S, S, C]
        return tf.gather(cond, Int32Array.from({ length: rows * perPrompt }, (_, k) => Math.floor(k / perPrompt))) as tf.Tensor4D;
      });
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
    let images: tf.Tensor4D;
    try {
      const samples = await superResolve(stage, o.text, z, {
        prompts: rowCaptions.flatMap((c) => Array.from({ length: perPrompt }, () => c)), augLevel, sampler: o.grid.sampler, steps: o.grid.steps,
        guidance: o.grid.guidance, seed: o.seed, firstIndex: 0, clip: CASCADE_GENERATE_DEFAULTS.clip,
      });
      images = tf.tidy(() => {
        // row r: [conditioning image r, samples r * perPrompt ..], cropped to the data size
        const all = tf.concat([tf.clipByValue(z, -1, 1), samples], 0);
        const order = Int32Array.from({ length: rows * (perPrompt + 1) }, (_, k) => {
          const r = Math.floor(k / (perPrompt + 1));
          const j = k % (perPrompt + 1);
          return j === 0 ? r * perPrompt : rows * perPrompt + r * perPrompt + (j - 1);
        });
        const grid = tf.gather(all, order) as tf.Tensor4D;
        const off = Math.floor((size - o.config.imageSize) / 2);
        return tf.slice(grid, [0, off, off, 0], [grid.shape[0], o.config.imageSize, o.config.imageSize, grid.shape[3]]);
      });
      samples.dispose();
    } finally {
      z.dispose();
    }
    try {
      await saveImageGrid(file, images, { cols: perPrompt + 1 });
      o.log(`step ${step}: super-resolution grid ${file} (augLevel ${augLevel}; first column: the conditioning image; rows: ${rowCaptions.map((c) => `"${c}"`).join(', ')})`);
    } finally {
      images.dispose();
    }
  };
}
