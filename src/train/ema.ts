/**
 * Exponential moving average of weights, with a warm-up of the decay.
 *
 * A fixed decay of 0.999 from step 0 still holds (0.999)^1000 = 37% of the
 * random initial weights after 1000 steps and hides early learning. We use the
 * warm-up of Karras-style / diffusers EMAs:
 *     decay(step) = min(maxDecay, 1 - (1 + step / invGamma)^(-power))
 * With power 3/4: 0.75 at step 1, 0.99 at step ~450, 0.999 at step ~10^4.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';

export interface EmaConfig {
  /** Upper bound of the decay. */
  readonly maxDecay: number;
  /** Exponent of the warm-up; 3/4 suits runs of 10^3-10^5 steps, 2/3 longer ones. */
  readonly power: number;
  /** Step scale of the warm-up. */
  readonly invGamma: number;
}

export const EMA_DEFAULTS: EmaConfig = { maxDecay: 0.9995, power: 0.75, invGamma: 1 };

export function emaDecay(step: number, cfg: EmaConfig = EMA_DEFAULTS): number {
  if (step <= 0) return 0;
  return Math.min(cfg.maxDecay, 1 - Math.pow(1 + step / cfg.invGamma, -cfg.power));
}

/**
 * ema <- decay * ema + (1 - decay) * model, parameter by parameter. Both modules
 * must have the same parameter names and shapes (the EMA is a second instance
 * of the same model, so it can be saved and sampled like any model).
 */
export function updateEma(ema: Module, model: Module, decay: number): void {
  const target = ema.namedParameters();
  const source = new Map(model.namedParameters());
  if (target.length !== source.size) throw new Error(`EMA model has ${target.length} parameters, model has ${source.size}`);
  tf.tidy(() => {
    for (const [name, e] of target) {
      const p = source.get(name);
      if (p === undefined) throw new Error(`EMA parameter '${name}' missing from the model`);
      e.assign(tf.add(tf.mul(e, decay), tf.mul(p, 1 - decay)));
    }
  });
}

/** Copies all weights of `source` into `target` (same architecture). */
export function copyWeights(target: Module, source: Module): void {
  target.loadStateDict(source.stateDict());
}
