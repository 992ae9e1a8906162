/**
 * Pixel-space diffusion pipeline: a (class- or un-conditional) UNet and its
 * noise schedule, loaded from a self-describing checkpoint or a pipeline
 * folder, and `generate()` composing sampler + guidance + UNet.
 *
 * A UNet checkpoint's `config` metadata holds { unet, schedule, dataset,
 * classNames }: everything needed to rebuild the model and sample from it.
 */
import * as tf from '@tensorflow/tfjs';
import { UNet, UNetConfig, unetConfig, checkUNetKind, unetFromCheckpoint } from '../models/unet';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { MAX_TIMESTEPS, ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { Checkpoint } from '../io/checkpoint';
import { PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { PipelineFiles, readManifest, readPart } from '../io/pipelineFiles';
import { sample } from '../sample/sample';
import { SamplerName, SAMPLER_NAMES } from '../sample/types';
import { checkGuidance, classifierFreeGuidance } from '../sample/guidance';
import { ClipMode } from '../sample/thresholding';
import { unetDenoiser } from './unetDenoiser';
import { batchCount, GenerateHooks, progressCounter } from './progress';

/** What a pixel UNet checkpoint stores as its config. */
export interface PixelCheckpointConfig {
  readonly unet: UNetConfig;
  readonly schedule: ScheduleConfig;
  /** The dataset it was trained on, e.g. 'mnist'. */
  readonly dataset: string;
  /** Class names of the labels (index = label), or null for unconditional models. */
  readonly classNames: readonly string[] | null;
  /** Image size of the data before padding to the UNet's sampleSize (e.g. 28 for MNIST), to crop samples back. */
  readonly imageSize: number;
}

export interface PixelPipeline {
  readonly unet: UNet;
  readonly schedule: Schedule;
  readonly config: PixelCheckpointConfig;
  /** Where it was loaded from: the pipeline's folder, URL or label, or a bare UNet file. */
  readonly source: string;
  /** Sampling defaults from the pipeline's manifest (empty for a bare .safetensors). */
  readonly defaults: PipelineSamplingDefaults;
  /** Training step of the UNet (null when not recorded). */
  readonly trainingStep: number | null;
  dispose(): void;
}

/** What a pipeline.json may set under `defaults`. */
export interface PipelineSamplingDefaults {
  readonly sampler?: SamplerName;
  readonly steps?: number;
  readonly guidance?: number;
  /** Text-to-image pipelines: the prompts sampled when none are given. */
  readonly prompts?: readonly string[];
}

/** defaults[key] as a sampler name, or undefined when absent; anything else is an error naming the manifest. */
export function defaultSampler(raw: Record<string, unknown>, key: string, where: string): SamplerName | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (!(SAMPLER_NAMES as readonly unknown[]).includes(v)) throw new Error(`${where}: defaults.${key} must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(v)}`);
  return v as SamplerName;
}

/**
 * defaults[key] as a number, or undefined when absent; anything else is an error naming the manifest.
 * Guidance keys ('guidance', 'srGuidance', 'priorGuidance') must be in [0, MAX_GUIDANCE]; step counts
 * ('steps', 'srSteps', 'priorSteps') integers in [1, MAX_TIMESTEPS]; others (augLevel) integers in [0, MAX_TIMESTEPS].
 */
export function defaultNumber(raw: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (/guidance$/i.test(key)) return checkGuidance(v, `${where}: defaults.${key}`);
  const min = /steps$/i.test(key) ? 1 : 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_TIMESTEPS) {
    throw new Error(`${where}: defaults.${key} must be an integer in [${min}, ${MAX_TIMESTEPS}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Images larger than this are refused when read from a checkpoint's config (a corrupt value must not allocate gigabytes). */
export const MAX_IMAGE_SIDE = 4096;

/** config[key] as an image side or channel count recorded in a checkpoint (default `fallback` when absent), bounded; errors name the file and field. */
export function recordedSize(raw: Record<string, unknown>, key: 'imageSize' | 'imageChannels', fallback: number, source: string): number {
  const v = raw[key];
  if (v === undefined) return fallback;
  const max = key === 'imageSize' ? MAX_IMAGE_SIDE : 64;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new Error(`${source}: config.${key} must be an integer in [1, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

export function samplingDefaults(raw: Record<string, unknown> | undefined, where: string): PipelineSamplingDefaults {
  if (raw === undefined) return {};
  const out: { sampler?: SamplerName; steps?: number; guidance?: number; prompts?: string[] } = {};
  if (raw.prompts !== undefined) {
    if (!Array.isArray(raw.prompts) || raw.prompts.length === 0 || raw.prompts.some((p) => typeof p !== 'string')) {
      throw new Error(`${where}: defaults.prompts must be a non-empty list of strings, got ${JSON.stringify(raw.prompts)}`);
    }
    out.prompts = raw.prompts as string[];
  }
  const sampler = defaultSampler(raw, 'sampler', where);
  if (sampler !== undefined) out.sampler = sampler;
  for (const key of ['steps', 'guidance'] as const) {
    const v = defaultNumber(raw, key, where);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

export interface GenerateOptions extends GenerateHooks {
  /** Number of images. */
  readonly n: number;
  /** Class label per image (length n), or one label for all; null for unconditional models. */
  readonly labels: readonly number[] | null;
  readonly sampler: SamplerName;
  readonly steps: number;
  /** Classifier-free guidance scale; 1 = none (the conditional model alone). */
  readonly guidance: number;
  readonly seed: number;
  /** Noise index of the first image: image i uses the noise of index firstIndex + i (split a large job into calls). */
  readonly firstIndex: number;
  /** Clipping of predicted x0 at each step; pixel data lives in [-1, 1]. */
  readonly clip: ClipMode;
  /** Images per denoiser batch (memory bound); guidance doubles it internally. */
  readonly batchSize: number;
  /** Crop back to the data's original size (e.g. 32 -> 28 for MNIST). */
  readonly cropToImageSize: boolean;
}

export const GENERATE_DEFAULTS: Omit<GenerateOptions, 'n' | 'labels'> = {
  sampler: 'dpm-solver++',
  steps: 20,
  guidance: 1.5,
  seed: 0,
  firstIndex: 0,
  clip: { kind: 'static', value: 1 },
  batchSize: 64,
  cropToImageSize: true,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a UNet checkpoint's config metadata. */
export function pixelCheckpointConfig(raw: unknown, source: string): PixelCheckpointConfig {
  if (!isObject(raw) || !isObject(raw.unet) || !isObject(raw.schedule)) {
    throw new Error(`${source}: config metadata must hold { unet, schedule, ... } (is this a pixel UNet checkpoint?)`);
  }
  const unet = unetConfig(raw.unet as Partial<UNetConfig>);
  const classNames = raw.classNames === null || raw.classNames === undefined ? null : (raw.classNames as string[]);
  if (classNames !== null && unet.numClasses !== null && classNames.length !== unet.numClasses) {
    throw new Error(`${source}: ${classNames.length} class names but the UNet has numClasses ${unet.numClasses}`);
  }
  return {
    unet,
    schedule: scheduleConfig(raw.schedule as Partial<ScheduleConfig>),
    dataset: typeof raw.dataset === 'string' ? raw.dataset : 'unknown',
    classNames,
    imageSize: recordedSize(raw, 'imageSize', unet.sampleSize, source),
  };
}

/** A pixel pipeline from its UNet checkpoint (and the manifest's sampling defaults, if any); `source` default: the checkpoint's. */
export function pixelPipelineFromCheckpoint(checkpoint: Checkpoint, defaults: PipelineSamplingDefaults = {}, source: string = checkpoint.source): PixelPipeline {
  checkUNetKind(checkpoint);
  const config = pixelCheckpointConfig(checkpoint.info.config, checkpoint.source);
  const unet = unetFromCheckpoint(checkpoint, config.unet);
  return { unet, schedule: makeSchedule(config.schedule), config, source, defaults, trainingStep: checkpoint.info.step, dispose: () => unet.dispose() };
}

/** Loads a class-conditional (or unconditional) pixel pipeline (design 'pixel', a 'unet' part, no text encoder) from its files. */
export async function loadPixelPipelineFiles(files: PipelineFiles, manifest?: PipelineManifest): Promise<PixelPipeline> {
  const m = manifest ?? (await readManifest(files));
  const where = files.where(PIPELINE_MANIFEST_FILE);
  if (m.design !== 'pixel') throw new Error(`${where}: design '${m.design}' is not a pixel pipeline`);
  const defaults = samplingDefaults(m.defaults, where);
  return pixelPipelineFromCheckpoint(await readPart(files, m, 'unet'), defaults, files.location);
}

/** Generates n images [n, H, W, C] in [-1, 1] (the caller disposes the tensor). */
export async function generate(pipeline: PixelPipeline, options: Partial<GenerateOptions> & Pick<GenerateOptions, 'n' | 'labels'>): Promise<tf.Tensor4D> {
  const o: GenerateOptions = { ...GENERATE_DEFAULTS, ...options };
  const { unet, schedule, config } = pipeline;
  const numClasses = unet.config.numClasses;
  if (!Number.isInteger(o.n) || o.n < 1) throw new Error(`generate: n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`generate: batchSize must be a positive integer, got ${o.batchSize}`);
  let labels: number[] | null = null;
  if (numClasses !== null) {
    if (o.labels === null || o.labels.length === 0) {
      throw new Error(`generate: this model is class-conditional (${numClasses} classes${config.classNames ? `: ${config.classNames.join(', ')}` : ''}); pass labels`);
    }
    if (o.labels.length !== 1 && o.labels.length !== o.n) throw new Error(`generate: give one label or n = ${o.n} labels, got ${o.labels.length}`);
    labels = Array.from({ length: o.n }, (_, i) => o.labels![o.labels!.length === 1 ? 0 : i]);
    for (const l of labels) {
      if (!Number.isInteger(l) || l < 0 || l >= numClasses) throw new Error(`generate: label ${l} outside [0, ${numClasses})`);
    }
  } else if (o.labels !== null && o.labels.length > 0) {
    throw new Error('generate: this model is unconditional; labels must be null');
  }
  const base = unetDenoiser(unet, { labelsValidated: true }); // labels checked above: no read-back per step
  const { sampleSize: s, inChannels: c } = unet.config;
  const progress = progressCounter(o, batchCount(o.n, o.batchSize) * o.steps).sampler('unet', true);
  const chunks: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < o.n; start += o.batchSize) {
      const b = Math.min(o.batchSize, o.n - start);
      const cond = labels === null ? null : { classLabels: tf.tensor1d(labels.slice(start, start + b), 'int32') };
      const uncond = numClasses === null ? null : { classLabels: tf.tensor1d([numClasses], 'int32') };
      try {
        const denoise = cond !== null && uncond !== null && o.guidance !== 1 ? classifierFreeGuidance(base, { scale: o.guidance, uncond }) : base;
        const x = await sample(o.sampler, denoise, [b, s, s, c], schedule, {
          steps: o.steps,
          predictionType: unet.config.predictionType,
          seed: o.seed,
          firstIndex: o.firstIndex + start,
          cond,
          clip: o.clip,
          ...progress,
        });
        chunks.push(tf.tidy(() => tf.clipByValue(x, -1, 1) as tf.Tensor4D));
        x.dispose();
      } finally {
        tf.dispose([...(cond ? [cond.classLabels] : []), ...(uncond ? [uncond.classLabels] : [])]);
      }
    }
    return tf.tidy(() => {
      const all = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 0) as tf.Tensor4D);
      const size = config.imageSize;
      if (!o.cropToImageSize || size === s) return tf.clone(all);
      const off = Math.floor((s - size) / 2);
      return tf.slice(all, [0, off, off, 0], [o.n, size, size, c]);
    });
  } finally {
    tf.dispose(chunks);
  }
}
