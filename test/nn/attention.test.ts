import * as tf from '@tensorflow/tfjs';
import { multiHeadAttention, SelfAttention, CrossAttention } from '../../src/nn/attention';
import { linear } from '../../src/nn/linear';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, refAttention, sinTensor, expectValues, maxAbsDiff } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('multiHeadAttention', () => {
  it('splits heads as PyTorch reshape(b, n, heads, d) (values from torch), with and without a key mask', async () => {
    // torch 2.13, host(shape, a, b) = tensor([sin(a*i + b) for i in range(prod(shape))]).reshape(shape):
    //   q = host([1, 2, 4], 0.7, 0.1); k = host([1, 3, 4], 0.9, 0.3); v = host([1, 3, 4], 1.1, 0.5)
    //   qh = q.reshape(b, n, heads, d).transpose(1, 2) (same for k, v); s = qh @ kh.transpose(-1, -2) / sqrt(d)
    //   masked: s.masked_fill(mask[:, None, None, :] == 0, -inf), mask = [[1, 0, 1]]
    //   (softmax(s, -1) @ vh).transpose(1, 2).reshape(b, n, c), heads = 2
    const before = tf.memory().numTensors;
    const [y, ym] = tf.tidy(() => {
      const q = sinTensor([1, 2, 4], 0.7, 0.1) as tf.Tensor3D;
      const k = sinTensor([1, 3, 4], 0.9, 0.3) as tf.Tensor3D;
      const v = sinTensor([1, 3, 4], 1.1, 0.5) as tf.Tensor3D;
      return [
        multiHeadAttention(q, k, v, { heads: 2 }),
        multiHeadAttention(q, k, v, { heads: 2, keyMask: tf.tensor2d([[1, 0, 1]]) }),
      ];
    });
    await expectValues(y, [0.110304, 0.02914, 0.226821, -0.122322, -0.243705, -0.102566, -0.073746, 0.259605]);
    await expectValues(ym, [0.301401, 0.083099, 0.077471, -0.438497, 0.290161, 0.025237, -0.537433, -0.133847]);
    tf.dispose([y, ym]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // [B, N, M, C, heads, mask]
  const cases: Array<[number, number, number, number, number, number[] | null]> = [
    [2, 5, 5, 8, 2, null],
    [1, 7, 3, 12, 3, null],
    [2, 6, 4, 8, 4, [1, 1, 0, 1, 0, 1, 1, 0]],
    [3, 4, 2, 6, 1, [1, 0, 0, 1, 1, 1]],
  ];
  it.each(cases)('gradients on wasm match cpu autodiff: B %i, N %i, M %i, C %i, heads %i, mask %j', async (b, n, m, c, heads, mask) => {
    const rng = new Rng(`attn-${b}-${n}-${m}-${c}-${heads}`);
    const inputs = [randomHost([b, n, c], rng), randomHost([b, m, c], rng), randomHost([b, m, c], rng)];
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (q, k, v) => multiHeadAttention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, { heads, keyMask: mask ? tf.tensor2d(mask, [b, m]) : undefined }),
      (q, k, v) => refAttention(q, k, v, heads, mask ? tf.tensor2d(mask, [b, m]) : undefined),
      inputs,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a fully masked query row gives zeros and zero (finite) gradients, other rows unaffected', () => {
    const rng = new Rng('full-mask');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const q = tf.tensor(randomHost([2, 3, 4], rng).data, [2, 3, 4]) as tf.Tensor3D;
      const k = tf.tensor(randomHost([2, 5, 4], rng).data, [2, 5, 4]) as tf.Tensor3D;
      const v = tf.tensor(randomHost([2, 5, 4], rng).data, [2, 5, 4]) as tf.Tensor3D;
      const mask = tf.tensor2d([[1, 1, 0, 1, 1], [0, 0, 0, 0, 0]]);
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor =>
        multiHeadAttention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, { heads: 2, keyMask: mask });
      const y = f(q, k, v);
      const yv = y.arraySync() as number[][][];
      expect(yv[1].flat().every((x) => x === 0)).toBe(true);
      const unmasked = multiHeadAttention(tf.slice(q, 0, 1), tf.slice(k, 0, 1), tf.slice(v, 0, 1), { heads: 2, keyMask: tf.slice(mask, 0, 1) });
      expect(tf.max(tf.abs(tf.sub(tf.slice(y, 0, 1), unmasked))).dataSync()[0]).toBeLessThan(1e-6);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(f(a, b, c))))([q, k, v]);
      for (const g of grads) {
        const gv = g.arraySync() as number[][][];
        expect(gv.flat(2).every(Number.isFinite)).toBe(true);
        expect(gv[1].flat().every((x) => x === 0)).toBe(true);
      }
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects indivisible heads and mismatched shapes', () => {
    tf.tidy(() => {
      const q = tf.zeros([1, 2, 6]) as tf.Tensor3D;
      expect(() => multiHeadAttention(q, q, q, { heads: 4 })).toThrow(/channels \(6\) must be divisible by heads \(4\)/);
      expect(() => multiHeadAttention(q, tf.zeros([1, 2, 4]) as tf.Tensor3D, q, { heads: 2 })).toThrow(/expected k, v/);
      expect(() => multiHeadAttention(q, q, q, { heads: 2, keyMask: tf.ones([1, 3]) as tf.Tensor2D })).toThrow(/keyMask must be \[1, 2\]/);
    });
  });
});

describe('attention modules', () => {
  it('SelfAttention = proj(mha(chunk3(qkv(x)))), PyTorch child names', async () => {
    const attn = new SelfAttention({ dim: 8, heads: 2, rng: new Rng(5) });
    expect(attn.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['qkv.weight', [8, 24]],
      ['qkv.bias', [24]],
      ['proj.weight', [8, 8]],
      ['proj.bias', [8]],
    ]);
    const before = tf.memory().numTensors;
    const [y, ref] = tf.tidy(() => {
      const x = tf.tensor(randomHost([2, 5, 8], new Rng('x')).data, [2, 5, 8]) as tf.Tensor3D;
      const qkv = tf.add(tf.matMul(tf.reshape(x, [10, 8]), attn.qkv.weight), attn.qkv.bias as tf.Variable).reshape([2, 5, 24]);
      const q = tf.slice(qkv, [0, 0, 0], [2, 5, 8]);
      const k = tf.slice(qkv, [0, 0, 8], [2, 5, 8]);
      const v = tf.slice(qkv, [0, 0, 16], [2, 5, 8]);
      const o = refAttention(q, k, v, 2);
      return [attn.apply(x), linear(o, attn.proj.weight as tf.Tensor2D, attn.proj.bias as tf.Tensor1D)];
    });
    expect(y.shape).toEqual([2, 5, 8]);
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    tf.dispose([y, ref]);
    expect(tf.memory().numTensors).toBe(before);
    attn.dispose();
  });

  it('CrossAttention = proj(mha(q(x), chunk2(kv(ctx)), mask)), PyTorch child names', () => {
    const attn = new CrossAttention({ dim: 8, contextDim: 6, heads: 4, rng: new Rng(6) });
    expect(attn.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['q.weight', [8, 8]],
      ['q.bias', [8]],
      ['kv.weight', [6, 16]],
      ['kv.bias', [16]],
      ['proj.weight', [8, 8]],
      ['proj.bias', [8]],
    ]);
    const before = tf.memory().numTensors;
    const [y, ref] = tf.tidy(() => {
      const x = tf.tensor(randomHost([2, 4, 8], new Rng('x')).data, [2, 4, 8]) as tf.Tensor3D;
      const ctx = tf.tensor(randomHost([2, 3, 6], new Rng('c')).data, [2, 3, 6]) as tf.Tensor3D;
      const mask = tf.tensor2d([[1, 1, 0], [1, 0, 0]]);
      const q = linear(x, attn.q.weight as tf.Tensor2D, attn.q.bias as tf.Tensor1D);
      const kv = linear(ctx, attn.kv.weight as tf.Tensor2D, attn.kv.bias as tf.Tensor1D);
      const o = refAttention(q, tf.slice(kv, [0, 0, 0], [2, 3, 8]), tf.slice(kv, [0, 0, 8], [2, 3, 8]), 4, mask);
      return [attn.apply(x, ctx, mask), linear(o, attn.proj.weight as tf.Tensor2D, attn.proj.bias as tf.Tensor1D)];
    });
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    tf.dispose([y, ref]);
    expect(tf.memory().numTensors).toBe(before);
    attn.dispose();
  });
});
