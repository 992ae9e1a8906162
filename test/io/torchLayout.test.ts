/**
 * TF.js <-> PyTorch weight layouts. The reference is the definition itself, checked
 * element by element with explicit index arithmetic:
 *   conv2d: tfjs[h, w, i, o] == torch[o, i, h, w]     linear: tfjs[i, o] == torch[o, i]
 */
import * as tf from '@tensorflow/tfjs';
import type { ParamLayout } from '../../src/nn/module';
import { fromTorchLayout, toTorchLayout } from '../../src/io/torchLayout';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('cpu');
});

const iota = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i);

describe('toTorchLayout / fromTorchLayout', () => {
  it('conv2d HWIO -> OIHW, linear [in,out] -> [out,in], plain unchanged; and back', async () => {
    const before = tf.memory().numTensors;
    const [KH, KW, I, O] = [3, 2, 4, 5];
    const conv = tf.tensor4d(iota(KH * KW * I * O), [KH, KW, I, O]);
    const lin = tf.tensor2d(iota(6 * 7), [6, 7]);
    const bias = tf.tensor1d([1, 2, 3]);
    const tensors = new Map<string, tf.Tensor>([
      ['conv.weight', conv],
      ['proj.weight', lin],
      ['proj.bias', bias],
    ]);
    const layouts = new Map<string, ParamLayout>([
      ['conv.weight', 'conv2d'],
      ['proj.weight', 'linear'],
      ['proj.bias', 'plain'],
    ]);
    const torch = toTorchLayout(tensors, layouts);
    const tc = torch.get('conv.weight') as tf.Tensor;
    expect(tc.shape).toEqual([O, I, KH, KW]);
    const cv = await conv.data();
    const tv = await tc.data();
    for (let h = 0; h < KH; h++)
      for (let w = 0; w < KW; w++)
        for (let i = 0; i < I; i++)
          for (let o = 0; o < O; o++) {
            expect(tv[((o * I + i) * KH + h) * KW + w]).toBe(cv[((h * KW + w) * I + i) * O + o]);
          }
    const tl = torch.get('proj.weight') as tf.Tensor;
    expect(tl.shape).toEqual([7, 6]);
    const lv = await lin.data();
    const tlv = await tl.data();
    for (let i = 0; i < 6; i++) for (let o = 0; o < 7; o++) expect(tlv[o * 6 + i]).toBe(lv[i * 7 + o]);
    const tb = torch.get('proj.bias') as tf.Tensor;
    expect(tb).not.toBe(bias); // a clone: the caller may dispose every output uniformly
    expect(Array.from(await tb.data())).toEqual([1, 2, 3]);

    const back = fromTorchLayout(torch, layouts);
    for (const [name, t] of tensors) {
      const b = back.get(name) as tf.Tensor;
      expect(b.shape).toEqual(t.shape);
      expect(Array.from(await b.data())).toEqual(Array.from(await t.data()));
    }
    for (const m of [tensors, torch, back]) m.forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names without a layout and rank mismatches are clear errors, allocating nothing', () => {
    const before = tf.memory().numTensors;
    const w = tf.zeros([3, 3]);
    const k = tf.zeros([3, 3, 4]);
    expect(() => toTorchLayout(new Map([['a.weight', w]]), new Map())).toThrow("tensor 'a.weight' has no layout");
    expect(() => toTorchLayout(new Map([['a.weight', w], ['c.weight', k]]), new Map<string, ParamLayout>([['a.weight', 'linear'], ['c.weight', 'conv2d']]))).toThrow(
      "tensor 'c.weight' (conv2d): expected rank 4 (HWIO), got shape [3, 3, 4]",
    );
    expect(() => fromTorchLayout(new Map([['c.weight', k]]), new Map<string, ParamLayout>([['c.weight', 'linear']]))).toThrow(
      "tensor 'c.weight' (linear): expected rank 2 ([out, in]), got shape [3, 3, 4]",
    );
    w.dispose();
    k.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
