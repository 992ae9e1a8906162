/**
 * Progress and cancellation of a pipeline's `generate`: one step count over all its
 * stages and batches (a cascade's base and super-resolution stages, an unclip
 * pipeline's prior, decoder and SR stage), and the AbortSignal handed to every sampler.
 */
import * as tf from '@tensorflow/tfjs';
import { SamplerOptions } from '../sample/types';

export interface GenerateProgress {
  /** Denoising steps done so far in this call (1-based), over every stage and batch. */
  readonly step: number;
  /** All the denoising steps this call will take. */
  readonly total: number;
  /** Which stage took the step: 'unet', 'base', 'sr', 'prior', 'decoder'. */
  readonly stage: string;
  /**
   * The x0 the model predicts at this step [B, H, W, C] in [-1, 1], for stages that work on
   * pixels (null for latents and embeddings). Valid only during the call: copy what you keep.
   */
  readonly x0: tf.Tensor | null;
}

/** What every design's generate takes besides its sampling settings. */
export interface GenerateHooks {
  /** Told after every denoising step. */
  readonly onStep?: (progress: GenerateProgress) => void;
  /** Aborts between denoising steps; generate then rejects with the signal's reason (an 'AbortError'). */
  readonly signal?: AbortSignal;
}

/**
 * One count of `total` steps for a generate call. `sampler(stage, pixels)` gives the options
 * of a `sample()` call that report into it (pixels: its x0 is an image); `nested(stage)` the
 * hooks of an inner generate call (a cascade's base stage) whose steps count here.
 */
export function progressCounter(hooks: GenerateHooks, total: number): {
  sampler: (stage: string, pixels: boolean) => Pick<SamplerOptions, 'onStep' | 'signal'>;
  nested: (stage: string) => GenerateHooks;
} {
  let done = 0;
  const onStep = hooks.onStep;
  const signal = hooks.signal !== undefined ? { signal: hooks.signal } : {};
  const tell = (stage: string, x0: tf.Tensor | null): void => onStep?.({ step: ++done, total, stage, x0 });
  return {
    sampler: (stage, pixels) => ({ ...signal, ...(onStep !== undefined ? { onStep: (info) => tell(stage, pixels ? info.x0 : null) } : {}) }),
    nested: (stage) => ({ ...signal, ...(onStep !== undefined ? { onStep: (p) => tell(stage, p.x0) } : {}) }),
  };
}

/** Number of sampler calls of `batchSize` images for n images. */
export function batchCount(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}
