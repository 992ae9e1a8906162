/** Static and Imagen dynamic thresholding on crafted inputs. */
import * as tf from '@tensorflow/tfjs';
import { absQuantilePerSample, clipX0 } from '../../src/sample/thresholding';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

/** numpy.quantile(..., method='linear') of |values|. */
function quantile(values: number[], q: number): number {
  const s = values.map(Math.abs).sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

describe('clipX0', () => {
  it('none copies, static clips to [-value, value]', async () => {
    const x = tf.tensor2d([[-3, -0.5, 0.2, 2]]);
    const none = clipX0(x, { kind: 'none' });
    const st = clipX0(x, { kind: 'static', value: 1 });
    expect(Array.from(await none.data())).toEqual([-3, -0.5, Math.fround(0.2), 2]);
    expect(Array.from(await st.data())).toEqual([-1, -0.5, Math.fround(0.2), 1]);
    tf.dispose([x, none, st]);
  });

  it('per-sample quantile matches numpy linear interpolation', async () => {
    // sample 0: |x| = 0..99 shuffled and signed; sample 1: values 0..9.9
    const a = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) * (i % 2 === 0 ? 1 : -1));
    const b = Array.from({ length: 100 }, (_, i) => -i / 10);
    const x = tf.tensor3d([...a, ...b], [2, 10, 10]);
    for (const q of [0.995, 0.5, 0.9, 1]) {
      const got = absQuantilePerSample(x, q);
      const v = await got.data();
      expect(v[0]).toBeCloseTo(quantile(a, q), 4);
      expect(v[1]).toBeCloseTo(quantile(b, q), 5);
      got.dispose();
    }
    x.dispose();
  });

  it('dynamic: s = max(1, quantile) per sample; x -> clip(x, -s, s) / s', async () => {
    const before = tf.memory().numTensors;
    // Sample 0: |x| = 0..10, the 0.9 quantile sits at sorted position 0.9 * 10 = 9, so s = 9.
    const big = [-10, 9, -8, 7, 6, 5, 4, 3, 2, 1, 0];
    const small = [0.5, -0.3, 0.2, 0.1, 0, 0, 0, 0, 0, 0.05, -0.9];
    const x = tf.tensor2d([big, small]);
    const out = clipX0(x, { kind: 'dynamic', percentile: 0.9 });
    const got = await out.data();
    const s0 = quantile(big, 0.9); // = 9
    expect(s0).toBe(9);
    big.forEach((v, i) => expect(got[i]).toBeCloseTo(Math.min(Math.max(v, -s0), s0) / s0, 6));
    expect(got[0]).toBeCloseTo(-1, 6); // -10 clipped to -9, then / 9
    // s = max(1, 0.5) = 1: the small sample is unchanged
    small.forEach((v, i) => expect(got[11 + i]).toBeCloseTo(v, 6));
    tf.dispose([x, out]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('dynamic bounds the output to [-1, 1] and keeps signs on images', async () => {
    const x = tf.tidy(() => tf.mul(tf.randomNormal([3, 4, 4, 2], 0, 1, 'float32', 5), 4));
    const out = clipX0(x, { kind: 'dynamic', percentile: 0.995 });
    const [xv, ov] = [await x.data(), await out.data()];
    ov.forEach((v, i) => {
      expect(Math.abs(v)).toBeLessThanOrEqual(1 + 1e-6);
      expect(Math.sign(v)).toBe(Math.sign(xv[i]));
    });
    tf.dispose([x, out]);
  });

  it('validates the mode', () => {
    const x = tf.zeros([1, 2]);
    expect(() => clipX0(x, { kind: 'dynamic', percentile: 1.5 })).toThrow(/percentile must be in \(0, 1\], got 1.5/);
    expect(() => clipX0(x, { kind: 'static', value: 0 })).toThrow(/value must be > 0/);
    x.dispose();
  });
});
