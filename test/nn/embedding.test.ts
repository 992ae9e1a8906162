import * as tf from '@tensorflow/tfjs';
import { embeddingLookup, Embedding } from '../../src/nn/embedding';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, expectMatchesCpuAutodiff, randomHost } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('embeddingLookup', () => {
  it('gradient (scatterND, duplicates summed) on wasm matches cpu autodiff of tf.gather', async () => {
    const ids = [3, 0, 3, 7, 1, 3, 0, 9]; // duplicates on purpose
    const table = randomHost([10, 5], new Rng('emb'));
    const before = tf.memory().numTensors;
    await expectMatchesCpuAutodiff(
      (t) => embeddingLookup(t as tf.Tensor2D, tf.tensor2d(ids, [2, 4], 'int32')),
      (t) => tf.reshape(tf.gather(t, tf.tensor1d(ids, 'int32')), [2, 4, 5]),
      [table],
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gathers rows, output [...ids, dim]', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const table = tf.tensor2d([[0, 1], [10, 11], [20, 21]]);
      const y = embeddingLookup(table, tf.tensor([[2], [0]], [2, 1], 'int32'));
      expect(y.shape).toEqual([2, 1, 2]);
      expect(Array.from(y.dataSync())).toEqual([20, 21, 0, 1]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects out-of-range and non-int32 ids', () => {
    tf.tidy(() => {
      const table = tf.zeros([4, 3]) as tf.Tensor2D;
      expect(() => embeddingLookup(table, tf.tensor1d([1, 4], 'int32'))).toThrow(/id 4 at flat position 1 is outside \[0, 4\)/);
      expect(() => embeddingLookup(table, tf.tensor1d([-1], 'int32'))).toThrow(/outside/);
      expect(() => embeddingLookup(table, tf.tensor1d([1]))).toThrow(/int32/);
    });
  });

  it('Embedding module: weight [num, dim] ~ N(0, 1), plain layout', () => {
    const emb = new Embedding({ numEmbeddings: 200, dim: 50, rng: new Rng(3) });
    expect(emb.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([['weight', [200, 50]]]);
    expect(emb.parameterLayouts().get('weight')).toBe('plain');
    const w = Array.from(emb.weight.dataSync());
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
    emb.dispose();
  });
});
