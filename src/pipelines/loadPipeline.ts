/**
 * One loader and one interface over every pipeline design (runs anywhere):
 *
 *   pixel, latent   a UNet (+ decoder) and a text encoder     pipelines/textToImage.ts
 *   pixel (class)   a label-conditional UNet                  pipelines/pixelDiffusion.ts
 *   cascade         base UNet -> super-resolution UNet        pipelines/cascade.ts
 *   unclip          CLIP text embedding -> prior -> decoder   pipelines/unclip.ts
 *
 * `loadPipeline(source)` reads pipeline.json and the parts it names from a base URL
 * (fetched, with progress over bytes), a map of file name -> bytes (bundlers, tests, a
 * folder a user dropped) or any PipelineFiles; the Node entry also takes a folder path
 * (node/loadPipeline.ts). The design is read from the manifest.
 *
 * `generate` fills the sampler, steps and guidance the caller leaves out from the
 * manifest's defaults, then from the design's own defaults (TEXT_GENERATE_DEFAULTS,
 * CASCADE_GENERATE_DEFAULTS, UNCLIP_GENERATE_DEFAULTS, GENERATE_DEFAULTS); a cascade also
 * takes its SR-stage settings and augmentation level from the manifest, an unclip pipeline
 * its prior's sampler, steps and guidance (sampler / steps / guidance are its decoder's)
 * and, with an optional super-resolution stage, that stage's settings as a cascade does.
 * Every design reports each denoising step (`onStep`) and stops on an AbortSignal.
 */
import * as tf from '@tensorflow/tfjs';
import { FileMap, filesFromMap, filesFromUrl, PipelineFiles, readManifest, UrlFilesOptions } from '../io/pipelineFiles';
import { PipelineDesign, PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { SamplerName } from '../sample/types';
import { ClipMode } from '../sample/thresholding';
import { generateFromText, loadTextToImagePipeline, TextToImagePipeline, TEXT_GENERATE_DEFAULTS } from './textToImage';
import { CascadePipeline, CascadeSamplingDefaults, CASCADE_GENERATE_DEFAULTS, generateCascade, loadCascadePipeline } from './cascade';
import { generateUnclip, loadUnclipPipeline, UnclipPipeline, UNCLIP_GENERATE_DEFAULTS } from './unclip';
import { UnclipSamplingDefaults } from './unclipConfig';
import { generate, GENERATE_DEFAULTS, loadPixelPipelineFiles, PixelPipeline } from './pixelDiffusion';
import { GenerateHooks } from './progress';

export type TextPipelineDesign = PipelineDesign;

/** What conditions the images: prompts, class labels, or nothing. */
export type PipelineConditioning = 'text' | 'class' | 'none';

/** The manifest defaults any design may set (all optional): a cascade's SR-stage and an unclip pipeline's prior settings included. */
export type TextPipelineDefaults = CascadeSamplingDefaults & UnclipSamplingDefaults;

export interface PipelineGenerateOptions extends GenerateHooks {
  /** Text pipelines: one prompt per image (length n), or one prompt for all n. */
  readonly prompts?: readonly string[];
  /** Class pipelines: one label per image (length n), or one label for all n. */
  readonly labels?: readonly number[];
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

/** @deprecated the name of PipelineGenerateOptions before class pipelines shared it. */
export type TextPipelineGenerateOptions = PipelineGenerateOptions & { readonly prompts: readonly string[] };

export interface Pipeline {
  readonly design: PipelineDesign;
  readonly conditioning: PipelineConditioning;
  /** Class pipelines: the label names (index = label); else null. */
  readonly classNames: readonly string[] | null;
  /** The dataset the pipeline was trained on. */
  readonly dataset: string;
  /** Side and channels of the images `generate` returns. */
  readonly imageSize: number;
  readonly imageChannels: number;
  /** The manifest's sampling defaults (a cascade's include its SR-stage settings, an unclip pipeline's its prior's). */
  readonly defaults: TextPipelineDefaults;
  /** Where it was loaded from: the folder, the base URL, or the label of a file map. */
  readonly source: string;
  /** Training step of the UNet that makes the final images (a cascade: its SR stage; unclip: its SR stage, else its decoder), or null when not recorded. */
  readonly trainingStep: number | null;
  /** Images [n, imageSize, imageSize, imageChannels] in [-1, 1] (the caller disposes them). */
  generate(options: PipelineGenerateOptions): Promise<tf.Tensor4D>;
  /** One line: design, stages, sizes, steps. */
  describe(): string;
  dispose(): void;
}

/** @deprecated the name of Pipeline before class pipelines shared it. */
export type TextPipeline = Pipeline;

function promptsOf(o: PipelineGenerateOptions, design: string): readonly string[] {
  if (o.labels !== undefined) throw new Error(`generate: this ${design} pipeline is text-to-image: pass prompts, not labels`);
  if (o.prompts === undefined) throw new Error(`generate: this ${design} pipeline is text-to-image: pass prompts`);
  return o.prompts;
}

// ---------------------------------------------------------------- adapters

/** A loaded pixel / latent text-to-image pipeline behind the common interface (disposing it disposes `p`). */
export function textToImageAsTextPipeline(p: TextToImagePipeline, trainingStep: number | null = p.trainingStep): Pipeline {
  const u = p.unet.config;
  return {
    design: p.space,
    conditioning: 'text',
    classNames: null,
    dataset: p.config.dataset,
    imageSize: p.config.imageSize,
    imageChannels: p.config.imageChannels,
    defaults: p.defaults,
    source: p.source,
    trainingStep,
    generate: async (o) => generateFromText(p, {
      prompts: promptsOf(o, p.space), n: o.n, seed: o.seed, onStep: o.onStep, signal: o.signal,
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
export function cascadeAsTextPipeline(p: CascadePipeline, steps: { base: number | null; sr: number | null } = p.steps): Pipeline {
  const d = p.defaults;
  const s = p.base.unet.config.sampleSize;
  const S = p.sr.unet.config.sampleSize;
  const c = p.sr.config;
  return {
    design: 'cascade',
    conditioning: 'text',
    classNames: null,
    dataset: c.dataset,
    imageSize: c.imageSize,
    imageChannels: c.imageChannels,
    defaults: d,
    source: p.source,
    trainingStep: steps.sr,
    generate: async (o) => generateCascade(p, {
      prompts: promptsOf(o, 'cascade'), n: o.n, seed: o.seed, onStep: o.onStep, signal: o.signal,
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
export function unclipAsTextPipeline(p: UnclipPipeline): Pipeline {
  const d = p.defaults;
  const c = p.decoder.config;
  const u = p.decoder.unet.config;
  const sr = p.sr;
  const final = sr !== null ? sr.config : c;
  const srLine = sr === null ? '' : ` -> super-resolution ${sr.unet.config.sampleSize}x${sr.unet.config.sampleSize} (step ${p.steps.sr ?? '?'}, ` +
    `${sr.lowRes.resize} x${sr.lowRes.factor}, trained augmentation levels 0..${sr.lowRes.maxAugLevel})`;
  return {
    design: 'unclip',
    conditioning: 'text',
    classNames: null,
    dataset: final.dataset,
    imageSize: final.imageSize,
    imageChannels: final.imageChannels,
    defaults: d,
    source: p.source,
    trainingStep: sr !== null ? p.steps.sr : p.steps.decoder,
    generate: async (o) => generateUnclip(p, {
      prompts: promptsOf(o, 'unclip'), n: o.n, seed: o.seed, onStep: o.onStep, signal: o.signal,
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

/** A loaded class-conditional (or unconditional) pixel pipeline behind the common interface (disposing it disposes `p`). */
export function pixelAsPipeline(p: PixelPipeline): Pipeline {
  const c = p.config;
  const u = p.unet.config;
  const d = p.defaults;
  const conditioning: PipelineConditioning = u.numClasses === null ? 'none' : 'class';
  return {
    design: 'pixel',
    conditioning,
    classNames: u.numClasses === null ? null : (c.classNames ?? Array.from({ length: u.numClasses }, (_, i) => String(i))),
    dataset: c.dataset,
    imageSize: c.imageSize,
    imageChannels: u.outChannels,
    defaults: d,
    source: p.source,
    trainingStep: p.trainingStep,
    generate: async (o) => {
      if (o.prompts !== undefined) throw new Error(`generate: this pixel pipeline is ${conditioning === 'class' ? 'class-conditional: pass labels' : 'unconditional: pass no prompts'}, not prompts`);
      return await generate(p, {
        labels: o.labels ?? null, n: o.n, seed: o.seed, onStep: o.onStep, signal: o.signal,
        sampler: o.sampler ?? d.sampler ?? GENERATE_DEFAULTS.sampler,
        steps: o.steps ?? d.steps ?? GENERATE_DEFAULTS.steps,
        guidance: o.guidance ?? d.guidance ?? GENERATE_DEFAULTS.guidance,
        firstIndex: o.firstIndex ?? GENERATE_DEFAULTS.firstIndex,
        batchSize: o.batchSize ?? GENERATE_DEFAULTS.batchSize,
        ...(o.clip !== undefined ? { clip: o.clip } : {}),
      });
    },
    describe: () => `${conditioning === 'class' ? 'class-conditional' : 'unconditional'} pixel pipeline ${p.source}: UNet ${u.sampleSize}x${u.sampleSize}x${u.inChannels} ` +
      `(step ${p.trainingStep ?? '?'}${u.numClasses !== null ? `, ${u.numClasses} classes` : ''}), ${c.dataset} images ${c.imageSize}x${c.imageSize}x${u.outChannels}`,
    dispose: () => p.dispose(),
  };
}

// ---------------------------------------------------------------- loading

/** Where `loadPipeline` reads from: a base URL, a map of file name -> bytes, or any PipelineFiles. */
export type PipelineSource = string | FileMap | PipelineFiles;

export type LoadPipelineOptions = UrlFilesOptions;

function isPipelineFiles(source: FileMap | PipelineFiles): source is PipelineFiles {
  return typeof (source as PipelineFiles).read === 'function' && typeof (source as PipelineFiles).where === 'function';
}

/** The PipelineFiles of a source: a string is a base URL (fetched), a map holds the bytes. */
export function pipelineFiles(source: PipelineSource, options: LoadPipelineOptions = {}): PipelineFiles {
  if (typeof source === 'string') return filesFromUrl(source, options);
  if (isPipelineFiles(source)) return source;
  return filesFromMap(source);
}

/** Loads a pipeline of any design from its files (the manifest read from them unless given). */
export async function loadPipelineFromFiles(files: PipelineFiles, manifest?: PipelineManifest): Promise<Pipeline> {
  const m = manifest ?? (await readManifest(files));
  const where = files.where(PIPELINE_MANIFEST_FILE);
  switch (m.design) {
    case 'pixel':
    case 'latent':
      if (m.design === 'pixel' && !Object.prototype.hasOwnProperty.call(m.parts, 'text_encoder')) return pixelAsPipeline(await loadPixelPipelineFiles(files, m));
      return textToImageAsTextPipeline(await loadTextToImagePipeline(files, m));
    case 'cascade':
      return cascadeAsTextPipeline(await loadCascadePipeline(files, m));
    case 'unclip':
      return unclipAsTextPipeline(await loadUnclipPipeline(files, m));
    default:
      throw new Error(`${where}: unknown design '${String(m.design)}'`);
  }
}

/**
 * Loads a pipeline of any design: `source` is a base URL ('/checkpoints/mnist-latent/'), a map
 * of file name -> bytes (names relative to the pipeline folder; one common leading folder is
 * dropped), or PipelineFiles. `options.onProgress` is told the bytes of each file as they arrive.
 */
export async function loadPipeline(source: PipelineSource, options: LoadPipelineOptions = {}): Promise<Pipeline> {
  return loadPipelineFromFiles(pipelineFiles(source, options));
}
