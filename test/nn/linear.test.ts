import * as tf from '@tensorflow/tfjs';
import { linear, Linear } from '../../src/nn/linear';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('linear gradients on wasm match cpu autodiff (tf.matMul + add)', () => {
  const cases: Array<[number[], number, boolean]> = [
    [[5, 3], 4, true],
    [[2, 7, 6], 5, true],
    [[2, 3, 4, 6], 3, true],
    [[4, 6], 2, false],
    [[3, 1, 5], 7, false],
  ];
  it.each(cases)('x %j -> out %i, bias %p', async (xShape, out, withBias) => {
    const rng = new Rng(`linear-${xShape}-${out}`);
    const inF = xShape[xShape.length - 1];
    const inputs = [randomHost(xShape, rng), randomHost([inF, out], rng), ...(withBias ? [randomHost([out], rng)] : [])];
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (x, w, b) => linear(x, w as tf.Tensor2D, withBias ? (b as tf.Tensor1D) : null),
      (x, w, b) => {
        const y = tf.reshape(tf.matMul(tf.reshape(x, [-1, inF]), w), [...xShape.slice(0, -1), out]);
        return withBias ? tf.add(y, b) : y;
      },
      inputs,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Linear module', () => {
  it('has weight [in, out] (layout linear) and bias [out] with PyTorch init bounds', () => {
    const lin = new Linear({ inFeatures: 16, outFeatures: 5, rng: new Rng(1) });
    expect(lin.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['weight', [16, 5]],
      ['bias', [5]],
    ]);
    expect(lin.parameterLayouts().get('weight')).toBe('linear');
    const maxAbs = Math.max(...Array.from(lin.weight.dataSync(), Math.abs));
    expect(maxAbs).toBeLessThanOrEqual(0.25);
    expect(maxAbs).toBeGreaterThan(0.2);
    lin.dispose();
  });

  it('zeros init, no bias; applies to rank 3 input; errors on mismatched input', () => {
    const lin = new Linear({ inFeatures: 3, outFeatures: 2, bias: false, init: 'zeros', rng: new Rng(1) });
    expect(lin.bias).toBeNull();
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => lin.apply(tf.ones([2, 4, 3])));
    expect(y.shape).toEqual([2, 4, 2]);
    tf.dispose(y);
    tf.tidy(() => {
      expect(() => lin.apply(tf.ones([2, 4]))).toThrow(/last dimension 4 .* expects 3/);
      expect(() => lin.apply(tf.ones([3]))).toThrow(/rank >= 2/);
    });
    expect(tf.memory().numTensors).toBe(before);
    lin.dispose();
  });
});
