/**
 * The UNet as a sampler's Denoiser. Condition keys understood:
 *   classLabels [B] int32   (class-conditional models; numClasses = null class)
 *   context [B, L, D], contextMask [B, L]   (text-conditional models)
 *   lowRes [B, H, W, C'], augLevels [B]     (super-resolution stages: lowRes is concatenated to x on
 *                                            the channel axis, augLevels is its noise-augmentation level)
 *   imageEmbedding [B, E]                   (unCLIP decoders: the CLIP image embedding; zeros = the null condition)
 * Unknown keys are an error, so a typo does not silently sample unconditionally.
 */
import * as tf from '@tensorflow/tfjs';
import { UNet } from '../models/unet';
import { Cond, Denoiser } from '../sample/types';

const KNOWN_KEYS = ['classLabels', 'context', 'contextMask', 'lowRes', 'augLevels', 'imageEmbedding'];

export interface UNetDenoiserOptions {
  /**
   * The caller validated the class labels it passes in cond (as generate() does), so the
   * UNet need not read them back at every step. Default false: each call checks.
   */
  readonly labelsValidated?: boolean;
}

export function unetDenoiser(unet: UNet, options: UNetDenoiserOptions = {}): Denoiser {
  return (x: tf.Tensor, t: tf.Tensor1D, cond: Cond | null): tf.Tensor => {
    const c = cond ?? {};
    const unknown = Object.keys(c).filter((k) => !KNOWN_KEYS.includes(k));
    if (unknown.length > 0) throw new Error(`unetDenoiser: unknown condition key(s) ${unknown.join(', ')} (known: ${KNOWN_KEYS.join(', ')})`);
    const lowRes = (c.lowRes as tf.Tensor4D | undefined) ?? null;
    return tf.tidy(() => unet.apply({
      x: lowRes === null ? (x as tf.Tensor4D) : (tf.concat([x as tf.Tensor4D, lowRes], 3) as tf.Tensor4D),
      augLevels: (c.augLevels as tf.Tensor1D | undefined) ?? null,
      t,
      classLabels: (c.classLabels as tf.Tensor1D | undefined) ?? null,
      context: (c.context as tf.Tensor3D | undefined) ?? null,
      contextMask: (c.contextMask as tf.Tensor2D | undefined) ?? null,
      imageEmbedding: (c.imageEmbedding as tf.Tensor2D | undefined) ?? null,
      checkLabels: !(options.labelsValidated ?? false),
    }));
  };
}
