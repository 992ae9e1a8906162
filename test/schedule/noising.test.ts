/** qSample against a per-element float64 reference, at t = 0, on ranks 2 and 4. */
import * as tf from '@tensorflow/tfjs';
import { makeSchedule } from '../../src/schedule/schedule';
import { qSample } from '../../src/schedule/noising';
import { keyedRng, randomNormal } from '../../src/backend/random';
import { useBackend, relativeError } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('qSample', () => {
  const schedule = makeSchedule({ kind: 'linear', timesteps: 1000 });

  it('matches sqrt(abar) x0 + sqrt(1 - abar) eps per batch element (rank 4)', async () => {
    const before = tf.memory().numTensors;
    const shape = [3, 4, 5, 2];
    const x0 = randomNormal(shape, keyedRng(1, 'x0'));
    const noise = randomNormal(shape, keyedRng(1, 'noise'));
    const ts = [0, 999, 412];
    const t = tf.tensor1d(ts, 'int32');
    const xt = qSample(x0, t, noise, schedule);
    expect(xt.shape).toEqual(shape);
    const [a, e, got] = [await x0.data(), await noise.data(), await xt.data()];
    const per = 4 * 5 * 2;
    const want = new Float64Array(got.length);
    for (let i = 0; i < got.length; i++) {
      const abar = schedule.alphasCumprod[ts[Math.floor(i / per)]];
      want[i] = Math.sqrt(abar) * a[i] + Math.sqrt(1 - abar) * e[i];
    }
    expect(relativeError(got, want)).toBeLessThan(1e-6);
    tf.dispose([x0, noise, t, xt]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is the identity at t = 0 up to sqrt(1 - abar_0) = 0.01 of noise (rank 2)', async () => {
    const x0 = randomNormal([8, 16], keyedRng(2, 'x0'));
    const noise = randomNormal([8, 16], keyedRng(2, 'noise'));
    const t = tf.zeros([8], 'int32') as tf.Tensor1D;
    const xt = qSample(x0, t, noise, schedule);
    const diff = await tf.tidy(() => tf.abs(tf.sub(xt, x0)).max()).data();
    const noiseMax = await tf.tidy(() => tf.abs(noise).max()).data();
    const x0Max = await tf.tidy(() => tf.abs(x0).max()).data();
    // |x_t - x0| <= (1 - sqrt(abar_0)) |x0| + sqrt(1 - abar_0) |eps|, abar_0 = 0.9999
    const bound = (1 - Math.sqrt(0.9999)) * x0Max[0] + Math.sqrt(1 - 0.9999) * noiseMax[0];
    expect(diff[0]).toBeLessThanOrEqual(bound * (1 + 1e-5));
    expect(diff[0]).toBeGreaterThan(0.2 * bound);
    tf.dispose([x0, noise, t, xt]);
  });

  it('rejects mismatched t and noise with the shapes in the message', () => {
    const x0 = tf.zeros([2, 3]);
    const t1 = tf.tensor1d([0, 1, 2], 'int32');
    const t2 = tf.tensor1d([0, 1], 'int32');
    const n = tf.zeros([2, 4]);
    expect(() => qSample(x0, t1 as tf.Tensor1D, x0, schedule)).toThrow(/t must be \[B\] = \[2\].*got shape \[3\]/);
    expect(() => qSample(x0, t2 as tf.Tensor1D, n, schedule)).toThrow(/noise must have the shape of x0 \[2, 3\], got \[2, 4\]/);
    tf.dispose([x0, t1, t2, n]);
  });
});
