/**
 * The KL-regularised autoencoder of Stable Diffusion (Rombach et al. 2022,
 * "High-Resolution Image Synthesis with Latent Diffusion Models", Sec. 3.1 and
 * App. G; CompVis `ldm/modules/diffusionmodules/model.py` Encoder/Decoder and
 * `ldm/models/autoencoder.py` AutoencoderKL), at small scale:
 *
 *   encoder   x [B, H, W, C] -> conv_in -> down.{l}: ResBlock x numResBlocks (+ stride-2 conv but last level)
 *                            -> mid: ResBlock, [Attn], ResBlock -> SiLU(norm_out) -> conv_out [.., 2 z]
 *   quant_conv (1x1)         -> moments [B, h, w, 2 z] = (mean, logvar), logvar clamped to [-30, 20]
 *   posterior q(z | x)       =  N(mean, diag(exp(logvar)));  z = mean + exp(logvar / 2) * eps
 *   post_quant_conv (1x1)    -> decoder: conv_in -> mid -> up.{l} (reversed): ResBlock x (numResBlocks + 1)
 *                            (+ nearest 2x and a 3x3 conv but last) -> SiLU(norm_out) -> conv_out [B, H, W, C]
 *
 * With channelMults of length L the latent side is sampleSize / 2^(L - 1): the
 * defaults map 32x32xC (MNIST padded 28 -> 32, CIFAR-10 32) to 8x8x4 by two
 * stride-2 downsamples (SD v1: f = 8, 512x512x3 -> 64x64x4).
 *
 * Parameter names follow the CompVis checkpoints (`encoder.down.0.block.0.norm1.weight`,
 * `encoder.down.0.downsample.conv.weight`, `encoder.mid.block_1...`, `quant_conv`,
 * `decoder.up.1.upsample.conv...`, `decoder.norm_out`), `up.{l}` indexed by
 * resolution level (up.0 is the full resolution, run last) as CompVis does.
 * Differences from CompVis: the mid attention is `mid.attn_1.{norm, qkv, proj}`
 * (one Linear to q, k, v; CompVis has four 1x1 convs q, k, v, proj_out), and no
 * dropout. The SD training loss (LPIPS + patch GAN + a learned log-variance)
 * is not here; see train/autoencoderTraining.ts for the loss used.
 *
 * Downsample: stride-2 3x3 conv after zero-padding bottom/right by one (CompVis
 * pads (0, 1, 0, 1)), which is exactly TensorFlow's 'same' at stride 2 on even sizes.
 *
 * NHWC throughout, conv kernels HWIO.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Rng, randomNormal } from '../backend/random';
import { Conv2d } from '../nn/conv2d';
import { GroupNorm } from '../nn/groupNorm';
import { SelfAttention } from '../nn/attention';
import { upsampleNearest2x } from '../nn/upsample';
import { ModuleList } from './unetBlocks';
import { Checkpoint, loadCheckpointWeights } from '../io/checkpoint';

// ----------------------------------------------------------------------------
// config

export interface AutoencoderConfig {
  readonly inChannels: number;
  readonly sampleSize: number;
  readonly latentChannels: number;
  readonly baseChannels: number;
  readonly channelMults: readonly number[];
  readonly numResBlocks: number;
  readonly groups: number;
  readonly midAttention: boolean;
  readonly heads: number;
}

export const AUTOENCODER_DEFAULTS: AutoencoderConfig = {
  /** Image channels (1 for MNIST, 3 for RGB); the decoder outputs the same number. */
  inChannels: 1,
  /** Input height = width; must be divisible by 2^(channelMults.length - 1). MNIST is padded 28 -> 32. */
  sampleSize: 32,
  /** z: channels of the latent (SD v1: 4). */
  latentChannels: 4,
  /** Width of level 0; level l has baseChannels * channelMults[l] channels (SD v1: 128). */
  baseChannels: 32,
  /** Width multiplier per level; one 2x down/upsample between consecutive levels (SD v1: 1,2,4,4, f = 8). */
  channelMults: [1, 2, 2],
  /** ResBlocks per encoder level; the decoder has numResBlocks + 1 per level (SD v1: 2). */
  numResBlocks: 1,
  /** GroupNorm groups; must divide every width (SD v1: 32). */
  groups: 8,
  /** Self-attention between the two mid ResBlocks of encoder and decoder (SD v1: yes). At 8x8 it is cheap. */
  midAttention: true,
  /** Heads of the mid attention (SD v1: 1). */
  heads: 1,
};

const CONFIG_KEYS = Object.keys(AUTOENCODER_DEFAULTS) as Array<keyof AutoencoderConfig>;

function checkInt(name: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new Error(`autoencoderConfig: ${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
}

/** Side of the latent: sampleSize / 2^(levels - 1). */
export function latentSize(config: Pick<AutoencoderConfig, 'sampleSize' | 'channelMults'>): number {
  return config.sampleSize / 2 ** (config.channelMults.length - 1);
}

/** Merges `partial` over AUTOENCODER_DEFAULTS and validates; errors name the field, expected vs received. */
export function autoencoderConfig(partial: Partial<AutoencoderConfig> = {}): AutoencoderConfig {
  for (const k of Object.keys(partial)) {
    if (!(CONFIG_KEYS as string[]).includes(k)) throw new Error(`autoencoderConfig: unknown field '${k}'; known fields: ${CONFIG_KEYS.join(', ')}`);
  }
  const c: AutoencoderConfig = { ...AUTOENCODER_DEFAULTS, ...partial };
  checkInt('inChannels', c.inChannels, 1);
  checkInt('sampleSize', c.sampleSize, 1);
  checkInt('latentChannels', c.latentChannels, 1);
  checkInt('baseChannels', c.baseChannels, 1);
  checkInt('numResBlocks', c.numResBlocks, 1);
  checkInt('groups', c.groups, 1);
  checkInt('heads', c.heads, 1);
  if (typeof c.midAttention !== 'boolean') throw new Error(`autoencoderConfig: midAttention must be true or false, got ${JSON.stringify(c.midAttention)}`);
  if (!Array.isArray(c.channelMults) || c.channelMults.length === 0) {
    throw new Error(`autoencoderConfig: channelMults must be a non-empty list, got ${JSON.stringify(c.channelMults)}`);
  }
  c.channelMults.forEach((m, i) => checkInt(`channelMults[${i}]`, m, 1));
  const factor = 2 ** (c.channelMults.length - 1);
  if (c.sampleSize % factor !== 0) {
    throw new Error(`autoencoderConfig: sampleSize ${c.sampleSize} must be divisible by 2^(levels - 1) = ${factor} (channelMults has ${c.channelMults.length} levels)`);
  }
  for (const w of c.channelMults.map((m) => c.baseChannels * m)) {
    if (w % c.groups !== 0) throw new Error(`autoencoderConfig: groups ${c.groups} must divide every level width; width ${w} is not divisible`);
  }
  const midWidth = c.baseChannels * c.channelMults[c.channelMults.length - 1];
  if (c.midAttention && midWidth % c.heads !== 0) throw new Error(`autoencoderConfig: heads ${c.heads} must divide the mid width ${midWidth}`);
  return { ...c, channelMults: [...c.channelMults] };
}

// ----------------------------------------------------------------------------
// blocks

/** CompVis ResnetBlock without time embedding: x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))), 1x1 `nin_shortcut` iff in != out. */
export class AutoencoderResBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly ninShortcut: Conv2d | null;

  constructor(args: { inChannels: number; outChannels: number; groups: number; rng: Rng }) {
    super();
    const { inChannels: ci, outChannels: co, groups, rng } = args;
    this.norm1 = this.addChild('norm1', new GroupNorm({ numGroups: groups, numChannels: ci, eps: 1e-6 }));
    this.conv1 = this.addChild('conv1', new Conv2d({ inChannels: ci, outChannels: co, kernelSize: 3, rng }));
    this.norm2 = this.addChild('norm2', new GroupNorm({ numGroups: groups, numChannels: co, eps: 1e-6 }));
    this.conv2 = this.addChild('conv2', new Conv2d({ inChannels: co, outChannels: co, kernelSize: 3, rng }));
    this.ninShortcut = ci !== co ? this.addChild('nin_shortcut', new Conv2d({ inChannels: ci, outChannels: co, kernelSize: 1, padding: 0, rng })) : null;
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.conv2.apply(this.norm2.applySilu(this.conv1.apply(this.norm1.applySilu(x) as tf.Tensor4D)) as tf.Tensor4D);
      return tf.add(this.ninShortcut === null ? x : this.ninShortcut.apply(x), h);
    });
  }
}

/** x + proj(MHA(qkv(norm(x)))) over the H*W tokens. */
export class AutoencoderAttnBlock extends Module {
  readonly norm: GroupNorm;
  readonly attn: SelfAttention;

  constructor(args: { channels: number; heads: number; groups: number; rng: Rng }) {
    super();
    this.norm = this.addChild('norm', new GroupNorm({ numGroups: args.groups, numChannels: args.channels, eps: 1e-6 }));
    // qkv and proj directly under this block: `mid.attn_1.qkv.weight`, `mid.attn_1.proj.weight`.
    this.attn = new SelfAttention({ dim: args.channels, heads: args.heads, rng: args.rng });
    for (const [name, child] of this.attn.namedChildren()) this.addChild(name, child);
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    const [b, h, w, c] = x.shape;
    return tf.tidy(() => {
      const tokens = tf.reshape(this.norm.apply(x), [b, h * w, c]) as tf.Tensor3D; // [B, HW, C]
      return tf.add(x, tf.reshape(this.attn.apply(tokens), [b, h, w, c]));
    });
  }
}

/** Zero-pad bottom/right by one, 3x3 conv stride 2 (CompVis Downsample with_conv); child `conv`. */
class Downsample extends Module {
  readonly conv: Conv2d;

  constructor(args: { channels: number; rng: Rng }) {
    super();
    this.conv = this.addChild('conv', new Conv2d({ inChannels: args.channels, outChannels: args.channels, kernelSize: 3, stride: 2, padding: 'same', rng: args.rng }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return this.conv.apply(x);
  }
}

/** Nearest 2x then a 3x3 conv (CompVis Upsample with_conv); child `conv`. */
class Upsample extends Module {
  readonly conv: Conv2d;

  constructor(args: { channels: number; rng: Rng }) {
    super();
    this.conv = this.addChild('conv', new Conv2d({ inChannels: args.channels, outChannels: args.channels, kernelSize: 3, rng: args.rng }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.conv.apply(upsampleNearest2x(x)));
  }
}

/** One resolution level: `block.{i}` and, except at the last (encoder) / first (decoder) level, `downsample` / `upsample`. */
class Level extends Module {
  readonly block = new ModuleList();
  resample: Downsample | Upsample | null = null;

  constructor() {
    super();
    this.addChild('block', this.block);
  }

  setResample(name: 'downsample' | 'upsample', m: Downsample | Upsample): void {
    this.resample = this.addChild(name, m);
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (const [, b] of this.block.namedChildren()) h = (b as AutoencoderResBlock).apply(h);
      return this.resample === null ? h : this.resample.apply(h);
    });
  }
}

/** `block_1`, optional `attn_1`, `block_2`. */
class Mid extends Module {
  readonly block1: AutoencoderResBlock;
  readonly attn1: AutoencoderAttnBlock | null;
  readonly block2: AutoencoderResBlock;

  constructor(c: AutoencoderConfig, channels: number, rng: Rng) {
    super();
    this.block1 = this.addChild('block_1', new AutoencoderResBlock({ inChannels: channels, outChannels: channels, groups: c.groups, rng }));
    this.attn1 = c.midAttention ? this.addChild('attn_1', new AutoencoderAttnBlock({ channels, heads: c.heads, groups: c.groups, rng })) : null;
    this.block2 = this.addChild('block_2', new AutoencoderResBlock({ inChannels: channels, outChannels: channels, groups: c.groups, rng }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.block1.apply(x);
      if (this.attn1 !== null) h = this.attn1.apply(h);
      return this.block2.apply(h);
    });
  }
}

// ----------------------------------------------------------------------------
// encoder and decoder

export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly down = new ModuleList();
  readonly mid: Mid;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: AutoencoderConfig, rng: Rng) {
    super();
    const widths = c.channelMults.map((m) => c.baseChannels * m);
    this.convIn = this.addChild('conv_in', new Conv2d({ inChannels: c.inChannels, outChannels: c.baseChannels, kernelSize: 3, rng }));
    this.addChild('down', this.down);
    let ch = c.baseChannels;
    widths.forEach((w, l) => {
      const level = this.down.push(new Level());
      for (let i = 0; i < c.numResBlocks; i++) {
        level.block.push(new AutoencoderResBlock({ inChannels: ch, outChannels: w, groups: c.groups, rng }));
        ch = w;
      }
      if (l < widths.length - 1) level.setResample('downsample', new Downsample({ channels: ch, rng }));
    });
    this.mid = this.addChild('mid', new Mid(c, ch, rng));
    this.normOut = this.addChild('norm_out', new GroupNorm({ numGroups: c.groups, numChannels: ch, eps: 1e-6 }));
    this.convOut = this.addChild('conv_out', new Conv2d({ inChannels: ch, outChannels: 2 * c.latentChannels, kernelSize: 3, rng }));
  }

  /** x [B, H, W, C] -> moments [B, h, w, 2 z]. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.convIn.apply(x);
      for (const [, level] of this.down.namedChildren()) h = (level as Level).apply(h);
      h = this.mid.apply(h);
      return this.convOut.apply(this.normOut.applySilu(h) as tf.Tensor4D);
    });
  }
}

export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly mid: Mid;
  readonly up = new ModuleList();
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: AutoencoderConfig, rng: Rng) {
    super();
    const widths = c.channelMults.map((m) => c.baseChannels * m);
    const L = widths.length;
    let ch = widths[L - 1];
    this.convIn = this.addChild('conv_in', new Conv2d({ inChannels: c.latentChannels, outChannels: ch, kernelSize: 3, rng }));
    this.mid = this.addChild('mid', new Mid(c, ch, rng));
    // Built from the lowest resolution up (so the rng draws follow the order of use), registered as up.0 .. up.{L-1}
    // by level like CompVis' `self.up.insert(0, up)`.
    const levels: Level[] = [];
    for (let l = L - 1; l >= 0; l--) {
      const level = new Level();
      for (let i = 0; i < c.numResBlocks + 1; i++) {
        level.block.push(new AutoencoderResBlock({ inChannels: ch, outChannels: widths[l], groups: c.groups, rng }));
        ch = widths[l];
      }
      if (l > 0) level.setResample('upsample', new Upsample({ channels: ch, rng }));
      levels[l] = level;
    }
    this.addChild('up', this.up);
    for (const level of levels) this.up.push(level);
    this.normOut = this.addChild('norm_out', new GroupNorm({ numGroups: c.groups, numChannels: ch, eps: 1e-6 }));
    this.convOut = this.addChild('conv_out', new Conv2d({ inChannels: ch, outChannels: c.inChannels, kernelSize: 3, rng }));
  }

  /** z [B, h, w, z] -> [B, H, W, C]. */
  apply(z: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.mid.apply(this.convIn.apply(z));
      const levels = this.up.namedChildren();
      for (let l = levels.length - 1; l >= 0; l--) h = (levels[l][1] as Level).apply(h);
      return this.convOut.apply(this.normOut.applySilu(h) as tf.Tensor4D);
    });
  }
}

// ----------------------------------------------------------------------------
// the autoencoder

/** The diagonal Gaussian q(z | x): both [B, h, w, z]. */
export interface Posterior {
  readonly mean: tf.Tensor4D;
  /** log sigma^2, clamped to [LOGVAR_MIN, LOGVAR_MAX]. */
  readonly logvar: tf.Tensor4D;
}

export interface AutoencoderOutput extends Posterior {
  /** [B, H, W, C], unbounded (not clipped to [-1, 1]). */
  readonly reconstruction: tf.Tensor4D;
}

export interface AutoencoderApplyOptions {
  /** true: decode z = mean + sigma * eps (training); false: decode the mean (evaluation, SD's `posterior.mode()`). */
  readonly sample: boolean;
  /** eps [B, h, w, z] for sampling (wins over rng). */
  readonly noise?: tf.Tensor4D;
  /** Source of eps when no noise is given. */
  readonly rng?: Rng;
}

/** CompVis DiagonalGaussianDistribution clamps logvar to [-30, 20]. */
export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

/**
 * KL(N(mean, exp(logvar)) || N(0, I)) summed over each image's latent (CompVis
 * DiagonalGaussianDistribution.kl): 0.5 * sum(mean^2 + exp(logvar) - 1 - logvar)  -> [B].
 */
export function klDivergence(posterior: Posterior): tf.Tensor1D {
  return tf.tidy(() => {
    const { mean, logvar } = posterior;
    const perElement = tf.sub(tf.add(tf.square(mean), tf.exp(logvar)), tf.add(logvar, 1));
    return tf.mul(tf.sum(perElement, [1, 2, 3]), 0.5) as tf.Tensor1D;
  });
}

export class Autoencoder extends Module {
  readonly config: AutoencoderConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;

  constructor(config: AutoencoderConfig, rng: Rng) {
    super();
    this.config = autoencoderConfig(config);
    const c = this.config;
    const z = c.latentChannels;
    this.encoder = this.addChild('encoder', new Encoder(c, rng));
    this.decoder = this.addChild('decoder', new Decoder(c, rng));
    this.quantConv = this.addChild('quant_conv', new Conv2d({ inChannels: 2 * z, outChannels: 2 * z, kernelSize: 1, padding: 0, rng }));
    this.postQuantConv = this.addChild('post_quant_conv', new Conv2d({ inChannels: z, outChannels: z, kernelSize: 1, padding: 0, rng }));
  }

  /** Latent shape for a batch of b images: [b, h, h, z]. */
  latentShape(b: number): [number, number, number, number] {
    const h = latentSize(this.config);
    return [b, h, h, this.config.latentChannels];
  }

  private checkInput(x: tf.Tensor4D): void {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== c.sampleSize || x.shape[2] !== c.sampleSize || x.shape[3] !== c.inChannels) {
      throw new Error(`Autoencoder: x must be [B, ${c.sampleSize}, ${c.sampleSize}, ${c.inChannels}], got [${x.shape}]`);
    }
  }

  /** x [B, H, W, C] in [-1, 1] -> q(z | x) = {mean, logvar}, each [B, h, w, z]. */
  encode(x: tf.Tensor4D): Posterior {
    this.checkInput(x);
    const z = this.config.latentChannels;
    const [mean, logvar] = tf.tidy(() => {
      const moments = this.quantConv.apply(this.encoder.apply(x)); // [B, h, w, 2z]
      const [m, lv] = tf.split(moments, [z, z], 3) as [tf.Tensor4D, tf.Tensor4D];
      return [m, tf.clipByValue(lv, LOGVAR_MIN, LOGVAR_MAX) as tf.Tensor4D];
    });
    return { mean, logvar };
  }

  /** Reparameterised draw z = mean + exp(logvar / 2) * eps with eps = `noise` (or drawn from an Rng) -> [B, h, w, z]. */
  sample(posterior: Posterior, source: Rng | tf.Tensor4D): tf.Tensor4D {
    const { mean, logvar } = posterior;
    if (source instanceof tf.Tensor && !tf.util.arraysEqual(source.shape, mean.shape)) {
      throw new Error(`Autoencoder.sample: noise must have the latent's shape [${mean.shape}], got [${source.shape}]`);
    }
    return tf.tidy(() => {
      const eps = source instanceof tf.Tensor ? source : (randomNormal(mean.shape, source) as tf.Tensor4D);
      return tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), eps));
    });
  }

  /** z [B, h, w, z] -> reconstruction [B, H, W, C] (unbounded). */
  decode(z: tf.Tensor4D): tf.Tensor4D {
    const [, h, w, c] = this.latentShape(1);
    if (z.rank !== 4 || z.shape[1] !== h || z.shape[2] !== w || z.shape[3] !== c) {
      throw new Error(`Autoencoder.decode: z must be [B, ${h}, ${w}, ${c}], got [${z.shape}]`);
    }
    return tf.tidy(() => this.decoder.apply(this.postQuantConv.apply(z)));
  }

  /** Encode, optionally sample, decode. The caller owns the three returned tensors. */
  apply(x: tf.Tensor4D, options: AutoencoderApplyOptions): AutoencoderOutput {
    if (options.sample && options.noise === undefined && options.rng === undefined) {
      throw new Error('Autoencoder.apply: sample: true needs noise or an rng');
    }
    const posterior = this.encode(x);
    const reconstruction = tf.tidy(() => {
      if (!options.sample) return this.decode(posterior.mean);
      return this.decode(this.sample(posterior, options.noise ?? (options.rng as Rng)));
    });
    return { reconstruction, mean: posterior.mean, logvar: posterior.logvar };
  }
}

// ---------------------------------------------------------------- checkpoint

/** `kind` of autoencoder weight files. */
export const AUTOENCODER_KIND = 'autoencoder';

/** The metadata `config` of an autoencoder weight file. */
export interface AutoencoderCheckpointConfig {
  readonly autoencoder: AutoencoderConfig;
  readonly dataset: string;
  /** Size of the dataset's images before padding to sampleSize (e.g. 28 for MNIST). */
  readonly imageHeight: number;
  readonly imageWidth: number;
  /** 1 / std of the latents (train/latentScale.ts), null until measured. */
  readonly scaleFactor: number | null;
}

/** Validates the metadata `config` of an autoencoder weight file. */
export function autoencoderCheckpointConfig(raw: unknown, file: string): AutoencoderCheckpointConfig {
  const r = raw as Partial<AutoencoderCheckpointConfig> | null;
  if (r === null || typeof r !== 'object' || typeof r.autoencoder !== 'object') throw new Error(`${file}: metadata config has no 'autoencoder' object`);
  const autoencoder = autoencoderConfig(r.autoencoder);
  return {
    autoencoder,
    dataset: typeof r.dataset === 'string' ? r.dataset : 'unknown',
    imageHeight: typeof r.imageHeight === 'number' ? r.imageHeight : autoencoder.sampleSize,
    imageWidth: typeof r.imageWidth === 'number' ? r.imageWidth : autoencoder.sampleSize,
    scaleFactor: typeof r.scaleFactor === 'number' ? r.scaleFactor : null,
  };
}

export interface LoadedAutoencoder {
  readonly model: Autoencoder;
  readonly config: AutoencoderCheckpointConfig;
}

/** Rebuilds an autoencoder from its checkpoint (config from the metadata). The caller disposes the model. */
export function autoencoderFromCheckpoint(checkpoint: Checkpoint): LoadedAutoencoder {
  const { info, source } = checkpoint;
  if (info.kind !== AUTOENCODER_KIND) throw new Error(`${source}: expected a '${AUTOENCODER_KIND}' checkpoint, got kind '${info.kind}'`);
  const config = autoencoderCheckpointConfig(info.config, source);
  const model = new Autoencoder(config.autoencoder, new Rng('load'));
  try {
    loadCheckpointWeights(checkpoint, model, { expectKind: AUTOENCODER_KIND });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config };
}
