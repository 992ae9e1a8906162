/**
 * Conditional diffusion UNet (Ho et al. 2020, DDPM; Rombach et al. 2022 for
 * cross-attention conditioning), architecture-identical to the PyTorch peer
 * /work/shared/peers/torch_unet.py: same layers, same order, same parameter
 * names, so a peer state_dict loads 1:1 (see models/unetTorch.ts).
 *
 *   t_emb  = temb.2(SiLU(temb.0(sinusoid(t))))                        [B, D_t]
 *          (+ class_emb(label))             when numClasses is set   (ours)
 *          (+ context_time_proj(masked mean of context tokens))      (ours)
 *   h      = conv_in(x);  skips = [h]
 *   down.* : ResBlock (push h) | AttnBlock (replaces the last skip) | stride-2 conv (push h)
 *   mid    : ResBlock, AttnBlock, ResBlock
 *   up.*   : ResBlock(cat([h, skips.pop()], channels)) | AttnBlock | Upsample
 *   out    = conv_out(SiLU(norm_out(h)))                              [B, H, W, outChannels]
 *
 * Conditioning: cross-attention in every AttnBlock to token states
 * [B, L, contextDim] with a key padding mask, and optionally a class label and
 * the pooled context added to the time embedding (cheap global conditioning
 * that every ResBlock sees, as in Imagen's pooled text embedding, Saharia et al.
 * 2022). The class embedding has numClasses + 1 rows; the last is the null
 * class used for condition dropout and classifier-free guidance (Ho & Salimans 2022).
 *
 * conv_out starts at zero (zeroInitOutput), so the untrained model predicts 0,
 * the mean of the epsilon / v targets; this makes early training stable.
 *
 * NHWC throughout, conv kernels HWIO, dense weights [in, out].
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Rng, keyedRng } from '../backend/random';
import { Conv2d } from '../nn/conv2d';
import { Linear } from '../nn/linear';
import { GroupNorm } from '../nn/groupNorm';
import { Embedding } from '../nn/embedding';
import { silu } from '../nn/activations';
import { timestepEmbedding } from '../nn/timestepEmbedding';
import { AttnBlock, CrossContext, ModuleList, ResBlock, TimeEmbeddingMlp, Upsample } from './unetBlocks';
import { PredictionType, PREDICTION_TYPES } from '../schedule/parameterization';
import { Checkpoint, loadCheckpointWeights } from '../io/checkpoint';

// ----------------------------------------------------------------------------
// config

// One definition of the prediction types (the schedule's parameterisations), re-exported for model users.
export type { PredictionType };
export { PREDICTION_TYPES };

export interface UNetConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly sampleSize: number;
  readonly baseChannels: number;
  readonly channelMults: readonly number[];
  readonly numResBlocks: number;
  readonly attentionResolutions: readonly number[];
  readonly heads: number;
  readonly groups: number;
  readonly dropout: number;
  readonly timeEmbeddingInputDim: number;
  readonly timeEmbeddingDim: number;
  readonly contextDim: number | null;
  readonly numClasses: number | null;
  readonly addPooledContextToTime: boolean;
  readonly augLevelEmbedding: boolean;
  readonly imageEmbeddingDim: number | null;
  readonly imageEmbeddingTokens: number;
  readonly predictionType: PredictionType;
  readonly zeroInitOutput: boolean;
}

/** What unetConfig() accepts: any subset; outChannels may be null (= inChannels). */
export type UNetConfigInput = Partial<Omit<UNetConfig, 'outChannels'>> & { readonly outChannels?: number | null };

/** Defaults = the peer's benchmark model (1x32x32, base 32, mults 1,2,2, attention at 8x8), unconditional. */
export const UNET_DEFAULTS: Readonly<Omit<UNetConfig, 'outChannels'> & { outChannels: number | null }> = {
  /** Image channels in (1 for MNIST, 3 for RGB, 4 for SD-style latents). */
  inChannels: 1,
  /** Channels out; null = inChannels (epsilon / v / x0 all have the input's shape). */
  outChannels: null,
  /** Input height = width; must be divisible by 2^(levels - 1). */
  sampleSize: 32,
  /** Width of level 0; level l has baseChannels * channelMults[l] channels. */
  baseChannels: 32,
  /** Width multiplier per resolution level; one downsample between consecutive levels. */
  channelMults: [1, 2, 2],
  /** ResBlocks per level on the way down (the way up has one more, for the extra skip). */
  numResBlocks: 2,
  /** Resolutions (H of the feature map) whose ResBlocks are followed by an AttnBlock. The middle always has one. */
  attentionResolutions: [8],
  /** Attention heads; must divide the width of every level with attention. */
  heads: 4,
  /** GroupNorm groups; must divide every width. */
  groups: 8,
  /** Dropout before each ResBlock's second conv (DDPM used 0.1 on CIFAR-10; the peer has none). */
  dropout: 0,
  /** Width of the sinusoidal timestep features (the peer's TEMB_IN). */
  timeEmbeddingInputDim: 32,
  /** Width of the time embedding after the MLP, fed to every ResBlock (the peer's TEMB_DIM). */
  timeEmbeddingDim: 128,
  /** Width of the context tokens for cross-attention; null = no cross-attention. */
  contextDim: null,
  /** Number of class labels; null = no class conditioning. Row numClasses of class_emb is the null class. */
  numClasses: null,
  /** Add Linear(masked mean of context) to the time embedding; resolves to false when contextDim is null. */
  addPooledContextToTime: true,
  /**
   * Embed a noise-augmentation level s [B] (a timestep index) like the timestep and add it to the
   * time embedding: the super-resolution stage of a cascade, told how corrupted its low-res input is.
   */
  augLevelEmbedding: false,
  /**
   * Width E of a CLIP image embedding to condition on (the DALL-E 2 decoder); null = none. It is
   * projected to imageEmbeddingTokens extra cross-attention tokens of width contextDim (appended to
   * any text tokens) and added to the time embedding (Ramesh et al. 2022, sec. 2.1).
   */
  imageEmbeddingDim: null,
  /** Extra context tokens made from the image embedding (DALL-E 2 used four). */
  imageEmbeddingTokens: 4,
  /** What the network is trained to predict; stored for samplers, the network is the same. */
  predictionType: 'epsilon',
  /** Zero-initialise conv_out so the untrained model outputs exactly 0. */
  zeroInitOutput: true,
};

const CONFIG_KEYS = Object.keys(UNET_DEFAULTS) as Array<keyof UNetConfig>;

/**
 * Upper bounds of the config's integers: far beyond any model this library trains, and low
 * enough that a corrupt or hostile config (a checkpoint's metadata, a command line) is refused
 * before it allocates gigabytes (issue: "every number from a file is bounded").
 */
const MAX: Readonly<Record<string, number>> = {
  inChannels: 64, outChannels: 64, sampleSize: 1024, baseChannels: 2048, numResBlocks: 16, heads: 128, groups: 512,
  timeEmbeddingInputDim: 8192, timeEmbeddingDim: 8192, channelMult: 64, levels: 8, contextDim: 8192, numClasses: 1_000_000,
  imageEmbeddingDim: 8192, imageEmbeddingTokens: 256,
};

function checkInt(name: string, v: unknown, min: number, max = MAX[name.replace(/\[\d+\]$/, '')] ?? Number.MAX_SAFE_INTEGER): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`unetConfig: ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
}

/** Feature-map resolution of each level: sampleSize / 2^l. */
export function levelResolutions(config: Pick<UNetConfig, 'sampleSize' | 'channelMults'>): number[] {
  return config.channelMults.map((_, l) => config.sampleSize / 2 ** l);
}

/** Merges `partial` over UNET_DEFAULTS and validates; errors name the field, expected vs received. */
export function unetConfig(partial: UNetConfigInput = {}): UNetConfig {
  for (const k of Object.keys(partial)) {
    if (!(CONFIG_KEYS as string[]).includes(k)) throw new Error(`unetConfig: unknown field '${k}'; known fields: ${CONFIG_KEYS.join(', ')}`);
  }
  const m = { ...UNET_DEFAULTS, ...partial };
  checkInt('inChannels', m.inChannels, 1);
  const outChannels = m.outChannels ?? m.inChannels;
  checkInt('outChannels', outChannels, 1);
  checkInt('sampleSize', m.sampleSize, 1);
  checkInt('baseChannels', m.baseChannels, 1);
  checkInt('numResBlocks', m.numResBlocks, 1);
  checkInt('heads', m.heads, 1);
  checkInt('groups', m.groups, 1);
  checkInt('timeEmbeddingInputDim', m.timeEmbeddingInputDim, 2);
  if (m.timeEmbeddingInputDim % 2 !== 0) throw new Error(`unetConfig: timeEmbeddingInputDim must be even (sin and cos halves), got ${m.timeEmbeddingInputDim}`);
  checkInt('timeEmbeddingDim', m.timeEmbeddingDim, 1);
  if (!Array.isArray(m.channelMults) || m.channelMults.length === 0 || m.channelMults.length > MAX.levels) {
    throw new Error(`unetConfig: channelMults must be a list of 1 to ${MAX.levels} levels, got ${JSON.stringify(m.channelMults)}`);
  }
  m.channelMults.forEach((v, i) => checkInt(`channelMults[${i}]`, v, 1, MAX.channelMult));
  const levels = m.channelMults.length;
  const factor = 2 ** (levels - 1);
  if (m.sampleSize % factor !== 0) {
    throw new Error(`unetConfig: sampleSize ${m.sampleSize} must be divisible by 2^(levels-1) = ${factor} (${levels} levels in channelMults)`);
  }
  const widths = m.channelMults.map((k) => m.baseChannels * k);
  widths.forEach((w, l) => {
    if (w % m.groups !== 0) {
      throw new Error(`unetConfig: groups (${m.groups}) must divide every width; level ${l} has baseChannels*channelMults[${l}] = ${w}`);
    }
  });
  if (m.baseChannels % m.groups !== 0) throw new Error(`unetConfig: groups (${m.groups}) must divide baseChannels (${m.baseChannels})`);
  const resolutions = levelResolutions(m);
  if (!Array.isArray(m.attentionResolutions)) throw new Error(`unetConfig: attentionResolutions must be a list, got ${JSON.stringify(m.attentionResolutions)}`);
  for (const r of m.attentionResolutions) {
    const l = resolutions.indexOf(r);
    if (l < 0) {
      throw new Error(`unetConfig: attention resolution ${r} is never reached; the levels run at ${resolutions.join(', ')} (sampleSize ${m.sampleSize})`);
    }
    if (widths[l] % m.heads !== 0) throw new Error(`unetConfig: heads (${m.heads}) must divide the width ${widths[l]} of level ${l} (resolution ${r}, which has attention)`);
  }
  if (widths[levels - 1] % m.heads !== 0) {
    throw new Error(`unetConfig: heads (${m.heads}) must divide the middle block's width ${widths[levels - 1]} (the middle always has attention)`);
  }
  if (typeof m.dropout !== 'number' || !(m.dropout >= 0 && m.dropout < 1)) throw new Error(`unetConfig: dropout must be in [0, 1), got ${m.dropout}`);
  if (m.contextDim !== null) checkInt('contextDim', m.contextDim, 1);
  if (m.numClasses !== null) checkInt('numClasses', m.numClasses, 1);
  if (partial.addPooledContextToTime === true && m.contextDim === null) {
    throw new Error('unetConfig: addPooledContextToTime is true but contextDim is null (there is no context to pool)');
  }
  if (typeof m.addPooledContextToTime !== 'boolean') throw new Error(`unetConfig: addPooledContextToTime must be a boolean, got ${JSON.stringify(m.addPooledContextToTime)}`);
  if (!PREDICTION_TYPES.includes(m.predictionType)) {
    throw new Error(`unetConfig: predictionType must be one of ${PREDICTION_TYPES.join(', ')}, got ${JSON.stringify(m.predictionType)}`);
  }
  if (m.imageEmbeddingDim !== null) {
    checkInt('imageEmbeddingDim', m.imageEmbeddingDim, 1);
    if (m.contextDim === null) throw new Error('unetConfig: imageEmbeddingDim needs contextDim (the width of the tokens the image embedding is projected to)');
  }
  checkInt('imageEmbeddingTokens', m.imageEmbeddingTokens, 1);
  if (typeof m.augLevelEmbedding !== 'boolean') throw new Error(`unetConfig: augLevelEmbedding must be a boolean, got ${JSON.stringify(m.augLevelEmbedding)}`);
  if (typeof m.zeroInitOutput !== 'boolean') throw new Error(`unetConfig: zeroInitOutput must be a boolean, got ${JSON.stringify(m.zeroInitOutput)}`);
  return {
    ...m,
    outChannels,
    addPooledContextToTime: m.addPooledContextToTime && m.contextDim !== null,
    channelMults: [...m.channelMults],
    attentionResolutions: [...m.attentionResolutions],
  };
}

// ----------------------------------------------------------------------------
// model

export interface UNetInputs {
  /** Noisy images [B, H, W, inChannels], H = W = sampleSize. */
  readonly x: tf.Tensor4D;
  /** Timesteps [B], float32 or int32 (fractional t is fine: the embedding is continuous). */
  readonly t: tf.Tensor1D;
  /** Token states [B, L, contextDim]; required iff the model has contextDim. */
  readonly context?: tf.Tensor3D | null;
  /** [B, L]: 1 = real token, 0 = padding (never attended, excluded from the pooled mean). null = all real. */
  readonly contextMask?: tf.Tensor2D | null;
  /** Class ids [B] int32 in [0, numClasses]; numClasses is the null class. Required iff the model has numClasses. */
  readonly classLabels?: tf.Tensor1D | null;
  /** Noise-augmentation levels [B] (timestep indices, float32 or int32); required iff config.augLevelEmbedding. */
  readonly augLevels?: tf.Tensor1D | null;
  /** CLIP image embeddings [B, imageEmbeddingDim] (zeros = the null condition); required iff config.imageEmbeddingDim. */
  readonly imageEmbedding?: tf.Tensor2D | null;
  /**
   * Read classLabels back to check their range (default true). Samplers and the trainer,
   * which build labels from values they validated in JS, pass false: no read-back per step.
   */
  readonly checkLabels?: boolean;
  /** Enables dropout (when config.dropout > 0). Default false. */
  readonly training?: boolean;
  /** Seed of the dropout masks (required when training with dropout > 0); use a new one per step. */
  readonly dropoutSeed?: number;
}

type DownLayer = { kind: 'res'; block: ResBlock } | { kind: 'attn'; block: AttnBlock } | { kind: 'downsample'; conv: Conv2d };
type UpLayer = { kind: 'res'; block: ResBlock } | { kind: 'attn'; block: AttnBlock } | { kind: 'upsample'; block: Upsample };

export class UNet extends Module {
  readonly config: UNetConfig;
  private readonly tembMlp: TimeEmbeddingMlp;
  private readonly classEmb: Embedding | null;
  private readonly contextTimeProj: Linear | null;
  private readonly augTembMlp: TimeEmbeddingMlp | null;
  private readonly imageEmbTokens: Linear | null;
  private readonly imageEmbTime: Linear | null;
  private readonly convIn: Conv2d;
  private readonly downLayers: DownLayer[] = [];
  private readonly midLayers: [ResBlock, AttnBlock, ResBlock];
  private readonly upLayers: UpLayer[] = [];
  private readonly normOut: GroupNorm;
  private readonly convOut: Conv2d;

  /** Builds the network; `config` is validated (pass unetConfig(...) or a full config). */
  constructor(config: UNetConfig, rng: Rng) {
    super();
    const cfg = unetConfig(config);
    this.config = cfg;
    const { baseChannels: base, groups, heads, contextDim, dropout } = cfg;
    const tembDim = cfg.timeEmbeddingDim;
    const attnRes = new Set(cfg.attentionResolutions);
    const resBlock = (ci: number, co: number): ResBlock => new ResBlock({ inChannels: ci, outChannels: co, tembDim, groups, dropout, rng });
    const attnBlock = (c: number): AttnBlock => new AttnBlock({ channels: c, heads, groups, contextDim, rng });

    // Registration order follows the peer's __init__, so parameter lists and the rng stream line up with it.
    this.tembMlp = this.addChild('temb', new TimeEmbeddingMlp({ inDim: cfg.timeEmbeddingInputDim, dim: tembDim, rng }));
    this.convIn = this.addChild('conv_in', new Conv2d({ inChannels: cfg.inChannels, outChannels: base, kernelSize: 3, padding: 1, rng }));

    const down = this.addChild('down', new ModuleList());
    const skips: number[] = [base];
    let ch = base;
    let res = cfg.sampleSize;
    cfg.channelMults.forEach((mult, level) => {
      for (let i = 0; i < cfg.numResBlocks; i++) {
        this.downLayers.push({ kind: 'res', block: down.push(resBlock(ch, base * mult)) });
        ch = base * mult;
        if (attnRes.has(res)) this.downLayers.push({ kind: 'attn', block: down.push(attnBlock(ch)) });
        skips.push(ch);
      }
      if (level !== cfg.channelMults.length - 1) {
        const conv = new Conv2d({ inChannels: ch, outChannels: ch, kernelSize: 3, stride: 2, padding: 1, rng });
        this.downLayers.push({ kind: 'downsample', conv: down.push(conv) });
        skips.push(ch);
        res /= 2;
      }
    });

    const mid = this.addChild('mid', new ModuleList());
    this.midLayers = [mid.push(resBlock(ch, ch)), mid.push(attnBlock(ch)), mid.push(resBlock(ch, ch))];

    const up = this.addChild('up', new ModuleList());
    for (let level = cfg.channelMults.length - 1; level >= 0; level--) {
      const co = base * cfg.channelMults[level];
      for (let i = 0; i < cfg.numResBlocks + 1; i++) {
        this.upLayers.push({ kind: 'res', block: up.push(resBlock(ch + (skips.pop() as number), co)) });
        ch = co;
        if (attnRes.has(res)) this.upLayers.push({ kind: 'attn', block: up.push(attnBlock(ch)) });
      }
      if (level !== 0) {
        this.upLayers.push({ kind: 'upsample', block: up.push(new Upsample({ channels: ch, rng })) });
        res *= 2;
      }
    }
    if (skips.length !== 0) throw new Error(`UNet: internal error, ${skips.length} skip(s) left unused`);

    this.normOut = this.addChild('norm_out', new GroupNorm({ numGroups: groups, numChannels: ch }));
    this.convOut = this.addChild(
      'conv_out',
      new Conv2d({ inChannels: ch, outChannels: cfg.outChannels, kernelSize: 3, padding: 1, rng, init: cfg.zeroInitOutput ? 'zeros' : 'torch' }),
    );

    // Our additions (not in the peer): registered last so the peer's parameters keep their order.
    this.classEmb = cfg.numClasses !== null ? this.addChild('class_emb', new Embedding({ numEmbeddings: cfg.numClasses + 1, dim: tembDim, rng })) : null;
    this.contextTimeProj =
      contextDim !== null && cfg.addPooledContextToTime
        ? this.addChild('context_time_proj', new Linear({ inFeatures: contextDim, outFeatures: tembDim, rng }))
        : null;
    this.augTembMlp = cfg.augLevelEmbedding ? this.addChild('aug_temb', new TimeEmbeddingMlp({ inDim: cfg.timeEmbeddingInputDim, dim: tembDim, rng })) : null;
    const e = cfg.imageEmbeddingDim;
    this.imageEmbTokens = e !== null && contextDim !== null
      ? this.addChild('image_emb_tokens', new Linear({ inFeatures: e, outFeatures: cfg.imageEmbeddingTokens * contextDim, rng }))
      : null;
    this.imageEmbTime = e !== null ? this.addChild('image_emb_time', new Linear({ inFeatures: e, outFeatures: tembDim, rng })) : null;
  }

  /** The row of class_emb used for "no label" (condition dropout / classifier-free guidance). */
  get nullClass(): number {
    if (this.config.numClasses === null) throw new Error('UNet.nullClass: this model has no class conditioning (numClasses is null)');
    return this.config.numClasses;
  }

  /** The network output [B, H, W, outChannels] (epsilon, v or x0 per config.predictionType). */
  apply(args: UNetInputs): tf.Tensor4D {
    this.validateInputs(args);
    const cfg = this.config;
    const context = args.context ?? null;
    const training = args.training ?? false;
    const useDropout = training && cfg.dropout > 0;
    if (useDropout && args.dropoutSeed === undefined) {
      throw new Error(`UNet.apply: training with dropout ${cfg.dropout} needs a dropoutSeed (seeded randomness; use a new seed per step)`);
    }
    const dropoutRng = (name: string): Rng | null => (useDropout ? keyedRng(args.dropoutSeed as number, 'unet-dropout', name) : null);

    return tf.tidy(() => {
      let tokens = context; // [B, L, D]
      let mask = args.contextMask != null ? (tf.cast(args.contextMask, 'float32') as tf.Tensor2D) : null; // [B, L]
      if (this.imageEmbTokens !== null) {
        // DALL-E 2 decoder: the image embedding becomes k extra tokens, always attended.
        const image = args.imageEmbedding as tf.Tensor2D; // [B, E]
        const b = image.shape[0];
        const k = cfg.imageEmbeddingTokens;
        const extra = tf.reshape(this.imageEmbTokens.apply(image), [b, k, cfg.contextDim as number]) as tf.Tensor3D;
        if (tokens === null) {
          tokens = extra;
          mask = null;
        } else {
          const textMask = mask ?? (tf.ones([b, tokens.shape[1]]) as tf.Tensor2D);
          tokens = tf.concat([tokens, extra], 1) as tf.Tensor3D;
          mask = tf.concat([textMask, tf.ones([b, k])], 1) as tf.Tensor2D;
        }
      }
      const cross: CrossContext | null = tokens === null ? null : { tokens, mask };

      // time embedding (+ global conditioning)
      let temb: tf.Tensor2D = this.tembMlp.apply(timestepEmbedding(args.t, cfg.timeEmbeddingInputDim)); // [B, D_t]
      if (this.classEmb !== null) {
        const labels = args.classLabels as tf.Tensor1D; // int32 checked above
        temb = tf.add(temb, this.classEmb.apply(labels, { checkRange: args.checkLabels ?? true }) as tf.Tensor2D);
      }
      if (this.contextTimeProj !== null && context !== null) {
        const textMask = args.contextMask != null ? (tf.cast(args.contextMask, 'float32') as tf.Tensor2D) : null;
        temb = tf.add(temb, this.contextTimeProj.apply(maskedMean(context, textMask)) as tf.Tensor2D); // the text tokens only
      }
      if (this.imageEmbTime !== null) temb = tf.add(temb, this.imageEmbTime.apply(args.imageEmbedding as tf.Tensor2D) as tf.Tensor2D);
      if (this.augTembMlp !== null) {
        temb = tf.add(temb, this.augTembMlp.apply(timestepEmbedding(args.augLevels as tf.Tensor1D, cfg.timeEmbeddingInputDim)));
      }
      const tembAct = silu(temb) as tf.Tensor2D; // every ResBlock starts with Linear(SiLU(t_emb))

      // down
      let h = this.convIn.apply(args.x); // [B, S, S, base]
      const hs: tf.Tensor4D[] = [h];
      this.downLayers.forEach((layer, i) => {
        if (layer.kind === 'res') {
          h = layer.block.apply(h, tembAct, dropoutRng(`down.${i}`));
          hs.push(h);
        } else if (layer.kind === 'attn') {
          h = layer.block.apply(h, cross);
          hs[hs.length - 1] = h; // the stored skip is the output after attention
        } else {
          h = layer.conv.apply(h);
          hs.push(h);
        }
      });

      // middle
      h = this.midLayers[0].apply(h, tembAct, dropoutRng('mid.0'));
      h = this.midLayers[1].apply(h, cross);
      h = this.midLayers[2].apply(h, tembAct, dropoutRng('mid.2'));

      // up
      this.upLayers.forEach((layer, i) => {
        if (layer.kind === 'res') {
          const skip = hs.pop() as tf.Tensor4D;
          h = layer.block.apply(tf.concat([h, skip], 3), tembAct, dropoutRng(`up.${i}`));
        } else if (layer.kind === 'attn') {
          h = layer.block.apply(h, cross);
        } else {
          h = layer.block.apply(h);
        }
      });

      return this.convOut.apply(this.normOut.applySilu(h) as tf.Tensor4D); // [B, S, S, outChannels]
    });
  }

  /** Shape-only checks (no data reads): clear errors before any math. */
  private validateInputs(args: UNetInputs): void {
    const cfg = this.config;
    const { x, t } = args;
    const S = cfg.sampleSize;
    if (x.rank !== 4) throw new Error(`UNet.apply: x must be [B, H, W, C] (NHWC), got shape [${x.shape}]`);
    const [B, H, W, C] = x.shape;
    if (H !== S || W !== S || C !== cfg.inChannels) {
      throw new Error(`UNet.apply: x must be [B, ${S}, ${S}, ${cfg.inChannels}] (NHWC; sampleSize ${S}, inChannels ${cfg.inChannels}), got [${x.shape}]`);
    }
    if (t.rank !== 1 || t.shape[0] !== B) throw new Error(`UNet.apply: t must be [B] = [${B}], got shape [${t.shape}]`);
    if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`UNet.apply: t must be float32 or int32, got ${t.dtype}`);

    const context = args.context ?? null;
    const mask = args.contextMask ?? null;
    const image = args.imageEmbedding ?? null;
    if (cfg.imageEmbeddingDim === null) {
      if (image !== null) throw new Error('UNet.apply: imageEmbedding given, but this model has no image-embedding conditioning (imageEmbeddingDim is null)');
    } else {
      if (image === null) throw new Error(`UNet.apply: this model is conditioned on a CLIP image embedding; pass imageEmbedding [B, ${cfg.imageEmbeddingDim}] (zeros = null)`);
      if (image.rank !== 2 || image.shape[0] !== B || image.shape[1] !== cfg.imageEmbeddingDim) {
        throw new Error(`UNet.apply: imageEmbedding must be [${B}, ${cfg.imageEmbeddingDim}], got [${image.shape}]`);
      }
    }
    if (cfg.contextDim === null) {
      if (context !== null) throw new Error(`UNet.apply: context [${context.shape}] given, but this model has no cross-attention (contextDim is null)`);
      if (mask !== null) throw new Error('UNet.apply: contextMask given, but this model has no cross-attention (contextDim is null)');
    } else {
      if (context === null && cfg.imageEmbeddingDim === null) {
        throw new Error(`UNet.apply: this model cross-attends to a context [B, L, ${cfg.contextDim}]; pass context (an empty-caption encoding for unconditional)`);
      }
      if (context === null) {
        if (mask !== null) throw new Error('UNet.apply: contextMask given without context');
      } else if (context.rank !== 3 || context.shape[0] !== B || context.shape[2] !== cfg.contextDim || context.shape[1] < 1) {
        throw new Error(`UNet.apply: context must be [${B}, L, ${cfg.contextDim}] with L >= 1, got [${context.shape}]`);
      }
      if (context !== null && mask !== null && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== context.shape[1])) {
        throw new Error(`UNet.apply: contextMask must be [${B}, ${context.shape[1]}] (one entry per context token), got [${mask.shape}]`);
      }
    }

    const aug = args.augLevels ?? null;
    if (!cfg.augLevelEmbedding) {
      if (aug !== null) throw new Error('UNet.apply: augLevels given, but this model has no augmentation-level embedding (augLevelEmbedding is false)');
    } else {
      if (aug === null) throw new Error('UNet.apply: this model embeds a noise-augmentation level; pass augLevels [B] (0 = clean low-res input)');
      if (aug.rank !== 1 || aug.shape[0] !== B) throw new Error(`UNet.apply: augLevels must be [${B}], got shape [${aug.shape}]`);
      if (aug.dtype !== 'float32' && aug.dtype !== 'int32') throw new Error(`UNet.apply: augLevels must be float32 or int32, got ${aug.dtype}`);
    }

    const labels = args.classLabels ?? null;
    if (cfg.numClasses === null) {
      if (labels !== null) throw new Error('UNet.apply: classLabels given, but this model has no class conditioning (numClasses is null)');
    } else {
      if (labels === null) {
        throw new Error(`UNet.apply: this model is class-conditional; pass classLabels [B] int32 in [0, ${cfg.numClasses}] (${cfg.numClasses} = null class)`);
      }
      if (labels.rank !== 1 || labels.shape[0] !== B) throw new Error(`UNet.apply: classLabels must be [${B}], got shape [${labels.shape}]`);
      if (labels.dtype !== 'int32') throw new Error(`UNet.apply: classLabels must be int32, got ${labels.dtype}`);
    }
  }

  /** A human-readable summary with the parameter count (printed by the CLI). */
  describe(): string {
    const c = this.config;
    const fmt = (n: number): string => n.toLocaleString('en-US');
    const total = this.numParameters();
    const trainable = this.numParameters(true);
    const widths = c.channelMults.map((k) => c.baseChannels * k);
    const lines = [
      `UNet: ${fmt(total)} parameters${trainable !== total ? ` (${fmt(trainable)} trainable)` : ''}`,
      `  input ${c.sampleSize}x${c.sampleSize}x${c.inChannels} -> output ${c.outChannels} channel(s), predicts ${c.predictionType}`,
      `  levels at ${levelResolutions(c).join(', ')} px, widths ${widths.join(', ')}, ${c.numResBlocks} ResBlocks per level down (${c.numResBlocks + 1} up)`,
      `  attention at [${c.attentionResolutions.join(', ')}] and the middle, ${c.heads} heads; GroupNorm ${c.groups} groups; dropout ${c.dropout}`,
      `  time embedding ${c.timeEmbeddingInputDim} -> ${c.timeEmbeddingDim}`,
      `  conditioning: ${this.describeConditioning()}`,
    ];
    for (const [name, child] of this.namedChildren()) lines.push(`    ${name.padEnd(18)} ${fmt(child.numParameters()).padStart(12)}`);
    return lines.join('\n');
  }

  /** One line naming the conditioning inputs (cross-attention, pooled context, classes). */
  describeConditioning(): string {
    const c = this.config;
    const parts: string[] = [];
    if (c.contextDim !== null) {
      const tokens = c.imageEmbeddingDim === null ? `context [B, L, ${c.contextDim}] (masked)` : `context [B, L, ${c.contextDim}] (text tokens if given, then image-embedding tokens)`;
      parts.push(`cross-attention to ${tokens}${this.contextTimeProj !== null ? ' + pooled text -> time' : ''}`);
    }
    if (c.numClasses !== null) parts.push(`${c.numClasses} classes + null class -> time`);
    if (c.augLevelEmbedding) parts.push('noise-augmentation level -> time');
    if (c.imageEmbeddingDim !== null) parts.push(`CLIP image embedding [B, ${c.imageEmbeddingDim}] -> ${c.imageEmbeddingTokens} context tokens + time`);
    return parts.length > 0 ? parts.join('; ') : 'none (unconditional)';
  }
}

/** Mean over the real tokens: sum_l m_l c_l / max(sum_l m_l, 1). [B, L, D], [B, L] | null -> [B, D]. */
function maskedMean(context: tf.Tensor3D, mask: tf.Tensor2D | null): tf.Tensor2D {
  return tf.tidy(() => {
    if (mask === null) return tf.mean(context, 1) as tf.Tensor2D;
    const m = tf.expandDims(mask, 2); // [B, L, 1]
    const count = tf.maximum(tf.sum(mask, 1, true), 1); // [B, 1]; an all-padding row pools to 0
    return tf.div(tf.sum(tf.mul(context, m), 1), count) as tf.Tensor2D;
  });
}

// ---------------------------------------------------------------- checkpoint

/** `kind` of UNet weight files (every design's UNets: the config beside the weights says which). */
export const UNET_KIND = 'unet';

/** Throws unless the checkpoint holds a UNet (check before parsing its config). */
export function checkUNetKind(checkpoint: Checkpoint): void {
  const { info, source } = checkpoint;
  if (info.kind !== UNET_KIND) throw new Error(`${source}: expected a '${UNET_KIND}' checkpoint, got kind '${info.kind}'`);
}

/** Builds a UNet of `config` (read from the checkpoint's metadata by its pipeline) holding the checkpoint's weights. The caller disposes it. */
export function unetFromCheckpoint(checkpoint: Checkpoint, config: UNetConfig): UNet {
  checkUNetKind(checkpoint);
  const unet = new UNet(config, new Rng(0));
  try {
    loadCheckpointWeights(checkpoint, unet, { expectKind: UNET_KIND });
  } catch (e) {
    unet.dispose();
    throw e;
  }
  return unet;
}
