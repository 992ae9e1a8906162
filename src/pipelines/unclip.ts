/**
 * unCLIP, the design of DALL-E 2 (Ramesh et al. 2022, "Hierarchical
 * Text-Conditional Image Generation with CLIP Latents",
 * https://arxiv.org/abs/2204.06125): a frozen CLIP, a diffusion PRIOR from the
 * CLIP text embedding to a CLIP image embedding, and a diffusion DECODER from
 * the image embedding to pixels. This file loads the pipeline and generates
 * from prompts:
 *
 *   prompt --CLIP text tower--> z_t (unit norm)                                  [B, E]
 *   z_i    = prior sample given z_t (CFG against the prior's learned null text)  [B, E], unit norm
 *   x      = decoder sample on pixels, conditioned on z_i (pipelines/unclipDecoder.ts)
 *   image  = x clipped to [-1, 1], cropped to the data size (MNIST 32 -> 28)
 *
 * An optional SUPER-RESOLUTION stage (DALL-E 2 sec. 2.1 upsamples 64 -> 256
 * -> 1024 with diffusion upsamplers trained on noise-augmented low-res images;
 * here the cascade's text-conditional SR UNet, pipelines/cascade.ts) then
 * takes the decoder's whole (uncropped) sample x [B, s, s, C]:
 *
 *   z      = sqrt(abar_a) resize(x, S) + sqrt(1 - abar_a) e   e keyed by (seed, 'cascade-aug', image index)
 *   image  = SR UNet sample at S x S on [x_t, z], a embedded, cross-attending to the
 *            prompt's token states from the CLIP text tower (CFG against the empty
 *            prompt with the same z; dynamic thresholding), cropped to its data size
 *
 * Seeds: the prior samples with noise seeded `${seed}/prior`, the decoder
 * with `seed` and the SR stage with `${seed}/sr` (as the cascade's), all keyed
 * by image index (firstIndex + i), so a job split into calls by firstIndex
 * gives the same images.
 *
 * The folder's parts, checkpoint configs and defaults, and the checks that the
 * parts fit together, are in pipelines/unclipConfig.ts; image variations in
 * pipelines/unclipVariations.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { clipFromCheckpoint } from '../models/clip';
import { DiffusionPrior, priorFromCheckpoint, PRIOR_CHECKPOINT_KIND, samplePriorEmbeddings } from '../models/prior';
import { UNet, checkUNetKind, unetFromCheckpoint } from '../models/unet';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { Checkpoint } from '../io/checkpoint';
import { PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { PipelineFiles, readManifest, readPart } from '../io/pipelineFiles';
import { checkAugLevel } from '../sample/lowResConditioning';
import { SamplerName } from '../sample/types';
import { ClipMode, validateClipMode } from '../sample/thresholding';
import { batchCount, GenerateHooks, progressCounter } from './progress';
import { FrozenTextEncoder } from './textConditioning';
import { stageUNetFromCheckpoint, textUNetCheckpointConfig } from './textToImage';
import { CASCADE_GENERATE_DEFAULTS, superResolveBatch, SuperResolutionStage } from './cascade';
import {
  checkSrDefaults, checkUnclipParts, checkUnclipSuperResolution, clipProvenanceOf, SR_DEFAULT_KEYS, UNCLIP_PARTS,
  unclipDecoderCheckpointConfig, unclipPriorCheckpointConfig, UnclipSamplingDefaults, unclipSamplingDefaults,
} from './unclipConfig';
import { ClipWithTokenizer, cropTo, decodeImageEmbeddings, UnclipDecoder } from './unclipDecoder';

// ---------------------------------------------------------------- loading

export interface UnclipPipeline extends ClipWithTokenizer {
  readonly prior: DiffusionPrior;
  readonly priorSchedule: Schedule;
  readonly decoder: UnclipDecoder;
  /** The optional super-resolution stage after the decoder (null: images at the decoder's size). */
  readonly sr: SuperResolutionStage | null;
  readonly defaults: UnclipSamplingDefaults;
  /** Where it was loaded from (folder, URL or label). */
  readonly source: string;
  /** Training steps recorded in the prior, decoder and SR files (null when absent; sr null without an SR stage). */
  readonly steps: { readonly prior: number | null; readonly decoder: number | null; readonly sr: number | null };
  dispose(): void;
}

/**
 * The CLIP's text tower and tokenizer as the frozen text encoder a super-resolution
 * stage reads prompts with (a view: disposing it does nothing, dispose the pipeline).
 */
export function clipTextTower(p: UnclipPipeline): FrozenTextEncoder {
  const config = { text: p.clip.config.text, tokenizer: p.clip.config.tokenizer };
  return { encoder: p.clip.textEncoder, tokenizer: p.tokenizer, config, source: p.source, dispose: () => undefined };
}

/** Builds a decoder from its checkpoint (config validated). */
export function unclipDecoderFromCheckpoint(checkpoint: Checkpoint): UnclipDecoder {
  checkUNetKind(checkpoint);
  const config = unclipDecoderCheckpointConfig(checkpoint.info.config, checkpoint.source);
  const unet = unetFromCheckpoint(checkpoint, config.unet);
  return { unet, schedule: makeSchedule(config.schedule), config };
}

/** Loads an unclip pipeline (design 'unclip': parts clip, prior, decoder, optionally sr) from its files. */
export async function loadUnclipPipeline(files: PipelineFiles, manifest?: PipelineManifest): Promise<UnclipPipeline> {
  const m = manifest ?? (await readManifest(files));
  const where = files.where(PIPELINE_MANIFEST_FILE);
  if (m.design !== 'unclip') throw new Error(`${where}: design '${m.design}' is not an unclip pipeline`);
  const parts = {
    clip: await readPart(files, m, UNCLIP_PARTS.clip),
    prior: await readPart(files, m, UNCLIP_PARTS.prior),
    decoder: await readPart(files, m, UNCLIP_PARTS.decoder),
    sr: Object.prototype.hasOwnProperty.call(m.parts, UNCLIP_PARTS.sr) ? await readPart(files, m, UNCLIP_PARTS.sr) : null,
  };
  // Configs first: mismatched parts are refused before any model is built (every part is read by now: a URL source has fetched them).
  const provenance = clipProvenanceOf(parts.clip.info, parts.clip.source);
  if (parts.prior.info.kind !== PRIOR_CHECKPOINT_KIND) throw new Error(`${parts.prior.source}: expected a '${PRIOR_CHECKPOINT_KIND}' checkpoint, got kind '${parts.prior.info.kind}'`);
  const priorConfig = unclipPriorCheckpointConfig(parts.prior.info.config, parts.prior.source);
  checkUNetKind(parts.decoder);
  const decoderConfig = unclipDecoderCheckpointConfig(parts.decoder.info.config, parts.decoder.source);
  checkUnclipParts(provenance, priorConfig, decoderConfig, where);
  if (parts.sr !== null) checkUNetKind(parts.sr);
  const srConfig = parts.sr === null ? null : textUNetCheckpointConfig(parts.sr.info.config, parts.sr.source);
  const lowRes = srConfig === null ? null : checkUnclipSuperResolution(provenance.config, decoderConfig, srConfig, where);
  const defaults = unclipSamplingDefaults(m.defaults, where);
  checkSrDefaults(defaults, lowRes, where);
  const clip = clipFromCheckpoint(parts.clip);
  clip.freeze();
  let priorModel: DiffusionPrior | null = null;
  let decoder: UnclipDecoder | null = null;
  let srUnet: UNet | null = null;
  let priorSchedule: Schedule;
  try {
    const loaded = priorFromCheckpoint(parts.prior);
    priorModel = loaded.prior;
    priorSchedule = loaded.schedule;
    decoder = unclipDecoderFromCheckpoint(parts.decoder);
    if (parts.sr !== null) srUnet = stageUNetFromCheckpoint(parts.sr).unet;
  } catch (e) {
    clip.dispose();
    priorModel?.dispose();
    decoder?.unet.dispose();
    throw e;
  }
  const p = priorModel;
  const d = decoder;
  const sr: SuperResolutionStage | null = srUnet === null || srConfig === null || lowRes === null
    ? null
    : { unet: srUnet, schedule: makeSchedule(srConfig.schedule), config: srConfig, lowRes };
  return {
    clip,
    tokenizer: clip.tokenizer(),
    prior: p,
    priorSchedule,
    decoder: d,
    sr,
    defaults,
    source: files.location,
    steps: { prior: parts.prior.info.step, decoder: parts.decoder.info.step, sr: parts.sr === null ? null : parts.sr.info.step },
    dispose: () => {
      clip.dispose();
      p.dispose();
      d.unet.dispose();
      sr?.unet.dispose();
    },
  };
}

// ---------------------------------------------------------------- generation

export interface UnclipGenerateOptions extends GenerateHooks {
  /** One prompt per image (length n), or one prompt for all n. */
  readonly prompts: readonly string[];
  readonly n: number;
  /** The decoder's sampler, steps and guidance scale (1 = none). */
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  /** The prior's sampler, steps and guidance scale (against its learned null text embedding; 1 = none). */
  readonly priorSampler: SamplerName;
  readonly priorSteps: number;
  readonly priorGuidance: number;
  readonly seed: number;
  /** Image i uses the noise of index firstIndex + i in both stages. */
  readonly firstIndex: number;
  /** Images per batch (guidance doubles it internally). */
  readonly batchSize: number;
  /** Clipping of the decoder's predicted x0 (not the CLIP model). */
  readonly clip: ClipMode;
  /** Run the super-resolution stage when the pipeline has one (false: images at the decoder's size). */
  readonly superResolution: boolean;
  /** The super-resolution stage's sampler, steps and guidance scale (default: the decoder's). Refused without an SR stage. */
  readonly srSampler?: SamplerName;
  readonly srSteps?: number;
  readonly srGuidance?: number;
  /**
   * Noise-augmentation level of the decoder's sample: a timestep of the SR stage's schedule, within the levels
   * it was trained with (default CASCADE_GENERATE_DEFAULTS.augLevel, or its maxAugLevel when smaller).
   */
  readonly augLevel?: number;
  /** Clipping of the SR stage's predicted x0: Imagen's dynamic thresholding, as in the cascade. */
  readonly srClip: ClipMode;
  /** Crop back to the data's original size (e.g. 32 -> 28 for MNIST; the SR stage's data size after it). */
  readonly cropToImageSize: boolean;
  /** Told about prompts longer than the tokenizer's maxLength (truncated). */
  readonly onWarn?: (message: string) => void;
}

export const UNCLIP_GENERATE_DEFAULTS: Omit<UnclipGenerateOptions, 'prompts' | 'n'> = {
  sampler: 'dpm-solver++',
  steps: 20,
  guidance: 3,
  /** Deterministic, as the prior's validation samples (train/priorTraining.ts). */
  priorSampler: 'ddim',
  priorSteps: 20,
  /** No prior guidance by default (not tuned). */
  priorGuidance: 1,
  seed: 0,
  firstIndex: 0,
  batchSize: 64,
  clip: { kind: 'static', value: 1 },
  superResolution: true,
  srClip: CASCADE_GENERATE_DEFAULTS.clip,
  cropToImageSize: true,
};

/** The seed of the prior's sampling noise (distinct from the decoder's; see the header). */
export function unclipPriorSeed(seed: number): string {
  return `${seed}/prior`;
}

export function checkCount(where: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${where}: ${name} must be a positive integer, got ${v}`);
}

/** n prompts from one or n (validated). */
export function expandPrompts(where: string, prompts: readonly string[], n: number): string[] {
  if (!Array.isArray(prompts) || (prompts.length !== 1 && prompts.length !== n)) {
    throw new Error(`${where}: give one prompt or n = ${n} prompts, got ${Array.isArray(prompts) ? prompts.length : typeof prompts}`);
  }
  prompts.forEach((q, i) => {
    if (typeof q !== 'string') throw new Error(`${where}: prompt ${i} is a ${typeof q}, expected a string`);
  });
  return Array.from({ length: n }, (_, i) => prompts[prompts.length === 1 ? 0 : i]);
}

/** Warns once per message. */
export function onceWarner(onWarn?: (message: string) => void): (message: string) => void {
  const warned = new Set<string>();
  return (m: string): void => {
    if (!warned.has(m)) onWarn?.(m);
    warned.add(m);
  };
}

/**
 * Generates images [n, H, W, C] in [-1, 1] from prompts: CLIP text embedding -> prior -> decoder
 * (-> super-resolution, when the pipeline has an SR stage and superResolution is not false; H = its size).
 * The caller disposes the tensor.
 */
export async function generateUnclip(
  p: UnclipPipeline,
  options: Partial<UnclipGenerateOptions> & Pick<UnclipGenerateOptions, 'prompts' | 'n'>,
): Promise<tf.Tensor4D> {
  const o: UnclipGenerateOptions = { ...UNCLIP_GENERATE_DEFAULTS, ...options };
  checkCount('generateUnclip', 'n', o.n);
  checkCount('generateUnclip', 'batchSize', o.batchSize);
  const prompts = expandPrompts('generateUnclip', o.prompts, o.n);
  validateClipMode(o.clip);
  if (p.sr === null) {
    const given = SR_DEFAULT_KEYS.filter((k) => options[k] !== undefined);
    if (given.length > 0) throw new Error(`generateUnclip: ${given.join(', ')} given, but the pipeline has no super-resolution stage ('${UNCLIP_PARTS.sr}' part)`);
  }
  const sr = o.superResolution ? p.sr : null;
  // Validated before any sampling: a bad level is refused, not found after the prior and decoder ran.
  const augLevel = sr === null ? 0 : (o.augLevel ?? Math.min(CASCADE_GENERATE_DEFAULTS.augLevel, sr.lowRes.maxAugLevel));
  if (sr !== null) {
    checkAugLevel(augLevel, sr.lowRes, 'generateUnclip');
    validateClipMode(o.srClip);
  }
  const srText = clipTextTower(p);
  const onWarn = onceWarner(o.onWarn);
  const readsText = p.decoder.config.textEncoder !== null;
  const stepsPerBatch = o.priorSteps + o.steps + (sr !== null ? (o.srSteps ?? o.steps) : 0);
  const progress = progressCounter(o, batchCount(o.n, o.batchSize) * stepsPerBatch);
  const chunks: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < o.n; start += o.batchSize) {
      const b = Math.min(o.batchSize, o.n - start);
      const batchPrompts = prompts.slice(start, start + b);
      const first = o.firstIndex + start;
      // 1. CLIP text embeddings (unit norm) -> 2. prior sample of the image embeddings (unit norm)
      const textEmb = p.clip.embedTexts(p.tokenizer, batchPrompts, onWarn);
      let imageEmb: tf.Tensor2D;
      try {
        imageEmb = await samplePriorEmbeddings(p.prior, p.priorSchedule, textEmb, {
          sampler: o.priorSampler, steps: o.priorSteps, guidance: o.priorGuidance, seed: unclipPriorSeed(o.seed), firstIndex: first,
          ...progress.sampler('prior', false),
        });
      } finally {
        textEmb.dispose();
      }
      // 3. the decoder (its whole sample, not cropped: the SR stage takes it so)
      let x: tf.Tensor4D;
      try {
        x = await decodeImageEmbeddings(p.decoder, p, imageEmb, {
          prompts: readsText ? batchPrompts : null, sampler: o.sampler, steps: o.steps, guidance: o.guidance, seed: o.seed, firstIndex: first, clip: o.clip, onWarn,
          ...progress.nested('decoder'),
        });
      } finally {
        imageEmb.dispose();
      }
      // 4. optional super-resolution: resize + noise augmentation at augLevel (keyed noise), then the SR sample (seed `${seed}/sr`)
      if (sr !== null) {
        x = await superResolveBatch(sr, srText, x, {
          prompts: batchPrompts, augLevel, sampler: o.srSampler ?? o.sampler, steps: o.srSteps ?? o.steps, guidance: o.srGuidance ?? o.guidance,
          seed: o.seed, firstIndex: first, clip: o.srClip, onWarn, ...progress.nested('sr'),
        });
      }
      chunks.push(x);
    }
    // 5. crop to the data size
    const size = sr !== null ? sr.config.imageSize : p.decoder.config.imageSize;
    return tf.tidy(() => {
      const all = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 0) as tf.Tensor4D);
      return o.cropToImageSize ? cropTo(all, size) : tf.clone(all);
    });
  } finally {
    tf.dispose(chunks);
  }
}
