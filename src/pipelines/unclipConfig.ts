/**
 * The configs of an unCLIP pipeline (pipelines/unclip.ts; DALL-E 2, Ramesh et
 * al. 2022, https://arxiv.org/abs/2204.06125) and the checks that its parts
 * fit together.
 *
 * Folder: pipeline.json with design 'unclip' and parts clip (kind 'clip': the
 * text tower embeds prompts, the image tower embeds images for variations),
 * prior (kind 'prior'), decoder (kind 'unet') and optionally sr (kind 'unet',
 * a super-resolution stage); defaults may set sampler, steps, guidance,
 * prompts (the decoder and the CLI), priorSampler, priorSteps, priorGuidance
 * and, with an sr part, srSampler, srSteps, srGuidance, augLevel. The prior's
 * and the decoder's checkpoints record the CLIP they were trained on (config,
 * step, seed): a folder pairing them with another CLIP is refused.
 *
 * A super-resolution stage must take the decoder's images (S = s * factor,
 * same channels, same data) and read prompts with the CLIP's own text tower
 * and tokenizer: both are checked when a folder is written and when it is
 * loaded.
 */
import { ClipConfig, clipConfig, CLIP_CHECKPOINT_KIND } from '../models/clip';
import { PriorConfig, priorConfig } from '../models/prior';
import { UNetConfig, unetConfig } from '../models/unet';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { CheckpointInfo } from '../io/checkpoint';
import { checkAugLevel, LowResConfig } from '../sample/lowResConditioning';
import { SamplerName } from '../sample/types';
import { defaultNumber, defaultSampler, recordedSize } from './pixelDiffusion';
import { TextEncoderCheckpointConfig, textEncoderCheckpointConfig } from './textConditioning';
import { stageOf, TextUNetCheckpointConfig } from './textToImage';
import { CascadeSamplingDefaults, cascadeSamplingDefaults } from './cascade';

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
export const SR_DEFAULT_KEYS = ['srSampler', 'srSteps', 'srGuidance', 'augLevel'] as const;

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
