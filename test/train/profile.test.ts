import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { profileKernels } from '../../src/train/profile';
import { silu } from '../../src/nn/activations';
import { Rng, randomNormal } from '../../src/backend/random';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('profileKernels', () => {
  it('groups kernel times by name, leaves out customGrad scopes, disposes what fn leaves behind', async () => {
    const v = tf.variable(randomNormal([64, 64], new Rng(1)));
    const before = tf.memory().numTensors;
    const prof = await profileKernels(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(silu(tf.matMul(v, v))) as tf.Scalar, [v]);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    }, 50);
    expect(tf.memory().numTensors).toBe(before);
    const names = prof.rows.map((r) => r.kernel);
    expect(names).toContain('Sigmoid'); // forward inside the customGrad and its backward
    expect(names).toContain('BatchMatMul');
    expect(names).not.toContain('unnamed scope');
    const sig = prof.rows.find((r) => r.kernel === 'Sigmoid');
    expect(sig?.calls).toBe(2);
    const sum = prof.rows.reduce((s, r) => s + r.ms, 0) + prof.otherMs;
    expect(sum).toBeCloseTo(prof.totalMs, 6);
    expect(prof.rows.reduce((s, r) => s + r.share, 0)).toBeLessThanOrEqual(1 + 1e-9);
    for (let i = 1; i < prof.rows.length; i++) expect(prof.rows[i].ms).toBeLessThanOrEqual(prof.rows[i - 1].ms);
    v.dispose();
  });

  it('keeps only the top rows and rejects a bad top', async () => {
    const prof = await profileKernels(() => {
      tf.add(tf.mul(tf.ones([8]), 2), tf.sub(tf.ones([8]), 1)).dataSync();
    }, 1);
    expect(prof.rows.length).toBe(1);
    await expect(profileKernels(() => undefined, 0)).rejects.toThrow(/top must be a positive integer/);
  });
});
