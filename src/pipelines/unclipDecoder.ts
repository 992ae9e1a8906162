/**
 * The unCLIP decoder (DALL-E 2, Ramesh et al. 2022, https://arxiv.org/abs/2204.06125;
 * pipelines/unclip.ts): from CLIP image embeddings z_i [B, E] (unit norm) to pixels.
 *
 *   x      = decoder UNet sample on pixels, conditioned on z_i: projected to
 *            extra cross-attention tokens and added to the time embedding
 *            (models/unet.ts imageEmbeddingDim); CFG against z_i = 0 (the
 *            trainer's condition dropout zeroes the embedding)
 *   image  = x clipped to [-1, 1] (the callers crop it to the data size)
 *
 * The decoder may also read the caption (DALL-E 2: "we also project and
 * prepend ... the text"; here its token states are the cross-attention
 * context, with the image tokens appended). Its null condition is then the
 * empty prompt AND z_i = 0 (the trainer drops both together).
 */
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../models/clip';
import { NULL_PROMPT } from '../models/textEncoder';
import { ByteTokenizer } from '../models/tokenizer';
import { UNet } from '../models/unet';
import { Schedule } from '../schedule/schedule';
import { sample } from '../sample/sample';
import { Cond, SamplerName } from '../sample/types';
import { classifierFreeGuidance } from '../sample/guidance';
import { ClipMode, validateClipMode } from '../sample/thresholding';
import { unetDenoiser } from './unetDenoiser';
import { GenerateHooks, progressCounter } from './progress';
import { UnclipDecoderCheckpointConfig } from './unclipConfig';

// ---------------------------------------------------------------- the decoder

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
export function cropTo(x: tf.Tensor4D, size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const side = x.shape[1];
    if (size === side) return tf.clone(x);
    const off = Math.floor((side - size) / 2);
    return tf.slice(x, [0, off, off, 0], [x.shape[0], size, size, x.shape[3]]);
  });
}
