/**
 * The low-res conditioning of a super-resolution stage (src/sample/lowResConditioning.ts):
 * block means and resizes against hand computations (on cpu and on wasm, the
 * training backend), augmentation = q(z_s | up) at level s, keyed draws
 * independent of how examples are split, the level range, config validation.
 *
 * Bilinear with half-pixel centres (PyTorch F.interpolate(x, scale_factor=2,
 * mode='bilinear', align_corners=False)) maps a row [a, b] to
 * [a, 0.75a + 0.25b, 0.25a + 0.75b, b]: source coordinate (i + 0.5) / 2 - 0.5,
 * clamped at the borders.
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { keyedRng } from '../../src/backend/random';
import { makeSchedule } from '../../src/schedule/schedule';
import {
  augmentationNoise, augmentLowRes, checkAugLevel, downsampleAverage, lowResConfig, lowResOf, resizeTo, samplingAugmentationNoise, trainingAugLevels,
  LOW_RES_DEFAULTS,
} from '../../src/sample/lowResConditioning';

/** The 1-D bilinear x2 upsampling of a row, by the formula above. */
function upRow(r: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < 2 * r.length; i++) {
    const src = Math.max(0, (i + 0.5) / 2 - 0.5);
    const lo = Math.floor(src);
    const hi = Math.min(lo + 1, r.length - 1);
    out.push(r[lo] + (r[hi] - r[lo]) * (src - lo));
  }
  return out;
}

describe.each(['cpu', 'wasm'] as const)('resizing on %s', (backend) => {
  beforeAll(async () => useBackend(backend));

  it('downsampleAverage takes the mean of each f x f block', () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]); // rows 0..3, 4..7, 8..11, 12..15
    const y = downsampleAverage(x, 2);
    // (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, (8+9+12+13)/4 = 10.5, (10+11+14+15)/4 = 12.5
    expect(Array.from(y.dataSync())).toEqual([2.5, 4.5, 10.5, 12.5]);
    const odd = tf.zeros([1, 3, 3, 1]) as tf.Tensor4D;
    expect(() => downsampleAverage(odd, 2)).toThrow(/3x3 is not divisible by factor 2/);
    tf.dispose([x, y, odd]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resizeTo bilinear: half-pixel centres, separable; nearest: block copies', () => {
    const before = tf.memory().numTensors;
    const v = [[1, 3], [-2, 5]];
    const x = tf.tensor4d(v.flat(), [1, 2, 2, 1]);
    const bil = tf.tidy(() => resizeTo(x, 4, 'bilinear').dataSync());
    const rows = v.map(upRow); // horizontal pass, then vertical
    const expected: number[] = [];
    for (let c = 0; c < 4; c++) {
      const col = upRow([rows[0][c], rows[1][c]]);
      col.forEach((value, r) => (expected[r * 4 + c] = value));
    }
    expect(expected.slice(0, 4)).toEqual([1, 1.5, 2.5, 3]);
    Array.from(bil).forEach((value, i) => expect(value).toBeCloseTo(expected[i], 5));
    const near = tf.tidy(() => resizeTo(x, 4, 'nearest').dataSync());
    expect(Array.from(near)).toEqual([1, 1, 3, 3, 1, 1, 3, 3, -2, -2, 5, 5, -2, -2, 5, 5]);
    tf.dispose(x);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lowResOf is resize(avgpool_f(x0), S), per channel', () => {
    const before = tf.memory().numTensors;
    // 2 channels: channel 0 = the 4x4 ramp, channel 1 = its negative
    const ramp = Array.from({ length: 16 }, (_, i) => i);
    const x = tf.tensor4d(ramp.flatMap((r) => [r, -r]), [1, 4, 4, 2]);
    const low = tf.tidy(() => lowResOf(x, lowResConfig({ factor: 2, resize: 'nearest' })).dataSync());
    const means = [2.5, 2.5, 4.5, 4.5, 2.5, 2.5, 4.5, 4.5, 10.5, 10.5, 12.5, 12.5, 10.5, 10.5, 12.5, 12.5];
    expect(Array.from(low)).toEqual(means.flatMap((m) => [m, -m]));
    const bil = lowResOf(x, lowResConfig({ factor: 2 })); // bilinear (the default)
    const rows = [[2.5, 4.5], [10.5, 12.5]].map(upRow);
    const c0 = tf.tidy(() => tf.slice(bil, [0, 0, 0, 0], [1, 4, 4, 1]).dataSync());
    for (let c = 0; c < 4; c++) upRow([rows[0][c], rows[1][c]]).forEach((value, r) => expect(c0[r * 4 + c]).toBeCloseTo(value, 5));
    tf.dispose([x, bil]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('augmentation and keyed draws', () => {
  beforeAll(async () => useBackend('cpu'));
  const schedule = makeSchedule({ kind: 'cosine', timesteps: 100 });

  it('augmentLowRes at levels s is sqrt(abar_s) up + sqrt(1 - abar_s) e, per example', () => {
    const before = tf.memory().numTensors;
    const up = tf.tensor4d([0.5, -1, 0.25, 1, 0, -0.5, 0.75, 0.1], [2, 2, 2, 1]);
    const noise = augmentationNoise([2, 2, 2, 1], 3, 7, 0);
    const levels = [0, 60];
    const z = tf.tidy(() => augmentLowRes(up, tf.tensor1d(levels, 'int32'), noise, schedule).dataSync());
    const u = up.dataSync();
    const e = noise.dataSync();
    for (let i = 0; i < 8; i++) {
      const abar = schedule.alphasCumprod[levels[Math.floor(i / 4)]];
      expect(z[i]).toBeCloseTo(Math.sqrt(abar) * u[i] + Math.sqrt(1 - abar) * e[i], 5);
    }
    expect(Math.abs(z[0] - u[0])).toBeLessThan(0.05); // level 0: nearly clean
    expect(Math.abs(z[4] - u[4])).toBeGreaterThan(1e-3); // level 60 of 100: noisy
    tf.dispose([up, noise]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('levels and noise are keyed by (seed, step, example index): a split batch draws what the whole one draws', () => {
    const all = trainingAugLevels(6, 4, 11, 0, 500);
    expect(Array.from(trainingAugLevels(4, 4, 11, 2, 500))).toEqual(Array.from(all.subarray(2)));
    expect(Array.from(all)).toEqual(Array.from({ length: 6 }, (_, i) => keyedRng(4, 'aug-level', 11, i).int(501)));
    expect(Array.from(trainingAugLevels(6, 4, 12, 0, 500))).not.toEqual(Array.from(all)); // another step
    const whole = augmentationNoise([5, 2, 2, 1], 4, 11, 10);
    const tail = augmentationNoise([2, 2, 2, 1], 4, 11, 13);
    expect(Array.from(tail.dataSync())).toEqual(Array.from(whole.dataSync().subarray(12)));
    const sampling = samplingAugmentationNoise([5, 2, 2, 1], 4, 10);
    const samplingTail = samplingAugmentationNoise([2, 2, 2, 1], 4, 13);
    expect(Array.from(samplingTail.dataSync())).toEqual(Array.from(sampling.dataSync().subarray(12)));
    const expected = new Float32Array(4);
    keyedRng(4, 'cascade-aug', 10).fillNormal(expected);
    expect(Array.from(sampling.dataSync().subarray(0, 4))).toEqual(Array.from(expected));
    expect(Array.from(sampling.dataSync())).not.toEqual(Array.from(whole.dataSync())); // sampling and training noise are separate streams
    tf.dispose([whole, tail, sampling, samplingTail]);
  });

  it('levels cover {0, ..., maxAugLevel}, both ends included; maxAugLevel 0 is always 0', () => {
    const levels = trainingAugLevels(400, 1, 0, 0, 3);
    expect(new Set(levels)).toEqual(new Set([0, 1, 2, 3]));
    expect(new Set(trainingAugLevels(50, 1, 0, 0, 0))).toEqual(new Set([0]));
    const wide = trainingAugLevels(2000, 2, 0, 0, 499);
    expect(Math.min(...wide)).toBe(0);
    expect(Math.max(...wide)).toBe(499);
    // Uniform: the mean is near 249.5 (std of the mean 144 / sqrt(2000) = 3.2).
    expect(Math.abs(wide.reduce((a, b) => a + b, 0) / 2000 - 249.5)).toBeLessThan(16);
  });
});

describe('lowResConfig and checkAugLevel', () => {
  it('fills defaults and refuses bad fields', () => {
    expect(lowResConfig()).toEqual(LOW_RES_DEFAULTS);
    expect(lowResConfig({ factor: 4, maxAugLevel: 0, resize: 'nearest' })).toEqual({ factor: 4, maxAugLevel: 0, resize: 'nearest' });
    expect(() => lowResConfig({ factor: 1 })).toThrow(/factor must be an integer >= 2, got 1/);
    expect(() => lowResConfig({ maxAugLevel: -1 })).toThrow(/maxAugLevel must be an integer >= 0, got -1/);
    expect(() => lowResConfig({ resize: 'bicubic' as never })).toThrow(/resize must be 'bilinear' or 'nearest', got "bicubic"/);
    expect(() => lowResConfig({ scale: 2 } as never)).toThrow(/unknown field\(s\) scale/);
  });

  it('accepts levels in [0, maxAugLevel] only', () => {
    const cfg = lowResConfig({ maxAugLevel: 50 });
    expect(() => checkAugLevel(0, cfg, 'x')).not.toThrow();
    expect(() => checkAugLevel(50, cfg, 'x')).not.toThrow();
    expect(() => checkAugLevel(51, cfg, 'x')).toThrow(/x: augLevel must be an integer in \[0, 50\] .* got 51/);
    expect(() => checkAugLevel(-1, cfg, 'x')).toThrow(/got -1/);
    expect(() => checkAugLevel(2.5, cfg, 'x')).toThrow(/got 2.5/);
  });
});
