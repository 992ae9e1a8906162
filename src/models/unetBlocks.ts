/**
 * The blocks of the diffusion UNet (models/unet.ts): ResBlock, AttnBlock,
 * Upsample, and the two containers that give PyTorch-style list names.
 *
 * Each block mirrors a class of the PyTorch peer (/work/shared/peers/torch_unet.py)
 * parameter for parameter, so a state_dict maps 1:1 by name:
 *
 *   ResBlock(i, o)  h = conv1(SiLU(norm1(x)));  h += temb(SiLU(t_emb))   broadcast over H, W
 *                   h = conv2(dropout(SiLU(norm2(h))));  out = skip(x) + h   (skip: 1x1 conv iff i != o)
 *   AttnBlock(c)    x += proj(MHA(qkv(tokens(norm(x)))))                       self-attention
 *                   x += proj_x(MHA(q_x(tokens(norm_x(x))), kv_x(context)))    cross-attention (optional)
 *   Upsample(c)     '1' = conv3x3(nearest2x(x))          (the peer's Sequential(Upsample, Conv2d))
 *
 * Dropout follows DDPM (Ho et al. 2020, their ResNet block): between the second
 * norm/SiLU and conv2. The peer has no dropout; at rate 0 or in eval the
 * block is identical to it.
 *
 * All tensors NHWC; tokens are [B, H*W, C] in row-major (h, w) order, the same
 * order as PyTorch's x.flatten(2).transpose(1, 2) on NCHW.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import { Rng } from '../backend/random';
import { Conv2d } from '../nn/conv2d';
import { Linear } from '../nn/linear';
import { GroupNorm } from '../nn/groupNorm';
import { multiHeadAttention } from '../nn/attention';
import { silu } from '../nn/activations';
import { dropout } from '../nn/dropout';
import { upsampleNearest2x } from '../nn/upsample';

// ----------------------------------------------------------------------------
// containers

/** A list of modules named '0', '1', ... like torch.nn.ModuleList. */
export class ModuleList extends Module {
  private count = 0;

  push<M extends Module>(module: M): M {
    return this.addChild(String(this.count++), module);
  }

  get length(): number {
    return this.count;
  }
}

/**
 * The time-embedding MLP, named like the peer's
 * nn.Sequential(Linear(in, dim), SiLU(), Linear(dim, dim)): children '0' and '2'.
 */
export class TimeEmbeddingMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(args: { inDim: number; dim: number; rng: Rng }) {
    super();
    this.fc1 = this.addChild('0', new Linear({ inFeatures: args.inDim, outFeatures: args.dim, rng: args.rng }));
    this.fc2 = this.addChild('2', new Linear({ inFeatures: args.dim, outFeatures: args.dim, rng: args.rng }));
  }

  /** [B, inDim] sinusoidal embedding -> [B, dim]. */
  apply(emb: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.fc2.apply(silu(this.fc1.apply(emb))) as tf.Tensor2D);
  }
}

// ----------------------------------------------------------------------------
// ResBlock

export interface ResBlockArgs {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Width of the time embedding fed to every block. */
  readonly tembDim: number;
  readonly groups: number;
  /** Dropout rate before conv2 (applied only when training). */
  readonly dropout: number;
  readonly rng: Rng;
}

export class ResBlock extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly dropoutRate: number;
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly temb: Linear;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly skip: Conv2d | null;

  constructor(args: ResBlockArgs) {
    super();
    const { inChannels: ci, outChannels: co, groups, rng } = args;
    this.inChannels = ci;
    this.outChannels = co;
    this.dropoutRate = args.dropout;
    // Registration order = the peer's attribute order, so namedParameters() lists like its state_dict.
    this.norm1 = this.addChild('norm1', new GroupNorm({ numGroups: groups, numChannels: ci }));
    this.conv1 = this.addChild('conv1', new Conv2d({ inChannels: ci, outChannels: co, kernelSize: 3, padding: 1, rng }));
    this.temb = this.addChild('temb', new Linear({ inFeatures: args.tembDim, outFeatures: co, rng }));
    this.norm2 = this.addChild('norm2', new GroupNorm({ numGroups: groups, numChannels: co }));
    this.conv2 = this.addChild('conv2', new Conv2d({ inChannels: co, outChannels: co, kernelSize: 3, padding: 1, rng }));
    this.skip = ci !== co ? this.addChild('skip', new Conv2d({ inChannels: ci, outChannels: co, kernelSize: 1, padding: 0, rng })) : null;
  }

  /**
   * x [B, H, W, inChannels], tembAct = SiLU(t_emb) [B, tembDim] (the UNet applies
   * the SiLU once for all blocks), dropoutRng: the mask source when training with
   * dropout > 0, else null.
   */
  apply(x: tf.Tensor4D, tembAct: tf.Tensor2D, dropoutRng: Rng | null): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv1.apply(this.norm1.applySilu(x) as tf.Tensor4D); // [B, H, W, out]
      const tb = this.temb.apply(tembAct); // [B, out]
      h = tf.add(h, tf.reshape(tb, [tb.shape[0], 1, 1, this.outChannels]));
      let a = this.norm2.applySilu(h) as tf.Tensor4D;
      if (dropoutRng !== null && this.dropoutRate > 0) a = dropout(a, this.dropoutRate, dropoutRng) as tf.Tensor4D;
      h = this.conv2.apply(a);
      const s = this.skip !== null ? this.skip.apply(x) : x;
      return tf.add(s, h);
    });
  }
}

// ----------------------------------------------------------------------------
// AttnBlock

export interface AttnBlockArgs {
  readonly channels: number;
  readonly heads: number;
  readonly groups: number;
  /** Width of the context tokens for cross-attention; null = self-attention only. */
  readonly contextDim: number | null;
  readonly rng: Rng;
}

/** Context for cross-attention: token states and which of them are real (1) or padding (0). */
export interface CrossContext {
  readonly tokens: tf.Tensor3D; // [B, M, contextDim]
  readonly mask: tf.Tensor2D | null; // [B, M] float32 1 = attend, 0 = pad; null = all real
}

export class AttnBlock extends Module {
  readonly channels: number;
  readonly heads: number;
  readonly contextDim: number | null;
  readonly norm: GroupNorm;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly cross: { norm_x: GroupNorm; q_x: Linear; kv_x: Linear; proj_x: Linear } | null;

  constructor(args: AttnBlockArgs) {
    super();
    const { channels: c, heads, groups, contextDim, rng } = args;
    if (c % heads !== 0) throw new Error(`AttnBlock: heads (${heads}) must divide channels (${c})`);
    this.channels = c;
    this.heads = heads;
    this.contextDim = contextDim;
    this.norm = this.addChild('norm', new GroupNorm({ numGroups: groups, numChannels: c }));
    this.qkv = this.addChild('qkv', new Linear({ inFeatures: c, outFeatures: 3 * c, rng }));
    this.proj = this.addChild('proj', new Linear({ inFeatures: c, outFeatures: c, rng }));
    this.cross =
      contextDim === null
        ? null
        : {
            norm_x: this.addChild('norm_x', new GroupNorm({ numGroups: groups, numChannels: c })),
            q_x: this.addChild('q_x', new Linear({ inFeatures: c, outFeatures: c, rng })),
            kv_x: this.addChild('kv_x', new Linear({ inFeatures: contextDim, outFeatures: 2 * c, rng })),
            proj_x: this.addChild('proj_x', new Linear({ inFeatures: c, outFeatures: c, rng })),
          };
  }

  /** x [B, H, W, C]; context required iff the block was built with contextDim. */
  apply(x: tf.Tensor4D, context: CrossContext | null): tf.Tensor4D {
    const [b, hh, ww, c] = x.shape;
    if (this.cross !== null && context === null) throw new Error('AttnBlock: this block has cross-attention; context is required');
    return tf.tidy(() => {
      const tokens = (t: tf.Tensor): tf.Tensor3D => tf.reshape(t, [b, hh * ww, c]); // [B, HW, C]
      // self-attention
      const [q, k, v] = tf.split(this.qkv.apply(tokens(this.norm.apply(x))) as tf.Tensor3D, 3, 2) as tf.Tensor3D[];
      const hSelf = this.proj.apply(multiHeadAttention(q, k, v, { heads: this.heads })) as tf.Tensor3D; // [B, HW, C]
      let out = tf.add(x, tf.reshape(hSelf, [b, hh, ww, c])) as tf.Tensor4D;
      // cross-attention to the context tokens
      if (this.cross !== null && context !== null) {
        const qx = this.cross.q_x.apply(tokens(this.cross.norm_x.apply(out))) as tf.Tensor3D;
        const [kx, vx] = tf.split(this.cross.kv_x.apply(context.tokens) as tf.Tensor3D, 2, 2) as tf.Tensor3D[];
        const attn = multiHeadAttention(qx, kx, vx, context.mask === null ? { heads: this.heads } : { heads: this.heads, keyMask: context.mask });
        const hCross = this.cross.proj_x.apply(attn) as tf.Tensor3D;
        out = tf.add(out, tf.reshape(hCross, [b, hh, ww, c]));
      }
      return out;
    });
  }
}

// ----------------------------------------------------------------------------
// Upsample

/** Nearest 2x then a 3x3 conv; the conv is child '1' as in the peer's Sequential(Upsample, Conv2d). */
export class Upsample extends Module {
  readonly conv: Conv2d;

  constructor(args: { channels: number; rng: Rng }) {
    super();
    this.conv = this.addChild('1', new Conv2d({ inChannels: args.channels, outChannels: args.channels, kernelSize: 3, padding: 1, rng: args.rng }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.conv.apply(upsampleNearest2x(x) as tf.Tensor4D));
  }
}
