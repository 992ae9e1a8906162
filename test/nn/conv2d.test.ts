import * as tf from '@tensorflow/tfjs';
import { conv2d, Conv2d, ConvPadding } from '../../src/nn/conv2d';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, refConv2d, sinTensor, maxAbsDiff } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('conv2d forward', () => {
  it('3x3 stride 2 padding 1 equals PyTorch on even and odd sizes', async () => {
    // Generated with torch 2.13:
    //   host = lambda shape, a, b: tensor([sin(a*i + b) for i in range(prod(shape))]).reshape(shape)
    //   x = host([1, H, H, 2], 0.37, 0.1)  # NHWC;   w = host([3, 3, 2, 2], 0.53, 0.2) * 0.5  # HWIO
    //   F.conv2d(x.permute(0,3,1,2), w.permute(3,2,0,1), stride=2, padding=1).permute(0,2,3,1).flatten()
    const expected: Record<number, number[]> = {
      4: [-0.069745, -0.150633, 0.197067, 0.19472, 0.532418, 0.327407, 0.101055, 0.231926],
      5: [0.046675, 0.206868, -0.45419, -0.454409, 0.390639, 0.270316, 0.392667, 0.581798, -0.689539, -0.632537, 0.353962,
        0.077836, 0.354862, 0.378588, -0.297928, -0.255649, -0.024283, -0.163089],
    };
    const before = tf.memory().numTensors;
    for (const h of [4, 5]) {
      const y = tf.tidy(() => conv2d(sinTensor([1, h, h, 2], 0.37, 0.1) as tf.Tensor4D, tf.mul(sinTensor([3, 3, 2, 2], 0.53, 0.2), 0.5) as tf.Tensor4D, { stride: 2, padding: 1 }));
      const out = await y.data();
      y.dispose();
      expect(out.length).toBe(expected[h].length);
      expected[h].forEach((v, i) => expect(Math.abs(out[i] - v)).toBeLessThan(2e-6));
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('TF "same" at stride 2 keeps TF semantics (pads bottom/right on even sizes)', async () => {
    const before = tf.memory().numTensors;
    const rng = new Rng('same');
    const x = tf.tensor(randomHost([2, 6, 6, 3], rng).data, [2, 6, 6, 3]) as tf.Tensor4D;
    const w = tf.tensor(randomHost([3, 3, 3, 4], rng).data, [3, 3, 3, 4]) as tf.Tensor4D;
    const ours = conv2d(x, w, { stride: 2, padding: 'same' });
    const explicit = tf.tidy(() => tf.conv2d(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), w, 2, 'valid'));
    const torchLike = conv2d(x, w, { stride: 2, padding: 1 });
    expect(ours.shape).toEqual([2, 3, 3, 4]);
    const err = maxAbsDiff(ours, explicit);
    const diff = maxAbsDiff(ours, torchLike);
    expect(err).toBeLessThan(1e-5);
    expect(diff).toBeGreaterThan(0.1); // the two conventions really differ here
    tf.dispose([x, w, ours, explicit, torchLike]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad shapes and options with clear errors', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
    const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => conv2d(x, tf.zeros([3, 3, 2, 4]) as tf.Tensor4D)).toThrow(/3 channels.*Cin = 2/);
    expect(() => conv2d(x, tf.zeros([2, 2, 3, 4]) as tf.Tensor4D)).toThrow(/odd/);
    expect(() => conv2d(x, tf.zeros([3, 3, 3, 4]) as tf.Tensor4D, { padding: 3 })).toThrow(/exceeds kernel size/);
    expect(() => conv2d(x, tf.zeros([3, 3, 3, 4]) as tf.Tensor4D, { padding: -1 })).toThrow(/non-negative integer/);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('conv2d gradients on wasm match cpu autodiff', () => {
  // [input shape, kernel, stride, padding, Cout]
  const cases: Array<[number[], number, 1 | 2, ConvPadding, number]> = [
    [[2, 5, 6, 3], 3, 1, 1, 4],
    [[2, 5, 5, 3], 3, 1, 'same', 2],
    [[2, 5, 5, 3], 3, 1, 'valid', 4],
    [[2, 5, 7, 3], 3, 1, 0, 3],
    [[2, 6, 6, 3], 3, 2, 1, 4],
    [[2, 7, 5, 3], 3, 2, 1, 4],
    [[1, 6, 7, 2], 3, 2, 'same', 3],
    [[1, 7, 6, 2], 3, 2, 'valid', 3],
    [[3, 4, 5, 3], 1, 1, 0, 5],
    [[2, 5, 6, 3], 1, 2, 0, 4],
    [[1, 9, 8, 2], 5, 1, 2, 3],
    [[1, 9, 8, 2], 5, 2, 2, 3],
    [[1, 7, 7, 2], 5, 2, 1, 2],
  ];
  it.each(cases)('x %j, k %i, stride %i, padding %p, Cout %i', async (xShape, k, stride, padding, cout) => {
    const rng = new Rng(`conv-${xShape}-${k}-${stride}-${padding}`);
    const x = randomHost(xShape, rng);
    const w = randomHost([k, k, xShape[3], cout], rng);
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, { stride, padding }),
      (a, b) => refConv2d(a, b, stride, padding),
      [x, w],
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('conv2d with fused bias: gradients on wasm match cpu autodiff of conv + add', () => {
  const cases: Array<[number[], number, 1 | 2, ConvPadding, number]> = [
    [[2, 5, 6, 3], 3, 1, 1, 4],
    [[2, 6, 6, 3], 3, 2, 1, 4],
    [[1, 6, 7, 2], 3, 2, 'same', 3],
    [[3, 4, 5, 3], 1, 1, 0, 5],
  ];
  it.each(cases)('x %j, k %i, stride %i, padding %p, Cout %i', async (xShape, k, stride, padding, cout) => {
    const rng = new Rng(`conv-bias-${xShape}-${k}-${stride}-${padding}`);
    const inputs = [randomHost(xShape, rng), randomHost([k, k, xShape[3], cout], rng), randomHost([cout], rng)];
    await expectMatchesCpuAutodiff(
      (a, b, c) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, { stride, padding, bias: c as tf.Tensor1D }),
      (a, b, c) => tf.add(refConv2d(a, b, stride, padding), c),
      inputs,
    );
  });

  it('rejects a bias of the wrong size', () => {
    tf.tidy(() => {
      expect(() => conv2d(tf.zeros([1, 3, 3, 2]) as tf.Tensor4D, tf.zeros([3, 3, 2, 4]) as tf.Tensor4D, { bias: tf.zeros([3]) as tf.Tensor1D })).toThrow(
        /bias must be \[4\]/,
      );
    });
  });
});

describe('Conv2d module', () => {
  it('registers HWIO weight and bias with PyTorch default init bounds', () => {
    const conv = new Conv2d({ inChannels: 4, outChannels: 8, kernelSize: 3, rng: new Rng(0) });
    expect(conv.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['weight', [3, 3, 4, 8]],
      ['bias', [8]],
    ]);
    expect(conv.parameterLayouts().get('weight')).toBe('conv2d');
    const bound = 1 / Math.sqrt(4 * 9);
    const w = conv.weight.dataSync();
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(w, Math.abs))).toBeGreaterThan(0.9 * bound); // really spans the range
    expect(Math.max(...Array.from(conv.bias?.dataSync() ?? [], Math.abs))).toBeLessThanOrEqual(bound);
    conv.dispose();
  });

  it('init zeros, no bias, stride 2 output shape', () => {
    const conv = new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, stride: 2, bias: false, init: 'zeros', rng: new Rng(0) });
    expect(conv.bias).toBeNull();
    expect(conv.namedParameters().map(([n]) => n)).toEqual(['weight']);
    const y = tf.tidy(() => conv.apply(tf.ones([1, 8, 8, 2]) as tf.Tensor4D));
    expect(y.shape).toEqual([1, 4, 4, 3]);
    expect(Math.max(...Array.from(y.dataSync(), Math.abs))).toBe(0);
    tf.dispose(y);
    conv.dispose();
  });

  it('same seed, same weights; validates arguments', () => {
    const a = new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 1, rng: new Rng(7) });
    const b = new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 1, rng: new Rng(7) });
    expect(Array.from(a.weight.dataSync())).toEqual(Array.from(b.weight.dataSync()));
    a.dispose();
    b.dispose();
    expect(() => new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 2, rng: new Rng(0) })).toThrow(/odd/);
  });
});
