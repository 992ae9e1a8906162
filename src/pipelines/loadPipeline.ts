/**
 * One interface over the text-to-image pipeline designs, for callers that only
 * need images from prompts (the `sample` and `eval` commands, evaluateText.ts):
 *
 *   pixel, latent   a UNet (+ decoder) and a text encoder     pipelines/textToImage.ts
 *   cascade         base UNet -> super-resolution UNet        pipelines/cascade.ts
 *   unclip          CLIP text embedding -> prior -> decoder   pipelines/unclip.ts
 *
 * The design is read from pipeline.json. `generate` fills the sampler, steps
 * and guidance the caller leaves out from the manifest's defaults, then from
 * the design's own defaults (TEXT_GENERATE_DEFAULTS, CASCADE_GENERATE_DEFAULTS,
 * UNCLIP_GENERATE_DEFAULTS); a cascade also takes its SR-stage settings and
 * augmentation level from the manifest, an unclip pipeline its prior's sampler,
 * steps and guidance (sampler / steps / guidance are its decoder's) and, with
 * an optional super-resolution stage, that stage's settings as a cascade does.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { readModelConfig } from '../train/checkpoint';
import { readPipelineManifest, pipelinePartPath, PIPELINE_MANIFEST_FILE, PipelineDesign } from '../io/pipeline';
import { SamplerName } from '../sample/types';
import { ClipMode } from '../sample/thresholding';
import { generateFromText, loadTextToImagePipeline, TextToImagePipeline, TEXT_GENERATE_DEFAULTS } from './textToImage';
import { CascadePipeline, CascadeSamplingDefaults, CASCADE_GENERATE_DEFAULTS, CASCADE_PARTS, generateCascade, loadCascadePipeline } from './cascade';
import { generateUnclip, loadUnclipPipeline, UnclipPipeline, UnclipSamplingDefaults, UNCLIP_GENERATE_DEFAULTS } from './unclip';

export type TextPipelineDesign = PipelineDesign;

/** The manifest defaults any design may set (all optional): a cascade's SR-stage and an unclip pipeline's prior settings included. */
export type TextPipelineDefaults = CascadeSamplingDefaults & UnclipSamplingDefaults;

export interface TextPipelineGenerateOptions {
  /** One prompt per image (length n), or one prompt for all n. */
  readonly prompts: readonly string[];
  readonly n: number;
  /**
   * Default: the manifest's, then the design's. (A cascade: the base stage's; its SR stage takes the manifest's
   * srSampler / srSteps / srGuidance, else these. An unclip pipeline: the decoder's; its prior takes the manifest's
   * priorSampler / priorSteps / priorGuidance, else UNCLIP_GENERATE_DEFAULTS'; its optional SR stage the manifest's
   * srSampler / srSteps / srGuidance / augLevel, else the decoder's settings and the cascade's level.)
   */
  readonly sampler?: SamplerName;
  readonly steps?: number;
  readonly guidance?: number;
  readonly seed: number;
  /** Image i uses the noise of index firstIndex + i (default 0). */
  readonly firstIndex?: number;
  /** Images per denoiser batch (default the design's). */
  readonly batchSize?: number;
  /**
   * x0 clipping; default the design's: static in pixel space, none in latent space, dynamic in a cascade (both stages),
   * static in an unclip decoder and dynamic in its SR stage (given: both).
   */
  readonly clip?: ClipMode;
  readonly onWarn?: (message: string) => void;
}

export interface TextPipeline {
  readonly design: TextPipelineDesign;
  /** The dataset the pipeline was trained on. */
  readonly dataset: string;
  /** Side and channels of the images `generate` returns. */
  readonly imageSize: number;
  readonly imageChannels: number;
  /** The manifest's sampling defaults (a cascade's include its SR-stage settings, an unclip pipeline's its prior's). */
  readonly defaults: TextPipelineDefaults;
  /** The pipeline folder. */
  readonly source: string;
  /** Training step of the UNet that makes the final images (a cascade: its SR stage; unclip: its SR stage, else its decoder), or null when not recorded. */
  readonly trainingStep: number | null;
  /** Images [n, imageSize, imageSize, imageChannels] in [-1, 1] (the caller disposes them). */
  generate(options: TextPipelineGenerateOptions): Promise<tf.Tensor4D>;
  /** One line: design, stages, sizes, steps. */
  describe(): string;
  dispose(): void;
}

// ---------------------------------------------------------------- adapters

/** A loaded pixel / latent text-to-image pipeline behind the common interface (disposing it disposes `p`). */
export function textToImageAsTextPipeline(p: TextToImagePipeline, trainingStep: number | null): TextPipeline {
  const u = p.unet.config;
  return {
    design: p.space,
    dataset: p.config.dataset,
    imageSize: p.config.imageSize,
    imageChannels: p.config.imageChannels,
    defaults: p.defaults,
    source: p.source,
    trainingStep,
    generate: (o) => generateFromText(p, {
      prompts: o.prompts, n: o.n, seed: o.seed,
      sampler: o.sampler ?? p.defaults.sampler ?? TEXT_GENERATE_DEFAULTS.sampler,
      steps: o.steps ?? p.defaults.steps ?? TEXT_GENERATE_DEFAULTS.steps,
      guidance: o.guidance ?? p.defaults.guidance ?? TEXT_GENERATE_DEFAULTS.guidance,
      firstIndex: o.firstIndex ?? TEXT_GENERATE_DEFAULTS.firstIndex,
      batchSize: o.batchSize ?? TEXT_GENERATE_DEFAULTS.batchSize,
      ...(o.clip !== undefined ? { clip: o.clip } : {}),
      onWarn: o.onWarn,
    }),
    describe: () => `${p.space} text-to-image pipeline ${p.source}: UNet ${u.sampleSize}x${u.sampleSize}x${u.inChannels} (step ${trainingStep ?? '?'}), ` +
      `${p.config.dataset} images ${p.config.imageSize}x${p.config.imageSize}x${p.config.imageChannels}`,
    dispose: () => p.dispose(),
  };
}

/** A loaded cascade behind the common interface (disposing it disposes `p`). */
export function cascadeAsTextPipeline(p: CascadePipeline, steps: { base: number | null; sr: number | null }): TextPipeline {
  const d = p.defaults;
  const s = p.base.unet.config.sampleSize;
  const S = p.sr.unet.config.sampleSize;
  const c = p.sr.config;
  return {
    design: 'cascade',
    dataset: c.dataset,
    imageSize: c.imageSize,
    imageChannels: c.imageChannels,
    defaults: d,
    source: p.source,
    trainingStep: steps.sr,
    generate: (o) => generateCascade(p, {
      prompts: o.prompts, n: o.n, seed: o.seed,
      sampler: o.sampler ?? d.sampler ?? CASCADE_GENERATE_DEFAULTS.sampler,
      steps: o.steps ?? d.steps ?? CASCADE_GENERATE_DEFAULTS.steps,
      guidance: o.guidance ?? d.guidance ?? CASCADE_GENERATE_DEFAULTS.guidance,
      ...(d.srSampler !== undefined ? { srSampler: d.srSampler } : {}),
      ...(d.srSteps !== undefined ? { srSteps: d.srSteps } : {}),
      ...(d.srGuidance !== undefined ? { srGuidance: d.srGuidance } : {}),
      ...(d.augLevel !== undefined ? { augLevel: d.augLevel } : {}),
      firstIndex: o.firstIndex ?? CASCADE_GENERATE_DEFAULTS.firstIndex,
      batchSize: o.batchSize ?? CASCADE_GENERATE_DEFAULTS.batchSize,
      ...(o.clip !== undefined ? { clip: o.clip } : {}),
      onWarn: o.onWarn,
    }),
    describe: () => `cascade pipeline ${p.source}: base ${s}x${s} (step ${steps.base ?? '?'}) -> super-resolution ${S}x${S} (step ${steps.sr ?? '?'}, ` +
      `${p.sr.lowRes.resize} x${p.sr.lowRes.factor}, trained augmentation levels 0..${p.sr.lowRes.maxAugLevel}), ${c.dataset} images ${c.imageSize}x${c.imageSize}x${c.imageChannels}`,
    dispose: () => p.dispose(),
  };
}

/** A loaded unclip pipeline behind the common interface (disposing it disposes `p`); images at its SR stage's size when it has one. */
export function unclipAsTextPipeline(p: UnclipPipeline): TextPipeline {
  const d = p.defaults;
  const c = p.decoder.config;
  const u = p.decoder.unet.config;
  const sr = p.sr;
  const final = sr !== null ? sr.config : c;
  const srLine = sr === null ? '' : ` -> super-resolution ${sr.unet.config.sampleSize}x${sr.unet.config.sampleSize} (step ${p.steps.sr ?? '?'}, ` +
    `${sr.lowRes.resize} x${sr.lowRes.factor}, trained augmentation levels 0..${sr.lowRes.maxAugLevel})`;
  return {
    design: 'unclip',
    dataset: final.dataset,
    imageSize: final.imageSize,
    imageChannels: final.imageChannels,
    defaults: d,
    source: p.source,
    trainingStep: sr !== null ? p.steps.sr : p.steps.decoder,
    generate: (o) => generateUnclip(p, {
      prompts: o.prompts, n: o.n, seed: o.seed,
      sampler: o.sampler ?? d.sampler ?? UNCLIP_GENERATE_DEFAULTS.sampler,
      steps: o.steps ?? d.steps ?? UNCLIP_GENERATE_DEFAULTS.steps,
      guidance: o.guidance ?? d.guidance ?? UNCLIP_GENERATE_DEFAULTS.guidance,
      priorSampler: d.priorSampler ?? UNCLIP_GENERATE_DEFAULTS.priorSampler,
      priorSteps: d.priorSteps ?? UNCLIP_GENERATE_DEFAULTS.priorSteps,
      priorGuidance: d.priorGuidance ?? UNCLIP_GENERATE_DEFAULTS.priorGuidance,
      // the manifest's SR-stage settings (only an unclip folder with an 'sr' part may set them)
      ...(d.srSampler !== undefined ? { srSampler: d.srSampler } : {}),
      ...(d.srSteps !== undefined ? { srSteps: d.srSteps } : {}),
      ...(d.srGuidance !== undefined ? { srGuidance: d.srGuidance } : {}),
      ...(d.augLevel !== undefined ? { augLevel: d.augLevel } : {}),
      firstIndex: o.firstIndex ?? UNCLIP_GENERATE_DEFAULTS.firstIndex,
      batchSize: o.batchSize ?? UNCLIP_GENERATE_DEFAULTS.batchSize,
      ...(o.clip !== undefined ? { clip: o.clip, srClip: o.clip } : {}),
      onWarn: o.onWarn,
    }),
    describe: () => `unclip pipeline ${p.source}: CLIP E ${p.prior.config.embedDim} -> prior (step ${p.steps.prior ?? '?'}, width ${p.prior.config.width}, depth ${p.prior.config.depth}) ` +
      `-> decoder ${u.sampleSize}x${u.sampleSize} (step ${p.steps.decoder ?? '?'}, ${c.textEncoder !== null ? 'image embedding + caption' : 'image embedding only'})${srLine}, ` +
      `${final.dataset} images ${final.imageSize}x${final.imageSize}x${final.imageChannels}`,
    dispose: () => p.dispose(),
  };
}

// ---------------------------------------------------------------- loading

/** Loads a text-to-image pipeline folder of any supported design. */
export async function loadTextPipeline(dir: string): Promise<TextPipeline> {
  const m = await readPipelineManifest(dir);
  const where = path.join(dir, PIPELINE_MANIFEST_FILE);
  const stepOf = async (role: string): Promise<number | null> => (await readModelConfig(pipelinePartPath(dir, m, role))).step;
  switch (m.design) {
    case 'pixel':
    case 'latent': {
      if (!Object.prototype.hasOwnProperty.call(m.parts, 'text_encoder')) {
        throw new Error(`${where}: a ${m.design} pipeline without a 'text_encoder' part is not text-to-image (a class-conditional pipeline: use loadPixelPipeline)`);
      }
      const step = await stepOf('unet');
      return textToImageAsTextPipeline(await loadTextToImagePipeline(dir, m), step);
    }
    case 'cascade': {
      const steps = { base: await stepOf(CASCADE_PARTS.base), sr: await stepOf(CASCADE_PARTS.sr) };
      return cascadeAsTextPipeline(await loadCascadePipeline(dir, m), steps);
    }
    case 'unclip':
      return unclipAsTextPipeline(await loadUnclipPipeline(dir, m));
    default:
      throw new Error(`${where}: unknown design '${String(m.design)}'`);
  }
}
