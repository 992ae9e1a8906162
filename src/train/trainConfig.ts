/**
 * Hyperparameters of a diffusion training run, as one plain typed object.
 * `trainConfig(partial)` merges over TRAIN_DEFAULTS and validates.
 */
import { AdamWConfig, ADAMW_DEFAULTS } from './adamw';
import { EmaConfig, EMA_DEFAULTS } from './ema';

export interface TrainConfig {
  readonly steps: number;
  readonly batchSize: number;
  readonly gradAccum: number;
  readonly workers: number;
  readonly seed: number;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly lrDecay: 'constant' | 'cosine';
  readonly lrMinRatio: number;
  readonly adamw: AdamWConfig;
  readonly ema: EmaConfig;
  readonly condDropProb: number;
  readonly minSnrGamma: number | null;
  readonly logEvery: number;
  readonly valEvery: number;
  readonly valSize: number;
  readonly sampleEvery: number;
  readonly checkpointEvery: number;
  readonly snapshotEvery: number;
  readonly timeBudgetMinutes: number | null;
}

export const TRAIN_DEFAULTS: TrainConfig = {
  /** Optimiser steps of the run. */
  steps: 2000,
  /** Global batch (examples per optimiser step). */
  batchSize: 64,
  /** Micro-batches per step: the global batch is split into gradAccum equal parts whose gradients are averaged. */
  gradAccum: 1,
  /**
   * Data-parallel worker threads (./dataParallel.ts): each runs a single-thread wasm backend and computes
   * a contiguous slice of every micro-batch; 1 = compute in the calling thread. Same training for any count.
   */
  workers: 1,
  /** One seed fixes data order, initialisation, timesteps, noise and condition dropout. */
  seed: 0,
  /** Peak learning rate. Small UNets (< 2M parameters) train well at 1e-3..2e-3 with warm-up; 2e-4 is the DDPM value for 35M. */
  lr: 1e-3,
  /** Linear warm-up steps. */
  warmupSteps: 200,
  /** After warm-up: constant, or cosine decay to lr * lrMinRatio at the last step. */
  lrDecay: 'cosine',
  lrMinRatio: 0.1,
  /** AdamW hyperparameters (clipGradNorm 1 clips the global gradient norm). */
  adamw: ADAMW_DEFAULTS,
  /** EMA of the weights with a warm-up of the decay; the EMA model is what gets sampled and shipped. */
  ema: EMA_DEFAULTS,
  /** Probability of replacing the condition by the null condition (classifier-free guidance); 0.1-0.2 is usual. */
  condDropProb: 0.1,
  /** Min-SNR-gamma loss weighting (gamma = 5 in Hang et al. 2023); null = plain MSE. */
  minSnrGamma: 5,
  /** Read the loss (a sync point), write a metrics line and the progress line every N steps. */
  logEvery: 25,
  /** Held-out loss on fixed examples, timesteps and noise every N steps (0 = never). */
  valEvery: 250,
  /** Number of held-out examples for the validation loss. */
  valSize: 256,
  /** Write a sample grid every N steps (0 = only at the end). */
  sampleEvery: 500,
  /** Save weights + training state every N steps (and always at the end). */
  checkpointEvery: 250,
  /** Keep a float16 copy of the EMA weights every N steps in snapshots/ (0 = never), to measure quality against images seen. */
  snapshotEvery: 0,
  /**
   * Stop (with a checkpoint) after the first step at which the run's wall time, over all its
   * sessions, reaches this many minutes; null = run all `steps`. For equal-time comparisons.
   * The LR schedule still spans `steps`: use lrDecay 'constant', or size `steps` to the budget.
   */
  timeBudgetMinutes: null,
};

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`train config: ${name} must be an integer >= ${min}, got ${v}`);
}

export function trainConfig(partial: Partial<Omit<TrainConfig, 'adamw' | 'ema'>> & { adamw?: Partial<AdamWConfig>; ema?: Partial<EmaConfig> } = {}): TrainConfig {
  const c: TrainConfig = {
    ...TRAIN_DEFAULTS,
    ...partial,
    adamw: { ...TRAIN_DEFAULTS.adamw, ...(partial.adamw ?? {}) },
    ema: { ...TRAIN_DEFAULTS.ema, ...(partial.ema ?? {}) },
  };
  positiveInt('steps', c.steps);
  positiveInt('batchSize', c.batchSize);
  positiveInt('gradAccum', c.gradAccum);
  if (c.batchSize % c.gradAccum !== 0) {
    throw new Error(`train config: batchSize ${c.batchSize} must be divisible by gradAccum ${c.gradAccum} (equal micro-batches)`);
  }
  positiveInt('workers', c.workers);
  if (c.batchSize / c.gradAccum < c.workers) {
    throw new Error(`train config: the micro-batch (batchSize ${c.batchSize} / gradAccum ${c.gradAccum} = ${c.batchSize / c.gradAccum}) must have at least one example per worker (workers ${c.workers})`);
  }
  positiveInt('seed', c.seed, 0);
  if (!(c.lr > 0)) throw new Error(`train config: lr must be > 0, got ${c.lr}`);
  positiveInt('warmupSteps', c.warmupSteps, 0);
  if (c.lrDecay !== 'constant' && c.lrDecay !== 'cosine') throw new Error(`train config: lrDecay must be 'constant' or 'cosine', got ${String(c.lrDecay)}`);
  if (!(c.lrMinRatio >= 0 && c.lrMinRatio <= 1)) throw new Error(`train config: lrMinRatio must be in [0, 1], got ${c.lrMinRatio}`);
  if (!(c.condDropProb >= 0 && c.condDropProb < 1)) throw new Error(`train config: condDropProb must be in [0, 1), got ${c.condDropProb}`);
  if (c.minSnrGamma !== null && !(c.minSnrGamma > 0)) throw new Error(`train config: minSnrGamma must be > 0 or null, got ${c.minSnrGamma}`);
  positiveInt('logEvery', c.logEvery);
  positiveInt('valEvery', c.valEvery, 0);
  positiveInt('valSize', c.valSize, 0);
  positiveInt('sampleEvery', c.sampleEvery, 0);
  positiveInt('checkpointEvery', c.checkpointEvery);
  positiveInt('snapshotEvery', c.snapshotEvery, 0);
  if (c.timeBudgetMinutes !== null && !(Number.isFinite(c.timeBudgetMinutes) && c.timeBudgetMinutes > 0)) {
    throw new Error(`train config: timeBudgetMinutes must be a positive number or null, got ${c.timeBudgetMinutes}`);
  }
  if (!(c.ema.maxDecay >= 0 && c.ema.maxDecay < 1)) throw new Error(`train config: ema.maxDecay must be in [0, 1), got ${c.ema.maxDecay}`);
  return c;
}
