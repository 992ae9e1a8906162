/**
 * Shared sampler types: the denoiser callback, the options every sampler takes,
 * and the entry validation all samplers run (shapes, cond batch, timesteps, x_T).
 *
 * Samplers are pure async functions
 *   sampleX(denoise, shape, schedule, opts) -> Promise<x0 sample [B, ...]>
 * over a Denoiser returning the model's raw output; `opts.predictionType` says
 * what that output is. Any rank works: images [B, H, W, C], embeddings [B, D].
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule } from '../schedule/schedule';
import { PredictionType, PREDICTION_TYPES } from '../schedule/parameterization';
import { ClipMode, NO_CLIP, validateClipMode } from './thresholding';
import { samplingTimesteps, TimestepSpacing } from './timesteps';
import { noiseForBatch } from './noise';

/** Conditioning tensors by name (e.g. 'context' [B, L, D], 'pooled' [B, D]); every tensor batch-first. */
export type Cond = Readonly<Record<string, tf.Tensor>>;

/**
 * The network as samplers see it: x [B, ...], t [B] (int32 discrete timesteps,
 * or float32 continuous ones; one per batch element), cond or null.
 * Returns the raw output [B, ...] (eps, v or x0 per predictionType).
 * Called inside tf.tidy: intermediate tensors it makes are released.
 */
export type Denoiser = (x: tf.Tensor, t: tf.Tensor1D, cond: Cond | null) => tf.Tensor;

export type SamplerName = 'ddpm' | 'ddim' | 'dpm-solver++';
export const SAMPLER_NAMES: readonly SamplerName[] = ['ddpm', 'ddim', 'dpm-solver++'];

/** Passed to onStep after each step. The tensors belong to the sampler and are valid only during the call. */
export interface StepInfo {
  /** 0-based step index. */
  readonly step: number;
  /** Total number of steps S. */
  readonly steps: number;
  /** The timestep the denoiser was evaluated at in this step. */
  readonly t: number;
  /** The sample after this step [B, ...]. */
  readonly x: tf.Tensor;
  /** The (clipped) x0 predicted at t [B, ...]. */
  readonly x0: tf.Tensor;
}

/** Options common to every sampler; each sampler extends them with its own (all optional). */
export interface SamplerOptions {
  /** Number of denoiser evaluations S, in [1, T]. */
  readonly steps: number;
  /** What the denoiser outputs. */
  readonly predictionType: PredictionType;
  /** Seed of all sampling noise (x_T and per-step noise), keyed per image (noise.ts). */
  readonly seed: number | string;
  /** Image index of batch element 0, for the noise keys. Default 0. */
  readonly firstIndex?: number;
  /** Conditioning passed to the denoiser. Default null. */
  readonly cond?: Cond | null;
  /** Which timesteps to visit. Default 'trailing' (starts at T - 1; Lin et al. 2024). */
  readonly spacing?: TimestepSpacing;
  /** Clipping of predicted x0. Default none. */
  readonly clip?: ClipMode;
  /** Start from this x_T [B, ...] (not disposed) instead of drawing it with stepKey 'xT'. */
  readonly xT?: tf.Tensor;
  /** Called after every step. */
  readonly onStep?: (info: StepInfo) => void;
  /**
   * Stops sampling before the next step: the promise rejects with the signal's reason when it
   * is an Error (abort() makes an 'AbortError'), else with an Error named 'AbortError'. With a signal, the sampler yields to the event loop before every step,
   * so an abort sent from elsewhere (a Stop button, a worker message) can arrive.
   */
  readonly signal?: AbortSignal;
}

/** A sampler's check before step i: yields and throws once `signal` is aborted (no-op without a signal). */
export async function beforeStep(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return;
  throwIfAborted(signal);
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
  throwIfAborted(signal);
}

/** Throws the signal's reason when it is an Error (abort() gives a DOMException 'AbortError'), else an AbortError carrying it. */
function throwIfAborted(signal: AbortSignal): void {
  if (!signal.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof Error) throw reason;
  const e = new Error(`aborted${reason === undefined ? '' : `: ${String(reason)}`}`);
  e.name = 'AbortError';
  throw e;
}

export const SAMPLER_DEFAULTS = {
  /** Noise keys of batch element b are image firstIndex + b. */
  firstIndex: 0,
  /** Unconditional. */
  cond: null,
  /** Starts at t = T - 1, where x_T ~ N(0, I) is (nearly) right; leading/linspace do not always. */
  spacing: 'trailing',
  /** No clipping: latents and embeddings are not bounded. */
  clip: NO_CLIP,
} as const satisfies Partial<SamplerOptions>;

/** SamplerOptions with defaults applied and x_T drawn: what a sampler loop needs. */
export interface PreparedSampling {
  readonly batch: number;
  /** Decreasing timesteps to visit, length S. */
  readonly timesteps: Int32Array;
  readonly cond: Cond | null;
  readonly clip: ClipMode;
  readonly seed: number | string;
  readonly firstIndex: number;
  /** x_T [B, ...], owned by the caller of prepareSampling (dispose it). */
  readonly xT: tf.Tensor;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Validates options at a sampler's entry and draws x_T. Refuses 'epsilon'
 * prediction when a visited timestep has abar = 0 (zero terminal SNR): there
 * x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) is undefined.
 */
export function prepareSampling(where: string, shape: readonly number[], schedule: Schedule, opts: SamplerOptions): PreparedSampling {
  if (shape.length < 1 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`${where}: shape must be positive integers [B, ...], got [${shape.join(', ')}]`);
  }
  if (!PREDICTION_TYPES.includes(opts.predictionType)) {
    throw new Error(`${where}: predictionType must be one of ${PREDICTION_TYPES.join(', ')}, got '${String(opts.predictionType)}'`);
  }
  const batch = shape[0];
  const firstIndex = opts.firstIndex ?? SAMPLER_DEFAULTS.firstIndex;
  if (!Number.isInteger(firstIndex) || firstIndex < 0) throw new Error(`${where}: firstIndex must be an integer >= 0, got ${firstIndex}`);
  const spacing = opts.spacing ?? SAMPLER_DEFAULTS.spacing;
  const timesteps = samplingTimesteps(schedule.timesteps, opts.steps, spacing);
  const clip = opts.clip ?? SAMPLER_DEFAULTS.clip;
  validateClipMode(clip);
  const cond = opts.cond ?? SAMPLER_DEFAULTS.cond;
  if (cond !== null) {
    for (const [key, value] of Object.entries(cond)) {
      if (value.rank < 1 || value.shape[0] !== batch) {
        throw new Error(`${where}: cond['${key}'] must be batch-first with B = ${batch}, got shape [${value.shape.join(', ')}]`);
      }
    }
  }
  if (opts.predictionType === 'epsilon') {
    const bad = Array.from(timesteps).filter((t) => !(schedule.alphasCumprod[t] > 0));
    if (bad.length > 0) {
      throw new Error(
        `${where}: predictionType 'epsilon' cannot be sampled at timesteps with abar = 0 (zero terminal SNR): t = ${bad.join(', ')}; ` +
          `x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) is undefined there. Use a 'v' or 'x0' model, or a schedule without rescaleZeroTerminalSnr`,
      );
    }
  }
  if (opts.xT !== undefined && !sameShape(opts.xT.shape, shape)) {
    throw new Error(`${where}: xT must have shape [${shape.join(', ')}], got [${opts.xT.shape.join(', ')}]`);
  }
  const xT = opts.xT !== undefined ? opts.xT.toFloat() : noiseForBatch(shape, opts.seed, firstIndex, 'xT');
  return { batch, timesteps, cond, clip, seed: opts.seed, firstIndex, xT };
}
