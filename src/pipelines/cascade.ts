/**
 * An Imagen-style cascade (Saharia et al. 2022, sec. 2.4-2.5; Ho et al. 2022,
 * "Cascaded Diffusion Models for High Fidelity Image Generation"): a small
 * text-conditional base model, then a text-conditional super-resolution model
 * conditioned on the base model's sample.
 *
 *   prompt --frozen text encoder--> context
 *   x_low  = base UNet sample at s x s                  (e.g. 16x16; CFG, dynamic thresholding)
 *   up     = resize(x_low, S)                           the resize the SR stage was trained with (S = s * factor)
 *   z      = sqrt(abar_a) up + sqrt(1 - abar_a) e       noise augmentation at a fixed level a (augLevel),
 *                                                       e keyed by (seed, 'cascade-aug', image index)
 *   x      = SR UNet sample at S x S on [x_t, z], a embedded, cross-attending to the prompt
 *            (CFG against the empty prompt with the SAME z and a; dynamic thresholding)
 *   image  = x cropped to the data size (e.g. 32 -> 28 for MNIST)
 *
 * The base is trained on the data padded to S and block-averaged by the factor
 * (data/resize.ts), the SR stage on the full-size data with conditioning
 * images made the same way from each training image and augmented at random
 * levels (sample/lowResConditioning.ts). Sampling-time augmentation at a small
 * level hides the base model's artefacts the SR stage never saw in training
 * (Ho et al. 2022 sec. 4.4; Imagen sweeps it and uses a small value).
 *
 * The SR stage samples with noise seeded `${seed}/sr` so its noise is not a
 * copy of the base's (both key by image index and step).
 *
 * Folder: pipeline.json with design 'cascade' and parts text_encoder (kind
 * 'text-encoder'), base and sr (kind 'unet', their configs record the stage);
 * defaults may set sampler, steps, guidance, prompts (the base stage and the
 * CLI) and srSampler, srSteps, srGuidance, augLevel.
 */
import * as tf from '@tensorflow/tfjs';
import { checkUNetKind, UNet } from '../models/unet';
import { NULL_PROMPT } from '../models/textEncoder';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { PipelineFiles, readManifest, readPart } from '../io/pipelineFiles';
import { LowResConfig, checkAugLevel, resizeTo, augmentLowRes, samplingAugmentationNoise } from '../sample/lowResConditioning';
import { sample } from '../sample/sample';
import { SamplerName } from '../sample/types';
import { classifierFreeGuidance } from '../sample/guidance';
import { ClipMode, validateClipMode } from '../sample/thresholding';
import { unetDenoiser } from './unetDenoiser';
import { batchCount, GenerateHooks, progressCounter } from './progress';
import { defaultNumber, defaultSampler, PipelineSamplingDefaults, samplingDefaults } from './pixelDiffusion';
import { encodePrompts, FrozenTextEncoder, textEncoderFromCheckpoint } from './textConditioning';
import {
  checkTextPipelineParts, generateFromText, stageOf, stageUNetFromCheckpoint, TextToImagePipeline, TextUNetCheckpointConfig, textUNetCheckpointConfig,
} from './textToImage';

// ---------------------------------------------------------------- types

/** The super-resolution stage: its UNet (x_t and the low-res image in), schedule and config. */
export interface SuperResolutionStage {
  readonly unet: UNet;
  readonly schedule: Schedule;
  readonly config: TextUNetCheckpointConfig;
  /** From the config's stage: how its conditioning image is made, the levels it was trained with. */
  readonly lowRes: LowResConfig;
}

/** What a cascade's pipeline.json may set under `defaults` (sampler / steps / guidance are the base stage's). */
export interface CascadeSamplingDefaults extends PipelineSamplingDefaults {
  readonly srSampler?: SamplerName;
  readonly srSteps?: number;
  readonly srGuidance?: number;
  readonly augLevel?: number;
}

export interface CascadePipeline {
  /** The base stage as a pixel text-to-image pipeline (sharing `text`; disposed with the cascade). */
  readonly base: TextToImagePipeline;
  readonly sr: SuperResolutionStage;
  readonly text: FrozenTextEncoder;
  readonly defaults: CascadeSamplingDefaults;
  /** Where it was loaded from (folder, URL or label). */
  readonly source: string;
  /** Training steps of the two UNets (null when not recorded). */
  readonly steps: { readonly base: number | null; readonly sr: number | null };
  dispose(): void;
}

export const CASCADE_PARTS = { textEncoder: 'text_encoder', base: 'base', sr: 'sr' } as const;

// ---------------------------------------------------------------- loading

/** Validates the cascade-specific defaults (on top of samplingDefaults). */
export function cascadeSamplingDefaults(raw: Record<string, unknown> | undefined, where: string): CascadeSamplingDefaults {
  const out: { -readonly [K in keyof CascadeSamplingDefaults]: CascadeSamplingDefaults[K] } = { ...samplingDefaults(raw, where) };
  if (raw === undefined) return out;
  const srSampler = defaultSampler(raw, 'srSampler', where);
  if (srSampler !== undefined) out.srSampler = srSampler;
  for (const key of ['srSteps', 'srGuidance', 'augLevel'] as const) {
    const v = defaultNumber(raw, key, where);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Throws unless a base and an SR stage (and the shipped text encoder) fit together; returns the SR stage's low-res config. */
export function checkCascadeParts(base: TextUNetCheckpointConfig, sr: TextUNetCheckpointConfig, text: FrozenTextEncoder, where: string): LowResConfig {
  const bs = stageOf(base);
  const ss = stageOf(sr);
  if (bs.kind !== 'base') throw new Error(`${where}: part 'base' is a '${bs.kind}' UNet, expected a base stage (trained with stage { kind: 'base' })`);
  if (ss.kind !== 'super-resolution') throw new Error(`${where}: part 'sr' is a '${ss.kind}' UNet, expected a super-resolution stage`);
  if (JSON.stringify(base.textEncoder) !== JSON.stringify(sr.textEncoder)) {
    throw new Error(`${where}: the base and super-resolution stages were trained with different text encoders (architecture or tokenizer differ)`);
  }
  checkTextPipelineParts(base, text, null, `${where} (base)`);
  checkTextPipelineParts(sr, text, null, `${where} (sr)`);
  const s = base.unet.sampleSize;
  const S = sr.unet.sampleSize;
  if (bs.factor !== ss.lowRes.factor || s * ss.lowRes.factor !== S) {
    throw new Error(`${where}: the base stage makes ${s}x${s} images (data reduced by ${bs.factor}); the super-resolution stage takes ${S / ss.lowRes.factor}x${S / ss.lowRes.factor} ` +
      `inputs (factor ${ss.lowRes.factor}) and makes ${S}x${S}`);
  }
  if (base.imageChannels !== sr.imageChannels || base.unet.outChannels !== sr.imageChannels) {
    throw new Error(`${where}: the base stage makes ${base.unet.outChannels}-channel images, the super-resolution stage takes ${sr.imageChannels}`);
  }
  if (base.dataset !== sr.dataset) throw new Error(`${where}: the base stage was trained on '${base.dataset}', the super-resolution stage on '${sr.dataset}'`);
  return ss.lowRes;
}

/** Loads a cascade pipeline (design 'cascade': parts text_encoder, base, sr) from its files. */
export async function loadCascadePipeline(files: PipelineFiles, manifest?: PipelineManifest): Promise<CascadePipeline> {
  const m = manifest ?? (await readManifest(files));
  const where = files.where(PIPELINE_MANIFEST_FILE);
  if (m.design !== 'cascade') throw new Error(`${where}: design '${m.design}' is not a cascade`);
  const [textPart, basePart, srPart] = [
    await readPart(files, m, CASCADE_PARTS.textEncoder),
    await readPart(files, m, CASCADE_PARTS.base),
    await readPart(files, m, CASCADE_PARTS.sr),
  ];
  // Configs first: mismatched parts are refused before any model is built (every part is read by now: a URL source has fetched them).
  const configs = [basePart, srPart].map((p) => {
    checkUNetKind(p);
    return textUNetCheckpointConfig(p.info.config, p.source);
  });
  const defaults = cascadeSamplingDefaults(m.defaults, where);
  const text = textEncoderFromCheckpoint(textPart);
  let base: UNet | null = null;
  let sr: UNet | null = null;
  let lowRes: LowResConfig;
  try {
    lowRes = checkCascadeParts(configs[0], configs[1], text, where);
    base = stageUNetFromCheckpoint(basePart).unet;
    sr = stageUNetFromCheckpoint(srPart).unet;
  } catch (e) {
    text.dispose();
    base?.dispose();
    sr?.dispose();
    throw e;
  }
  const baseNet = base;
  const srNet = sr;
  const [baseConfig, srConfig] = configs;
  return {
    base: {
      space: 'pixel', unet: baseNet, schedule: makeSchedule(baseConfig.schedule), config: baseConfig, text, autoencoder: null,
      defaults, source: files.location, trainingStep: basePart.info.step, dispose: () => undefined,
    },
    sr: { unet: srNet, schedule: makeSchedule(srConfig.schedule), config: srConfig, lowRes },
    text,
    defaults,
    source: files.location,
    steps: { base: basePart.info.step, sr: srPart.info.step },
    dispose: () => {
      baseNet.dispose();
      srNet.dispose();
      text.dispose();
    },
  };
}

// ---------------------------------------------------------------- the super-resolution stage

/** z = q(z_a | resize(x_low, S)) at one level a for every image: the SR stage's conditioning image [B, S, S, C]. */
export function sampledLowResCondition(sr: SuperResolutionStage, xLow: tf.Tensor4D, augLevel: number, seed: number | string, firstIndex: number): tf.Tensor4D {
  checkAugLevel(augLevel, sr.lowRes, 'sampledLowResCondition');
  const S = sr.unet.config.sampleSize;
  const [b, , , c] = xLow.shape;
  return tf.tidy(() => {
    const up = resizeTo(xLow, S, sr.lowRes.resize);
    const noise = samplingAugmentationNoise([b, S, S, c], seed, firstIndex);
    return augmentLowRes(up, tf.fill([b], augLevel, 'int32') as tf.Tensor1D, noise, sr.schedule);
  });
}

export interface SuperResolveOptions extends GenerateHooks {
  /** One prompt per image (length B). */
  readonly prompts: readonly string[];
  /** The level the conditioning image was augmented at (embedded by the UNet). */
  readonly augLevel: number;
  readonly sampler: SamplerName;
  readonly steps: number;
  /** Classifier-free guidance against the empty prompt (same conditioning image); 1 = none. */
  readonly guidance: number;
  readonly seed: number | string;
  /** Image i uses the noise of index firstIndex + i. */
  readonly firstIndex: number;
  readonly clip: ClipMode;
  readonly onWarn?: (message: string) => void;
}

/**
 * Samples the SR stage for one batch given its (already augmented) conditioning
 * images `lowRes` [B, S, S, C]: returns [B, S, S, C] clipped to [-1, 1], not cropped.
 */
export async function superResolve(sr: SuperResolutionStage, text: FrozenTextEncoder, lowRes: tf.Tensor4D, o: SuperResolveOptions): Promise<tf.Tensor4D> {
  const { unet, schedule } = sr;
  const { sampleSize: S, outChannels: C } = unet.config;
  const b = lowRes.shape[0];
  if (lowRes.shape[1] !== S || lowRes.shape[2] !== S || lowRes.shape[3] !== C) {
    throw new Error(`superResolve: the conditioning images must be [B, ${S}, ${S}, ${C}], got [${lowRes.shape.join(', ')}]`);
  }
  if (o.prompts.length !== b) throw new Error(`superResolve: ${o.prompts.length} prompts for ${b} conditioning images`);
  checkAugLevel(o.augLevel, sr.lowRes, 'superResolve');
  const augLevels = tf.fill([b], o.augLevel, 'int32') as tf.Tensor1D;
  const { context, mask } = encodePrompts(text, o.prompts, o.onWarn);
  const nullCond = encodePrompts(text, [NULL_PROMPT]);
  try {
    const base = unetDenoiser(unet, { labelsValidated: true });
    const cond = { context, contextMask: mask, lowRes, augLevels };
    const denoise = o.guidance !== 1
      ? classifierFreeGuidance(base, { scale: o.guidance, uncond: { context: nullCond.context, contextMask: nullCond.mask, lowRes, augLevels } })
      : base;
    const x = await sample(o.sampler, denoise, [b, S, S, C], schedule, {
      steps: o.steps, predictionType: unet.config.predictionType, seed: o.seed, firstIndex: o.firstIndex, cond, clip: o.clip,
      ...progressCounter(o, o.steps).sampler('sr', true),
    });
    const out = tf.clipByValue(x, -1, 1) as tf.Tensor4D;
    x.dispose();
    return out;
  } finally {
    tf.dispose([augLevels, context, mask, nullCond.context, nullCond.mask]);
  }
}

// ---------------------------------------------------------------- generation

export interface CascadeGenerateOptions extends GenerateHooks {
  /** One prompt per image (length n), or one prompt for all n. */
  readonly prompts: readonly string[];
  readonly n: number;
  /** The base stage's sampler, steps and guidance scale (1 = none). */
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  /** The super-resolution stage's (default: the base stage's). */
  readonly srSampler?: SamplerName;
  readonly srSteps?: number;
  readonly srGuidance?: number;
  /**
   * Noise-augmentation level of the base sample: a timestep of the SR stage's schedule, within the levels it
   * was trained with (default 100, or its maxAugLevel when smaller).
   */
  readonly augLevel: number;
  readonly seed: number;
  /** Image i uses the noise of index firstIndex + i in both stages. */
  readonly firstIndex: number;
  /** Images per batch (guidance doubles it internally). */
  readonly batchSize: number;
  /** Clipping of the predicted x0 in both stages: Imagen's dynamic thresholding by default. */
  readonly clip: ClipMode;
  /** The SR stage's clipping, when it differs. */
  readonly srClip?: ClipMode;
  /** Crop back to the data's original size (e.g. 32 -> 28 for MNIST). */
  readonly cropToImageSize: boolean;
  readonly onWarn?: (message: string) => void;
}

export const CASCADE_GENERATE_DEFAULTS: Omit<CascadeGenerateOptions, 'prompts' | 'n'> = {
  sampler: 'dpm-solver++',
  steps: 20,
  guidance: 3,
  // abar ~ 0.97 on the cosine schedule of 1000 steps: a little noise over the base sample.
  augLevel: 100,
  seed: 0,
  firstIndex: 0,
  batchSize: 64,
  // Imagen sec. 2.3: keeps guided samples in range without saturating them.
  clip: { kind: 'dynamic', percentile: 0.995 },
  cropToImageSize: true,
};

/** The seed of the SR stage's sampling noise (distinct from the base's; see the header). */
export function superResolutionSeed(seed: number): string {
  return `${seed}/sr`;
}

/**
 * One batch through a super-resolution stage, as every pipeline with one samples it: `low` (disposed here)
 * resized and noise-augmented at augLevel with noise keyed (seed, index), then the SR sample seeded
 * superResolutionSeed(seed), so its noise differs from the stage before it.
 */
export async function superResolveBatch(
  sr: SuperResolutionStage,
  text: FrozenTextEncoder,
  low: tf.Tensor4D,
  o: Omit<SuperResolveOptions, 'seed'> & { readonly seed: number },
): Promise<tf.Tensor4D> {
  let z: tf.Tensor4D;
  try {
    z = sampledLowResCondition(sr, low, o.augLevel, o.seed, o.firstIndex);
  } finally {
    low.dispose();
  }
  try {
    return await superResolve(sr, text, z, { ...o, seed: superResolutionSeed(o.seed) });
  } finally {
    z.dispose();
  }
}

/** Generates images [n, H, W, C] in [-1, 1] through both stages (the caller disposes the tensor). */
export async function generateCascade(
  p: CascadePipeline,
  options: Partial<CascadeGenerateOptions> & Pick<CascadeGenerateOptions, 'prompts' | 'n'>,
): Promise<tf.Tensor4D> {
  // augLevel default: CASCADE_GENERATE_DEFAULTS' level, or the SR stage's maxAugLevel when it was trained with fewer levels
  const augLevel = Math.min(CASCADE_GENERATE_DEFAULTS.augLevel, p.sr.lowRes.maxAugLevel);
  const o: CascadeGenerateOptions = { ...CASCADE_GENERATE_DEFAULTS, augLevel, ...options };
  if (!Number.isInteger(o.n) || o.n < 1) throw new Error(`generateCascade: n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`generateCascade: batchSize must be a positive integer, got ${o.batchSize}`);
  if (!Array.isArray(o.prompts) || (o.prompts.length !== 1 && o.prompts.length !== o.n)) {
    throw new Error(`generateCascade: give one prompt or n = ${o.n} prompts, got ${Array.isArray(o.prompts) ? o.prompts.length : typeof o.prompts}`);
  }
  o.prompts.forEach((q, i) => {
    if (typeof q !== 'string') throw new Error(`generateCascade: prompt ${i} is a ${typeof q}, expected a string`);
  });
  checkAugLevel(o.augLevel, p.sr.lowRes, 'generateCascade');
  validateClipMode(o.clip);
  const srClip = o.srClip ?? o.clip;
  validateClipMode(srClip);
  const prompts = Array.from({ length: o.n }, (_, i) => o.prompts[o.prompts.length === 1 ? 0 : i]);
  const warned = new Set<string>();
  const onWarn = (m: string): void => {
    if (!warned.has(m)) o.onWarn?.(m);
    warned.add(m);
  };
  const progress = progressCounter(o, batchCount(o.n, o.batchSize) * (o.steps + (o.srSteps ?? o.steps)));
  const chunks: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < o.n; start += o.batchSize) {
      const b = Math.min(o.batchSize, o.n - start);
      const batchPrompts = prompts.slice(start, start + b);
      const first = o.firstIndex + start;
      // 1. base sample at its own size (not cropped: the SR stage takes the whole padded image)
      const low = await generateFromText(p.base, {
        prompts: batchPrompts, n: b, sampler: o.sampler, steps: o.steps, guidance: o.guidance, seed: o.seed, firstIndex: first,
        clip: o.clip, batchSize: b, cropToImageSize: false, onWarn, ...progress.nested('base'),
      });
      // 2. resize + noise augmentation at augLevel, 3. super-resolution
      chunks.push(await superResolveBatch(p.sr, p.text, low, {
        prompts: batchPrompts, augLevel: o.augLevel, sampler: o.srSampler ?? o.sampler, steps: o.srSteps ?? o.steps,
        guidance: o.srGuidance ?? o.guidance, seed: o.seed, firstIndex: first, clip: srClip, onWarn, ...progress.nested('sr'),
      }));
    }
    // 4. crop to the data size
    return tf.tidy(() => {
      const all = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 0) as tf.Tensor4D);
      const side = all.shape[1];
      const size = p.sr.config.imageSize;
      if (!o.cropToImageSize || size === side) return tf.clone(all);
      const off = Math.floor((side - size) / 2);
      return tf.slice(all, [0, off, off, 0], [o.n, size, size, all.shape[3]]);
    });
  } finally {
    tf.dispose(chunks);
  }
}
