/**
 * Trains a text-conditional diffusion UNet, in pixel space or in a frozen
 * autoencoder's latent space, on the frozen text encoder of a trained CLIP:
 *
 *   1. data: a captioned dataset (one caption per image, seeded);
 *   2. text: the CLIP's text tower, frozen; the token states of every distinct
 *      caption (and of the empty prompt, the condition-dropout null) computed
 *      once and looked up per batch (models/textEncoder.ts CaptionStateCache);
 *   3. latent space only: every image encoded once to its scaled posterior mean
 *      (pipelines/latentData.ts, cached on disk in the run folder), with the
 *      autoencoder's measured scale factor;
 *   4. the UNet (cross-attention to the token states) trained with the loop of
 *      train/loop.ts: condition dropout to the empty prompt, EMA, checkpoints,
 *      resume, sample grids of fixed prompts;
 *   5. the run folder is itself a pipeline: pipeline.json names model.safetensors
 *      (EMA UNet), text_encoder.safetensors and, latent, autoencoder.safetensors.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../backend/random';
import { ImageDataset } from '../data/dataset';
import { CaptionedDatasetName, loadCaptionedDataset } from '../data/captioned';
import { writeCaptionsFile } from '../data/captions';
import { UNet, unetConfig, UNetConfigInput } from '../models/unet';
import { UNET_PRESETS, UNetPreset } from '../models/unetPresets';
import { Autoencoder } from '../models/autoencoder';
import { encodeCaptionsCached, CaptionStateCache } from '../models/textEncoder';
import { makeSchedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { PredictionType } from '../schedule/parameterization';
import { trainDiffusion, TrainResult, STATE_FILE, WEIGHTS_FILE, MetricsRow, NULL_PROMPT } from '../train/loop';
import { trainConfig } from '../train/trainConfig';
import { loadTrainingState } from '../train/checkpoint';
import { loadAutoencoder } from '../train/autoencoderTraining';
import { TrainConfig } from '../train/trainConfig';
import { saveImageGrid } from '../io/png';
import { writePipelineManifest, PipelinePart } from '../io/pipeline';
import { writeFileAtomic } from '../io/atomicWrite';
import { SamplerName } from '../sample/types';
import { cachedLatentDataset } from './latentData';
import { FrozenTextEncoder, loadTextEncoder, saveTextEncoder } from './textConditioning';
import { DiffusionSpace, generateFromText, TextToImagePipeline, TextUNetCheckpointConfig, textUNetCheckpointConfig } from './textToImage';

export const TEXT_ENCODER_FILE = 'text_encoder.safetensors';
export const AUTOENCODER_FILE = 'autoencoder.safetensors';

export interface TextTrainingOptions {
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
  readonly resume: boolean;
  /** Prompts of the periodic sample grids (one row each) and how they are sampled. */
  readonly gridPrompts: readonly string[];
  readonly gridSampler: { sampler: SamplerName; steps: number; guidance: number; perPrompt: number };
  readonly onLog?: (line: string) => void;
  readonly onMetrics?: (row: MetricsRow) => void;
  readonly signal?: AbortSignal;
  readonly command?: string;
  readonly isTTY?: boolean;
  readonly profile?: boolean;
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/** Copies a file atomically (write to a temporary name, then rename). */
async function copyFileAtomic(from: string, to: string): Promise<void> {
  if (path.resolve(from) === path.resolve(to)) return;
  await writeFileAtomic(to, fs.readFileSync(from));
}

export async function trainTextDiffusion(opts: TextTrainingOptions): Promise<TrainResult & { config: TextUNetCheckpointConfig }> {
  const log = opts.onLog ?? (() => undefined);
  const cfg = trainConfig(opts.train);
  fs.mkdirSync(opts.outDir, { recursive: true });
  if (opts.gridPrompts.length === 0) throw new Error('trainTextDiffusion: gridPrompts must list at least one prompt');

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
  const trainCaptions = pixels.captions as string[];
  writeCaptionsFile(path.join(opts.outDir, 'captions-train.txt'), trainCaptions);
  log(`${pixels.name}: ${pixels.count} captioned images ${pixels.height}x${pixels.width}x${pixels.channels}, ${new Set(trainCaptions).size} distinct captions, e.g. "${trainCaptions[0]}"`);

  // ---- the frozen text encoder, shipped with the run
  const text: FrozenTextEncoder = await loadTextEncoder(opts.textEncoder);
  let autoencoder: Autoencoder | null = null;
  let textStates: CaptionStateCache | null = null;
  let model: UNet | null = null;
  let ema: UNet | null = null;
  try {
    await saveTextEncoder(path.join(opts.outDir, TEXT_ENCODER_FILE), text, { command: opts.command });
    log(`text encoder: ${text.encoder.numParameters().toLocaleString('en-US')} parameters (frozen) from ${opts.textEncoder}; ` +
      `${text.tokenizer.maxLength} tokens, vocabulary ${text.tokenizer.vocabSize}`);

    // ---- latent space: the frozen autoencoder and the encoded data
    let train = pixels;
    let validation = pixelValidation;
    let scaleFactor: number | null = null;
    if (opts.space === 'latent') {
      if (opts.autoencoder === undefined) throw new Error('trainTextDiffusion: latent space needs an autoencoder checkpoint');
      const loaded = await loadAutoencoder(opts.autoencoder);
      autoencoder = loaded.model;
      scaleFactor = loaded.config.scaleFactor;
      if (scaleFactor === null) {
        throw new Error(`${opts.autoencoder}: no latent scale factor in its metadata (train-autoencoder measures it at the end of training)`);
      }
      await copyFileAtomic(opts.autoencoder, path.join(opts.outDir, AUTOENCODER_FILE));
      const encode = (d: ImageDataset, file: string): Promise<ImageDataset> =>
        cachedLatentDataset(path.join(opts.outDir, file), opts.autoencoder as string, autoencoder as Autoencoder, d, { scaleFactor: scaleFactor as number, onLog: log });
      train = await encode(pixels, 'latents-train.safetensors');
      validation = pixelValidation === null ? null : await encode(pixelValidation, 'latents-test.safetensors');
    }

    // ---- the model config: from the saved state when resuming, else from the options
    const statePath = path.join(opts.outDir, STATE_FILE);
    let config: TextUNetCheckpointConfig;
    if (opts.resume && fs.existsSync(statePath)) {
      const state = await loadTrainingState(statePath);
      tf.dispose([...state.tensors.values()]);
      config = textUNetCheckpointConfig(state.json.checkpointConfig, statePath);
      log(`resuming the model saved in ${statePath}; model options on the command line are ignored`);
    } else {
      const unet = unetConfig({
        ...UNET_PRESETS[opts.preset],
        ...(opts.unet ?? {}),
        inChannels: train.channels,
        sampleSize: nextPowerOfTwo(Math.max(train.height, train.width)),
        contextDim: text.config.text.dim,
        numClasses: null,
        predictionType: opts.predictionType,
      });
      config = {
        unet,
        schedule: scheduleConfig(opts.schedule),
        dataset: opts.dataset,
        imageSize: pixels.height,
        imageChannels: pixels.channels,
        space: opts.space,
        latentScaleFactor: scaleFactor,
        textEncoder: text.config,
      };
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
    const onSample = async (net: UNet, step: number, file: string): Promise<void> => {
      const pipeline: TextToImagePipeline = {
        space: config.space, unet: net, schedule, config, text, autoencoder, defaults: {}, source: opts.outDir, dispose: () => undefined,
      };
      const images = await generateFromText(pipeline, { prompts, n: prompts.length, sampler: grid.sampler, steps: grid.steps, guidance: grid.guidance, seed: cfg.seed });
      try {
        await saveImageGrid(file, images, { cols: grid.perPrompt });
        log(`step ${step}: sample grid ${file} (rows: ${opts.gridPrompts.map((p) => `"${p}"`).join(', ')})`);
      } finally {
        images.dispose();
      }
    };

    const result = await trainDiffusion({
      model,
      ema,
      schedule,
      train,
      validation,
      config: cfg,
      outDir: opts.outDir,
      resume: opts.resume,
      checkpointConfig: {
        schedule: config.schedule,
        dataset: config.dataset,
        imageSize: config.imageSize,
        imageChannels: config.imageChannels,
        space: config.space,
        latentScaleFactor: config.latentScaleFactor,
        textEncoder: config.textEncoder,
        attributes: opts.attributes,
      },
      textStates,
      onSample,
      onLog: log,
      onMetrics: opts.onMetrics,
      signal: opts.signal,
      command: opts.command,
      isTTY: opts.isTTY,
      profile: opts.profile,
    });
    const parts: Record<string, PipelinePart> = {
      unet: { file: WEIGHTS_FILE, kind: 'unet', description: `text-conditional ${config.space} UNet (EMA), ${config.dataset}, step ${result.endStep}` },
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
