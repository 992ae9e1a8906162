/**
 * Learning-rate schedule: linear warm-up to `peak`, then constant or cosine
 * decay to `peak * minRatio` at `totalSteps`. A pure function of the step.
 */
export interface LrScheduleConfig {
  /** Peak learning rate reached after warm-up. */
  readonly peak: number;
  /** Steps of linear warm-up from 0 (step 0 uses peak / warmupSteps). */
  readonly warmupSteps: number;
  /** After warm-up: hold the peak, or cosine-decay to peak * minRatio. */
  readonly decay: 'constant' | 'cosine';
  /** Total optimiser steps (used by cosine decay). */
  readonly totalSteps: number;
  /** Floor of the cosine decay as a fraction of the peak. */
  readonly minRatio: number;
}

export function learningRate(step: number, cfg: LrScheduleConfig): number {
  if (step < cfg.warmupSteps) return (cfg.peak * (step + 1)) / cfg.warmupSteps;
  if (cfg.decay === 'constant') return cfg.peak;
  const span = Math.max(1, cfg.totalSteps - cfg.warmupSteps);
  const progress = Math.min(1, (step - cfg.warmupSteps) / span);
  const floor = cfg.peak * cfg.minRatio;
  return floor + 0.5 * (cfg.peak - floor) * (1 + Math.cos(Math.PI * progress));
}
