/**
 * Text-to-image pipelines that compose independently trained parts:
 *
 *   pixel  (Imagen-like base):  prompt -> frozen text encoder -> UNet on pixels              -> image
 *   latent (Stable Diffusion):  prompt -> frozen text encoder -> UNet on scaled latents z'
 *                                                             -> z = z' / scaleFactor -> autoencoder decoder -> image
 *
 * A pipeline folder's pipeline.json names the parts by role: 'unet' (kind
 * 'unet'), 'text_encoder' (kind 'text-encoder' or 'clip') and, for the latent
 * design, 'vae' (kind 'autoencoder'). The UNet checkpoint's config records the
 * space it works in, the latent scale factor and the text encoder it was
 * trained with, so a pipeline assembled from mismatched parts is refused.
 *
 * Classifier-free guidance uses the empty prompt's states as the null
 * condition (the trainer's condition dropout replaces captions with it).
 *
 * The config also records the UNet's stage: 'single' (a model of the data at
 * its size; configs written before stages existed), 'base' (the low-resolution
 * first model of an Imagen-style cascade: the data padded and block-averaged
 * by `factor`) or 'super-resolution' (x_t and an upsampled low-res image in;
 * pipelines/cascade.ts). A base UNet samples like a single one (at its size);
 * a super-resolution UNet only inside a cascade.
 */
import * as tf from '@tensorflow/tfjs';
import { UNet, UNetConfig, unetConfig, checkUNetKind, unetFromCheckpoint } from '../models/unet';
import { Autoencoder, autoencoderFromCheckpoint } from '../models/autoencoder';
import { NULL_PROMPT } from '../models/textEncoder';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { Checkpoint } from '../io/checkpoint';
import { PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { PipelineFiles, readManifest, readPart } from '../io/pipelineFiles';
import { LowResConfig, lowResConfig } from '../sample/lowResConditioning';
import { sample } from '../sample/sample';
import { SamplerName } from '../sample/types';
import { classifierFreeGuidance } from '../sample/guidance';
import { ClipMode, NO_CLIP } from '../sample/thresholding';
import { unetDenoiser } from './unetDenoiser';
import { batchCount, GenerateHooks, progressCounter } from './progress';
import { PipelineSamplingDefaults, recordedSize, samplingDefaults } from './pixelDiffusion';
import { encodePrompts, FrozenTextEncoder, TextEncoderCheckpointConfig, textEncoderCheckpointConfig, textEncoderFromCheckpoint } from './textConditioning';

export type DiffusionSpace = 'pixel' | 'latent';

/** File names of the parts in a text-to-image training run folder (also its pipeline manifest's). */
export const TEXT_ENCODER_FILE = 'text_encoder.safetensors';
export const AUTOENCODER_FILE = 'autoencoder.safetensors';

/** Which model of a cascade a UNet is (see the header). */
export type DiffusionStage =
  | { readonly kind: 'single' }
  | { readonly kind: 'base'; /** The data was padded to a power of two and block-averaged by this factor. */ readonly factor: number }
  | { readonly kind: 'super-resolution'; /** How its conditioning image was made from the data (and the levels it was trained with). */ readonly lowRes: LowResConfig };

export const SINGLE_STAGE: DiffusionStage = { kind: 'single' };

/** The stage of a config (absent: single). */
export function stageOf(config: Pick<TextUNetCheckpointConfig, 'stage'>): DiffusionStage {
  return config.stage ?? SINGLE_STAGE;
}

/** What a text-conditional UNet checkpoint stores as its config. */
export interface TextUNetCheckpointConfig {
  readonly unet: UNetConfig;
  readonly schedule: ScheduleConfig;
  readonly dataset: string;
  /** Side of the data images before padding (e.g. 28 for MNIST): samples are cropped back to it. */
  readonly imageSize: number;
  /** Channels of the images (the autoencoder's inChannels in latent space). */
  readonly imageChannels: number;
  readonly space: DiffusionSpace;
  /** latent: the factor z' = scaleFactor * z the UNet was trained on; pixel: null. */
  readonly latentScaleFactor: number | null;
  /** The frozen text encoder the UNet was trained on (architecture and tokenizer). */
  readonly textEncoder: TextEncoderCheckpointConfig;
  /**
   * Single model, or the base / super-resolution stage of a cascade. Absent = single (configs written
   * before stages existed); textUNetCheckpointConfig always fills it in.
   */
  readonly stage?: DiffusionStage;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a text-conditional UNet checkpoint's config metadata. */
export function textUNetCheckpointConfig(raw: unknown, source: string): TextUNetCheckpointConfig {
  if (!isObject(raw) || !isObject(raw.unet) || !isObject(raw.schedule) || !isObject(raw.textEncoder)) {
    throw new Error(`${source}: config metadata must hold { unet, schedule, textEncoder, space, ... } (is this a text-conditional UNet checkpoint?)`);
  }
  const unet = unetConfig(raw.unet as Partial<UNetConfig>);
  const textEncoder = textEncoderCheckpointConfig(raw.textEncoder, `${source} (textEncoder)`);
  if (unet.contextDim !== textEncoder.text.dim) {
    throw new Error(`${source}: the UNet's contextDim ${unet.contextDim} differs from its text encoder's width ${textEncoder.text.dim}`);
  }
  const space = raw.space;
  if (space !== 'pixel' && space !== 'latent') throw new Error(`${source}: space must be 'pixel' or 'latent', got ${JSON.stringify(space)}`);
  const factor = raw.latentScaleFactor;
  if (space === 'latent' && !(typeof factor === 'number' && Number.isFinite(factor) && factor > 0)) {
    throw new Error(`${source}: a latent UNet needs a positive latentScaleFactor, got ${JSON.stringify(factor)}`);
  }
  const imageSize = recordedSize(raw, 'imageSize', unet.sampleSize, source);
  const imageChannels = recordedSize(raw, 'imageChannels', unet.outChannels, source);
  const stage = diffusionStage(raw.stage, unet, space, imageChannels, source);
  return {
    unet,
    schedule: scheduleConfig(raw.schedule as Partial<ScheduleConfig>),
    dataset: typeof raw.dataset === 'string' ? raw.dataset : 'unknown',
    imageSize,
    imageChannels,
    space,
    latentScaleFactor: space === 'latent' ? (factor as number) : null,
    textEncoder,
    stage,
  };
}

/** Validates a recorded stage against the UNet it belongs to (undefined: a single-stage model). */
function diffusionStage(raw: unknown, unet: UNetConfig, space: DiffusionSpace, imageChannels: number, source: string): DiffusionStage {
  if (raw === undefined) {
    if (unet.augLevelEmbedding) throw new Error(`${source}: the UNet embeds a noise-augmentation level but the config records no super-resolution stage`);
    return SINGLE_STAGE;
  }
  if (!isObject(raw)) throw new Error(`${source}: stage must be an object {kind, ...}, got ${JSON.stringify(raw)}`);
  const kind = raw.kind;
  if (kind !== 'single' && kind !== 'base' && kind !== 'super-resolution') {
    throw new Error(`${source}: stage.kind must be 'single', 'base' or 'super-resolution', got ${JSON.stringify(kind)}`);
  }
  if (kind !== 'single' && space !== 'pixel') throw new Error(`${source}: a cascade stage ('${kind}') must work in pixel space, got ${space}`);
  if (kind !== 'super-resolution') {
    if (unet.augLevelEmbedding) throw new Error(`${source}: a '${kind}' UNet must not embed a noise-augmentation level (only super-resolution stages do)`);
    if (kind === 'single') return SINGLE_STAGE;
    const f = raw.factor;
    if (typeof f !== 'number' || !Number.isInteger(f) || f < 2) throw new Error(`${source}: a base stage needs an integer factor >= 2, got ${JSON.stringify(f)}`);
    return { kind, factor: f };
  }
  if (!isObject(raw.lowRes)) throw new Error(`${source}: a super-resolution stage needs its lowRes config {factor, maxAugLevel, resize}`);
  const lowRes = lowResConfig(raw.lowRes as Partial<LowResConfig>);
  if (unet.inChannels !== 2 * imageChannels || unet.outChannels !== imageChannels || !unet.augLevelEmbedding) {
    throw new Error(`${source}: a super-resolution UNet must map ${2 * imageChannels} channels (x_t and the low-res image) to ${imageChannels} and embed the ` +
      `augmentation level; it maps ${unet.inChannels} to ${unet.outChannels}${unet.augLevelEmbedding ? '' : ' without the level embedding'}`);
  }
  if (unet.sampleSize % lowRes.factor !== 0) throw new Error(`${source}: sampleSize ${unet.sampleSize} is not divisible by the low-res factor ${lowRes.factor}`);
  return { kind, lowRes };
}

export interface TextToImagePipeline {
  readonly space: DiffusionSpace;
  readonly unet: UNet;
  readonly schedule: Schedule;
  readonly config: TextUNetCheckpointConfig;
  readonly text: FrozenTextEncoder;
  /** The decoder of the latent design (null in pixel space). */
  readonly autoencoder: Autoencoder | null;
  readonly defaults: PipelineSamplingDefaults;
  /** Where it was loaded from (folder, URL or label). */
  readonly source: string;
  /** Training step of the UNet (null when not recorded). */
  readonly trainingStep: number | null;
  dispose(): void;
}

/** Throws unless the parts fit together (same text encoder, latent shapes). */
export function checkTextPipelineParts(config: TextUNetCheckpointConfig, text: FrozenTextEncoder, autoencoder: Autoencoder | null, where: string): void {
  if (JSON.stringify(text.config.text) !== JSON.stringify(config.textEncoder.text) ||
      JSON.stringify(text.config.tokenizer) !== JSON.stringify(config.textEncoder.tokenizer)) {
    throw new Error(`${where}: the text encoder (${text.source}) is not the one the UNet was trained with (architecture or tokenizer differ)`);
  }
  if (config.space === 'latent') {
    if (autoencoder === null) throw new Error(`${where}: a latent UNet needs the autoencoder ('vae' part)`);
    const [, h, w, z] = autoencoder.latentShape(1);
    const u = config.unet;
    if (u.inChannels !== z || u.outChannels !== z || u.sampleSize !== h || h !== w) {
      throw new Error(`${where}: the UNet works on [${u.sampleSize}, ${u.sampleSize}, ${u.inChannels}], the autoencoder's latents are [${h}, ${w}, ${z}]` +
        (u.outChannels !== u.inChannels ? ` (and it outputs ${u.outChannels} channels)` : ''));
    }
  }
}

/** Reads, validates and builds a text-conditional UNet from its checkpoint (any stage). The caller disposes the UNet. */
export function stageUNetFromCheckpoint(checkpoint: Checkpoint): { unet: UNet; config: TextUNetCheckpointConfig } {
  checkUNetKind(checkpoint);
  const config = textUNetCheckpointConfig(checkpoint.info.config, checkpoint.source);
  return { unet: unetFromCheckpoint(checkpoint, config.unet), config };
}

/** Loads a text-to-image pipeline (design 'pixel' with a text_encoder part, or 'latent') from its files. */
export async function loadTextToImagePipeline(files: PipelineFiles, manifest?: PipelineManifest): Promise<TextToImagePipeline> {
  const m = manifest ?? (await readManifest(files));
  const where = files.where(PIPELINE_MANIFEST_FILE);
  if (m.design !== 'pixel' && m.design !== 'latent') throw new Error(`${where}: design '${m.design}' is not a pixel or latent text-to-image pipeline`);
  const unetPart = await readPart(files, m, 'unet');
  const unetFile = unetPart.source;
  checkUNetKind(unetPart);
  const config = textUNetCheckpointConfig(unetPart.info.config, unetFile);
  if (config.space !== m.design) throw new Error(`${where}: design '${m.design}' but the UNet was trained in ${config.space} space`);
  if (stageOf(config).kind === 'super-resolution') {
    throw new Error(`${unetFile}: a super-resolution stage (it samples from a low-res image): use it as the 'sr' part of a cascade pipeline`);
  }
  const text = textEncoderFromCheckpoint(await readPart(files, m, 'text_encoder'));
  let autoencoder: Autoencoder | null = null;
  let unet: UNet | null = null;
  try {
    if (config.space === 'latent') autoencoder = autoencoderFromCheckpoint(await readPart(files, m, 'vae')).model;
    checkTextPipelineParts(config, text, autoencoder, where);
    unet = unetFromCheckpoint(unetPart, config.unet);
  } catch (e) {
    text.dispose();
    autoencoder?.dispose();
    unet?.dispose();
    throw e;
  }
  const net = unet;
  const ae = autoencoder;
  return {
    space: config.space,
    unet: net,
    schedule: makeSchedule(config.schedule),
    config,
    text,
    autoencoder: ae,
    defaults: samplingDefaults(m.defaults, where),
    source: files.location,
    trainingStep: unetPart.info.step,
    dispose: () => {
      net.dispose();
      text.dispose();
      ae?.dispose();
    },
  };
}

export interface TextGenerateOptions extends GenerateHooks {
  /** One prompt per image (length n), or one prompt for all n. */
  readonly prompts: readonly string[];
  readonly n: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  /** Classifier-free guidance scale against the empty prompt; 1 = none. */
  readonly guidance: number;
  readonly seed: number;
  /** Image i uses the noise of index firstIndex + i (split a large job into calls). */
  readonly firstIndex: number;
  /**
   * Clipping of the predicted x0 at each step. Default: static [-1, 1] in pixel
   * space; none in latent space (latents are not bounded).
   */
  readonly clip?: ClipMode;
  /** Images per denoiser batch (guidance doubles it internally). */
  readonly batchSize: number;
  /** Crop back to the data's original size (e.g. 32 -> 28 for MNIST). */
  readonly cropToImageSize: boolean;
  /** Told about prompts longer than the tokenizer's maxLength (truncated). */
  readonly onWarn?: (message: string) => void;
}

export const TEXT_GENERATE_DEFAULTS: Omit<TextGenerateOptions, 'prompts' | 'n'> = {
  sampler: 'dpm-solver++',
  steps: 20,
  guidance: 3,
  seed: 0,
  firstIndex: 0,
  batchSize: 64,
  cropToImageSize: true,
};

/** Generates images [n, H, W, C] in [-1, 1] for prompts (the caller disposes the tensor). */
export async function generateFromText(
  pipeline: TextToImagePipeline,
  options: Partial<TextGenerateOptions> & Pick<TextGenerateOptions, 'prompts' | 'n'>,
): Promise<tf.Tensor4D> {
  const o: TextGenerateOptions = { ...TEXT_GENERATE_DEFAULTS, ...options };
  const { unet, schedule, config, text, autoencoder } = pipeline;
  if (!Number.isInteger(o.n) || o.n < 1) throw new Error(`generateFromText: n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`generateFromText: batchSize must be a positive integer, got ${o.batchSize}`);
  if (!Array.isArray(o.prompts) || (o.prompts.length !== 1 && o.prompts.length !== o.n)) {
    throw new Error(`generateFromText: give one prompt or n = ${o.n} prompts, got ${Array.isArray(o.prompts) ? o.prompts.length : typeof o.prompts}`);
  }
  o.prompts.forEach((p, i) => {
    if (typeof p !== 'string') throw new Error(`generateFromText: prompt ${i} is a ${typeof p}, expected a string`);
  });
  const prompts = Array.from({ length: o.n }, (_, i) => o.prompts[o.prompts.length === 1 ? 0 : i]);
  const clip = o.clip ?? (pipeline.space === 'latent' ? NO_CLIP : { kind: 'static', value: 1 });
  const { sampleSize: s, inChannels: c } = unet.config;
  const base = unetDenoiser(unet, { labelsValidated: true });
  const warned = new Set<string>();
  const onWarn = (m: string): void => {
    if (!warned.has(m)) o.onWarn?.(m);
    warned.add(m);
  };
  const progress = progressCounter(o, batchCount(o.n, o.batchSize) * o.steps).sampler('unet', pipeline.space === 'pixel');
  const nullCond = encodePrompts(text, [NULL_PROMPT]);
  const chunks: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < o.n; start += o.batchSize) {
      const b = Math.min(o.batchSize, o.n - start);
      const { context, mask } = encodePrompts(text, prompts.slice(start, start + b), onWarn);
      try {
        const cond = { context, contextMask: mask };
        const denoise = o.guidance !== 1
          ? classifierFreeGuidance(base, { scale: o.guidance, uncond: { context: nullCond.context, contextMask: nullCond.mask } })
          : base;
        const x = await sample(o.sampler, denoise, [b, s, s, c], schedule, {
          steps: o.steps,
          predictionType: unet.config.predictionType,
          seed: o.seed,
          firstIndex: o.firstIndex + start,
          cond,
          clip,
          ...progress,
        });
        chunks.push(tf.tidy(() => {
          const images = autoencoder === null ? x : autoencoder.decode(tf.div(x, config.latentScaleFactor as number) as tf.Tensor4D);
          return tf.clipByValue(images, -1, 1) as tf.Tensor4D;
        }));
        x.dispose();
      } finally {
        tf.dispose([context, mask]);
      }
    }
    return tf.tidy(() => {
      const all = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 0) as tf.Tensor4D);
      const side = all.shape[1];
      const size = config.imageSize;
      if (!o.cropToImageSize || size === side) return tf.clone(all);
      const off = Math.floor((side - size) / 2);
      return tf.slice(all, [0, off, off, 0], [o.n, size, size, all.shape[3]]);
    });
  } finally {
    tf.dispose([...chunks, nullCond.context, nullCond.mask]);
  }
}
