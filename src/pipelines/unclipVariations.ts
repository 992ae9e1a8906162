/**
 * Image VARIATIONS of an unCLIP pipeline (DALL-E 2 sec. 3.1, Ramesh et al.
 * 2022, https://arxiv.org/abs/2204.06125; pipelines/unclip.ts) skip the prior:
 * z_i = the CLIP image embedding of a given image, decoded with fresh noise
 * (pipelines/unclipDecoder.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../models/clip';
import { SamplerName } from '../sample/types';
import { ClipMode, validateClipMode } from '../sample/thresholding';
import { cropTo, decodeImageEmbeddings } from './unclipDecoder';
import { checkCount, expandPrompts, onceWarner, UNCLIP_GENERATE_DEFAULTS, UnclipPipeline } from './unclip';

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
