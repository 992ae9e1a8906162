/**
 * unCLIP, the design of DALL-E 2 (Ramesh et al. 2022, "Hierarchical
 * Text-Conditional Image Generation with CLIP Latents",
 * https://arxiv.org/abs/2204.06125): a frozen CLIP, a diffusion PRIOR from the
 * CLIP text embedding to a CLIP image embedding, and a diffusion DECODER from
 * the image embedding to pixels.
 *
 *   prompt --CLIP text tower--> z_t (unit norm)                                  [B, E]
 *   z_i    = prior sample given z_t (CFG against the prior's learned null text)  [B, E], unit norm
 *   x      = decoder UNet sample on pixels, conditioned on z_i: projected to
 *            extra cross-attention tokens and added to the time embedding
 *            (models/unet.ts imageEmbeddingDim); CFG against z_i = 0 (the
 *            trainer's condition dropout zeroes the embedding)
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
 * It must take the decoder's images (S = s * factor, same channels, same data)
 * and read prompts with the CLIP's own text tower and tokenizer: both are
 * checked when a folder is written and when it is loaded.
 *
 * Image VARIATIONS (DALL-E 2 sec. 3.1) skip the prior: z_i = the CLIP image
 * embedding of a given image, decoded with fresh noise.
 *
 * The decoder may also read the caption (DALL-E 2: "we also project and
 * prepend ... the text"; here its token states are the cross-attention
 * context, with the image tokens appended). Its null condition is then the
 * empty prompt AND z_i = 0 (the trainer drops both together).
 *
 * Seeds: the prior samples with noise seeded `${seed}/prior`, the decoder
 * with `seed` and the SR stage with `${seed}/sr` (as the cascade's), all keyed
 * by image index (firstIndex + i), so a job split into calls by firstIndex
 * gives the same images.
 *
 * Folder: pipeline.json with design 'unclip' and parts clip (kind 'clip': the
 * text tower embeds prompts, the image tower embeds images for variations),
 * prior (kind 'prior'), decoder (kind 'unet') and optionally sr (kind 'unet',
 * a super-resolution stage); defaults may set sampler, steps, guidance,
 * prompts (the decoder and the CLI), priorSampler, priorSteps, priorGuidance
 * and, with an sr part, srSampler, srSteps, srGuidance, augLevel. The prior's
 * and the decoder's checkpoints record the CLIP they were trained on (config,
 * step, seed): a folder pairing them with another CLIP is refused.
 */
import * as tf from '@tensorflow/tfjs';
import { Clip, ClipConfig, clipConfig, clipFromCheckpoint, CLIP_CHECKPOINT_KIND } from '../models/clip';
import { NULL_PROMPT } from '../models/textEncoder';
import { ByteTokenizer } from '../models/tokenizer';
import { DiffusionPrior, PriorConfig, priorConfig, priorFromCheckpoint, PRIOR_CHECKPOINT_KIND, samplePriorEmbeddings } from '../models/prior';
import { UNet, UNetConfig, unetConfig, checkUNetKind, unetFromCheckpoint } from '../models/unet';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { Checkpoint, CheckpointInfo } from '../io/checkpoint';
import { PipelineManifest, PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { PipelineFiles, readManifest, readPart } from '../io/pipelineFiles';
import { checkAugLevel, LowResConfig } from '../sample/lowResConditioning';
import { sample } from '../sample/sample';
import { Cond, SamplerName } from '../sample/types';
import { classifierFreeGuidance } from '../sample/guidance';
import { ClipMode, validateClipMode } from '../sample/thresholding';
import { unetDenoiser } from './unetDenoiser';
import { batchCount, GenerateHooks, progressCounter } from './progress';
import { defaultNumber, defaultSampler, recordedSize } from './pixelDiffusion';
import { FrozenTextEncoder, TextEncoderCheckpointConfig, textEncoderCheckpointConfig } from './textConditioning';
import { stageOf, stageUNetFromCheckpoint, TextUNetCheckpointConfig, textUNetCheckpointConfig } from './textToImage';
import { CASCADE_GENERATE_DEFAULTS, CascadeSamplingDefaults, cascadeSamplingDefaults, superResolveBatch, SuperResolutionStage } from './cascade';

// ---------------------------------------------------------------- configs

export const UNCLIP_PARTS = { clip: 'clip', prior: 'prior', decoder: 'decoder', sr: 'sr' } as const;

/** Which CLIP a prior or decoder was trained on (recorded in its checkpoint config under `clip`). */
export interface ClipProvenance {
  /** The CLIP file the trainer was given (informational: shipped copies live elsewhere). */
  readonly source: string;
  readonly config: ClipConfig;
  /** Training step and seed recorded in the CLIP file (null when absent). */
  readonly step: number | null;
  readonly seed: number | null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The provenance of a CLIP checkpoint (its config, step and seed) from its metadata. */
export function clipProvenanceOf(info: CheckpointInfo, file: string): ClipProvenance {
  if (info.kind !== CLIP_CHECKPOINT_KIND) throw new Error(`${file}: expected a '${CLIP_CHECKPOINT_KIND}' checkpoint, got kind '${info.kind}'`);
  const raw = isObject(info.config) ? info.config.clip : undefined;
  if (!isObject(raw)) throw new Error(`${file}: the metadata config has no 'clip' entry`);
  return { source: file, config: clipConfig(raw as Partial<ClipConfig>), step: info.step, seed: info.seed };
}

/** Reads a recorded provenance (`clip` of a prior / decoder config); null when not recorded. */
export function recordedClipProvenance(raw: unknown, source: string): ClipProvenance | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw) || !isObject(raw.config)) throw new Error(`${source}: 'clip' must be {source, config, step, seed}, got ${JSON.stringify(raw)}`);
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  return {
    source: typeof raw.source === 'string' ? raw.source : 'unknown',
    config: clipConfig(raw.config as Partial<ClipConfig>),
    step: num(raw.step),
    seed: num(raw.seed),
  };
}

/** null when `a` and `b` describe the same CLIP (same config; same step and seed where both recorded), else what differs. */
export function clipDifference(a: ClipProvenance, b: ClipProvenance): string | null {
  const diffs: string[] = [];
  for (const key of ['image', 'text', 'tokenizer'] as const) {
    if (JSON.stringify(a.config[key]) !== JSON.stringify(b.config[key])) diffs.push(`${key} config`);
  }
  if (a.config.seed !== b.config.seed) diffs.push('image tower seed');
  if (a.step !== null && b.step !== null && a.step !== b.step) diffs.push(`training step ${a.step} vs ${b.step}`);
  if (a.seed !== null && b.seed !== null && a.seed !== b.seed) diffs.push(`training seed ${a.seed} vs ${b.seed}`);
  return diffs.length === 0 ? null : diffs.join(', ');
}

/** What an unCLIP decoder checkpoint (kind 'unet') stores as its config. */
export interface UnclipDecoderCheckpointConfig {
  readonly unet: UNetConfig;
  readonly schedule: ScheduleConfig;
  readonly space: 'pixel';
  readonly dataset: string;
  /** Side of the data images before padding (28 for MNIST): samples are cropped back to it. */
  readonly imageSize: number;
  readonly imageChannels: number;
  /** E of the CLIP image embeddings it is conditioned on (= unet.imageEmbeddingDim). */
  readonly imageEmbeddingDim: number;
  /** The CLIP whose image embeddings it was trained on (null: not recorded). */
  readonly clip: ClipProvenance | null;
  /** Decoders that also read the caption: the CLIP text tower's config; null = image embedding only. */
  readonly textEncoder: TextEncoderCheckpointConfig | null;
}

/** Validates an unCLIP decoder's config metadata. */
export function unclipDecoderCheckpointConfig(raw: unknown, source: string): UnclipDecoderCheckpointConfig {
  if (!isObject(raw) || !isObject(raw.unet) || !isObject(raw.schedule)) {
    throw new Error(`${source}: config metadata must hold { unet, schedule, imageEmbeddingDim, ... } (is this an unCLIP decoder checkpoint?)`);
  }
  const unet = unetConfig(raw.unet as Partial<UNetConfig>);
  const e = unet.imageEmbeddingDim;
  if (e === null) throw new Error(`${source}: the UNet is not conditioned on CLIP image embeddings (imageEmbeddingDim is null): not an unCLIP decoder`);
  if (raw.imageEmbeddingDim !== undefined && raw.imageEmbeddingDim !== e) {
    throw new Error(`${source}: imageEmbeddingDim ${JSON.stringify(raw.imageEmbeddingDim)} differs from the UNet's ${e}`);
  }
  if (raw.space !== undefined && raw.space !== 'pixel') throw new Error(`${source}: an unCLIP decoder works in pixel space, got space ${JSON.stringify(raw.space)}`);
  if (unet.augLevelEmbedding || unet.numClasses !== null) throw new Error(`${source}: an unCLIP decoder has no class labels or low-res input`);
  const textEncoder = raw.textEncoder === undefined || raw.textEncoder === null ? null : textEncoderCheckpointConfig(raw.textEncoder, `${source} (textEncoder)`);
  if (textEncoder !== null && unet.contextDim !== textEncoder.text.dim) {
    throw new Error(`${source}: the UNet's contextDim ${unet.contextDim} differs from its text encoder's width ${textEncoder.text.dim}`);
  }
  const clip = recordedClipProvenance(raw.clip, source);
  if (clip !== null && clip.config.image.embedDim !== e) {
    throw new Error(`${source}: the UNet takes ${e}-dim image embeddings, its recorded CLIP makes ${clip.config.image.embedDim}`);
  }
  return {
    unet,
    schedule: scheduleConfig(raw.schedule as Partial<ScheduleConfig>),
    space: 'pixel',
    dataset: typeof raw.dataset === 'string' ? raw.dataset : 'unknown',
    imageSize: recordedSize(raw, 'imageSize', unet.sampleSize, source),
    imageChannels: typeof raw.imageChannels === 'number' ? raw.imageChannels : unet.outChannels,
    imageEmbeddingDim: e,
    clip,
    textEncoder,
  };
}

/** What a prior checkpoint stores (train/priorTraining.ts), with the CLIP recorded by trainUnclipPrior. */
export interface UnclipPriorCheckpointConfig {
  readonly prior: PriorConfig;
  readonly schedule: ScheduleConfig;
  readonly clip: ClipProvenance | null;
}

export function unclipPriorCheckpointConfig(raw: unknown, source: string): UnclipPriorCheckpointConfig {
  if (!isObject(raw) || !isObject(raw.prior) || !isObject(raw.schedule)) throw new Error(`${source}: config metadata must hold { prior, schedule } (is this a prior checkpoint?)`);
  return {
    prior: priorConfig(raw.prior as Partial<PriorConfig>),
    schedule: scheduleConfig(raw.schedule as Partial<ScheduleConfig>),
    clip: recordedClipProvenance(raw.clip, source),
  };
}

/**
 * What an unclip pipeline.json may set under `defaults` (sampler / steps / guidance are the decoder's;
 * srSampler / srSteps / srGuidance / augLevel the optional super-resolution stage's, as a cascade's).
 */
export interface UnclipSamplingDefaults extends CascadeSamplingDefaults {
  readonly priorSampler?: SamplerName;
  readonly priorSteps?: number;
  readonly priorGuidance?: number;
}

/** The defaults that only apply to a super-resolution stage. */
const SR_DEFAULT_KEYS = ['srSampler', 'srSteps', 'srGuidance', 'augLevel'] as const;

/** Validates the unclip-specific defaults (on top of samplingDefaults and the cascade's SR-stage keys). */
export function unclipSamplingDefaults(raw: Record<string, unknown> | undefined, where: string): UnclipSamplingDefaults {
  const out: { -readonly [K in keyof UnclipSamplingDefaults]: UnclipSamplingDefaults[K] } = { ...cascadeSamplingDefaults(raw, where) };
  if (raw === undefined) return out;
  const priorSampler = defaultSampler(raw, 'priorSampler', where);
  if (priorSampler !== undefined) out.priorSampler = priorSampler;
  for (const key of ['priorSteps', 'priorGuidance'] as const) {
    const v = defaultNumber(raw, key, where);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

// ---------------------------------------------------------------- checks

/**
 * Throws unless a CLIP, a prior and a decoder fit together: one embedding width E
 * (CLIP, prior, decoder), the decoder's images are the CLIP's channels, and the
 * prior and decoder were trained on this CLIP (where their checkpoints record it).
 */
export function checkUnclipParts(clip: ClipProvenance, prior: UnclipPriorCheckpointConfig, decoder: UnclipDecoderCheckpointConfig, where: string): void {
  const E = clip.config.image.embedDim;
  if (prior.prior.embedDim !== E) throw new Error(`${where}: the prior works on ${prior.prior.embedDim}-dim embeddings, the CLIP's are ${E}-dim`);
  if (decoder.imageEmbeddingDim !== E) throw new Error(`${where}: the decoder is conditioned on ${decoder.imageEmbeddingDim}-dim image embeddings, the CLIP's are ${E}-dim`);
  if (decoder.imageChannels !== clip.config.image.inChannels) {
    throw new Error(`${where}: the decoder makes ${decoder.imageChannels}-channel images, the CLIP embeds ${clip.config.image.inChannels}-channel ones`);
  }
  if (decoder.imageSize > clip.config.image.imageSize) {
    throw new Error(`${where}: the decoder makes ${decoder.imageSize}x${decoder.imageSize} images, larger than the CLIP's ${clip.config.image.imageSize}`);
  }
  for (const [name, recorded] of [['prior', prior.clip], ['decoder', decoder.clip]] as const) {
    if (recorded === null) continue;
    const d = clipDifference(recorded, clip);
    if (d !== null) throw new Error(`${where}: the ${name} was trained on another CLIP (${recorded.source}) than ${clip.source}: ${d} differ`);
  }
  const text = decoder.textEncoder;
  if (text !== null && (JSON.stringify(text.text) !== JSON.stringify(clip.config.text) || JSON.stringify(text.tokenizer) !== JSON.stringify(clip.config.tokenizer))) {
    throw new Error(`${where}: the decoder reads captions with another text tower than the CLIP's (architecture or tokenizer differ)`);
  }
}

/** What differs between two text towers with their tokenizers, expected vs received (null: the same). */
function textTowerDifference(expected: TextEncoderCheckpointConfig, received: TextEncoderCheckpointConfig): string | null {
  const diffs: string[] = [];
  if (JSON.stringify(expected.text) !== JSON.stringify(received.text)) diffs.push(`text tower ${JSON.stringify(expected.text)} vs ${JSON.stringify(received.text)}`);
  if (JSON.stringify(expected.tokenizer) !== JSON.stringify(received.tokenizer)) {
    const describe = (t: TextEncoderCheckpointConfig['tokenizer']): string => `${t.merges.length} BPE merges, ${t.maxLength} tokens`;
    const [a, b] = [describe(expected.tokenizer), describe(received.tokenizer)];
    diffs.push(`tokenizer ${a} vs ${a === b ? 'as many, other merges' : b}`);
  }
  return diffs.length === 0 ? null : diffs.join('; ');
}

/**
 * Throws unless a super-resolution stage can follow the decoder: its low-res
 * input is the decoder's whole sample (S = s * factor, same channels, the same
 * data at 1 / factor of its size) and it reads prompts with the CLIP's text
 * tower and tokenizer (what conditions it at sampling). Returns its low-res config.
 */
export function checkUnclipSuperResolution(clip: ClipConfig, decoder: UnclipDecoderCheckpointConfig, sr: TextUNetCheckpointConfig, where: string): LowResConfig {
  const stage = stageOf(sr);
  if (stage.kind !== 'super-resolution') {
    throw new Error(`${where}: part 'sr' is a '${stage.kind}' UNet, expected a super-resolution stage (trained with stage { kind: 'super-resolution' })`);
  }
  const f = stage.lowRes.factor;
  const { sampleSize: s, outChannels: c } = decoder.unet;
  const S = sr.unet.sampleSize;
  if (S !== s * f || sr.imageChannels !== c) {
    throw new Error(`${where}: the super-resolution stage takes ${S / f}x${S / f}x${sr.imageChannels} inputs (factor ${f}, it makes ${S}x${S}); ` +
      `the decoder makes ${s}x${s}x${c} images`);
  }
  const low = Math.round(sr.imageSize / f);
  if (low !== decoder.imageSize) {
    throw new Error(`${where}: the super-resolution stage was trained on ${sr.imageSize}x${sr.imageSize} data (in ${S}x${S}), ${low}x${low} at its input; ` +
      `the decoder's are ${decoder.imageSize}x${decoder.imageSize} (in ${s}x${s})`);
  }
  if (sr.dataset !== decoder.dataset) throw new Error(`${where}: the decoder was trained on '${decoder.dataset}', the super-resolution stage on '${sr.dataset}'`);
  const tower = textEncoderCheckpointConfig({ text: clip.text, tokenizer: clip.tokenizer }, `${where} (the CLIP's text tower)`);
  const d = textTowerDifference(tower, sr.textEncoder);
  if (d !== null) {
    throw new Error(`${where}: the super-resolution stage was trained with another text tower than the CLIP's, whose token states condition it at sampling ` +
      `(expected vs received: ${d})`);
  }
  return stage.lowRes;
}

/** Throws when the defaults set SR-stage keys without an SR stage, or an augLevel the stage was not trained with. */
export function checkSrDefaults(defaults: UnclipSamplingDefaults, lowRes: LowResConfig | null, where: string): void {
  if (lowRes === null) {
    const set = SR_DEFAULT_KEYS.filter((k) => defaults[k] !== undefined);
    if (set.length > 0) throw new Error(`${where}: defaults.${set.join(', defaults.')} set, but the pipeline has no super-resolution stage ('${UNCLIP_PARTS.sr}' part)`);
  } else if (defaults.augLevel !== undefined) {
    checkAugLevel(defaults.augLevel, lowRes, `${where}: defaults`);
  }
}

// ---------------------------------------------------------------- loading

/** The decoder: its UNet, schedule and config. */
export interface UnclipDecoder {
  readonly unet: UNet;
  readonly schedule: Schedule;
  readonly config: UnclipDecoderCheckpointConfig;
}

/** The frozen CLIP and its tokenizer. */
export interface ClipWithTokenizer {
  readonly clip: Clip;
  readonly tokenizer: ByteTokenizer;
}

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

// ---------------------------------------------------------------- the decoder

export interface DecodeOptions extends GenerateHooks {
  /** Text decoders: one caption per embedding (length B); image-only decoders: null. */
  readonly prompts: readonly string[] | null;
  readonly sampler: SamplerName;
  readonly steps: number;
  /** Classifier-free guidance against z_i = 0 (and the empty prompt for text decoders); 1 = none. */
  readonly guidance: number;
  readonly seed: number | string;
  /** Row i uses the noise of index firstIndex + i. */
  readonly firstIndex: number;
  /** Clipping of the predicted x0 (not the CLIP model). */
  readonly clip: ClipMode;
  readonly onWarn?: (message: string) => void;
}

/** Token states and mask of prompts from the CLIP's text tower (the caller disposes both). */
function promptStates(text: ClipWithTokenizer, prompts: readonly string[], onWarn?: (message: string) => void): { context: tf.Tensor3D; mask: tf.Tensor2D } {
  const out = text.clip.textEncoder.encodeTexts(text.tokenizer, prompts, onWarn);
  out.pooled.dispose();
  return { context: out.states, mask: out.mask };
}

/**
 * Samples the decoder for image embeddings [B, E] (unit norm): returns images
 * [B, S, S, C] clipped to [-1, 1], not cropped. `text` is needed by decoders
 * that read captions (their token states come from the CLIP's text tower).
 */
export async function decodeImageEmbeddings(decoder: UnclipDecoder, text: ClipWithTokenizer | null, imageEmbeddings: tf.Tensor2D, o: DecodeOptions): Promise<tf.Tensor4D> {
  const { unet, schedule, config } = decoder;
  const E = config.imageEmbeddingDim;
  const { sampleSize: S, outChannels: C } = unet.config;
  if (imageEmbeddings.rank !== 2 || imageEmbeddings.shape[1] !== E || imageEmbeddings.shape[0] < 1) {
    throw new Error(`decodeImageEmbeddings: image embeddings must be [B, ${E}] (the decoder's imageEmbeddingDim), got [${imageEmbeddings.shape}]`);
  }
  const b = imageEmbeddings.shape[0];
  const readsText = config.textEncoder !== null;
  if (readsText) {
    if (text === null) throw new Error('decodeImageEmbeddings: this decoder reads captions: pass the CLIP (its text tower makes the token states)');
    if (o.prompts === null || o.prompts.length !== b) throw new Error(`decodeImageEmbeddings: this decoder reads captions: give ${b} prompts (one per embedding), got ${o.prompts === null ? 'none' : o.prompts.length}`);
  } else if (o.prompts !== null) {
    throw new Error('decodeImageEmbeddings: this decoder is conditioned on the image embedding only; pass prompts: null');
  }
  if (!(Number.isFinite(o.guidance) && o.guidance >= 0)) throw new Error(`decodeImageEmbeddings: guidance must be a finite number >= 0, got ${o.guidance}`);
  validateClipMode(o.clip);
  const owned: tf.Tensor[] = [];
  try {
    let cond: Cond = { imageEmbedding: imageEmbeddings };
    let uncond: Cond = {};
    if (o.guidance !== 1) {
      const zeros = tf.zeros([1, E]);
      owned.push(zeros);
      uncond = { imageEmbedding: zeros };
    }
    if (readsText) {
      const states = promptStates(text as ClipWithTokenizer, o.prompts as readonly string[], o.onWarn);
      owned.push(states.context, states.mask);
      cond = { ...cond, context: states.context, contextMask: states.mask };
      if (o.guidance !== 1) {
        const empty = promptStates(text as ClipWithTokenizer, [NULL_PROMPT]);
        owned.push(empty.context, empty.mask);
        uncond = { ...uncond, context: empty.context, contextMask: empty.mask };
      }
    }
    const base = unetDenoiser(unet, { labelsValidated: true });
    const denoise = o.guidance !== 1 ? classifierFreeGuidance(base, { scale: o.guidance, uncond }) : base;
    const x = await sample(o.sampler, denoise, [b, S, S, C], schedule, {
      steps: o.steps, predictionType: unet.config.predictionType, seed: o.seed, firstIndex: o.firstIndex, cond, clip: o.clip,
      ...progressCounter(o, o.steps).sampler('decoder', true),
    });
    const out = tf.clipByValue(x, -1, 1) as tf.Tensor4D;
    x.dispose();
    return out;
  } finally {
    tf.dispose(owned);
  }
}

/** Centre crop [B, S, S, C] -> [B, size, size, C] (a new tensor). */
function cropTo(x: tf.Tensor4D, size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const side = x.shape[1];
    if (size === side) return tf.clone(x);
    const off = Math.floor((side - size) / 2);
    return tf.slice(x, [0, off, off, 0], [x.shape[0], size, size, x.shape[3]]);
  });
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

function checkCount(where: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${where}: ${name} must be a positive integer, got ${v}`);
}

/** n prompts from one or n (validated). */
function expandPrompts(where: string, prompts: readonly string[], n: number): string[] {
  if (!Array.isArray(prompts) || (prompts.length !== 1 && prompts.length !== n)) {
    throw new Error(`${where}: give one prompt or n = ${n} prompts, got ${Array.isArray(prompts) ? prompts.length : typeof prompts}`);
  }
  prompts.forEach((q, i) => {
    if (typeof q !== 'string') throw new Error(`${where}: prompt ${i} is a ${typeof q}, expected a string`);
  });
  return Array.from({ length: n }, (_, i) => prompts[prompts.length === 1 ? 0 : i]);
}

/** Warns once per message. */
function onceWarner(onWarn?: (message: string) => void): (message: string) => void {
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

// ---------------------------------------------------------------- variations

export interface VariationOptions {
  /** Variations per image. */
  readonly n: number;
  /** Text decoders only: one caption per image, or one for all (required for them). */
  readonly prompts?: readonly string[];
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly guidance: number;
  readonly seed: number;
  /** Output row k (image floor(k / n)) uses the noise of index firstIndex + k. */
  readonly firstIndex: number;
  readonly batchSize: number;
  readonly clip: ClipMode;
  readonly cropToImageSize: boolean;
  readonly onWarn?: (message: string) => void;
}

export const VARIATION_DEFAULTS: Omit<VariationOptions, 'n'> = {
  sampler: UNCLIP_GENERATE_DEFAULTS.sampler,
  steps: UNCLIP_GENERATE_DEFAULTS.steps,
  guidance: UNCLIP_GENERATE_DEFAULTS.guidance,
  seed: 0,
  firstIndex: 0,
  batchSize: 64,
  clip: UNCLIP_GENERATE_DEFAULTS.clip,
  cropToImageSize: true,
};

/** Images [B, h, w, C] centre-padded with -1 (black) to the CLIP's side, as its training data was. A new tensor. */
export function padToClip(clip: Clip, images: tf.Tensor4D): tf.Tensor4D {
  const { imageSize: s, inChannels } = clip.config.image;
  const [, h, w, c] = images.shape;
  if (images.rank !== 4 || c !== inChannels || h > s || w > s) {
    throw new Error(`padToClip: images must be [B, h, w, ${inChannels}] with h, w <= the CLIP's imageSize ${s}, got [${images.shape}]`);
  }
  return tf.tidy(() => {
    const top = Math.floor((s - h) / 2);
    const left = Math.floor((s - w) / 2);
    return h === s && w === s ? tf.clone(images) : tf.pad(images, [[0, 0], [top, s - h - top], [left, s - w - left], [0, 0]], -1);
  });
}

/**
 * DALL-E 2 image variations: each image's CLIP image embedding, decoded n
 * times with fresh noise. images [B, h, w, C] in [-1, 1] (h, w up to the
 * CLIP's imageSize; centre-padded). Returns [B n, H, W, C] in [-1, 1], image
 * i's variations at rows [i n, (i + 1) n).
 *
 * At the DECODER's size even when the pipeline has a super-resolution stage:
 * that stage is text-conditional and variations of an image-only decoder have
 * no prompt. To upsample them, run superResolveBatch
 * (pipelines/cascade.ts) on the uncropped variations with clipTextTower(p).
 */
export async function imageVariations(
  p: UnclipPipeline,
  images: tf.Tensor4D,
  options: Partial<VariationOptions> & Pick<VariationOptions, 'n'>,
): Promise<tf.Tensor4D> {
  const o: VariationOptions = { ...VARIATION_DEFAULTS, ...options };
  checkCount('imageVariations', 'n', o.n);
  checkCount('imageVariations', 'batchSize', o.batchSize);
  validateClipMode(o.clip);
  if (images.rank !== 4 || images.shape[0] < 1) throw new Error(`imageVariations: images must be [B, h, w, C], got [${images.shape}]`);
  const B = images.shape[0];
  const readsText = p.decoder.config.textEncoder !== null;
  let rowPrompts: string[] | null = null;
  if (readsText) {
    if (o.prompts === undefined) throw new Error('imageVariations: this decoder also reads captions: give prompts (one per image, or one for all)');
    rowPrompts = expandPrompts('imageVariations', o.prompts, B);
  } else if (o.prompts !== undefined) {
    throw new Error('imageVariations: this decoder is conditioned on the image embedding only; do not pass prompts');
  }
  const onWarn = onceWarner(o.onWarn);
  const embeddings = tf.tidy(() => {
    const padded = padToClip(p.clip, images);
    return p.clip.embedImages(padded); // [B, E] unit norm
  });
  const total = B * o.n;
  const chunks: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < total; start += o.batchSize) {
      const b = Math.min(o.batchSize, total - start);
      const owner = Int32Array.from({ length: b }, (_, j) => Math.floor((start + j) / o.n));
      const emb = tf.gather(embeddings, owner) as tf.Tensor2D;
      try {
        chunks.push(await decodeImageEmbeddings(p.decoder, p, emb, {
          prompts: rowPrompts === null ? null : Array.from(owner, (i) => (rowPrompts as string[])[i]),
          sampler: o.sampler, steps: o.steps, guidance: o.guidance, seed: o.seed, firstIndex: o.firstIndex + start, clip: o.clip, onWarn,
        }));
      } finally {
        emb.dispose();
      }
    }
    return tf.tidy(() => {
      const all = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 0) as tf.Tensor4D);
      return o.cropToImageSize ? cropTo(all, p.decoder.config.imageSize) : tf.clone(all);
    });
  } finally {
    tf.dispose([embeddings, ...chunks]);
  }
}
