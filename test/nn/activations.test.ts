import * as tf from '@tensorflow/tfjs';
import { silu, gelu, activation } from '../../src/nn/activations';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost, expectValues } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('activations', () => {
  it('gelu is the exact (erf) GELU of PyTorch, value and derivative', async () => {
    // torch 2.13: xs = tensor([-3, -1.5, -0.5, 0, 0.3, 1, 2.5], float64, requires_grad=True)
    //   y = F.gelu(xs)  (approximate='none');  y.sum().backward();  print(y, xs.grad)
    const xs = [-3.0, -1.5, -0.5, 0.0, 0.3, 1.0, 2.5];
    const before = tf.memory().numTensors;
    const x = tf.tensor1d(xs);
    const y = gelu(x);
    const dx = tf.grad((a: tf.Tensor) => tf.sum(gelu(a)))(x);
    await expectValues(y, [-0.00405, -0.100211, -0.154269, 0.0, 0.185373, 0.841345, 2.484476], 2e-6);
    await expectValues(dx, [-0.011946, -0.127469, 0.132505, 0.5, 0.732328, 1.083315, 1.037611], 2e-6);
    tf.dispose([x, y, dx]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('silu(x) = x sigmoid(x)', async () => {
    const xs = [-4, -1, 0, 0.5, 3];
    const y = tf.tidy(() => silu(tf.tensor1d(xs)));
    await expectValues(y, xs.map((v) => v / (1 + Math.exp(-v))), 1e-6);
    y.dispose();
  });

  it.each([['silu' as const], ['gelu' as const]])('%s gradient on wasm matches cpu autodiff', async (name) => {
    const x = randomHost([3, 4, 5], new Rng(name), 2);
    await expectMatchesCpuAutodiff(
      (a) => activation(name, a),
      (a) => (name === 'silu' ? tf.mul(a, tf.sigmoid(a)) : tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.mul(a, Math.SQRT1_2))))),
      [x],
    );
  });
});
