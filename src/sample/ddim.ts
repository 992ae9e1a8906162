/**
 * DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models").
 *
 * Notation map (paper -> here), for one step from timestep t to the next visited
 * timestep s < t (s = "-1" after the last, where abar = 1):
 *   alpha_t (paper)     -> abar_t = schedule.alphasCumprod[t]
 *   f_theta(x_t)        -> x0, predicted x_0 (eq. 9), clipped per opts.clip
 *   eps_theta(x_t)      -> eps (recomputed from the clipped x0 when clipping,
 *                          as guided-diffusion, so (x0, eps) reproduce x_t)
 *   sigma_t(eta)        -> sigma = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)   (eq. 16)
 *
 *   x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z,  z ~ N(0, I)   (eq. 12)
 *
 * eta = 0 is the deterministic DDIM; eta = 1 over all T steps is DDPM ancestral
 * sampling with the posterior variance ('fixed-small'). The last step lands on
 * abar = 1 and returns x0. z of step t uses noise key `t<t>` (noise.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule } from '../schedule/schedule';
import { modelOutputToX0AndEps, predictEpsFromX0 } from '../schedule/parameterization';
import { clipX0 } from './thresholding';
import { noiseForBatch } from './noise';
import { beforeStep, Denoiser, prepareSampling, SamplerOptions } from './types';

export interface DdimOptions extends SamplerOptions {
  /** Stochasticity in [0, 1]: 0 deterministic DDIM, 1 DDPM-like. Default 0. */
  readonly eta?: number;
}

export const DDIM_DEFAULTS = {
  /** Deterministic: the usual DDIM. */
  eta: 0,
} as const satisfies Partial<DdimOptions>;

/** Samples [B, ...shape[1:]] with DDIM; returns x_0 (a new tensor). */
export async function sampleDdim(denoise: Denoiser, shape: readonly number[], schedule: Schedule, opts: DdimOptions): Promise<tf.Tensor> {
  const eta = opts.eta ?? DDIM_DEFAULTS.eta;
  if (!(eta >= 0 && eta <= 1)) throw new Error(`sampleDdim: eta must be in [0, 1], got ${eta}`);
  const run = prepareSampling('sampleDdim', shape, schedule, opts);
  const { timesteps, batch } = run;
  const S = timesteps.length;
  let x = run.xT;
  try {
    for (let i = 0; i < S; i++) {
      await beforeStep(opts.signal);
      const t = timesteps[i];
      const abarT = schedule.alphasCumprod[t];
      const abarS = i + 1 < S ? schedule.alphasCumprod[timesteps[i + 1]] : 1;
      const sigma = eta * Math.sqrt((1 - abarS) / (1 - abarT)) * Math.sqrt(1 - abarT / abarS);
      // 1 - abar_s - sigma^2 >= 0 for eta <= 1; max() only removes rounding below 0.
      const dirScale = Math.sqrt(Math.max(0, 1 - abarS - sigma * sigma));
      const xPrev = x;
      const [next, x0] = tf.tidy(() => {
        const tt = tf.fill([batch], t, 'int32') as tf.Tensor1D;
        const pred = modelOutputToX0AndEps(opts.predictionType, denoise(xPrev, tt, run.cond), xPrev, tt, schedule);
        const x0c = clipX0(pred.x0, run.clip);
        const eps = run.clip.kind === 'none' ? pred.eps : predictEpsFromX0(xPrev, x0c, tt, schedule);
        let xs = tf.add(tf.mul(x0c, Math.sqrt(abarS)), tf.mul(eps, dirScale));
        if (sigma > 0) xs = tf.add(xs, tf.mul(noiseForBatch(shape, run.seed, run.firstIndex, `t${t}`), sigma));
        return [xs, x0c];
      });
      x = next;
      xPrev.dispose();
      try {
        opts.onStep?.({ step: i, steps: S, t, x, x0 });
      } finally {
        x0.dispose();
      }
    }
    return x;
  } catch (e) {
    x.dispose();
    throw e;
  }
}
