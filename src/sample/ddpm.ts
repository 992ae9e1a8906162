/**
 * DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), written through the
 * predicted x0 and the posterior q(x_s | x_t, x0) as guided-diffusion's p_sample,
 * so it works for every predictionType and for a subset of timesteps
 * (respacing, Nichol & Dhariwal 2021 sec. 4: the subset defines its own betas).
 *
 * One step from timestep t to the next visited s < t (abar_s = 1 after the last):
 *   beta      = 1 - abar_t / abar_s          (= beta_t when all T steps are visited)
 *   mean      = coef1 x0 + coef2 x_t,  coef1 = sqrt(abar_s) beta / (1 - abar_t),
 *                                      coef2 = sqrt(1 - beta) (1 - abar_s) / (1 - abar_t)      (eq. 7)
 *   variance  'fixed-small': betaTilde = beta (1 - abar_s) / (1 - abar_t)   (posterior; eq. 7)
 *             'fixed-large': beta                                          (sec. 3.2: sigma^2 = beta_t)
 *   x_s = mean + sqrt(variance) z,  z ~ N(0, I); no noise on the last step (it returns x0).
 * Both variances are optimal in the limits sec. 3.2 names; with all T steps they
 * differ only at small T. z of step t uses noise key `t<t>` (noise.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule } from '../schedule/schedule';
import { modelOutputToX0AndEps } from '../schedule/parameterization';
import { clipX0 } from './thresholding';
import { noiseForBatch } from './noise';
import { beforeStep, Denoiser, prepareSampling, SamplerOptions } from './types';

export type DdpmVariance = 'fixed-small' | 'fixed-large';

export interface DdpmOptions extends SamplerOptions {
  /** Reverse-process variance. Default 'fixed-small'. */
  readonly variance?: DdpmVariance;
}

export const DDPM_DEFAULTS = {
  /** The posterior variance betaTilde: exact when x0 is deterministic given x_t, and the better choice with few steps. */
  variance: 'fixed-small',
} as const satisfies Partial<DdpmOptions>;

/** Samples [B, ...shape[1:]] with ancestral DDPM; returns x_0 (a new tensor). Use steps = T for the paper's sampler. */
export async function sampleDdpm(denoise: Denoiser, shape: readonly number[], schedule: Schedule, opts: DdpmOptions): Promise<tf.Tensor> {
  const variance = opts.variance ?? DDPM_DEFAULTS.variance;
  if (variance !== 'fixed-small' && variance !== 'fixed-large') {
    throw new Error(`sampleDdpm: variance must be 'fixed-small' | 'fixed-large', got '${String(variance)}'`);
  }
  const run = prepareSampling('sampleDdpm', shape, schedule, opts);
  const { timesteps, batch } = run;
  const S = timesteps.length;
  let x = run.xT;
  try {
    for (let i = 0; i < S; i++) {
      await beforeStep(opts.signal);
      const t = timesteps[i];
      const last = i + 1 === S;
      const abarT = schedule.alphasCumprod[t];
      const abarS = last ? 1 : schedule.alphasCumprod[timesteps[i + 1]];
      const beta = 1 - abarT / abarS;
      const coef1 = (Math.sqrt(abarS) * beta) / (1 - abarT);
      const coef2 = (Math.sqrt(1 - beta) * (1 - abarS)) / (1 - abarT);
      const stdDev = last ? 0 : Math.sqrt(variance === 'fixed-small' ? (beta * (1 - abarS)) / (1 - abarT) : beta);
      const xPrev = x;
      const [next, x0] = tf.tidy(() => {
        const tt = tf.fill([batch], t, 'int32') as tf.Tensor1D;
        const pred = modelOutputToX0AndEps(opts.predictionType, denoise(xPrev, tt, run.cond), xPrev, tt, schedule);
        const x0c = clipX0(pred.x0, run.clip);
        let xs = tf.add(tf.mul(x0c, coef1), tf.mul(xPrev, coef2));
        if (stdDev > 0) xs = tf.add(xs, tf.mul(noiseForBatch(shape, run.seed, run.firstIndex, `t${t}`), stdDev));
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
