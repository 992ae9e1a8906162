/**
 * Multi-head scaled dot-product attention (Vaswani et al. 2017, eq. 1):
 *
 *   Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,   d = C / heads, per head.
 *
 * Heads are split as PyTorch's `x.reshape(b, n, heads, d).transpose(1, 2)`, so
 * weights imported from a PyTorch model give the same result.
 *
 * The whole attention is one customGrad. With heads folded into the batch
 * (Q_h [B*heads, N, d]) and P = softmax(S), S = Q_h K_h^T / sqrt(d):
 *
 *   dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dP * P)),
 *   dQ = dS K / sqrt(d),   dK = dS^T Q / sqrt(d).
 *
 * Every matMul takes explicitly transposed operands (the transposeA/B flags are
 * 10-40x slower on the WASM backend, notes/wasm-conv-gradients.md).
 *
 * Key mask: keyMask[b, m] = 1 attends, 0 is padding (logit - 1e9). A query whose
 * keys are ALL masked gets an all-zero attention row, so its output is zero (not
 * NaN, not a mean of V); its gradient is zero too.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Linear } from './linear';
import { Rng } from '../backend/random';

// ---------------------------------------------------------------------------
// the function

export interface AttentionOptions {
  /** Number of heads; C must be divisible by it. */
  heads: number;
  /** [B, M]: 1 = attend, 0 = padding. Default: attend to all keys. */
  keyMask?: tf.Tensor2D;
}

/** [B, N, C] -> [B*heads, N, d] (PyTorch's reshape(b, n, heads, d).transpose(1, 2)). */
function splitHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [b, n, c] = x.shape;
  const d = c / heads;
  return tf.reshape(tf.transpose(tf.reshape(x, [b, n, heads, d]), [0, 2, 1, 3]), [b * heads, n, d]);
}

/** [B*heads, N, d] -> [B, N, C]. */
function mergeHeads(x: tf.Tensor, b: number, heads: number): tf.Tensor3D {
  const [, n, d] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [b, heads, n, d]), [0, 2, 1, 3]), [b, n, heads * d]);
}

function swapLast(x: tf.Tensor): tf.Tensor3D {
  return tf.transpose(x, [0, 2, 1]) as tf.Tensor3D;
}

/**
 * Per-head softmax(q k^T / sqrt(C/heads)) v: q [B, N, C], k, v [B, M, C] -> [B, N, C].
 * Differentiable w.r.t. q, k, v (not the mask).
 */
export function multiHeadAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, options: AttentionOptions): tf.Tensor3D {
  const { heads, keyMask } = options;
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) {
    throw new Error(`multiHeadAttention: q, k, v must be rank 3 [B, N, C], got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [b, n, c] = q.shape;
  const m = k.shape[1];
  if (k.shape[0] !== b || v.shape[0] !== b || k.shape[2] !== c || v.shape[2] !== c || v.shape[1] !== m) {
    throw new Error(`multiHeadAttention: expected k, v [${b}, M, ${c}] with the same M, got [${k.shape}] and [${v.shape}]`);
  }
  if (!Number.isInteger(heads) || heads <= 0 || c % heads !== 0) {
    throw new Error(`multiHeadAttention: channels (${c}) must be divisible by heads (${heads})`);
  }
  if (keyMask !== undefined && (keyMask.rank !== 2 || keyMask.shape[0] !== b || keyMask.shape[1] !== m)) {
    throw new Error(`multiHeadAttention: keyMask must be [${b}, ${m}], got [${keyMask.shape}]`);
  }
  const scale = 1 / Math.sqrt(c / heads);
  return tf.tidy(() => {
    // Additive logit bias [B, 1, 1, M] and a per-(batch) row gate [B*heads, N?]: 0 where all keys are masked.
    let maskBias: tf.Tensor | null = null;
    let rowGate: tf.Tensor | null = null;
    if (keyMask !== undefined) {
      const mk = tf.cast(keyMask, 'float32');
      maskBias = tf.reshape(tf.mul(tf.sub(mk, 1), 1e9), [b, 1, 1, m]);
      rowGate = tf.reshape(tf.max(mk, 1), [b, 1, 1, 1]);
    }
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[3] as tf.GradSaveFunc;
      const qh = splitHeads(args[0] as tf.Tensor, heads); // [B*h, N, d]
      const kh = splitHeads(args[1] as tf.Tensor, heads); // [B*h, M, d]
      const vh = splitHeads(args[2] as tf.Tensor, heads); // [B*h, M, d]
      let logits: tf.Tensor = tf.mul(tf.matMul(qh, swapLast(kh)), scale); // [B*h, N, M]
      if (maskBias !== null) logits = tf.reshape(tf.add(tf.reshape(logits, [b, heads, n, m]), maskBias), [b * heads, n, m]);
      let p: tf.Tensor = tf.softmax(logits);
      if (rowGate !== null) p = tf.reshape(tf.mul(tf.reshape(p, [b, heads, n, m]), rowGate), [b * heads, n, m]);
      save([qh, kh, vh, p]);
      return {
        value: mergeHeads(tf.matMul(p, vh), b, heads),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
          tf.tidy((): tf.Tensor[] => {
            const [qs, ks, vs, ps] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
            const dOut = splitHeads(dy, heads); // [B*h, N, d]
            const dv = tf.matMul(swapLast(ps), dOut); // [B*h, M, d]
            const dp = tf.matMul(dOut, swapLast(vs)); // [B*h, N, M]
            const ds = tf.mul(ps, tf.sub(dp, tf.sum(tf.mul(dp, ps), 2, true)));
            const dq = tf.mul(tf.matMul(ds, ks), scale); // [B*h, N, d]
            const dk = tf.mul(tf.matMul(swapLast(ds), qs), scale); // [B*h, M, d]
            return [mergeHeads(dq, b, heads), mergeHeads(dk, b, heads), mergeHeads(dv, b, heads)];
          }),
      };
    });
    return f(q, k, v) as tf.Tensor3D;
  });
}

// ---------------------------------------------------------------------------
// modules

export interface SelfAttentionArgs {
  dim: number;
  heads: number;
  rng: Rng;
}

/**
 * Self-attention block without norm or residual: proj(MHA(q, k, v)) with
 * q, k, v = qkv(tokens).chunk(3, -1). Children `qkv` = Linear(dim, 3 dim), `proj` = Linear(dim, dim).
 */
export class SelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly heads: number;
  readonly dim: number;

  constructor(args: SelfAttentionArgs) {
    super();
    const { dim, heads, rng } = args;
    if (!Number.isInteger(dim) || !Number.isInteger(heads) || heads <= 0 || dim % heads !== 0) {
      throw new Error(`SelfAttention: dim (${dim}) must be divisible by heads (${heads})`);
    }
    this.dim = dim;
    this.heads = heads;
    this.qkv = this.addChild('qkv', new Linear({ inFeatures: dim, outFeatures: 3 * dim, rng }));
    this.proj = this.addChild('proj', new Linear({ inFeatures: dim, outFeatures: dim, rng }));
  }

  /** tokens [B, N, dim] -> [B, N, dim]. */
  apply(tokens: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [q, k, v] = tf.split(this.qkv.apply(tokens), 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      return this.proj.apply(multiHeadAttention(q, k, v, { heads: this.heads })) as tf.Tensor3D;
    });
  }
}

export interface CrossAttentionArgs {
  dim: number;
  contextDim: number;
  heads: number;
  rng: Rng;
}

/**
 * Cross-attention block without norm or residual: proj(MHA(q(tokens), k, v)) with
 * k, v = kv(context).chunk(2, -1). Children `q` = Linear(dim, dim),
 * `kv` = Linear(contextDim, 2 dim), `proj` = Linear(dim, dim).
 */
export class CrossAttention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  readonly heads: number;

  constructor(args: CrossAttentionArgs) {
    super();
    const { dim, contextDim, heads, rng } = args;
    if (!Number.isInteger(dim) || !Number.isInteger(heads) || heads <= 0 || dim % heads !== 0) {
      throw new Error(`CrossAttention: dim (${dim}) must be divisible by heads (${heads})`);
    }
    this.heads = heads;
    this.q = this.addChild('q', new Linear({ inFeatures: dim, outFeatures: dim, rng }));
    this.kv = this.addChild('kv', new Linear({ inFeatures: contextDim, outFeatures: 2 * dim, rng }));
    this.proj = this.addChild('proj', new Linear({ inFeatures: dim, outFeatures: dim, rng }));
  }

  /** tokens [B, N, dim], context [B, M, contextDim], contextMask [B, M] (1 = attend) -> [B, N, dim]. */
  apply(tokens: tf.Tensor3D, context: tf.Tensor3D, contextMask?: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const q = this.q.apply(tokens) as tf.Tensor3D;
      const [k, v] = tf.split(this.kv.apply(context), 2, 2) as [tf.Tensor3D, tf.Tensor3D];
      return this.proj.apply(multiHeadAttention(q, k, v, { heads: this.heads, keyMask: contextMask })) as tf.Tensor3D;
    });
  }
}
