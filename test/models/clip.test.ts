/**
 * CLIP: the loss against an independent float64 host computation, the image
 * tower + loss gradients against cpu autodiff of plain ops, the temperature
 * clamp, duplicate-caption targets, and a tiny CLIP overfitting one batch.
 */
import * as tf from '@tensorflow/tfjs';
import { Clip, clipConfig, clipLoss, duplicateCaptionTargets, l2Normalize, CLIP_DEFAULTS } from '../../src/models/clip';
import { AdamW } from '../../src/train/adamw';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, valueAndGrads, randomHost, relErr, refConv2d, refGroupNorm, HostTensor } from '../nn/reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

const TINY = {
  image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 6 },
  text: { maxLength: 12, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 6, seed: 1 },
  seed: 2,
};

/** Float64 host reference of the symmetric multi-positive InfoNCE loss. */
function hostLoss(I: number[][], T: number[][], scale: number, Y: number[][]): number {
  const b = I.length;
  const norm = (v: number[]): number[] => {
    const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    return v.map((x) => x / n);
  };
  const In = I.map(norm);
  const Tn = T.map(norm);
  const logits = In.map((a) => Tn.map((t) => scale * a.reduce((s, x, k) => s + x * t[k], 0)));
  const rowCE = (L: number[][], Yt: number[][]): number =>
    L.reduce((acc, row, i) => {
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      return acc - row.reduce((s, x, j) => s + Yt[i][j] * (x - lse), 0);
    }, 0);
  const LT = logits[0].map((_, j) => logits.map((row) => row[j]));
  const YT = Y[0].map((_, j) => Y.map((row) => row[j]));
  return (rowCE(logits, Y) + rowCE(LT, YT)) / (2 * b);
}

describe('clipLoss', () => {
  it('duplicate captions share their row mass; distinct captions give the identity', () => {
    expect(Array.from(duplicateCaptionTargets(['a', 'b', 'a']))).toEqual([0.5, 0, 0.5, 0, 1, 0, 0.5, 0, 0.5]);
    expect(Array.from(duplicateCaptionTargets(['x', 'y']))).toEqual([1, 0, 0, 1]);
  });

  it('equals a float64 host computation, with and without duplicates', async () => {
    const rng = new Rng('loss');
    const I = randomHost([5, 4], rng);
    const T = randomHost([5, 4], rng);
    const to2d = (h: HostTensor): number[][] => Array.from({ length: h.shape[0] }, (_, i) => Array.from(h.data.subarray(i * h.shape[1], (i + 1) * h.shape[1])));
    for (const captions of [['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'a', 'c', 'a']]) {
      const Y = duplicateCaptionTargets(captions);
      const before = tf.memory().numTensors;
      const got = tf.tidy(() =>
        clipLoss(l2Normalize(tf.tensor2d(I.data, [5, 4])), l2Normalize(tf.tensor2d(T.data, [5, 4])), tf.scalar(14.285714), tf.tensor2d(Y, [5, 5])).dataSync()[0]);
      expect(tf.memory().numTensors).toBe(before);
      const Yh = Array.from({ length: 5 }, (_, i) => Array.from(Y.subarray(i * 5, i * 5 + 5)));
      expect(Math.abs(got - hostLoss(to2d(I), to2d(T), 14.285714, Yh))).toBeLessThan(2e-5);
    }
  });

  it('is log B for identical embeddings and falls toward 0 for aligned, well-separated pairs', () => {
    const eye = tf.eye(4) as tf.Tensor2D;
    const Y = tf.tensor2d(duplicateCaptionTargets(['a', 'b', 'c', 'd']), [4, 4]);
    const same = tf.ones([4, 4]) as tf.Tensor2D;
    expect(clipLoss(l2Normalize(same), l2Normalize(same), tf.scalar(10), Y).dataSync()[0]).toBeCloseTo(Math.log(4), 5);
    expect(clipLoss(eye, eye, tf.scalar(100), Y).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([eye, Y, same]);
  });
});

// ---------------------------------------------------------------- image tower gradient vs cpu autodiff

function refSilu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** The image tower + loss from named weights, text embeddings given (constant). */
function refImageLoss(w: Map<string, tf.Tensor>, x: tf.Tensor, textEmb: tf.Tensor, Y: tf.Tensor, logitScale: tf.Tensor, max: number): tf.Tensor {
  const get = (n: string): tf.Tensor => w.get(n) as tf.Tensor;
  const conv = (h: tf.Tensor, name: string, stride: 1 | 2): tf.Tensor => tf.add(refConv2d(h, get(`${name}.weight`), stride, stride === 2 ? 'same' : 1), get(`${name}.bias`));
  const gn = (h: tf.Tensor, name: string): tf.Tensor => refGroupNorm(h, get(`${name}.weight`), get(`${name}.bias`), 2, 1e-5);
  let h = conv(x, 'image_encoder.conv_in', 1);
  for (let s = 0; s < 2; s++) {
    const p = `image_encoder.stages.${s}`;
    h = conv(refSilu(gn(h, `${p}.norm1`)), `${p}.down`, 2);
    h = tf.add(h, conv(refSilu(gn(h, `${p}.norm2`)), `${p}.conv`, 1));
  }
  const pooled = tf.mean(refSilu(gn(h, 'image_encoder.norm_out')), [1, 2]);
  const emb = tf.matMul(pooled, get('image_encoder.image_projection.weight'));
  const norm = (e: tf.Tensor): tf.Tensor => tf.div(e, tf.norm(e, 'euclidean', 1, true));
  const logits = tf.mul(tf.matMul(norm(emb), norm(textEmb), false, true), tf.exp(tf.minimum(logitScale, max)));
  const ce = (L: tf.Tensor, Yt: tf.Tensor): tf.Tensor => tf.neg(tf.sum(tf.mul(Yt, tf.logSoftmax(L))));
  return tf.div(tf.add(ce(logits, Y), ce(tf.transpose(logits), tf.transpose(Y))), 2 * x.shape[0]);
}

describe('Clip', () => {
  it('image tower + loss: value and every image-parameter and logit_scale gradient equal cpu autodiff of plain ops', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const before = tf.memory().numTensors;
    const clip = new Clip(TINY);
    const rng = new Rng('x');
    const x = randomHost([3, 8, 8, 3], rng);
    const captions = ['a red 1', 'a blue 2', 'a red 1'];
    const Yhost = duplicateCaptionTargets(captions);
    const tok = clip.tokenizer();
    const textEmb = tf.tidy(() => clip.textEncoder.encodeTexts(tok, captions).pooled);
    const textHost = { data: (await textEmb.data()) as Float32Array, shape: textEmb.shape };
    const imageParams = clip.imageEncoder.namedParameters('image_encoder.');
    const vars = [...imageParams.map(([, v]) => v), clip.logitScale];
    // ours on wasm: d/dparams of the loss with the text embeddings held fixed
    const xT = tf.tensor4d(x.data, [3, 8, 8, 3]);
    const Y = tf.tensor2d(Yhost, [3, 3]);
    const { value, grads } = tf.variableGrads(() => clipLoss(clip.embedImages(xT), l2Normalize(textEmb), clip.scale(), Y), vars);
    const oursValue = (await value.data())[0];
    const oursGrads = await Promise.all(vars.map(async (v) => (await grads[v.name].data()) as Float32Array));
    tf.dispose([value, ...Object.values(grads), xT, Y]);
    // reference on cpu
    const names = [...imageParams.map(([n]) => n), 'logit_scale'];
    const hostWeights = await Promise.all(vars.map(async (v) => ({ data: (await v.data()) as Float32Array, shape: v.shape })));
    const ref = await valueAndGrads(
      'cpu',
      (...ws) => {
        const w = new Map(names.map((n, i) => [n, ws[i]]));
        const loss = refImageLoss(w, tf.tensor4d(x.data, [3, 8, 8, 3]), tf.tensor2d(textHost.data, textHost.shape as [number, number]), tf.tensor2d(Yhost, [3, 3]), w.get('logit_scale') as tf.Tensor, CLIP_DEFAULTS.logitScaleMax);
        return tf.reshape(loss, [1]);
      },
      hostWeights,
    );
    // valueAndGrads weights the output by a random dy: rescale our gradients by it.
    const dy = randomHost([1], new Rng(12345)).data[0];
    expect(Math.abs(oursValue - ref.value.data[0])).toBeLessThan(1e-5 * Math.abs(ref.value.data[0]) + 1e-6);
    names.forEach((n, i) => {
      const err = relErr({ data: oursGrads[i].map((g) => g * dy), shape: ref.grads[i].shape }, ref.grads[i]);
      if (!(err < 2e-4)) throw new Error(`gradient of ${n}: relative error ${err}`);
    });
    textEmb.dispose();
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('clamps the logit scale at logitScaleMax (scale 100, no gradient above it)', () => {
    const clip = new Clip(TINY);
    expect(clip.scale().dataSync()[0]).toBeCloseTo(1 / 0.07, 3);
    clip.logitScale.assign(tf.scalar(6));
    expect(clip.scale().dataSync()[0]).toBeCloseTo(100, 3);
    const { value, grads } = tf.variableGrads(() => clip.scale(), [clip.logitScale]);
    expect(grads[clip.logitScale.name].dataSync()[0]).toBe(0);
    tf.dispose([value, ...Object.values(grads)]);
    clip.dispose();
  });

  it('names parameters like a PyTorch module tree and validates its config', () => {
    const clip = new Clip(TINY);
    const names = clip.namedParameters().map(([n]) => n);
    for (const n of ['logit_scale', 'image_encoder.conv_in.weight', 'image_encoder.stages.1.down.weight', 'image_encoder.image_projection.weight',
      'text_encoder.token_embedding.weight', 'text_encoder.blocks.0.attn.qkv.weight', 'text_encoder.text_projection.weight']) {
      expect(names).toContain(n);
    }
    expect(names).not.toContain('image_encoder.image_projection.bias');
    clip.dispose();
    expect(() => clipConfig({ image: { embedDim: 6 }, text: { embedDim: 8 } })).toThrow(/image.embedDim 6, text.embedDim 8/);
    expect(() => clipConfig({ image: { channels: [6], groups: 4 } })).toThrow(/multiple of groups \(4\)/);
    const c = new Clip(TINY);
    const bad = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    expect(() => c.embedImages(bad)).toThrow(/images must be \[B, 8, 8, 3\] \(NHWC\), got \[1,8,8,1\]/);
    bad.dispose();
    c.dispose();
  });

  it('a tiny CLIP overfits one batch: loss well below log B and every image retrieves its caption', async () => {
    const before = tf.memory().numTensors;
    const clip = new Clip(TINY);
    const tok = clip.tokenizer();
    const captions = ['red', 'green', 'blue', 'white'];
    const colors = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, 1]];
    const rng = new Rng('overfit');
    const x = tf.tensor4d(Float32Array.from({ length: 4 * 64 * 3 }, (_, i) => colors[Math.floor(i / 192)][i % 3] * 0.8 + 0.2 * rng.normal()), [4, 8, 8, 3]);
    const { ids, mask } = tok.encodeTensors(captions);
    const Y = tf.tensor2d(duplicateCaptionTargets(captions), [4, 4]);
    const params = clip.namedTrainableParameters();
    const names = new Map(params.map(([n, v]) => [v.name, n]));
    const opt = new AdamW({ weightDecay: 0 });
    let first = NaN;
    let last = NaN;
    for (let step = 0; step < 40; step++) {
      const { value, grads } = tf.variableGrads(() => clip.loss(x, ids, mask, Y), params.map(([, v]) => v));
      const norm = opt.applyGradients(params, new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])), 3e-3);
      last = (await value.data())[0];
      if (step === 0) first = last;
      tf.dispose([value, norm, ...Object.values(grads)]);
    }
    expect(first).toBeGreaterThan(Math.log(4) * 0.8);
    expect(last).toBeLessThan(0.3);
    const sims = tf.tidy(() => tf.matMul(clip.embedImages(x), clip.embedTokens(ids, mask), false, true).arraySync() as number[][]);
    sims.forEach((row, i) => expect(row.indexOf(Math.max(...row))).toBe(i));
    opt.dispose();
    tf.dispose([x, ids, mask, Y]);
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
