/** Per-image keyed noise: independent of batch composition. */
import * as tf from '@tensorflow/tfjs';
import { noiseForBatch } from '../../src/sample/noise';
import { keyedRng } from '../../src/backend/random';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('noiseForBatch', () => {
  it('row b of a batch equals image firstIndex + b drawn alone', async () => {
    const big = noiseForBatch([4, 3, 2, 2], 7, 10, 't5');
    const alone = noiseForBatch([1, 3, 2, 2], 7, 12, 't5');
    const row = big.slice([2, 0, 0, 0], [1, 3, 2, 2]);
    expect(Array.from(await row.data())).toEqual(Array.from(await alone.data()));
    const list = noiseForBatch([2, 3, 2, 2], 7, [13, 10], 't5');
    const l = await list.data();
    const b = await big.data();
    expect(Array.from(l.slice(0, 12))).toEqual(Array.from(b.slice(36, 48)));
    expect(Array.from(l.slice(12))).toEqual(Array.from(b.slice(0, 12)));
    tf.dispose([big, alone, row, list]);
  });

  it('uses keyedRng(seed, "sample", index, stepKey) and differs across keys', async () => {
    const n = noiseForBatch([1, 5], 'abc', 3, 'xT');
    const want = keyedRng('abc', 'sample', 3, 'xT').fillNormal(new Float32Array(5));
    expect(Array.from(await n.data())).toEqual(Array.from(want));
    const other = noiseForBatch([1, 5], 'abc', 3, 't0');
    expect(Array.from(await other.data())).not.toEqual(Array.from(want));
    tf.dispose([n, other]);
  });

  it('validates indices', () => {
    expect(() => noiseForBatch([2, 3], 1, [0], 'x')).toThrow(/one image index per batch element \(2\), got 1/);
    expect(() => noiseForBatch([2, 3], 1, -1, 'x')).toThrow(/integers >= 0/);
  });
});
