/**
 * The schedule as data: float64 tables indexed by timestep t = 0..T-1, computed
 * once from the betas (as guided-diffusion's GaussianDiffusion.__init__).
 * Tensors are made at use (`tableAt`).
 *
 * Notation (Ho et al. 2020):
 *   alpha_t = 1 - beta_t,  abar_t = prod_{s<=t} alpha_s   (alphasCumprod)
 *   q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)                    eq. 4
 *   q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, betaTilde_t I)        eq. 6, 7
 *     coef1 = beta_t sqrt(abar_{t-1}) / (1 - abar_t)
 *     coef2 = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)
 *     betaTilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
 *   with abar_{-1} = 1 (alphasCumprodPrev[0] = 1), so betaTilde_0 = 0.
 *   snr_t = abar_t / (1 - abar_t),  logSnr_t = log(snr_t).
 *
 * With a zero-terminal-SNR schedule, abar_{T-1} = 0: snr = 0, logSnr = -Infinity,
 * and sqrtRecipAlphasCumprod / sqrtRecipm1AlphasCumprod are +Infinity at T-1
 * (eps -> x0 conversion is undefined there; see betas.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { makeBetas, ScheduleConfig, scheduleConfig } from './betas';

/** A read-only float64 table of length T. */
export type Table = Readonly<Float64Array>;

export interface Schedule {
  /** The validated config the tables were made from. */
  readonly config: ScheduleConfig;
  /** T. */
  readonly timesteps: number;
  readonly betas: Table;
  readonly alphas: Table;
  readonly alphasCumprod: Table;
  /** abar_{t-1}, with abar_{-1} = 1. */
  readonly alphasCumprodPrev: Table;
  readonly sqrtAlphasCumprod: Table;
  readonly sqrtOneMinusAlphasCumprod: Table;
  /** 1 / sqrt(abar_t). */
  readonly sqrtRecipAlphasCumprod: Table;
  /** sqrt(1 / abar_t - 1). */
  readonly sqrtRecipm1AlphasCumprod: Table;
  /** betaTilde_t, the variance of q(x_{t-1} | x_t, x_0); 0 at t = 0. */
  readonly posteriorVariance: Table;
  /** log(betaTilde_t) with betaTilde_0 replaced by betaTilde_1 (it is 0), as guided-diffusion. */
  readonly posteriorLogVarianceClipped: Table;
  /** Coefficient of x_0 in the posterior mean. */
  readonly posteriorMeanCoef1: Table;
  /** Coefficient of x_t in the posterior mean. */
  readonly posteriorMeanCoef2: Table;
  readonly snr: Table;
  readonly logSnr: Table;
}

/** Builds the tables for a schedule config (partial configs are completed by scheduleConfig). */
export function makeSchedule(partial: Partial<ScheduleConfig> = {}): Schedule {
  const config = scheduleConfig(partial);
  const betas = makeBetas(config);
  const T = betas.length;
  const alphas = betas.map((b) => 1 - b);
  const alphasCumprod = new Float64Array(T);
  let acc = 1;
  for (let t = 0; t < T; t++) {
    acc *= alphas[t];
    alphasCumprod[t] = acc;
  }
  const alphasCumprodPrev = new Float64Array(T);
  alphasCumprodPrev[0] = 1;
  alphasCumprodPrev.set(alphasCumprod.subarray(0, T - 1), 1);

  const map = (f: (t: number) => number): Float64Array => {
    const out = new Float64Array(T);
    for (let t = 0; t < T; t++) out[t] = f(t);
    return out;
  };
  const posteriorVariance = map((t) => (betas[t] * (1 - alphasCumprodPrev[t])) / (1 - alphasCumprod[t]));
  const posteriorLogVarianceClipped = map((t) => Math.log(t === 0 && T > 1 ? posteriorVariance[1] : posteriorVariance[t]));

  const schedule: Schedule = {
    config: Object.freeze({ ...config }),
    timesteps: T,
    betas,
    alphas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtAlphasCumprod: map((t) => Math.sqrt(alphasCumprod[t])),
    sqrtOneMinusAlphasCumprod: map((t) => Math.sqrt(1 - alphasCumprod[t])),
    sqrtRecipAlphasCumprod: map((t) => 1 / Math.sqrt(alphasCumprod[t])),
    sqrtRecipm1AlphasCumprod: map((t) => Math.sqrt(1 / alphasCumprod[t] - 1)),
    posteriorVariance,
    posteriorLogVarianceClipped,
    posteriorMeanCoef1: map((t) => (betas[t] * Math.sqrt(alphasCumprodPrev[t])) / (1 - alphasCumprod[t])),
    posteriorMeanCoef2: map((t) => ((1 - alphasCumprodPrev[t]) * Math.sqrt(alphas[t])) / (1 - alphasCumprod[t])),
    snr: map((t) => alphasCumprod[t] / (1 - alphasCumprod[t])),
    logSnr: map((t) => Math.log(alphasCumprod[t]) - Math.log1p(-alphasCumprod[t])),
  };
  // Typed arrays with elements cannot be frozen; their read-only-ness is the `Table` type.
  return Object.freeze(schedule);
}

/**
 * Gathers `table[t[b]]` into a float32 tensor shaped [B, 1, ..., 1] of rank
 * `rank`, to broadcast against [B, ...] tensors (guided-diffusion's
 * _extract_into_tensor). `t` is int32 [B]; values are not range-checked here
 * (that would read t back to JS): callers pass valid timesteps.
 */
export function tableAt(table: Table, t: tf.Tensor1D, rank: number): tf.Tensor {
  if (t.rank !== 1) throw new Error(`tableAt: t must be a 1-D timestep tensor [B], got shape [${t.shape.join(', ')}]`);
  if (t.dtype !== 'int32') throw new Error(`tableAt: t must be int32 (discrete timesteps), got ${t.dtype}`);
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`tableAt: rank must be an integer >= 1, got ${rank}`);
  return tf.tidy(() => {
    const values = tf.gather(tf.tensor1d(Float32Array.from(table), 'float32'), t); // [B]
    return values.reshape([t.shape[0], ...new Array<number>(rank - 1).fill(1)]);
  });
}
