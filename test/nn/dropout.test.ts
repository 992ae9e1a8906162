import * as tf from '@tensorflow/tfjs';
import { dropout } from '../../src/nn/dropout';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm } from './reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

describe('dropout', () => {
  it('rate 0 returns x itself; rates outside [0, 1) are errors', () => {
    const x = tf.ones([3]);
    expect(dropout(x, 0, new Rng(0))).toBe(x);
    expect(() => dropout(x, 1, new Rng(0))).toThrow(/\[0, 1\)/);
    expect(() => dropout(x, -0.1, new Rng(0))).toThrow(/\[0, 1\)/);
    expect(() => dropout(x, Number.NaN, new Rng(0))).toThrow(/\[0, 1\)/);
    x.dispose();
  });

  it('zeros about `rate` of the elements, scales survivors by 1/(1-rate), is seeded, and its gradient is the mask', () => {
    const before = tf.memory().numTensors;
    const x = tf.fill([100, 100], 2);
    const y = dropout(x, 0.3, new Rng('d'));
    const v = y.dataSync();
    const zeros = v.filter((a) => a === 0).length / v.length;
    expect(Math.abs(zeros - 0.3)).toBeLessThan(0.02);
    expect(v.every((a) => a === 0 || Math.abs(a - 2 / 0.7) < 1e-5)).toBe(true);
    const y2 = dropout(x, 0.3, new Rng('d'));
    expect(Array.from(y2.dataSync())).toEqual(Array.from(v));
    const g = tf.grad((a: tf.Tensor) => tf.sum(dropout(a, 0.3, new Rng('d'))))(x);
    expect(Array.from(g.dataSync())).toEqual(Array.from(v, (a) => a / 2));
    tf.dispose([x, y, y2, g]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
