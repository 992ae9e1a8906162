/**
 * Tables against closed forms recomputed here in float64 by different routes
 * (cumprod as exp of a log-sum, posterior from its definition), invariants,
 * zero terminal SNR, and tableAt.
 */
import * as tf from '@tensorflow/tfjs';
import { makeSchedule, tableAt } from '../../src/schedule/schedule';
import { makeBetas, scheduleConfig, ScheduleKind } from '../../src/schedule/betas';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

const KINDS: ScheduleKind[] = ['linear', 'scaled-linear', 'cosine', 'sigmoid'];
// atol 2e-15 only matters where a value crosses 0 (logSnr at abar = 1/2).
const close = (a: number, b: number, rtol: number): boolean => Math.abs(a - b) <= rtol * Math.abs(b) + 2e-15;

describe('makeSchedule', () => {
  it.each(KINDS)('%s tables match independent closed forms', (kind) => {
    const T = 300;
    const s = makeSchedule({ kind, timesteps: T });
    const betas = makeBetas(scheduleConfig({ kind, timesteps: T }));
    let logSum = 0;
    for (let t = 0; t < T; t++) {
      logSum += Math.log1p(-betas[t]);
      const abar = Math.exp(logSum);
      const abarPrev = t === 0 ? 1 : Math.exp(logSum - Math.log1p(-betas[t]));
      const tests: Array<[number, number, number]> = [
        [s.betas[t], betas[t], 0],
        [s.alphas[t], 1 - betas[t], 1e-15],
        [s.alphasCumprod[t], abar, 1e-11],
        [s.alphasCumprodPrev[t], abarPrev, 1e-11],
        [s.sqrtAlphasCumprod[t], Math.sqrt(abar), 1e-11],
        [s.sqrtOneMinusAlphasCumprod[t], Math.sqrt(-Math.expm1(logSum)), 1e-9],
        [s.sqrtRecipAlphasCumprod[t], Math.exp(-logSum / 2), 1e-11],
        [s.sqrtRecipm1AlphasCumprod[t], Math.sqrt(Math.expm1(-logSum)), 1e-9],
        [s.snr[t], abar / -Math.expm1(logSum), 1e-9],
        [s.logSnr[t], logSum - Math.log(-Math.expm1(logSum)), 1e-9],
        // q(x_{t-1} | x_t, x0), Ho et al. eq. 7
        [s.posteriorVariance[t], ((1 - abarPrev) / (1 - abar)) * betas[t], 1e-9],
        [s.posteriorMeanCoef1[t], (Math.sqrt(abarPrev) * betas[t]) / (1 - abar), 1e-9],
        [s.posteriorMeanCoef2[t], (Math.sqrt(1 - betas[t]) * (1 - abarPrev)) / (1 - abar), 1e-9],
      ];
      for (const [got, want, rtol] of tests) {
        if (!close(got, want, rtol)) throw new Error(`${kind} t=${t}: ${got} vs ${want}`);
      }
    }
    expect(s.posteriorVariance[0]).toBe(0);
    expect(s.posteriorLogVarianceClipped[0]).toBe(Math.log(s.posteriorVariance[1]));
    expect(s.posteriorLogVarianceClipped[7]).toBe(Math.log(s.posteriorVariance[7]));
  });

  it.each(KINDS)('%s: alphasCumprod strictly decreasing in (0, 1), betas in (0, 1)', (kind) => {
    const s = makeSchedule({ kind, timesteps: 1000 });
    for (let t = 0; t < 1000; t++) {
      expect(s.betas[t] > 0 && s.betas[t] < 1).toBe(true);
      expect(s.alphasCumprod[t] > 0 && s.alphasCumprod[t] < 1).toBe(true);
      if (t > 0) expect(s.alphasCumprod[t]).toBeLessThan(s.alphasCumprod[t - 1]);
    }
  });

  it('posterior mean reproduces x_{t-1} when x_t is built from x0 and the same eps (consistency of eq. 7)', () => {
    // If x_{t-1} = sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1}) e and x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2,
    // E[x_{t-1} | x_t, x0] must be linear-exact: check it on the mean of x_{t-1} given x0 (e2 = e = 0).
    const s = makeSchedule({ kind: 'cosine', timesteps: 100 });
    for (const t of [1, 10, 50, 99]) {
      const x0 = 0.7;
      const xt = Math.sqrt(s.alphasCumprod[t]) * x0;
      const mean = s.posteriorMeanCoef1[t] * x0 + s.posteriorMeanCoef2[t] * xt;
      expect(mean).toBeCloseTo(Math.sqrt(s.alphasCumprodPrev[t]) * x0, 12);
    }
  });

  it('zero terminal SNR: last abar and SNR are 0, first step unchanged, Infs documented', () => {
    const base = makeSchedule({ kind: 'scaled-linear' });
    const z = makeSchedule({ kind: 'scaled-linear', rescaleZeroTerminalSnr: true });
    expect(z.alphasCumprod[999]).toBe(0);
    expect(z.snr[999]).toBe(0);
    expect(z.logSnr[999]).toBe(-Infinity);
    expect(z.betas[999]).toBe(1);
    expect(z.sqrtRecipAlphasCumprod[999]).toBe(Infinity);
    expect(Math.abs(z.alphasCumprod[0] - base.alphasCumprod[0])).toBeLessThan(1e-15);
    expect(Number.isFinite(z.posteriorVariance[999]) && Number.isFinite(z.posteriorMeanCoef1[999])).toBe(true);
    expect(z.posteriorMeanCoef2[999]).toBe(0);
    for (let t = 1; t < 1000; t++) expect(z.alphasCumprod[t]).toBeLessThan(z.alphasCumprod[t - 1]);
  });

  it('returns a frozen object', () => {
    const s = makeSchedule({ timesteps: 10, betaStart: 0.01, betaEnd: 0.2 });
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.config)).toBe(true);
    expect(s.timesteps).toBe(10);
  });

  it('tableAt gathers per batch element, shaped to broadcast, without leaks', async () => {
    const s = makeSchedule({ kind: 'cosine', timesteps: 50 });
    const before = tf.memory().numTensors;
    const t = tf.tensor1d([0, 49, 7], 'int32');
    const v = tableAt(s.sqrtAlphasCumprod, t, 4);
    expect(v.shape).toEqual([3, 1, 1, 1]);
    const got = await v.data();
    [0, 49, 7].forEach((ti, i) => expect(got[i]).toBeCloseTo(s.sqrtAlphasCumprod[ti], 6));
    const tf32 = tf.tensor1d([1], 'float32');
    expect(() => tableAt(s.betas, tf32, 2)).toThrow(/t must be int32/);
    tf.dispose([t, v, tf32]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
