/**
 * AdamW (Loshchilov & Hutter 2019, decoupled weight decay), with gradient
 * clipping by global norm. The moments are plain tensors keyed by parameter
 * name so that a training state file can store and restore them exactly.
 *
 *   p <- p - lr * wd * p                      (decoupled decay; not for norms/biases by default)
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
import * as tf from '@tensorflow/tfjs';

export interface AdamWConfig {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay coefficient (PyTorch AdamW default 0.01). */
  readonly weightDecay: number;
  /** Apply weight decay to rank-1 parameters (biases, norm scales) too. PyTorch does; most recipes do not. */
  readonly decayRank1: boolean;
  /** Clip gradients to this global L2 norm; 0 disables clipping. */
  readonly clipGradNorm: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = {
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  decayRank1: false,
  clipGradNorm: 1.0,
};

export class AdamW {
  readonly config: AdamWConfig;
  /** Number of optimiser steps taken (bias correction uses it). */
  stepCount = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(config: Partial<AdamWConfig> = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    const c = this.config;
    if (!(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1)) throw new Error(`AdamW betas must be in [0, 1), got ${c.beta1}, ${c.beta2}`);
    if (!(c.eps > 0) || !(c.weightDecay >= 0) || !(c.clipGradNorm >= 0)) throw new Error('AdamW eps must be > 0, weightDecay and clipGradNorm >= 0');
  }

  /**
   * One update. `grads` maps parameter name -> gradient (same shape as the
   * parameter). Returns the global gradient norm before clipping as a scalar
   * tensor the caller owns (read it only when logging: a sync point).
   */
  applyGradients(params: ReadonlyArray<[string, tf.Variable]>, grads: ReadonlyMap<string, tf.Tensor>, lr: number): tf.Scalar {
    const c = this.config;
    this.stepCount += 1;
    const t = this.stepCount;
    const bc1 = 1 - Math.pow(c.beta1, t);
    const bc2 = 1 - Math.pow(c.beta2, t);
    return tf.tidy(() => {
      const gradList = params.map(([name, p]) => {
        const g = grads.get(name);
        if (g === undefined) throw new Error(`AdamW: no gradient for parameter '${name}'`);
        if (g.size !== p.size) throw new Error(`AdamW: gradient of '${name}' has shape [${g.shape}], parameter [${p.shape}]`);
        return g;
      });
      const sq = gradList.map((g) => tf.sum(tf.square(g)));
      const globalNorm = tf.sqrt(sq.length > 0 ? tf.addN(sq) : tf.scalar(0)) as tf.Scalar;
      // scale = min(1, maxNorm / (norm + 1e-6)), kept on the device (no read-back).
      const scale = c.clipGradNorm > 0 ? tf.minimum(1, tf.div(c.clipGradNorm, tf.add(globalNorm, 1e-6))) : tf.scalar(1);
      params.forEach(([name, p], i) => {
        const g = tf.mul(gradList[i], scale);
        const mPrev = this.m.get(name) ?? tf.zerosLike(p);
        const vPrev = this.v.get(name) ?? tf.zerosLike(p);
        const m = tf.keep(tf.add(tf.mul(mPrev, c.beta1), tf.mul(g, 1 - c.beta1)));
        const v = tf.keep(tf.add(tf.mul(vPrev, c.beta2), tf.mul(tf.square(g), 1 - c.beta2)));
        this.m.get(name)?.dispose();
        this.v.get(name)?.dispose();
        this.m.set(name, m);
        this.v.set(name, v);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), c.eps));
        let next = tf.sub(p, tf.mul(update, lr));
        if (c.weightDecay > 0 && (c.decayRank1 || p.rank > 1)) next = tf.sub(next, tf.mul(p, lr * c.weightDecay));
        p.assign(next);
      });
      return tf.keep(globalNorm);
    });
  }

  /** Moments as named tensors ('m.<param>', 'v.<param>') for a training state file (not copies: do not dispose). */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [n, t] of this.m) out.set(`m.${n}`, t);
    for (const [n, t] of this.v) out.set(`v.${n}`, t);
    return out;
  }

  /** Restores moments and the step count (takes copies of the given tensors). */
  loadState(stepCount: number, tensors: ReadonlyMap<string, tf.Tensor>): void {
    this.dispose();
    this.stepCount = stepCount;
    for (const [key, t] of tensors) {
      if (key.startsWith('m.')) this.m.set(key.slice(2), tf.clone(t));
      else if (key.startsWith('v.')) this.v.set(key.slice(2), tf.clone(t));
      else throw new Error(`AdamW state: unexpected tensor '${key}' (expected 'm.<name>' or 'v.<name>')`);
    }
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
