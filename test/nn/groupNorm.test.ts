import * as tf from '@tensorflow/tfjs';
import { groupNorm, GroupNorm } from '../../src/nn/groupNorm';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, refGroupNorm, sinTensor, expectValues } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('groupNorm', () => {
  it('equals PyTorch F.group_norm on NHWC input', async () => {
    // torch 2.13: host(shape, a, b) = tensor([sin(a*i + b) ...]).reshape(shape)
    //   x = host([2, 2, 3, 4], 0.61, 0.2) * 3 + 1; g = host([4], 1.3, 0.4); bt = host([4], 0.8, 0.9)
    //   F.group_norm(x.permute(0, 3, 1, 2), 2, g, bt, 1e-5).permute(0, 2, 3, 1).flatten()
    const expected = [
      0.874609, 2.024881, 0.755856, -1.067691, 1.043408, 0.756618, 0.448398, 1.195415, 0.19747, 0.069821, 0.574418, -0.692152,
      1.320952, 2.387256, 0.689364, -0.071753, 0.450625, -0.466131, 0.387749, 0.868074, 0.656681, 1.575355, 0.733559, -1.188034,
      1.155461, 1.214553, 0.53936, 0.881738, 0.167539, -0.318086, 0.539855, -0.604505, 1.156359, 2.271668, 0.79695, -0.83818,
      0.63373, -0.15188, 0.403708, 1.005032, 0.443294, 0.960652, 0.747341, -1.577039, 1.256839, 1.684663, 0.615639, 0.524199,
    ];
    const before = tf.memory().numTensors;
    const y = tf.tidy(() =>
      groupNorm(tf.add(tf.mul(sinTensor([2, 2, 3, 4], 0.61, 0.2), 3), 1), sinTensor([4], 1.3, 0.4) as tf.Tensor1D, sinTensor([4], 0.8, 0.9) as tf.Tensor1D, 2, 1e-5),
    );
    await expectValues(y, expected, 1e-5);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  const cases: Array<[number[], number]> = [
    [[2, 3, 4, 8], 2],
    [[2, 5, 3, 6], 3],
    [[3, 7, 8], 4],
    [[2, 4, 4, 4], 1],
    [[2, 2, 3, 4], 4],
  ];
  it.each(cases)('gradients on wasm match cpu autodiff: x %j, %i groups', async (shape, groups) => {
    const rng = new Rng(`gn-${shape}-${groups}`);
    const c = shape[shape.length - 1];
    const x = randomHost(shape, rng, 2);
    x.data.forEach((v, i) => (x.data[i] = v + 0.5)); // nonzero mean
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (a, g, b) => groupNorm(a, g as tf.Tensor1D, b as tf.Tensor1D, groups, 1e-5),
      (a, g, b) => refGroupNorm(a, g, b, groups, 1e-5),
      [x, randomHost([c], rng), randomHost([c], rng)],
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(cases)('fused SiLU: value and gradients on wasm match cpu autodiff of silu(groupNorm): x %j, %i groups', async (shape, groups) => {
    const rng = new Rng(`gn-silu-${shape}-${groups}`);
    const c = shape[shape.length - 1];
    const x = randomHost(shape, rng, 2);
    x.data.forEach((v, i) => (x.data[i] = v + 0.5)); // nonzero mean
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (a, g, b) => groupNorm(a, g as tf.Tensor1D, b as tf.Tensor1D, groups, 1e-5, { silu: true }),
      (a, g, b) => {
        const y = refGroupNorm(a, g, b, groups, 1e-5);
        return tf.mul(y, tf.sigmoid(y));
      },
      [x, randomHost([c], rng), randomHost([c], rng)],
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('GroupNorm module: weight ones, bias zeros, clear error on indivisible channels', () => {
    const gn = new GroupNorm({ numGroups: 4, numChannels: 8 });
    expect(gn.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['weight', [8]],
      ['bias', [8]],
    ]);
    expect(Array.from(gn.weight.dataSync())).toEqual(new Array(8).fill(1));
    expect(gn.eps).toBe(1e-5);
    gn.dispose();
    expect(() => new GroupNorm({ numGroups: 3, numChannels: 8 })).toThrow(/numChannels \(8\) must be divisible by numGroups \(3\)/);
    tf.tidy(() => {
      expect(() => groupNorm(tf.ones([1, 2, 6]), tf.ones([6]) as tf.Tensor1D, tf.zeros([6]) as tf.Tensor1D, 4, 1e-5)).toThrow(/6 channels are not divisible into 4 groups/);
    });
  });
});
