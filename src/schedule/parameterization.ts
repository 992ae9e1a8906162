/**
 * What the network predicts, and exact conversions between the three choices.
 * With alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t) and x_t = alpha x0 + sigma eps:
 *
 *   'epsilon'  the noise eps (Ho et al. 2020)
 *   'x0'       the clean sample x0
 *   'v'        v = alpha eps - sigma x0 (Salimans & Ho 2022, "Progressive distillation", sec. 4)
 *
 *   x0  = (x_t - sigma eps) / alpha  = x_t / alpha - sqrt(1/abar - 1) eps   (predictX0FromEps)
 *   eps = (x_t - alpha x0) / sigma                                         (predictEpsFromX0)
 *   x0  = alpha x_t - sigma v                                              (predictX0FromV)
 *   eps = sigma x_t + alpha v                                              (predictEpsFromV)
 *
 * (the last two use alpha^2 + sigma^2 = 1). Undefined points: eps -> x0 at abar = 0
 * (zero terminal SNR, last timestep) gives Inf/NaN; x0 -> eps at abar = 1 (never
 * reached: abar_0 < 1). Nothing here reads t back to check; samplers guard.
 *
 * All functions take x of any rank [B, ...] and int32 t [B], and return new tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule, tableAt } from './schedule';
import { assertTimesteps } from './noising';

export type PredictionType = 'epsilon' | 'v' | 'x0';
export const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v', 'x0'];

export function predictX0FromEps(xt: tf.Tensor, eps: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  assertTimesteps('predictX0FromEps', xt, t);
  return tf.tidy(() =>
    tf.sub(tf.mul(tableAt(schedule.sqrtRecipAlphasCumprod, t, xt.rank), xt), tf.mul(tableAt(schedule.sqrtRecipm1AlphasCumprod, t, xt.rank), eps)),
  );
}

export function predictEpsFromX0(xt: tf.Tensor, x0: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  assertTimesteps('predictEpsFromX0', xt, t);
  return tf.tidy(() =>
    tf.div(tf.sub(xt, tf.mul(tableAt(schedule.sqrtAlphasCumprod, t, xt.rank), x0)), tableAt(schedule.sqrtOneMinusAlphasCumprod, t, xt.rank)),
  );
}

/** The v target: v = sqrt(abar) eps - sqrt(1 - abar) x0. */
export function vTarget(x0: tf.Tensor, noise: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  assertTimesteps('vTarget', x0, t);
  return tf.tidy(() =>
    tf.sub(tf.mul(tableAt(schedule.sqrtAlphasCumprod, t, x0.rank), noise), tf.mul(tableAt(schedule.sqrtOneMinusAlphasCumprod, t, x0.rank), x0)),
  );
}

export function predictX0FromV(xt: tf.Tensor, v: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  assertTimesteps('predictX0FromV', xt, t);
  return tf.tidy(() =>
    tf.sub(tf.mul(tableAt(schedule.sqrtAlphasCumprod, t, xt.rank), xt), tf.mul(tableAt(schedule.sqrtOneMinusAlphasCumprod, t, xt.rank), v)),
  );
}

export function predictEpsFromV(xt: tf.Tensor, v: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  assertTimesteps('predictEpsFromV', xt, t);
  return tf.tidy(() =>
    tf.add(tf.mul(tableAt(schedule.sqrtOneMinusAlphasCumprod, t, xt.rank), xt), tf.mul(tableAt(schedule.sqrtAlphasCumprod, t, xt.rank), v)),
  );
}

/** The regression target of the network for x_t = qSample(x0, t, noise). */
export function trainingTarget(predictionType: PredictionType, x0: tf.Tensor, noise: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): tf.Tensor {
  switch (predictionType) {
    case 'epsilon':
      return noise.clone();
    case 'x0':
      return x0.clone();
    case 'v':
      return vTarget(x0, noise, t, schedule);
    default:
      throw new Error(`trainingTarget: predictionType must be one of ${PREDICTION_TYPES.join(', ')}, got '${String(predictionType)}'`);
  }
}

/** A model output read as both predictions of x0 and eps (both new tensors). */
export interface X0AndEps {
  readonly x0: tf.Tensor;
  readonly eps: tf.Tensor;
}

/** Converts the raw model output at (x_t, t) into predicted x0 and eps. */
export function modelOutputToX0AndEps(predictionType: PredictionType, output: tf.Tensor, xt: tf.Tensor, t: tf.Tensor1D, schedule: Schedule): X0AndEps {
  if (output.shape.length !== xt.shape.length || output.shape.some((d, i) => d !== xt.shape[i])) {
    throw new Error(`modelOutputToX0AndEps: model output must have the shape of x_t [${xt.shape.join(', ')}], got [${output.shape.join(', ')}]`);
  }
  switch (predictionType) {
    case 'epsilon':
      return { x0: predictX0FromEps(xt, output, t, schedule), eps: output.clone() };
    case 'x0':
      return { x0: output.clone(), eps: predictEpsFromX0(xt, output, t, schedule) };
    case 'v':
      return { x0: predictX0FromV(xt, output, t, schedule), eps: predictEpsFromV(xt, output, t, schedule) };
    default:
      throw new Error(`modelOutputToX0AndEps: predictionType must be one of ${PREDICTION_TYPES.join(', ')}, got '${String(predictionType)}'`);
  }
}
