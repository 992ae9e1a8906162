/**
 * The diffusion PRIOR of unCLIP / DALL-E 2 (Ramesh et al. 2022, "Hierarchical
 * Text-Conditional Image Generation with CLIP Latents",
 * https://arxiv.org/abs/2204.06125, sec. 2.1): a diffusion model over CLIP
 * IMAGE embeddings z_i, conditioned on the CLIP TEXT embedding z_t of the
 * caption. A decoder then turns the sampled image embedding into pixels.
 *
 * Notation map (paper -> here):
 *   z_i (image embedding)           x0 = imageEmbedScale * image embedding      [B, E]
 *   z_i noised to step t            x = qSample(x0, t, eps)                    [B, E]
 *   z_t (text embedding)            textEmbedding (unit norm)                  [B, E]
 *   "predict the unnoised z_i"      predictionType 'x0' (the default)
 *   caption dropped 10% of the time textEmbedding -> null_text_embedding (learned), where keep = 0
 *
 * Scale: a unit-norm embedding has components of size ~1/sqrt(E), while the
 * schedule's noise has unit variance per component, so diffusion happens on
 * sqrt(E) * embedding (components ~1), as lucidrains' DALLE2-pytorch
 * (`image_embed_scale = image_embed_dim ** 0.5`). After sampling the result is
 * L2-normalised (the decoder expects a unit CLIP embedding), which removes the
 * scale again.
 *
 * Architecture. DALL-E 2's prior is a decoder-only Transformer over a sequence
 * (caption tokens, z_t, time embedding, noised z_i, a query token). Our CLIP
 * embeddings are small (E ~ 128), so this is a residual MLP instead, with the
 * text and time injected into every block as a UNet injects its time embedding:
 *
 *   text   = keep * textEmbedding + (1 - keep) * null_text_embedding          [B, E]
 *   s      = imageEmbedScale * text                     (same scale as x)
 *   c      = time_embedding(sinusoidal(t)) + text_projection(s)               [B, W]
 *   h      = proj_in(concat(x, s)) + c                                        [B, W]
 *   per block:  h = h + fc2(act(fc1(norm(h) + emb_proj(silu(c)))))         (W -> mlpRatio W -> W)
 *   output = proj_out(norm_out(h))                      (zero-initialised)    [B, E]
 *
 * The zero-initialised output layer makes the untrained prior predict 0 (for
 * 'x0': the mean of the data in the limit of no information).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layerNorm';
import { Activation, activation, silu } from '../nn/activations';
import { timestepEmbedding } from '../nn/timestepEmbedding';
import { Rng, randomNormal } from '../backend/random';
import { PredictionType, PREDICTION_TYPES } from '../schedule/parameterization';
import { makeSchedule, Schedule } from '../schedule/schedule';
import { ScheduleConfig } from '../schedule/betas';
import { Checkpoint, CheckpointInfo, loadCheckpointWeights } from '../io/checkpoint';
import { Cond, Denoiser, SamplerName, SamplerOptions, SAMPLER_NAMES } from '../sample/types';
import { classifierFreeGuidance } from '../sample/guidance';
import { sample } from '../sample/sample';
import { l2Normalize } from './clip';
import { ModuleList, TimeEmbeddingMlp } from './unetBlocks';

// ---------------------------------------------------------------- config

export interface PriorConfig {
  /** E: width of the CLIP embeddings (text and image). */
  readonly embedDim: number;
  /** W: width of the residual stream. */
  readonly width: number;
  /** Number of residual MLP blocks. */
  readonly depth: number;
  /** Hidden width of each block's MLP = mlpRatio * W. */
  readonly mlpRatio: number;
  /** Width of the sinusoidal timestep embedding fed to the time MLP (even). */
  readonly timeEmbeddingDim: number;
  /** Activation inside the blocks' MLPs. */
  readonly activation: Activation;
  /** What the network predicts; DALL-E 2's prior predicts the clean embedding. */
  readonly predictionType: PredictionType;
  /** x0 = imageEmbedScale * (unit-norm) image embedding; the text enters at the same scale. Default sqrt(E). */
  readonly imageEmbedScale: number;
  /** Seed of the initial weights. */
  readonly seed: number;
}

export const PRIOR_DEFAULTS = {
  /** The default CLIP's embedDim (models/clip.ts). */
  embedDim: 128,
  /** 2E: wide enough to hold text, noisy sample and time. */
  width: 256,
  depth: 4,
  /** As a transformer MLP. */
  mlpRatio: 4,
  timeEmbeddingDim: 128,
  activation: 'gelu',
  /** DALL-E 2 sec. 2.1: "predict the unnoised z_i directly" (their MSE on z_i). */
  predictionType: 'x0',
  // imageEmbedScale: sqrt(embedDim), see PriorConfig.imageEmbedScale.
  seed: 0,
} as const satisfies Omit<PriorConfig, 'imageEmbedScale'>;

/** Merges `partial` over PRIOR_DEFAULTS (imageEmbedScale defaults to sqrt(embedDim)) and validates. */
export function priorConfig(partial: Partial<PriorConfig> = {}): PriorConfig {
  const embedDim = partial.embedDim ?? PRIOR_DEFAULTS.embedDim;
  const cfg: PriorConfig = { ...PRIOR_DEFAULTS, imageEmbedScale: Math.sqrt(embedDim), ...partial };
  for (const key of ['embedDim', 'width', 'depth', 'mlpRatio', 'timeEmbeddingDim'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0) throw new Error(`priorConfig: ${key} must be a positive integer, got ${cfg[key]}`);
  }
  if (cfg.timeEmbeddingDim % 2 !== 0) throw new Error(`priorConfig: timeEmbeddingDim must be even (sin and cos halves), got ${cfg.timeEmbeddingDim}`);
  if (cfg.activation !== 'gelu' && cfg.activation !== 'silu') throw new Error(`priorConfig: activation must be 'gelu' or 'silu', got '${String(cfg.activation)}'`);
  if (!PREDICTION_TYPES.includes(cfg.predictionType)) {
    throw new Error(`priorConfig: predictionType must be one of ${PREDICTION_TYPES.join(', ')}, got '${String(cfg.predictionType)}'`);
  }
  if (!(Number.isFinite(cfg.imageEmbedScale) && cfg.imageEmbedScale > 0)) {
    throw new Error(`priorConfig: imageEmbedScale must be a finite number > 0, got ${cfg.imageEmbedScale}`);
  }
  if (!Number.isInteger(cfg.seed)) throw new Error(`priorConfig: seed must be an integer, got ${cfg.seed}`);
  return cfg;
}

// ---------------------------------------------------------------- blocks

/** Pre-LN residual MLP block with the condition added after the norm: children norm, emb_proj, fc1, fc2. */
class PriorBlock extends Module {
  readonly norm: LayerNorm;
  readonly embProj: Linear;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(width: number, hidden: number, readonly act: Activation, rng: Rng) {
    super();
    this.norm = this.addChild('norm', new LayerNorm({ dim: width }));
    this.embProj = this.addChild('emb_proj', new Linear({ inFeatures: width, outFeatures: width, rng }));
    this.fc1 = this.addChild('fc1', new Linear({ inFeatures: width, outFeatures: hidden, rng }));
    this.fc2 = this.addChild('fc2', new Linear({ inFeatures: hidden, outFeatures: width, rng }));
  }

  /** h [B, W], siluC = silu(condition) [B, W] -> [B, W]. */
  apply(h: tf.Tensor2D, siluC: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const u = tf.add(this.norm.apply(h), this.embProj.apply(siluC));
      return tf.add(h, this.fc2.apply(activation(this.act, this.fc1.apply(u)))) as tf.Tensor2D;
    });
  }
}

// ---------------------------------------------------------------- the prior

export interface PriorInputs {
  /** Noisy scaled image embedding x_t [B, E]. */
  readonly x: tf.Tensor2D;
  /** Timesteps [B] (int32, or float32 for continuous time). */
  readonly t: tf.Tensor1D;
  /** Unit-norm CLIP text embeddings [B, E] (rows with keep = 0 are ignored). */
  readonly textEmbedding: tf.Tensor2D;
  /**
   * [B, 1] float32: 1 uses the row's text embedding, 0 the learned null embedding
   * (classifier-free guidance). Values between interpolate. Default: all 1.
   */
  readonly keep?: tf.Tensor2D | null;
}

/**
 * Parameters: null_text_embedding [E], time_embedding.{0,2}, text_projection,
 * proj_in, blocks.i.{norm, emb_proj, fc1, fc2}, norm_out, proj_out.
 */
export class DiffusionPrior extends Module {
  readonly config: PriorConfig;
  readonly nullTextEmbedding: tf.Variable;
  private readonly timeMlp: TimeEmbeddingMlp;
  private readonly textProjection: Linear;
  private readonly projIn: Linear;
  private readonly blocks: PriorBlock[] = [];
  private readonly normOut: LayerNorm;
  private readonly projOut: Linear;

  constructor(config: Partial<PriorConfig> = {}) {
    super();
    const cfg = priorConfig(config);
    this.config = cfg;
    const { embedDim: E, width: W } = cfg;
    const rng = new Rng(`prior/${cfg.seed}`);
    // N(0, 1/E): a random direction of norm ~1, like the unit text embeddings it stands in for.
    this.nullTextEmbedding = this.addParameter('null_text_embedding', randomNormal([E], rng, 0, 1 / Math.sqrt(E)), 'plain');
    this.timeMlp = this.addChild('time_embedding', new TimeEmbeddingMlp({ inDim: cfg.timeEmbeddingDim, dim: W, rng }));
    this.textProjection = this.addChild('text_projection', new Linear({ inFeatures: E, outFeatures: W, rng }));
    this.projIn = this.addChild('proj_in', new Linear({ inFeatures: 2 * E, outFeatures: W, rng }));
    const list = this.addChild('blocks', new ModuleList());
    for (let i = 0; i < cfg.depth; i++) this.blocks.push(list.push(new PriorBlock(W, cfg.mlpRatio * W, cfg.activation, rng)));
    this.normOut = this.addChild('norm_out', new LayerNorm({ dim: W }));
    this.projOut = this.addChild('proj_out', new Linear({ inFeatures: W, outFeatures: E, rng, init: 'zeros' }));
  }

  /** The raw model output [B, E] (x0, eps or v of the scaled embedding, per config.predictionType). */
  apply({ x, t, textEmbedding, keep }: PriorInputs): tf.Tensor2D {
    const E = this.config.embedDim;
    if (x.rank !== 2 || x.shape[1] !== E) throw new Error(`DiffusionPrior.apply: x must be [B, ${E}], got [${x.shape}]`);
    const B = x.shape[0];
    if (t.rank !== 1 || t.shape[0] !== B) throw new Error(`DiffusionPrior.apply: t must be [${B}] (one timestep per row of x), got [${t.shape}]`);
    if (textEmbedding.rank !== 2 || textEmbedding.shape[0] !== B || textEmbedding.shape[1] !== E) {
      throw new Error(`DiffusionPrior.apply: textEmbedding must be [${B}, ${E}], got [${textEmbedding.shape}]`);
    }
    const k = keep ?? null;
    if (k !== null && (k.rank !== 2 || k.shape[0] !== B || k.shape[1] !== 1 || k.dtype !== 'float32')) {
      throw new Error(`DiffusionPrior.apply: keep must be float32 [${B}, 1], got ${k.dtype} [${k.shape}]`);
    }
    return tf.tidy(() => {
      const text = k === null
        ? textEmbedding
        : tf.add(tf.mul(textEmbedding, k), tf.mul(tf.reshape(this.nullTextEmbedding, [1, E]), tf.sub(1, k))); // [B, E]
      const s = tf.mul(text, this.config.imageEmbedScale) as tf.Tensor2D;
      const temb = this.timeMlp.apply(timestepEmbedding(t, this.config.timeEmbeddingDim)); // [B, W]
      const c = tf.add(temb, this.textProjection.apply(s)) as tf.Tensor2D; // [B, W]
      let h = tf.add(this.projIn.apply(tf.concat([x, s], 1)), c) as tf.Tensor2D; // [B, W]
      const siluC = silu(c);
      for (const block of this.blocks) h = block.apply(h, siluC);
      return this.projOut.apply(this.normOut.apply(h)) as tf.Tensor2D; // [B, E]
    });
  }
}

// ---------------------------------------------------------------- sampling

const COND_KEYS = ['textEmbedding', 'keep'];

/**
 * The prior as a sampler's Denoiser. Condition keys:
 *   textEmbedding [B, E] (unit norm)   keep [B, 1] float32 (optional, default 1; 0 = null embedding)
 * cond null samples unconditionally (the null embedding everywhere). Unknown keys are an error.
 */
export function priorDenoiser(prior: DiffusionPrior): Denoiser {
  const E = prior.config.embedDim;
  return (x: tf.Tensor, t: tf.Tensor1D, cond: Cond | null): tf.Tensor => {
    const c = cond ?? {};
    const unknown = Object.keys(c).filter((key) => !COND_KEYS.includes(key));
    if (unknown.length > 0) throw new Error(`priorDenoiser: unknown condition key(s) ${unknown.join(', ')} (known: ${COND_KEYS.join(', ')})`);
    if (cond !== null && c.textEmbedding === undefined) throw new Error(`priorDenoiser: cond needs 'textEmbedding' [B, ${E}] (pass cond null to sample unconditionally)`);
    return tf.tidy(() => {
      const B = x.shape[0];
      const textEmbedding = (c.textEmbedding as tf.Tensor2D | undefined) ?? tf.zeros([B, E]);
      const keep = (c.keep as tf.Tensor2D | undefined) ?? (cond === null ? tf.zeros([B, 1]) : null);
      return prior.apply({ x: x as tf.Tensor2D, t, textEmbedding: textEmbedding as tf.Tensor2D, keep });
    });
  };
}

/** The conditional Cond of unit-norm text embeddings [B, E]: { textEmbedding, keep = ones [B, 1] }. The caller disposes keep. */
export function priorCond(prior: DiffusionPrior, textEmbeddings: tf.Tensor2D): Cond {
  assertEmbeddings('priorCond', prior, textEmbeddings);
  return { textEmbedding: textEmbeddings, keep: tf.ones([textEmbeddings.shape[0], 1]) };
}

/** The null Cond (classifier-free guidance's uncond): { textEmbedding: zeros [1, E], keep: zeros [1, 1] }. The caller disposes both. */
export function priorNullCond(prior: DiffusionPrior): Cond {
  return { textEmbedding: tf.zeros([1, prior.config.embedDim]), keep: tf.zeros([1, 1]) };
}

export interface PriorSamplingOptions extends Pick<SamplerOptions, 'onStep' | 'signal'> {
  /** Default 'ddim' (deterministic). */
  readonly sampler?: SamplerName;
  /** Denoiser evaluations (x2 with guidance != 1). */
  readonly steps: number;
  /** Classifier-free guidance scale: 1 = conditional only (one pass), 0 = unconditional. Default 1. */
  readonly guidance?: number;
  /** Seed of x_T (and DDPM's per-step noise), keyed per row. */
  readonly seed: number | string;
  /** Noise index of row 0 (noise.ts). Default 0. */
  readonly firstIndex?: number;
}

export const PRIOR_SAMPLING_DEFAULTS = {
  sampler: 'ddim',
  /** No guidance. */
  guidance: 1,
  firstIndex: 0,
} as const satisfies Partial<PriorSamplingOptions>;

function assertEmbeddings(where: string, prior: DiffusionPrior, emb: tf.Tensor): void {
  const E = prior.config.embedDim;
  if (emb.rank !== 2 || emb.shape[1] !== E || emb.shape[0] < 1) {
    throw new Error(`${where}: text embeddings must be [B, ${E}] (the prior's embedDim), got [${emb.shape}]`);
  }
}

/**
 * Samples image embeddings for unit-norm text embeddings [B, E]: runs the
 * sampler over [B, E] with the prior (and classifier-free guidance), then
 * L2-normalises the result. Returns unit-norm image embeddings [B, E].
 */
export async function samplePriorEmbeddings(
  prior: DiffusionPrior,
  schedule: Schedule,
  textEmbeddings: tf.Tensor2D,
  opts: PriorSamplingOptions,
): Promise<tf.Tensor2D> {
  assertEmbeddings('samplePriorEmbeddings', prior, textEmbeddings);
  const sampler = opts.sampler ?? PRIOR_SAMPLING_DEFAULTS.sampler;
  if (!SAMPLER_NAMES.includes(sampler)) throw new Error(`samplePriorEmbeddings: sampler must be one of ${SAMPLER_NAMES.join(', ')}, got '${String(sampler)}'`);
  const guidance = opts.guidance ?? PRIOR_SAMPLING_DEFAULTS.guidance;
  if (!(Number.isFinite(guidance) && guidance >= 0)) throw new Error(`samplePriorEmbeddings: guidance must be a finite number >= 0, got ${guidance}`);
  const cond = priorCond(prior, textEmbeddings);
  const uncond = guidance === 1 ? null : priorNullCond(prior);
  try {
    const base = priorDenoiser(prior);
    const denoise = uncond === null ? base : classifierFreeGuidance(base, { scale: guidance, uncond });
    const x = await sample(sampler, denoise, textEmbeddings.shape, schedule, {
      steps: opts.steps,
      predictionType: prior.config.predictionType,
      seed: opts.seed,
      firstIndex: opts.firstIndex ?? PRIOR_SAMPLING_DEFAULTS.firstIndex,
      cond,
      ...(opts.onStep !== undefined ? { onStep: opts.onStep } : {}),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    });
    const out = l2Normalize(x as tf.Tensor2D); // the scale drops out
    x.dispose();
    return out;
  } finally {
    tf.dispose([cond.keep, ...(uncond === null ? [] : Object.values(uncond))]);
  }
}

// ---------------------------------------------------------------- checkpoint

/** `kind` of prior weight files. */
export const PRIOR_CHECKPOINT_KIND = 'prior';

export interface LoadedPrior {
  readonly prior: DiffusionPrior;
  /** The schedule it was trained with. */
  readonly schedule: Schedule;
  readonly info: CheckpointInfo;
}

/** Rebuilds a prior from its checkpoint (config and schedule from the metadata). The caller disposes it. */
export function priorFromCheckpoint(checkpoint: Checkpoint): LoadedPrior {
  const { info, source } = checkpoint;
  if (info.kind !== PRIOR_CHECKPOINT_KIND) throw new Error(`${source}: expected a '${PRIOR_CHECKPOINT_KIND}' checkpoint, got kind '${info.kind}'`);
  const config = info.config as { prior?: PriorConfig; schedule?: ScheduleConfig } | null;
  if (config?.prior === undefined) throw new Error(`${source}: the metadata config has no 'prior' entry`);
  if (config.schedule === undefined) throw new Error(`${source}: the metadata config has no 'schedule' entry`);
  const schedule = makeSchedule(config.schedule);
  const prior = new DiffusionPrior(priorConfig(config.prior));
  try {
    loadCheckpointWeights(checkpoint, prior, { expectKind: PRIOR_CHECKPOINT_KIND });
  } catch (e) {
    prior.dispose();
    throw e;
  }
  return { prior, schedule, info };
}
