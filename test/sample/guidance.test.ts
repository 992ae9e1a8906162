/** Classifier-free guidance: one batched call, the guidance formula, scale 1 = conditional model. */
import * as tf from '@tensorflow/tfjs';
import { classifierFreeGuidance } from '../../src/sample/guidance';
import { Cond, Denoiser } from '../../src/sample/types';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

/** A denoiser that mixes x, t and two cond tensors nonlinearly; records the batch of each call. */
function makeDenoiser(calls: number[]): Denoiser {
  return (x, t, cond) => {
    calls.push(x.shape[0]);
    if (cond === null) throw new Error('test denoiser needs cond');
    return tf.tidy(() => {
      const B = x.shape[0];
      const ctx = cond.context.mean(1).reshape([B, 1, 1, -1]).slice([0, 0, 0, 0], [B, 1, 1, 2]); // [B,1,1,2]
      const pooled = cond.pooled.reshape([B, 1, 1, 1]);
      const tt = t.toFloat().reshape([B, 1, 1, 1]);
      return tf.add(tf.mul(tf.tanh(tf.add(x, ctx)), pooled), tf.mul(tt, 0.01));
    });
  };
}

describe('classifierFreeGuidance', () => {
  const B = 3;
  let x: tf.Tensor;
  let t: tf.Tensor1D;
  let cond: Cond;
  let uncond: Cond;
  beforeAll(() => {
    x = tf.randomNormal([B, 4, 4, 2], 0, 1, 'float32', 1);
    t = tf.tensor1d([10, 500, 999], 'int32');
    cond = { context: tf.randomNormal([B, 5, 2], 0, 1, 'float32', 2), pooled: tf.randomNormal([B, 1], 0, 1, 'float32', 3) };
    uncond = { context: tf.zeros([1, 5, 2]), pooled: tf.fill([1, 1], 0.5) };
  });
  afterAll(() => {
    tf.dispose([x, t, cond.context, cond.pooled, uncond.context, uncond.pooled]);
  });

  it('computes uncond + scale (cond - uncond) in one call of batch 2B', async () => {
    const before = tf.memory().numTensors;
    const calls: number[] = [];
    const base = makeDenoiser(calls);
    const guided = classifierFreeGuidance(base, { scale: 7.5, uncond });
    const out = guided(x, t, cond);
    expect(calls).toEqual([2 * B]);
    const [c, u] = tf.tidy(() => {
      const ub = { context: tf.broadcastTo(uncond.context, [B, 5, 2]), pooled: tf.broadcastTo(uncond.pooled, [B, 1]) };
      return [base(x, t, cond), base(x, t, ub)];
    });
    const [cv, uv, ov] = [await c.data(), await u.data(), await out.data()];
    ov.forEach((v, i) => expect(v).toBeCloseTo(uv[i] + 7.5 * (cv[i] - uv[i]), 4));
    tf.dispose([out, c, u]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('scale 1 equals the conditional denoiser, scale 0 the unconditional one', async () => {
    const base = makeDenoiser([]);
    const one = classifierFreeGuidance(base, { scale: 1, uncond })(x, t, cond);
    const zero = classifierFreeGuidance(base, { scale: 0, uncond })(x, t, cond);
    const c = base(x, t, cond);
    const u = tf.tidy(() => base(x, t, { context: tf.zeros([B, 5, 2]), pooled: tf.fill([B, 1], 0.5) }));
    const [ov, zv, cv, uv] = [await one.data(), await zero.data(), await c.data(), await u.data()];
    ov.forEach((v, i) => expect(Math.abs(v - cv[i])).toBeLessThan(1e-6));
    zv.forEach((v, i) => expect(Math.abs(v - uv[i])).toBeLessThan(1e-6));
    tf.dispose([one, zero, c, u]);
  });

  it('validates keys, shapes and null cond', () => {
    const base = makeDenoiser([]);
    const missing = classifierFreeGuidance(base, { scale: 2, uncond: { context: uncond.context } });
    expect(() => missing(x, t, cond)).toThrow(/cond keys \[context, pooled\] must equal uncond keys \[context\]/);
    const guided = classifierFreeGuidance(base, { scale: 2, uncond });
    expect(() => guided(x, t, null)).toThrow(/needs cond/);
    const bad = tf.zeros([2, 5, 2]);
    const wrong = classifierFreeGuidance(base, { scale: 2, uncond: { context: bad, pooled: uncond.pooled } });
    expect(() => wrong(x, t, cond)).toThrow(/uncond\['context'\] must be \[1 or 3, 5, 2\], got \[2, 5, 2\]/);
    bad.dispose();
    expect(() => classifierFreeGuidance(base, { scale: -1, uncond })).toThrow(/scale must be/);
  });
});
