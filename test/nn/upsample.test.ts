import * as tf from '@tensorflow/tfjs';
import { upsampleNearest2x } from '../../src/nn/upsample';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('upsampleNearest2x', () => {
  it('out[2i + a, 2j + b] = x[i, j] (PyTorch nearest, scale 2)', () => {
    const [b, h, w, c] = [2, 3, 2, 3];
    const x = tf.range(0, b * h * w * c).reshape([b, h, w, c]) as tf.Tensor4D;
    const y = upsampleNearest2x(x);
    expect(y.shape).toEqual([b, 2 * h, 2 * w, c]);
    const xv = x.dataSync();
    const yv = y.dataSync();
    for (let n = 0; n < b; n++)
      for (let i = 0; i < 2 * h; i++)
        for (let j = 0; j < 2 * w; j++)
          for (let k = 0; k < c; k++) {
            const got = yv[((n * 2 * h + i) * 2 * w + j) * c + k];
            expect(got).toBe(xv[((n * h + Math.floor(i / 2)) * w + Math.floor(j / 2)) * c + k]);
          }
    tf.dispose([x, y]);
  });

  // Reference: two gathers with index floor(i / 2). (Not resizeNearestNeighbor: the cpu
  // backend's ResizeNearestNeighborGrad in tfjs 4.22 is wrong for batch > 1.)
  it('gradient on wasm matches cpu autodiff of a gather-based upsample', async () => {
    const before = tf.memory().numTensors;
    const half = (n: number): tf.Tensor1D => tf.tensor1d(Array.from({ length: 2 * n }, (_, i) => Math.floor(i / 2)), 'int32');
    await expectMatchesCpuAutodiff(
      (a) => upsampleNearest2x(a as tf.Tensor4D),
      (a) => tf.gather(tf.gather(a, half(a.shape[1] as number), 1), half(a.shape[2] as number), 2),
      [randomHost([2, 3, 5, 4], new Rng('up'))],
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
