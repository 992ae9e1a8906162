/**
 * CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural
 * Language Supervision", https://arxiv.org/abs/2103.00020), scaled down for
 * MNIST / CIFAR-sized images.
 *
 * Two towers map an image and a caption to unit vectors in one space R^E:
 *
 *   image:  conv_in -> [GroupNorm, SiLU, 3x3 conv stride 2, + residual(GN, SiLU, 3x3 conv)] per stage
 *           -> GroupNorm, SiLU -> global average pool -> Linear = image_projection     [B, E]
 *   text:   TextEncoder (models/textEncoder.ts): the EOS token's state, projected    [B, E]
 *
 * Loss (the paper's Fig. 3 pseudocode), with I, T the L2-normalised embeddings
 * and s = exp(logit_scale), logit_scale learnable, initialised to log(1/0.07)
 * and clamped at log(100):
 *
 *   logits = s * I T^T                                  [B, B]
 *   loss   = ( CE_rows(logits, Y) + CE_rows(logits^T, Y^T) ) / 2
 *
 * Y is the target matrix. CLIP uses Y = identity, which is wrong when a batch
 * holds the same caption text twice (MNIST: "the digit seven" for many images):
 * identical captions have identical text embeddings, so the identity target
 * asks for the impossible and penalises the right answer. We use MULTI-POSITIVE
 * targets: Y[i, j] = 1 when caption i and caption j are the same string, each
 * row normalised to sum 1 (cross-entropy against a distribution). Y is
 * symmetric, and with no duplicates it is the identity (plain CLIP).
 * Captions that differ in text but mean the same ("a 7", "the digit seven")
 * stay negatives, as in CLIP.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Conv2d } from '../nn/conv2d';
import { GroupNorm } from '../nn/groupNorm';
import { Linear } from '../nn/linear';
import { silu } from '../nn/activations';
import { Rng } from '../backend/random';
import { ModuleList } from './unetBlocks';
import { TextEncoder, TextEncoderConfig, textEncoderConfig } from './textEncoder';
import { BYTE_VOCAB_SIZE, ByteTokenizer, TokenizerConfig, tokenizerConfig } from './tokenizer';
import { Checkpoint, loadCheckpointWeights } from '../io/checkpoint';

// ---------------------------------------------------------------- config

export interface ImageEncoderConfig {
  /** Image channels: 1 (MNIST) or 3 (RGB). */
  readonly inChannels: number;
  /** Expected input side (images are square, NHWC, in [-1, 1]); the net itself is fully convolutional. */
  readonly imageSize: number;
  /** Width of conv_in and of each stage; each stage halves the resolution (32 -> 16 -> 8 -> 4). */
  readonly channels: readonly number[];
  /** GroupNorm groups (every width must be divisible by it). */
  readonly groups: number;
  /** E: width of the projected embedding. */
  readonly embedDim: number;
}

export const IMAGE_ENCODER_DEFAULTS: ImageEncoderConfig = {
  inChannels: 1,
  imageSize: 32,
  channels: [32, 64, 128],
  groups: 8,
  embedDim: 128,
};

export interface ClipConfig {
  readonly image: ImageEncoderConfig;
  /** text.embedDim must equal image.embedDim. */
  readonly text: TextEncoderConfig;
  /** The text tower's tokenizer: maxLength = text.maxLength, 259 + merges.length = text.vocabSize. */
  readonly tokenizer: TokenizerConfig;
  /** Initial logit_scale = log(1 / temperature); CLIP: log(1/0.07) = 2.659. */
  readonly logitScaleInit: number;
  /** logit_scale is clamped at this value; CLIP: log(100) = 4.605. */
  readonly logitScaleMax: number;
  /** Seed of the image tower's initial weights (the text tower has its own, in text.seed). */
  readonly seed: number;
}

export const CLIP_DEFAULTS: ClipConfig = {
  image: IMAGE_ENCODER_DEFAULTS,
  text: textEncoderConfig(),
  tokenizer: tokenizerConfig(),
  logitScaleInit: Math.log(1 / 0.07),
  logitScaleMax: Math.log(100),
  seed: 0,
};

/** Partial of a ClipConfig, nested: { image: { inChannels: 3 }, text: { layers: 2 } }. */
export interface ClipConfigPartial {
  readonly image?: Partial<ImageEncoderConfig>;
  readonly text?: Partial<TextEncoderConfig>;
  /** Default: bytes only, text.maxLength long; text.vocabSize follows the merges unless given. */
  readonly tokenizer?: Partial<TokenizerConfig>;
  readonly logitScaleInit?: number;
  readonly logitScaleMax?: number;
  readonly seed?: number;
}

export function imageEncoderConfig(partial: Partial<ImageEncoderConfig> = {}): ImageEncoderConfig {
  const cfg = { ...IMAGE_ENCODER_DEFAULTS, ...partial, channels: [...(partial.channels ?? IMAGE_ENCODER_DEFAULTS.channels)] };
  if (cfg.inChannels !== 1 && cfg.inChannels !== 3) throw new Error(`imageEncoderConfig: inChannels must be 1 or 3, got ${cfg.inChannels}`);
  for (const key of ['imageSize', 'groups', 'embedDim'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0) throw new Error(`imageEncoderConfig: ${key} must be a positive integer, got ${cfg[key]}`);
  }
  if (cfg.channels.length < 1) throw new Error('imageEncoderConfig: channels must list at least one width');
  for (const c of cfg.channels) {
    if (!Number.isInteger(c) || c <= 0 || c % cfg.groups !== 0) {
      throw new Error(`imageEncoderConfig: every width must be a positive multiple of groups (${cfg.groups}), got channels [${cfg.channels}]`);
    }
  }
  return cfg;
}

export function clipConfig(partial: ClipConfigPartial = {}): ClipConfig {
  const merges = partial.tokenizer?.merges ?? [];
  const text = textEncoderConfig({ vocabSize: BYTE_VOCAB_SIZE + merges.length, ...(partial.text ?? {}) });
  const tokenizer = tokenizerConfig({ maxLength: text.maxLength, ...(partial.tokenizer ?? {}) });
  const cfg: ClipConfig = {
    image: imageEncoderConfig(partial.image ?? {}),
    text,
    tokenizer,
    logitScaleInit: partial.logitScaleInit ?? CLIP_DEFAULTS.logitScaleInit,
    logitScaleMax: partial.logitScaleMax ?? CLIP_DEFAULTS.logitScaleMax,
    seed: partial.seed ?? CLIP_DEFAULTS.seed,
  };
  if (cfg.text.embedDim !== cfg.image.embedDim) {
    throw new Error(`clipConfig: the towers must share the embedding width: image.embedDim ${cfg.image.embedDim}, text.embedDim ${cfg.text.embedDim}`);
  }
  if (tokenizer.maxLength !== text.maxLength || BYTE_VOCAB_SIZE + tokenizer.merges.length !== text.vocabSize) {
    throw new Error(
      `clipConfig: the tokenizer (maxLength ${tokenizer.maxLength}, vocabulary ${BYTE_VOCAB_SIZE + tokenizer.merges.length}) must match the text tower ` +
        `(maxLength ${text.maxLength}, vocabSize ${text.vocabSize})`,
    );
  }
  if (!Number.isFinite(cfg.logitScaleInit) || !Number.isFinite(cfg.logitScaleMax) || cfg.logitScaleInit > cfg.logitScaleMax) {
    throw new Error(`clipConfig: need finite logitScaleInit <= logitScaleMax, got ${cfg.logitScaleInit} and ${cfg.logitScaleMax}`);
  }
  if (!Number.isInteger(cfg.seed)) throw new Error(`clipConfig: seed must be an integer, got ${cfg.seed}`);
  return cfg;
}

// ---------------------------------------------------------------- image tower

/** One stage: children norm1, down (3x3 stride 2, TF 'same' padding: the fast path of nn/conv2d), norm2, conv (3x3). */
class DownStage extends Module {
  readonly norm1: GroupNorm;
  readonly down: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv: Conv2d;

  constructor(cin: number, cout: number, groups: number, rng: Rng) {
    super();
    this.norm1 = this.addChild('norm1', new GroupNorm({ numGroups: groups, numChannels: cin }));
    this.down = this.addChild('down', new Conv2d({ inChannels: cin, outChannels: cout, kernelSize: 3, stride: 2, padding: 'same', rng }));
    this.norm2 = this.addChild('norm2', new GroupNorm({ numGroups: groups, numChannels: cout }));
    this.conv = this.addChild('conv', new Conv2d({ inChannels: cout, outChannels: cout, kernelSize: 3, rng }));
  }

  /** [B, H, W, cin] -> [B, ceil(H/2), ceil(W/2), cout]. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.down.apply(silu(this.norm1.apply(x) as tf.Tensor4D));
      return tf.add(h, this.conv.apply(silu(this.norm2.apply(h) as tf.Tensor4D))) as tf.Tensor4D;
    });
  }
}

/** The image tower: children conv_in, stages.i, norm_out, image_projection. */
export class ImageEncoder extends Module {
  readonly config: ImageEncoderConfig;
  private readonly convIn: Conv2d;
  private readonly stages: DownStage[] = [];
  private readonly normOut: GroupNorm;
  private readonly projection: Linear;

  constructor(config: ImageEncoderConfig, rng: Rng) {
    super();
    this.config = config;
    const { channels, groups } = config;
    this.convIn = this.addChild('conv_in', new Conv2d({ inChannels: config.inChannels, outChannels: channels[0], kernelSize: 3, rng }));
    const list = this.addChild('stages', new ModuleList());
    for (let i = 0; i < channels.length; i++) {
      this.stages.push(list.push(new DownStage(channels[Math.max(0, i - 1)], channels[i], groups, rng)));
    }
    const last = channels[channels.length - 1];
    this.normOut = this.addChild('norm_out', new GroupNorm({ numGroups: groups, numChannels: last }));
    this.projection = this.addChild('image_projection', new Linear({ inFeatures: last, outFeatures: config.embedDim, bias: false, rng }));
  }

  /** Images [B, S, S, inChannels] in [-1, 1] -> unnormalised embeddings [B, E]. */
  apply(x: tf.Tensor4D): tf.Tensor2D {
    const { inChannels, imageSize } = this.config;
    if (x.rank !== 4 || x.shape[1] !== imageSize || x.shape[2] !== imageSize || x.shape[3] !== inChannels) {
      throw new Error(`ImageEncoder.apply: images must be [B, ${imageSize}, ${imageSize}, ${inChannels}] (NHWC), got [${x.shape}]`);
    }
    return tf.tidy(() => {
      let h = this.convIn.apply(x);
      for (const stage of this.stages) h = stage.apply(h);
      h = silu(this.normOut.apply(h) as tf.Tensor4D);
      const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D; // [B, C]
      return this.projection.apply(pooled) as tf.Tensor2D;
    });
  }
}

// ---------------------------------------------------------------- the pair

/** x / |x| per row (eps keeps a zero row finite). [B, E] -> [B, E]. */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12))) as tf.Tensor2D);
}

export class Clip extends Module {
  readonly config: ClipConfig;
  readonly imageEncoder: ImageEncoder;
  readonly textEncoder: TextEncoder;
  /** Scalar log(1 / temperature). */
  readonly logitScale: tf.Variable;

  constructor(config: ClipConfigPartial | ClipConfig = {}) {
    super();
    const cfg = clipConfig(config);
    this.config = cfg;
    this.imageEncoder = this.addChild('image_encoder', new ImageEncoder(cfg.image, new Rng(`clip-image/${cfg.seed}`)));
    this.textEncoder = this.addChild('text_encoder', new TextEncoder(cfg.text));
    this.logitScale = this.addParameter('logit_scale', tf.scalar(cfg.logitScaleInit), 'plain');
  }

  /** The text tower's tokenizer (its sequence length and BPE merges). */
  tokenizer(): ByteTokenizer {
    return new ByteTokenizer(this.config.tokenizer);
  }

  /** Unit-norm image embeddings [B, E] of images [B, S, S, C] in [-1, 1]. */
  embedImages(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => l2Normalize(this.imageEncoder.apply(x)));
  }

  /** Unit-norm text embeddings [B, E] of token ids / mask [B, L]. */
  embedTokens(ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => l2Normalize(this.textEncoder.apply(ids, mask).pooled));
  }

  /** Unit-norm text embeddings [B, E] of prompts. */
  embedTexts(tokenizer: ByteTokenizer, texts: readonly string[], onWarn?: (message: string) => void): tf.Tensor2D {
    return tf.tidy(() => l2Normalize(this.textEncoder.encodeTexts(tokenizer, texts, onWarn).pooled));
  }

  /** exp(min(logit_scale, logitScaleMax)) as a scalar tensor (no gradient above the clamp). */
  scale(): tf.Scalar {
    return tf.tidy(() => tf.exp(tf.minimum(this.logitScale, this.config.logitScaleMax)) as tf.Scalar);
  }

  /** The contrastive loss of a batch of images and their captions (see the file header). */
  loss(images: tf.Tensor4D, ids: tf.Tensor2D, mask: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => clipLoss(this.embedImages(images), this.embedTokens(ids, mask), this.scale(), targets));
  }
}

// ---------------------------------------------------------------- the loss

/**
 * Multi-positive targets [B*B], row-major: Y[i, j] = 1 / #{k : caption_k = caption_i}
 * when caption_j = caption_i, else 0. The identity when all captions differ.
 */
export function duplicateCaptionTargets(captions: readonly string[]): Float32Array {
  const b = captions.length;
  const y = new Float32Array(b * b);
  const groups = new Map<string, number[]>();
  captions.forEach((c, i) => {
    const g = groups.get(c);
    if (g === undefined) groups.set(c, [i]);
    else g.push(i);
  });
  for (const members of groups.values()) {
    const w = 1 / members.length;
    for (const i of members) for (const j of members) y[i * b + j] = w;
  }
  return y;
}

/**
 * Symmetric InfoNCE: imageEmb, textEmb [B, E] unit-norm, scale = exp(logit_scale),
 * targets [B, B] with rows summing to 1 and Y = Y^T (duplicateCaptionTargets).
 *   loss = -( sum(Y * logSoftmax_rows(s I T^T)) + sum(Y^T * logSoftmax_rows(s T I^T)) ) / (2B)
 */
export function clipLoss(imageEmb: tf.Tensor2D, textEmb: tf.Tensor2D, scale: tf.Scalar, targets: tf.Tensor2D): tf.Scalar {
  const [b, e] = imageEmb.shape;
  if (textEmb.rank !== 2 || textEmb.shape[0] !== b || textEmb.shape[1] !== e) {
    throw new Error(`clipLoss: text embeddings must be [${b}, ${e}] like the image embeddings, got [${textEmb.shape}]`);
  }
  if (targets.rank !== 2 || targets.shape[0] !== b || targets.shape[1] !== b) {
    throw new Error(`clipLoss: targets must be [${b}, ${b}], got [${targets.shape}]`);
  }
  return tf.tidy(() => {
    const logits = tf.mul(tf.matMul(imageEmb, tf.transpose(textEmb)), scale) as tf.Tensor2D; // [B, B] image i vs text j
    const imageToText = tf.sum(tf.mul(targets, tf.logSoftmax(logits)));
    const textToImage = tf.sum(tf.mul(tf.transpose(targets), tf.logSoftmax(tf.transpose(logits))));
    return tf.div(tf.add(imageToText, textToImage), -2 * b) as tf.Scalar;
  });
}

// ---------------------------------------------------------------- checkpoint

/** `kind` of CLIP weight files. */
export const CLIP_CHECKPOINT_KIND = 'clip';

/** Rebuilds a CLIP from its checkpoint (config from the metadata's `clip` entry). The caller disposes it. */
export function clipFromCheckpoint(checkpoint: Checkpoint): Clip {
  const { info, source } = checkpoint;
  if (info.kind !== CLIP_CHECKPOINT_KIND) throw new Error(`${source}: expected a '${CLIP_CHECKPOINT_KIND}' checkpoint, got kind '${info.kind}'`);
  const config = (info.config as { clip?: ClipConfig } | null)?.clip;
  if (config === undefined) throw new Error(`${source}: the metadata config has no 'clip' entry`);
  const clip = new Clip(config);
  try {
    loadCheckpointWeights(checkpoint, clip, { expectKind: CLIP_CHECKPOINT_KIND });
  } catch (e) {
    clip.dispose();
    throw e;
  }
  return clip;
}
