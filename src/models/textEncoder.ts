/**
 * A small transformer text encoder (GPT-2 / CLIP text tower, Radford et al.
 * 2019, 2021), pre-LN:
 *
 *   h_0 = token_embedding[ids] + position_embedding[0..L)
 *   h   = h + attn(ln_1(h), key padding mask)       per block
 *   h   = h + fc2(gelu(fc1(ln_2(h))))
 *   states = ln_final(h)                             [B, L, D]   (the UNet's cross-attention context)
 *   pooled = text_projection(states[b, eos_b])       [B, E]      (CLIP's text embedding)
 *
 * eos_b is the EOS position of prompt b (= number of real tokens - 1, read from
 * the mask), as CLIP pools the EOT token.
 *
 * Attention is BIDIRECTIONAL with a key padding mask (padding keys are never
 * attended), not causal as in CLIP: nothing here generates text, and with
 * bidirectional attention every real token's state sees the whole prompt,
 * which suits a cross-attention context. States at padding positions are
 * computed but meaningless; consumers must use the mask.
 *
 * Freezing: `freeze()` (from Module) removes the parameters from
 * `namedTrainableParameters()`. For diffusion training on a frozen encoder,
 * `encodeCaptionsCached` computes each distinct caption's states once, outside
 * any gradient tape, and `CaptionStateCache.lookup` gathers a batch of them.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layerNorm';
import { Embedding } from '../nn/embedding';
import { multiHeadAttention } from '../nn/attention';
import { gelu } from '../nn/activations';
import { Rng, randomNormal } from '../backend/random';
import { BYTE_VOCAB_SIZE, ByteTokenizer } from './tokenizer';
import { ModuleList } from './unetBlocks';

/** The text condition of a dropped example (and the null of classifier-free guidance): the empty prompt. */
export const NULL_PROMPT = '';

// ---------------------------------------------------------------- config

export interface TextEncoderConfig {
  /** Token ids in [0, vocabSize); 259 for the byte tokenizer. */
  readonly vocabSize: number;
  /** L: sequence length (the tokenizer's maxLength). */
  readonly maxLength: number;
  /** D: width of the token states. */
  readonly dim: number;
  /** Transformer blocks. */
  readonly layers: number;
  /** Attention heads (dim must be divisible by heads). */
  readonly heads: number;
  /** MLP hidden width = mlpRatio * dim. */
  readonly mlpRatio: number;
  /** E: width of the pooled (projected) embedding. */
  readonly embedDim: number;
  /** Seed of the initial weights. */
  readonly seed: number;
}

export const TEXT_ENCODER_DEFAULTS: TextEncoderConfig = {
  vocabSize: BYTE_VOCAB_SIZE,
  maxLength: 32,
  dim: 128,
  layers: 4,
  heads: 4,
  mlpRatio: 4,
  embedDim: 128,
  seed: 0,
};

export function textEncoderConfig(partial: Partial<TextEncoderConfig> = {}): TextEncoderConfig {
  const cfg = { ...TEXT_ENCODER_DEFAULTS, ...partial };
  for (const key of ['vocabSize', 'maxLength', 'dim', 'layers', 'heads', 'mlpRatio', 'embedDim'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0) throw new Error(`textEncoderConfig: ${key} must be a positive integer, got ${cfg[key]}`);
  }
  if (cfg.dim % cfg.heads !== 0) throw new Error(`textEncoderConfig: dim (${cfg.dim}) must be divisible by heads (${cfg.heads})`);
  if (cfg.maxLength < 3) throw new Error(`textEncoderConfig: maxLength must be >= 3 (BOS, a byte, EOS), got ${cfg.maxLength}`);
  if (!Number.isInteger(cfg.seed)) throw new Error(`textEncoderConfig: seed must be an integer, got ${cfg.seed}`);
  return cfg;
}

// ---------------------------------------------------------------- blocks

/** Self-attention with a key padding mask. Children `qkv` = Linear(D, 3D), `proj` = Linear(D, D). */
class MaskedSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(dim: number, readonly heads: number, rng: Rng) {
    super();
    this.qkv = this.addChild('qkv', new Linear({ inFeatures: dim, outFeatures: 3 * dim, rng }));
    this.proj = this.addChild('proj', new Linear({ inFeatures: dim, outFeatures: dim, rng }));
  }

  /** x [B, L, D], keyMask [B, L] (1 = real token) -> [B, L, D]. */
  apply(x: tf.Tensor3D, keyMask: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [q, k, v] = tf.split(this.qkv.apply(x), 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      return this.proj.apply(multiHeadAttention(q, k, v, { heads: this.heads, keyMask })) as tf.Tensor3D;
    });
  }
}

/** The block's MLP: children `fc1` = Linear(D, rD), `fc2` = Linear(rD, D), GELU between. */
class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, rng: Rng) {
    super();
    this.fc1 = this.addChild('fc1', new Linear({ inFeatures: dim, outFeatures: hidden, rng }));
    this.fc2 = this.addChild('fc2', new Linear({ inFeatures: hidden, outFeatures: dim, rng }));
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.apply(gelu(this.fc1.apply(x))));
  }
}

/** Pre-LN transformer block: children ln_1, attn, ln_2, mlp. */
class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MaskedSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, heads: number, mlpRatio: number, rng: Rng) {
    super();
    this.ln1 = this.addChild('ln_1', new LayerNorm({ dim }));
    this.attn = this.addChild('attn', new MaskedSelfAttention(dim, heads, rng));
    this.ln2 = this.addChild('ln_2', new LayerNorm({ dim }));
    this.mlp = this.addChild('mlp', new Mlp(dim, mlpRatio * dim, rng));
  }

  /** x [B, L, D], mask [B, L] -> [B, L, D]. */
  apply(x: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.apply(this.ln1.apply(x) as tf.Tensor3D, mask)) as tf.Tensor3D;
      return tf.add(h, this.mlp.apply(this.ln2.apply(h))) as tf.Tensor3D;
    });
  }
}

// ---------------------------------------------------------------- the encoder

export interface TextEncoderOutput {
  /** Final-LN token states [B, L, D]. */
  readonly states: tf.Tensor3D;
  /** The mask that came in, [B, L] float32 (1 = real token). Not a new tensor: do not dispose it twice. */
  readonly mask: tf.Tensor2D;
  /** text_projection(states at EOS) [B, E]. */
  readonly pooled: tf.Tensor2D;
}

export class TextEncoder extends Module {
  readonly config: TextEncoderConfig;
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: tf.Variable;
  readonly blocks: TransformerBlock[] = [];
  readonly lnFinal: LayerNorm;
  readonly textProjection: Linear;

  constructor(config: Partial<TextEncoderConfig> = {}) {
    super();
    const cfg = textEncoderConfig(config);
    this.config = cfg;
    const rng = new Rng(`text-encoder/${cfg.seed}`);
    this.tokenEmbedding = this.addChild('token_embedding', new Embedding({ numEmbeddings: cfg.vocabSize, dim: cfg.dim, rng }));
    // CLIP's init: tokens N(0, 0.02) (nn.Embedding's N(0, 1) rescaled), positions N(0, 0.01). With N(0, 1) the
    // EOS token's own embedding dominates its state at init: pooled embeddings of different prompts had cos 0.98
    // (0.79 with 0.02), and contrastive training sat longer at the collapsed loss log B.
    tf.tidy(() => this.tokenEmbedding.weight.assign(tf.mul(this.tokenEmbedding.weight, 0.02)));
    this.positionEmbedding = this.addParameter('position_embedding', randomNormal([cfg.maxLength, cfg.dim], rng, 0, 0.01), 'plain');
    const blocks = this.addChild('blocks', new ModuleList());
    for (let i = 0; i < cfg.layers; i++) this.blocks.push(blocks.push(new TransformerBlock(cfg.dim, cfg.heads, cfg.mlpRatio, rng)));
    this.lnFinal = this.addChild('ln_final', new LayerNorm({ dim: cfg.dim }));
    this.textProjection = this.addChild('text_projection', new Linear({ inFeatures: cfg.dim, outFeatures: cfg.embedDim, bias: false, rng }));
  }

  /**
   * ids int32 [B, L], mask float32 [B, L] (1 = real token, a prefix of each row as
   * the tokenizer makes it) -> token states, the mask, and the pooled embedding.
   */
  apply(ids: tf.Tensor2D, mask: tf.Tensor2D): TextEncoderOutput {
    const L = this.config.maxLength;
    if (ids.rank !== 2 || ids.shape[1] !== L) throw new Error(`TextEncoder.apply: ids must be [B, ${L}], got [${ids.shape}]`);
    if (ids.dtype !== 'int32') throw new Error(`TextEncoder.apply: ids must be int32, got ${ids.dtype}`);
    if (mask.rank !== 2 || mask.shape[0] !== ids.shape[0] || mask.shape[1] !== L) {
      throw new Error(`TextEncoder.apply: mask must be [${ids.shape[0]}, ${L}] like ids, got [${mask.shape}]`);
    }
    const B = ids.shape[0];
    const result = tf.tidy(() => {
      const m = mask.dtype === 'float32' ? mask : (tf.cast(mask, 'float32') as tf.Tensor2D);
      let h = tf.add(this.tokenEmbedding.apply(ids), this.positionEmbedding) as tf.Tensor3D; // [B, L, D]
      for (const block of this.blocks) h = block.apply(h, m);
      const states = this.lnFinal.apply(h) as tf.Tensor3D; // [B, L, D]
      // One-hot of the EOS position (sum(mask) - 1) times the states: a differentiable gather.
      const eos = tf.sub(tf.sum(m, 1), 1); // [B]
      const positions = tf.range(0, L, 1, 'float32'); // [L]
      const onehot = tf.cast(tf.equal(tf.reshape(eos, [B, 1]), tf.reshape(positions, [1, L])), 'float32'); // [B, L]
      const eosState = tf.sum(tf.mul(states, tf.reshape(onehot, [B, L, 1])), 1) as tf.Tensor2D; // [B, D]
      const pooled = this.textProjection.apply(eosState) as tf.Tensor2D; // [B, E]
      return { states, pooled };
    });
    return { states: result.states, mask, pooled: result.pooled };
  }

  /** Tokenizes and encodes prompts (the caller disposes states, mask and pooled). */
  encodeTexts(tokenizer: ByteTokenizer, texts: readonly string[], onWarn?: (message: string) => void): TextEncoderOutput {
    this.checkTokenizer(tokenizer);
    const { ids, mask } = tokenizer.encodeTensors(texts, { onWarn });
    try {
      return this.apply(ids, mask);
    } finally {
      ids.dispose();
    }
  }

  /** Throws unless the tokenizer's length and vocabulary match this encoder. */
  checkTokenizer(tokenizer: ByteTokenizer): void {
    if (tokenizer.maxLength !== this.config.maxLength || tokenizer.vocabSize !== this.config.vocabSize) {
      throw new Error(
        `TextEncoder: tokenizer has maxLength ${tokenizer.maxLength} and vocab ${tokenizer.vocabSize}, ` +
          `the encoder expects ${this.config.maxLength} and ${this.config.vocabSize}`,
      );
    }
  }
}

// ---------------------------------------------------------------- frozen-encoder cache

/**
 * Token states of a set of distinct captions, computed once by a (frozen)
 * encoder: row r of `states` / `mask` / `pooled` belongs to the caption with
 * `index.get(caption) === r`.
 */
export class CaptionStateCache {
  constructor(
    /** caption -> row. */
    readonly index: ReadonlyMap<string, number>,
    /** [U, L, D]. */
    readonly states: tf.Tensor3D,
    /** [U, L] float32. */
    readonly mask: tf.Tensor2D,
    /** [U, E]. */
    readonly pooled: tf.Tensor2D,
  ) {}

  get size(): number {
    return this.index.size;
  }

  /** The cached rows of `captions` (each must be in the cache): context [B, L, D], mask [B, L], pooled [B, E]. Caller disposes. */
  lookup(captions: readonly string[]): { context: tf.Tensor3D; mask: tf.Tensor2D; pooled: tf.Tensor2D } {
    const rows = Int32Array.from(captions, (c, i) => {
      const r = this.index.get(c);
      if (r === undefined) throw new Error(`CaptionStateCache.lookup: caption ${i} ("${c}") was not encoded; add it to encodeCaptionsCached's list`);
      return r;
    });
    return tf.tidy(() => {
      const idx = tf.tensor1d(rows, 'int32');
      return {
        context: tf.gather(this.states, idx) as tf.Tensor3D,
        mask: tf.gather(this.mask, idx) as tf.Tensor2D,
        pooled: tf.gather(this.pooled, idx) as tf.Tensor2D,
      };
    });
  }

  /** The captions in row order. */
  captions(): string[] {
    const out = new Array<string>(this.index.size);
    for (const [c, r] of this.index) out[r] = c;
    return out;
  }

  /**
   * The cache as plain arrays (a one-off read of its tensors), e.g. to hand it
   * to worker threads in SharedArrayBuffers; `fromArrays` rebuilds it.
   */
  toArrays(shared = false): CaptionStateArrays {
    const copy = (t: tf.Tensor): Float32Array => {
      const data = t.dataSync() as Float32Array;
      const out = shared ? new Float32Array(new SharedArrayBuffer(data.length * 4)) : new Float32Array(data.length);
      out.set(data);
      return out;
    };
    const [u, l, d] = this.states.shape;
    return { captions: this.captions(), states: copy(this.states), mask: copy(this.mask), pooled: copy(this.pooled), length: l, dim: d, embedDim: this.pooled.shape[1], rows: u };
  }

  static fromArrays(a: CaptionStateArrays): CaptionStateCache {
    if (a.captions.length !== a.rows || a.states.length !== a.rows * a.length * a.dim || a.mask.length !== a.rows * a.length || a.pooled.length !== a.rows * a.embedDim) {
      throw new Error(`CaptionStateCache.fromArrays: sizes disagree (${a.captions.length} captions, ${a.rows} rows of [${a.length}, ${a.dim}] states and [${a.embedDim}] pooled)`);
    }
    return new CaptionStateCache(
      new Map(a.captions.map((c, i) => [c, i])),
      tf.tensor3d(a.states, [a.rows, a.length, a.dim]),
      tf.tensor2d(a.mask, [a.rows, a.length]),
      tf.tensor2d(a.pooled, [a.rows, a.embedDim]),
    );
  }

  dispose(): void {
    tf.dispose([this.states, this.mask, this.pooled]);
  }
}

/** A CaptionStateCache as plain arrays (row r = captions[r]). */
export interface CaptionStateArrays {
  readonly captions: readonly string[];
  /** [rows, length, dim]. */
  readonly states: Float32Array;
  /** [rows, length]. */
  readonly mask: Float32Array;
  /** [rows, embedDim]. */
  readonly pooled: Float32Array;
  readonly rows: number;
  readonly length: number;
  readonly dim: number;
  readonly embedDim: number;
}

/**
 * Encodes each DISTINCT caption once (in batches of `batchSize`), outside any
 * gradient tape, so a diffusion trainer can look states up instead of running
 * the text encoder every step. Requires a frozen encoder: the cached states
 * would go stale if its weights changed.
 */
export function encodeCaptionsCached(
  encoder: TextEncoder,
  tokenizer: ByteTokenizer,
  captions: Iterable<string>,
  options: { batchSize?: number; onWarn?: (message: string) => void } = {},
): CaptionStateCache {
  if (encoder.namedTrainableParameters().length > 0) {
    throw new Error('encodeCaptionsCached: the text encoder has trainable parameters; call encoder.freeze() first (cached states would go stale)');
  }
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`encodeCaptionsCached: batchSize must be a positive integer, got ${batchSize}`);
  const distinct = [...new Set(captions)];
  if (distinct.length === 0) throw new Error('encodeCaptionsCached: no captions given');
  const index = new Map(distinct.map((c, i) => [c, i]));
  const parts: TextEncoderOutput[] = [];
  try {
    for (let start = 0; start < distinct.length; start += batchSize) {
      parts.push(encoder.encodeTexts(tokenizer, distinct.slice(start, start + batchSize), options.onWarn));
    }
    const states = parts.length === 1 ? tf.clone(parts[0].states) : (tf.concat(parts.map((p) => p.states), 0) as tf.Tensor3D);
    const mask = parts.length === 1 ? tf.clone(parts[0].mask) : (tf.concat(parts.map((p) => p.mask), 0) as tf.Tensor2D);
    const pooled = parts.length === 1 ? tf.clone(parts[0].pooled) : (tf.concat(parts.map((p) => p.pooled), 0) as tf.Tensor2D);
    return new CaptionStateCache(index, states, mask, pooled);
  } finally {
    for (const p of parts) tf.dispose([p.states, p.mask, p.pooled]);
  }
}
