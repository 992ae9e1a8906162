import * as tf from '@tensorflow/tfjs';
import { layerNorm, LayerNorm } from '../../src/nn/layerNorm';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, sinTensor, expectValues } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('layerNorm', () => {
  it('equals PyTorch F.layer_norm', async () => {
    // torch 2.13: x = host([2, 3, 4], 0.61, 0.2) * 3 + 1; g = host([4], 1.3, 0.4); bt = host([4], 0.8, 0.9)
    //   F.layer_norm(x, (4,), g, bt, 1e-5).flatten()   (host as in groupNorm.test.ts)
    const expected = [
      0.142147, 1.063952, 0.730798, -0.740362, 1.342938, 1.360768, 0.510684, 0.929899, 0.303204, 0.412484, 0.656964, -1.442661,
      1.099219, 1.844165, 0.590208, 1.319381, 1.342354, 0.271295, 0.440964, -0.530632, 0.185382, 0.767076, 0.703158, -1.092362,
    ];
    const before = tf.memory().numTensors;
    const y = tf.tidy(() =>
      layerNorm(tf.add(tf.mul(sinTensor([2, 3, 4], 0.61, 0.2), 3), 1), sinTensor([4], 1.3, 0.4) as tf.Tensor1D, sinTensor([4], 0.8, 0.9) as tf.Tensor1D, 1e-5),
    );
    await expectValues(y, expected, 1e-5);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([[[3, 5, 8]], [[4, 6]], [[2, 2, 3, 5]]])('gradients on wasm match cpu autodiff: x %j', async (shape) => {
    const rng = new Rng(`ln-${shape}`);
    const d = shape[shape.length - 1];
    await expectMatchesCpuAutodiff(
      (a, g, b) => layerNorm(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
      (a, g, b) => {
        const { mean, variance } = tf.moments(a, -1, true);
        return tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
      },
      [randomHost(shape, rng, 2), randomHost([d], rng), randomHost([d], rng)],
    );
  });

  it('LayerNorm module: weight ones, bias zeros over the last axis', () => {
    const ln = new LayerNorm({ dim: 6 });
    expect(ln.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['weight', [6]],
      ['bias', [6]],
    ]);
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => ln.apply(tf.range(0, 12).reshape([2, 6])));
    const row = Array.from(y.dataSync()).slice(0, 6);
    expect(Math.abs(row.reduce((a, b) => a + b, 0))).toBeLessThan(1e-5);
    expect(Math.abs(row.reduce((a, b) => a + b * b, 0) / 6 - 1)).toBeLessThan(1e-4);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    ln.dispose();
  });
});
