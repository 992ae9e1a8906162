/**
 * The frozen text encoder of a text-to-image pipeline: CLIP's text tower (as
 * Stable Diffusion's text encoder is CLIP's), loaded on its own and frozen, with
 * the tokenizer it was trained with.
 *
 *   prompts --tokenizer--> ids, mask [B, L] --TextEncoder--> states [B, L, D] (UNet cross-attention)
 *                                                            pooled [B, E]    (the DALL-E 2 prior)
 *
 * It is read from a 'text-encoder' checkpoint (just the tower: what a pipeline
 * folder ships) or straight from a 'clip' checkpoint (its `text_encoder.*`
 * tensors). Either way the weights never change afterwards: `freeze()` is
 * applied, and the diffusion trainer caches the states per caption.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { TextEncoder, TextEncoderConfig, textEncoderConfig } from '../models/textEncoder';
import { ByteTokenizer, TokenizerConfig, tokenizerConfig } from '../models/tokenizer';
import { ClipConfig } from '../models/clip';
import { Checkpoint, loadCheckpointWeights } from '../io/checkpoint';
import { CLIP_CHECKPOINT_KIND } from '../models/clip';

export const TEXT_ENCODER_KIND = 'text-encoder';

/** What a 'text-encoder' checkpoint stores as its config. */
export interface TextEncoderCheckpointConfig {
  readonly text: TextEncoderConfig;
  readonly tokenizer: TokenizerConfig;
}

export interface FrozenTextEncoder {
  readonly encoder: TextEncoder;
  readonly tokenizer: ByteTokenizer;
  readonly config: TextEncoderCheckpointConfig;
  /** The file it was read from. */
  readonly source: string;
  dispose(): void;
}

/** A module whose only child is the text tower, named as inside a Clip (so a CLIP file's text_encoder.* tensors load into it). */
class TextTowerHolder extends Module {
  readonly textEncoder: TextEncoder;
  constructor(encoder: TextEncoder) {
    super();
    this.textEncoder = this.addChild('text_encoder', encoder);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Builds a frozen text encoder from `config` (validated) around already-loaded weights. */
function frozen(encoder: TextEncoder, config: TextEncoderCheckpointConfig, source: string): FrozenTextEncoder {
  encoder.freeze();
  const tokenizer = new ByteTokenizer(config.tokenizer);
  encoder.checkTokenizer(tokenizer);
  return { encoder, tokenizer, config, source, dispose: () => encoder.dispose() };
}

/** Checks a stored {text, tokenizer} pair: both valid and matching each other. */
export function textEncoderCheckpointConfig(raw: unknown, source: string): TextEncoderCheckpointConfig {
  if (!isObject(raw) || !isObject(raw.text)) throw new Error(`${source}: config metadata must hold { text, tokenizer } (a text encoder)`);
  const text = textEncoderConfig(raw.text as Partial<TextEncoderConfig>);
  // Checkpoints written before BPE hold no tokenizer: bytes, the tower's length.
  const tokenizer = tokenizerConfig({ maxLength: text.maxLength, ...(isObject(raw.tokenizer) ? (raw.tokenizer as Partial<TokenizerConfig>) : {}) });
  const vocab = 259 + tokenizer.merges.length;
  if (tokenizer.maxLength !== text.maxLength || vocab !== text.vocabSize) {
    throw new Error(`${source}: tokenizer (maxLength ${tokenizer.maxLength}, vocabulary ${vocab}) does not match the text encoder (maxLength ${text.maxLength}, vocabSize ${text.vocabSize})`);
  }
  return { text, tokenizer };
}

/** The frozen text tower from a 'text-encoder' or a 'clip' checkpoint. */
export function textEncoderFromCheckpoint(checkpoint: Checkpoint): FrozenTextEncoder {
  const { info, source: file } = checkpoint;
  let config: TextEncoderCheckpointConfig;
  let holder: Module;
  let encoder: TextEncoder;
  if (info.kind === TEXT_ENCODER_KIND) {
    config = textEncoderCheckpointConfig(info.config, file);
    encoder = new TextEncoder(config.text);
    holder = encoder;
  } else if (info.kind === CLIP_CHECKPOINT_KIND) {
    const clip = (info.config as { clip?: Partial<ClipConfig> } | null)?.clip;
    if (clip === undefined) throw new Error(`${file}: the metadata config has no 'clip' entry`);
    config = textEncoderCheckpointConfig({ text: clip.text, tokenizer: clip.tokenizer }, file);
    encoder = new TextEncoder(config.text);
    holder = new TextTowerHolder(encoder);
  } else {
    throw new Error(`${file}: expected a '${TEXT_ENCODER_KIND}' or '${CLIP_CHECKPOINT_KIND}' checkpoint, got kind '${info.kind}'`);
  }
  try {
    // A CLIP file also holds the image tower and logit scale: only the text tower's names are taken (strict: false),
    // and every one of them must be there (loadStateDict checks the module's own names either way).
    loadCheckpointWeights(checkpoint, holder, { strict: info.kind === TEXT_ENCODER_KIND });
    return frozen(encoder, config, file);
  } catch (e) {
    encoder.dispose();
    throw e;
  }
}

/**
 * Token states and mask of prompts [B, L, D], [B, L] (the caller disposes
 * both). Over-long prompts are truncated and `onWarn` is told.
 */
export function encodePrompts(text: FrozenTextEncoder, prompts: readonly string[], onWarn?: (message: string) => void): { context: tf.Tensor3D; mask: tf.Tensor2D } {
  if (prompts.length === 0) throw new Error('encodePrompts: no prompts given');
  const out = text.encoder.encodeTexts(text.tokenizer, prompts, onWarn);
  out.pooled.dispose();
  return { context: out.states, mask: out.mask };
}
