/**
 * Whole-network checks on the WASM backend: one SGD step through every building
 * block (a missing WASM kernel fails here), memory flat across steps, and the full
 * gradient of a small conv + GroupNorm + attention net equal to cpu autodiff of the
 * same net written with plain ops.
 */
import * as tf from '@tensorflow/tfjs';
import { conv2d, Conv2d } from '../../src/nn/conv2d';
import { linear, Linear } from '../../src/nn/linear';
import { groupNorm, GroupNorm } from '../../src/nn/groupNorm';
import { layerNorm, LayerNorm } from '../../src/nn/layerNorm';
import { embeddingLookup, Embedding } from '../../src/nn/embedding';
import { multiHeadAttention, SelfAttention, CrossAttention } from '../../src/nn/attention';
import { silu, gelu } from '../../src/nn/activations';
import { dropout } from '../../src/nn/dropout';
import { upsampleNearest2x } from '../../src/nn/upsample';
import { Module } from '../../src/nn/module';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, refConv2d, refGroupNorm, refAttention, HostTensor } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

// ---------------------------------------------------------------------------
// every module, one SGD step at a time, on wasm

class AllBlocks extends Module {
  readonly convIn = this.addChild('conv_in', new Conv2d({ inChannels: 3, outChannels: 8, kernelSize: 3, rng: new Rng('c1') }));
  readonly norm = this.addChild('norm', new GroupNorm({ numGroups: 4, numChannels: 8 }));
  readonly down = this.addChild('down', new Conv2d({ inChannels: 8, outChannels: 8, kernelSize: 3, stride: 2, rng: new Rng('c2') }));
  readonly classEmb = this.addChild('class_emb', new Embedding({ numEmbeddings: 4, dim: 8, rng: new Rng('e') }));
  readonly tokenNorm = this.addChild('token_norm', new LayerNorm({ dim: 8 }));
  readonly self = this.addChild('attn', new SelfAttention({ dim: 8, heads: 2, rng: new Rng('a') }));
  readonly cross = this.addChild('cross', new CrossAttention({ dim: 8, contextDim: 6, heads: 2, rng: new Rng('x') }));
  readonly mlp = this.addChild('mlp', new Linear({ inFeatures: 8, outFeatures: 8, rng: new Rng('l') }));
  readonly convOut = this.addChild('conv_out', new Conv2d({ inChannels: 8, outChannels: 3, kernelSize: 1, rng: new Rng('c3') }));

  apply(x: tf.Tensor4D, classes: tf.Tensor1D, context: tf.Tensor3D, contextMask: tf.Tensor2D, dropRng: Rng): tf.Tensor4D {
    const [b, h, w] = x.shape;
    let hid = silu(this.norm.apply(this.convIn.apply(x))) as tf.Tensor4D; // [B, H, W, 8]
    hid = tf.add(hid, tf.reshape(this.classEmb.apply(classes), [b, 1, 1, 8]));
    const low = this.down.apply(hid); // [B, H/2, W/2, 8]
    let tokens = tf.reshape(low, [b, (h / 2) * (w / 2), 8]) as tf.Tensor3D;
    tokens = tf.add(tokens, this.self.apply(this.tokenNorm.apply(tokens) as tf.Tensor3D));
    tokens = tf.add(tokens, this.cross.apply(tokens, context, contextMask));
    tokens = tf.add(tokens, gelu(this.mlp.apply(tokens)));
    const up = upsampleNearest2x(dropout(tf.reshape(tokens, [b, h / 2, w / 2, 8]) as tf.Tensor4D, 0.1, dropRng));
    return this.convOut.apply(tf.add(up, hid));
  }
}

describe('training step through every block on wasm', () => {
  it('gives finite nonzero gradients for every parameter, lowers the loss, and keeps memory flat', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const model = new AllBlocks();
    const rng = new Rng('data');
    const x = tf.tensor(randomHost([2, 6, 6, 3], rng).data, [2, 6, 6, 3]) as tf.Tensor4D;
    const target = tf.tensor(randomHost([2, 6, 6, 3], rng).data, [2, 6, 6, 3]) as tf.Tensor4D;
    const context = tf.tensor(randomHost([2, 3, 6], rng).data, [2, 3, 6]) as tf.Tensor3D;
    const mask = tf.tensor2d([[1, 1, 0], [1, 0, 0]]);
    const classes = tf.tensor1d([1, 3], 'int32');
    const params = model.namedTrainableParameters();
    expect(params.length).toBe(23);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 0; step < 4; step++) {
      const dropRng = new Rng(`drop-${step}`);
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(model.apply(x, classes, context, mask, dropRng), target))) as tf.Scalar);
      if (step === 0) {
        for (const [name, v] of params) {
          const g = grads[v.name];
          expect(g).toBeDefined();
          const gv = Array.from(await g.data());
          if (!gv.every(Number.isFinite)) throw new Error(`non-finite gradient for ${name}`);
          if (!gv.some((e) => e !== 0)) throw new Error(`all-zero gradient for ${name}`);
        }
      }
      tf.tidy(() => {
        for (const [, v] of params) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.05)));
      });
      losses.push((await value.data())[0]);
      tf.dispose([value, ...Object.values(grads)]);
      counts.push(tf.memory().numTensors);
    }
    expect(losses[3]).toBeLessThan(losses[0]);
    expect(new Set(counts).size).toBe(1);
    tf.dispose([x, target, context, mask, classes]);
    model.dispose();
  });
});

// ---------------------------------------------------------------------------
// small net: ours on wasm vs plain ops + autodiff on cpu

/** Parameter shapes of the small net, in argument order after x and context. */
const NET_PARAMS: Array<[string, number[]]> = [
  ['w1', [3, 3, 2, 8]], ['b1', [8]], ['g1', [8]], ['be1', [8]], ['table', [5, 8]],
  ['w2', [3, 3, 8, 8]], ['b2', [8]], ['lnw', [8]], ['lnb', [8]],
  ['wqkv', [8, 24]], ['bqkv', [24]], ['wproj', [8, 8]], ['bproj', [8]],
  ['wq', [8, 8]], ['bq', [8]], ['wkv', [6, 16]], ['bkv', [16]], ['wp2', [8, 8]], ['bp2', [8]],
  ['w3', [1, 1, 8, 2]],
];
const CLASS_IDS = [4, 1];
const MASK = [[1, 1, 0], [0, 0, 0]]; // the second sample's context is fully masked

interface NetOps {
  conv: (x: tf.Tensor, w: tf.Tensor, stride: 1 | 2) => tf.Tensor;
  gn: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  ln: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  lin: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  emb: (table: tf.Tensor) => tf.Tensor;
  attn: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask?: tf.Tensor) => tf.Tensor;
  silu: (x: tf.Tensor) => tf.Tensor;
  gelu: (x: tf.Tensor) => tf.Tensor;
  up: (x: tf.Tensor) => tf.Tensor;
}

function smallNet(ops: NetOps, xs: tf.Tensor[]): tf.Tensor {
  const [x, ctx, w1, b1, g1, be1, table, w2, b2, lnw, lnb, wqkv, bqkv, wproj, bproj, wq, bq, wkv, bkv, wp2, bp2, w3] = xs;
  const [bsz, h, w] = x.shape as [number, number, number, number];
  let hid = ops.silu(ops.gn(tf.add(ops.conv(x, w1, 1), b1), g1, be1)); // [B, 8, 8, 8]
  hid = tf.add(hid, tf.reshape(ops.emb(table), [bsz, 1, 1, 8]));
  const low = tf.add(ops.conv(hid, w2, 2), b2); // [B, 4, 4, 8]
  let tokens = tf.reshape(low, [bsz, (h / 2) * (w / 2), 8]);
  const [q, k, v] = tf.split(ops.lin(ops.ln(tokens, lnw, lnb), wqkv, bqkv), 3, 2);
  tokens = tf.add(tokens, ops.lin(ops.attn(q, k, v), wproj, bproj));
  const [ck, cv] = tf.split(ops.lin(ctx, wkv, bkv), 2, 2);
  const cross = ops.lin(ops.attn(ops.lin(tokens, wq, bq), ck, cv, tf.tensor2d(MASK)), wp2, bp2);
  tokens = tf.add(tokens, ops.gelu(cross));
  const up = ops.up(dropout(tf.reshape(tokens, [bsz, h / 2, w / 2, 8]), 0.25, new Rng('net-drop')));
  return ops.conv(tf.add(up, hid), w3, 1);
}

const OURS: NetOps = {
  conv: (x, w, stride) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, { stride }),
  gn: (x, g, b) => groupNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, 4, 1e-5),
  ln: (x, g, b) => layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
  lin: (x, w, b) => linear(x, w as tf.Tensor2D, b as tf.Tensor1D),
  emb: (table) => embeddingLookup(table as tf.Tensor2D, tf.tensor1d(CLASS_IDS, 'int32')),
  attn: (q, k, v, mask) => multiHeadAttention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, { heads: 2, keyMask: mask as tf.Tensor2D | undefined }),
  silu: (x) => silu(x),
  gelu: (x) => gelu(x),
  up: (x) => upsampleNearest2x(x as tf.Tensor4D),
};

/** Zero for queries whose keys are all masked (our documented convention); refAttention gives uniform weights there. */
function refAttentionZeroMasked(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
  const out = refAttention(q, k, v, 2, mask);
  if (mask === undefined) return out;
  return tf.mul(out, tf.reshape(tf.max(mask, 1), [-1, 1, 1]));
}

const REFERENCE: NetOps = {
  conv: (x, w, stride) => refConv2d(x, w, stride, w.shape[0] === 1 ? 0 : 1),
  gn: (x, g, b) => refGroupNorm(x, g, b, 4, 1e-5),
  ln: (x, g, b) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
  },
  lin: (x, w, b) => tf.add(tf.reshape(tf.matMul(tf.reshape(x, [-1, w.shape[0] as number]), w), [...x.shape.slice(0, -1), w.shape[1] as number]), b),
  emb: (table) => tf.gather(table, tf.tensor1d(CLASS_IDS, 'int32')),
  attn: refAttentionZeroMasked,
  silu: (x) => tf.mul(x, tf.sigmoid(x)),
  gelu: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
  up: (x) => gatherUpsample(x),
};

function gatherUpsample(x: tf.Tensor): tf.Tensor {
  const idx = (n: number): tf.Tensor1D => tf.tensor1d(Array.from({ length: 2 * n }, (_, i) => Math.floor(i / 2)), 'int32');
  return tf.gather(tf.gather(x, idx(x.shape[1] as number), 1), idx(x.shape[2] as number), 2);
}

describe('small conv + GroupNorm + attention net', () => {
  it('all gradients on wasm match cpu autodiff of the plain-op net', async () => {
    const rng = new Rng('small-net');
    const inputs: HostTensor[] = [
      randomHost([2, 8, 8, 2], rng),
      randomHost([2, 3, 6], rng),
      ...NET_PARAMS.map(([name, shape]) => randomHost(shape, rng, name.startsWith('g') || name === 'lnw' ? 1 : 0.4)),
    ];
    const before = tf.memory().numTensors;
    const errs = await expectMatchesCpuAutodiff((...xs) => smallNet(OURS, xs), (...xs) => smallNet(REFERENCE, xs), inputs);
    expect(errs.length).toBe(inputs.length + 1);
    expect(tf.memory().numTensors).toBe(before);
  });
});
