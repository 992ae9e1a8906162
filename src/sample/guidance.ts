/**
 * Classifier-free guidance (Ho & Salimans 2022, eq. 6, written as in diffusers):
 *
 *   out = out_uncond + scale (out_cond - out_uncond)
 *
 * applied to the raw model output (eps, v or x0: the combination is linear, so it
 * is the same guidance in every parameterisation). scale = 1 is the conditional
 * model; 0 the unconditional one. Both branches run in ONE batched denoiser call
 * of batch 2B: x and t are repeated, each cond key is [cond; uncond], with uncond
 * broadcast from batch 1 to B when needed. The order is [cond rows, uncond rows].
 */
import * as tf from '@tensorflow/tfjs';
import { Cond, Denoiser } from './types';

/**
 * The one range of guidance scales, [0, MAX_GUIDANCE]: the samplers (here), the manifest
 * reader and the command line refuse anything else. Scales past ~20 already saturate these
 * models; 1e300 used to give all-black images with exit code 0.
 */
export const MAX_GUIDANCE = 50;

/** Throws unless `scale` is a guidance scale in [0, MAX_GUIDANCE]; `what` names it (a flag, a manifest field). */
export function checkGuidance(scale: unknown, what: string): number {
  if (typeof scale !== 'number' || !(scale >= 0 && scale <= MAX_GUIDANCE)) {
    throw new Error(`${what} must be a guidance scale in [0, ${MAX_GUIDANCE}] (1 = no guidance), got ${JSON.stringify(scale)}`);
  }
  return scale;
}

export interface GuidanceOptions {
  /** Guidance scale w in [0, MAX_GUIDANCE]; 1 = no guidance. */
  readonly scale: number;
  /** Unconditional conditioning (e.g. the empty prompt's embeddings): same keys as cond, batch 1 or B. */
  readonly uncond: Cond;
}

/** Wraps a denoiser with classifier-free guidance. */
export function classifierFreeGuidance(denoise: Denoiser, { scale, uncond }: GuidanceOptions): Denoiser {
  checkGuidance(scale, 'classifierFreeGuidance: scale');
  const uncondKeys = Object.keys(uncond).sort();
  return (x: tf.Tensor, t: tf.Tensor1D, cond: Cond | null): tf.Tensor => {
    if (cond === null) throw new Error('classifierFreeGuidance: the guided denoiser needs cond (got null); pass opts.cond to the sampler');
    const condKeys = Object.keys(cond).sort();
    if (condKeys.join('\u0000') !== uncondKeys.join('\u0000')) {
      throw new Error(`classifierFreeGuidance: cond keys [${condKeys.join(', ')}] must equal uncond keys [${uncondKeys.join(', ')}]`);
    }
    const B = x.shape[0];
    if (t.shape[0] !== B) throw new Error(`classifierFreeGuidance: t must be [${B}], got [${t.shape.join(', ')}]`);
    return tf.tidy(() => {
      const both: Record<string, tf.Tensor> = {};
      for (const key of condKeys) {
        const c = cond[key];
        const u = uncond[key];
        const rest = c.shape.slice(1);
        if (c.shape[0] !== B) throw new Error(`classifierFreeGuidance: cond['${key}'] must have batch ${B}, got shape [${c.shape.join(', ')}]`);
        if ((u.shape[0] !== 1 && u.shape[0] !== B) || u.rank !== c.rank || u.shape.slice(1).some((d, i) => d !== rest[i])) {
          throw new Error(`classifierFreeGuidance: uncond['${key}'] must be [1 or ${B}, ${rest.join(', ')}], got [${u.shape.join(', ')}]`);
        }
        const uB = u.shape[0] === B ? u : tf.broadcastTo(u, [B, ...rest]);
        both[key] = tf.concat([c, uB.cast(c.dtype)], 0);
      }
      const out = denoise(tf.concat([x, x], 0), tf.concat([t, t], 0) as tf.Tensor1D, both); // [2B, ...]
      const [outCond, outUncond] = tf.split(out, 2, 0);
      return tf.add(outUncond, tf.mul(tf.sub(outCond, outUncond), scale));
    });
  };
}
