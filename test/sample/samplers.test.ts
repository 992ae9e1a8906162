/**
 * Sampler invariants that need no trained network:
 *  - image i is identical whether sampled alone or inside a batch (per-image keyed noise),
 *  - DDIM eta = 0 is deterministic given x_T; eta = 1 over all T steps equals DDPM 'fixed-small',
 *  - DPM-Solver++(2M) with <= 3 steps is all first order, i.e. equals DDIM eta = 0,
 *  - one DDPM step matches the schedule's posterior tables (both variances),
 *  - zero terminal SNR: 'epsilon' refused, 'v' works,
 *  - clipping, onStep, the dispatcher, validation, and tf.memory().numTensors flat.
 * The denoiser is the optimal one for x0 ~ N(mu, s^2) (see analytic.test.ts): deterministic per element.
 */
import * as tf from '@tensorflow/tfjs';
import { makeSchedule, Schedule, tableAt } from '../../src/schedule/schedule';
import { PredictionType } from '../../src/schedule/parameterization';
import { Denoiser, SamplerName, StepInfo } from '../../src/sample/types';
import { sample, SamplerOptionsByName } from '../../src/sample/sample';
import { sampleDdim } from '../../src/sample/ddim';
import { sampleDdpm } from '../../src/sample/ddpm';
import { sampleDpmSolverPP } from '../../src/sample/dpmSolverPP';
import { noiseForBatch } from '../../src/sample/noise';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

function gaussianDenoiser(schedule: Schedule, predictionType: PredictionType, mu = 0.5, s = 0.3): Denoiser {
  return (x, t) =>
    tf.tidy(() => {
      const abar = tableAt(schedule.alphasCumprod, t, x.rank);
      const sqrtAbar = tf.sqrt(abar);
      const sqrtOneMinus = tf.sqrt(tf.sub(1, abar));
      const denom = tf.add(tf.mul(abar, s * s), tf.sub(1, abar));
      const centered = tf.sub(x, tf.mul(sqrtAbar, mu));
      const eps = tf.div(tf.mul(sqrtOneMinus, centered), denom);
      const x0 = tf.add(mu, tf.div(tf.mul(tf.mul(sqrtAbar, s * s), centered), denom));
      if (predictionType === 'epsilon') return eps;
      if (predictionType === 'x0') return x0;
      return tf.sub(tf.mul(sqrtAbar, eps), tf.mul(sqrtOneMinus, x0));
    });
}

async function values(t: tf.Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

const schedule = makeSchedule({ kind: 'cosine', timesteps: 100 });
const IMAGE = [3, 3, 2]; // H, W, C

const STOCHASTIC: Array<[SamplerName, SamplerOptionsByName[SamplerName]]> = [
  ['ddpm', { steps: 100, variance: 'fixed-large', predictionType: 'epsilon', seed: 5 }],
  ['ddim', { steps: 25, eta: 1, predictionType: 'v', seed: 5, spacing: 'linspace' }],
  ['dpm-solver++', { steps: 10, predictionType: 'x0', seed: 5, spacing: 'leading' }],
];

describe('samplers', () => {
  it.each(STOCHASTIC)('%s: image i is the same alone or in a batch (firstIndex)', async (name, opts) => {
    const before = tf.memory().numTensors;
    const batch = await values(await sample(name, gaussianDenoiser(schedule, opts.predictionType), [4, ...IMAGE], schedule, opts));
    const alone = await values(await sample(name, gaussianDenoiser(schedule, opts.predictionType), [1, ...IMAGE], schedule, { ...opts, firstIndex: 2 }));
    const per = 18;
    expect(alone).toEqual(batch.slice(2 * per, 3 * per));
    expect(alone).not.toEqual(batch.slice(per, 2 * per));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('DDIM eta = 0 is deterministic given x_T (the seed only draws x_T)', async () => {
    const before = tf.memory().numTensors;
    const xT = noiseForBatch([2, 8], 'start', 0, 'xT');
    const d = gaussianDenoiser(schedule, 'epsilon');
    const a = await values(await sampleDdim(d, [2, 8], schedule, { steps: 20, eta: 0, predictionType: 'epsilon', seed: 1, xT }));
    const b = await values(await sampleDdim(d, [2, 8], schedule, { steps: 20, eta: 0, predictionType: 'epsilon', seed: 2, xT }));
    expect(a).toEqual(b);
    const c = await values(await sampleDdim(d, [2, 8], schedule, { steps: 20, eta: 0.5, predictionType: 'epsilon', seed: 2, xT }));
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-3);
    expect(xT.isDisposed).toBe(false); // the caller's x_T is not consumed
    xT.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('DDIM eta = 1 over all T steps equals DDPM fixed-small (same noise keys)', async () => {
    const d = gaussianDenoiser(schedule, 'v');
    const common = { steps: 100, predictionType: 'v' as const, seed: 9 };
    const ddim = await values(await sampleDdim(d, [2, 16], schedule, { ...common, eta: 1 }));
    const ddpm = await values(await sampleDdpm(d, [2, 16], schedule, { ...common, variance: 'fixed-small' }));
    expect(maxAbsDiff(ddim, ddpm)).toBeLessThan(2e-5);
    const large = await values(await sampleDdpm(d, [2, 16], schedule, { ...common, variance: 'fixed-large' }));
    expect(maxAbsDiff(large, ddpm)).toBeGreaterThan(1e-3);
  });

  it('DPM-Solver++(2M) with 2 or 3 steps is first order throughout = DDIM eta 0; with more it is not', async () => {
    const d = gaussianDenoiser(schedule, 'epsilon');
    for (const steps of [2, 3, 8]) {
      const opts = { steps, predictionType: 'epsilon' as const, seed: 3 };
      const dpm = await values(await sampleDpmSolverPP(d, [2, 16], schedule, opts));
      const ddim = await values(await sampleDdim(d, [2, 16], schedule, { ...opts, eta: 0 }));
      if (steps <= 3) expect(maxAbsDiff(dpm, ddim)).toBeLessThan(2e-6);
      else expect(maxAbsDiff(dpm, ddim)).toBeGreaterThan(1e-3);
    }
    // lowerOrderFinal off: the second-to-last of 3 steps is second order.
    const opts3 = { steps: 3, predictionType: 'epsilon' as const, seed: 3 };
    const off = await values(await sampleDpmSolverPP(d, [2, 16], schedule, { ...opts3, lowerOrderFinal: false }));
    const ddim3 = await values(await sampleDdim(d, [2, 16], schedule, { ...opts3, eta: 0 }));
    expect(maxAbsDiff(off, ddim3)).toBeGreaterThan(1e-3);
  });

  it.each(['fixed-small', 'fixed-large'] as const)('one DDPM step (%s) follows the posterior tables', async (variance) => {
    const T = schedule.timesteps;
    const xT = noiseForBatch([2, 8], 'x', 0, 'xT');
    const x0Const = 0.25;
    const d: Denoiser = (x) => tf.fill(x.shape, x0Const); // an 'x0' model predicting a constant
    let firstStep: number[] = [];
    const onStep = (info: StepInfo): void => {
      if (info.step === 0) firstStep = Array.from(info.x.dataSync());
    };
    const out = await sampleDdpm(d, [2, 8], schedule, { steps: T, variance, predictionType: 'x0', seed: 4, xT, onStep });
    const z = await values(noiseForBatch([2, 8], 4, 0, `t${T - 1}`));
    const xs = await xT.data();
    const t = T - 1;
    const sd = Math.sqrt(variance === 'fixed-small' ? schedule.posteriorVariance[t] : schedule.betas[t]);
    const want = Array.from(xs, (v, i) => schedule.posteriorMeanCoef1[t] * x0Const + schedule.posteriorMeanCoef2[t] * v + sd * z[i]);
    expect(maxAbsDiff(firstStep, want)).toBeLessThan(1e-5);
    // the last step returns the x0 prediction
    expect((await values(out)).every((v) => Math.abs(v - x0Const) < 1e-7)).toBe(true);
    xT.dispose();
  });

  it('zero terminal SNR: epsilon is refused with the reason; v samples finite values', async () => {
    const zsnr = makeSchedule({ kind: 'linear', timesteps: 100, rescaleZeroTerminalSnr: true });
    const before = tf.memory().numTensors;
    await expect(sampleDdim(gaussianDenoiser(zsnr, 'epsilon'), [2, 4], zsnr, { steps: 10, predictionType: 'epsilon', seed: 0 })).rejects.toThrow(
      /'epsilon' cannot be sampled at timesteps with abar = 0.*t = 99/,
    );
    // leading spacing does not visit t = 99: allowed
    const ok = await sampleDdim(gaussianDenoiser(zsnr, 'epsilon'), [2, 4], zsnr, { steps: 10, predictionType: 'epsilon', seed: 0, spacing: 'leading' });
    ok.dispose();
    for (const name of ['ddpm', 'ddim', 'dpm-solver++'] as const) {
      const v = await values(await sample(name, gaussianDenoiser(zsnr, 'v'), [2, 4], zsnr, { steps: 10, predictionType: 'v', seed: 0 }));
      expect(v.every(Number.isFinite)).toBe(true);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('static clipping bounds the output; onStep sees every step once, in order', async () => {
    const wide = gaussianDenoiser(schedule, 'epsilon', 0, 2); // data N(0, 4): mostly outside [-1, 1]
    const seen: number[] = [];
    const clipped = await values(
      await sampleDdim(wide, [4, 16], schedule, { steps: 10, predictionType: 'epsilon', seed: 1, clip: { kind: 'static', value: 1 }, onStep: (i) => seen.push(i.t) }),
    );
    expect(clipped.every((v) => Math.abs(v) <= 1 + 1e-6)).toBe(true);
    expect(seen).toEqual([99, 89, 79, 69, 59, 49, 39, 29, 19, 9]);
    const free = await values(await sampleDdim(wide, [4, 16], schedule, { steps: 10, predictionType: 'epsilon', seed: 1 }));
    expect(free.some((v) => Math.abs(v) > 1.5)).toBe(true);
    const dyn = await values(
      await sampleDpmSolverPP(wide, [4, 16], schedule, { steps: 10, predictionType: 'epsilon', seed: 1, clip: { kind: 'dynamic', percentile: 0.995 } }),
    );
    expect(dyn.every((v) => Math.abs(v) <= 1 + 1e-6)).toBe(true);
  });

  it('passes cond through, frees everything when the denoiser throws, and validates options', async () => {
    const before = tf.memory().numTensors;
    const ctx = tf.ones([2, 3]);
    let sawCond = false;
    const d: Denoiser = (x, _t, cond) => {
      sawCond = cond !== null && cond.context === ctx;
      return tf.zerosLike(x);
    };
    (await sampleDdpm(d, [2, 4], schedule, { steps: 5, predictionType: 'epsilon', seed: 0, cond: { context: ctx } })).dispose();
    expect(sawCond).toBe(true);
    let calls = 0;
    const failing: Denoiser = (x) => {
      if (++calls === 3) throw new Error('boom');
      return tf.zerosLike(x);
    };
    for (const name of ['ddpm', 'ddim', 'dpm-solver++'] as const) {
      calls = 0;
      await expect(sample(name, failing, [2, 4], schedule, { steps: 5, predictionType: 'epsilon', seed: 0 })).rejects.toThrow('boom');
    }
    const bad = tf.ones([3, 3]);
    await expect(sampleDdim(d, [2, 4], schedule, { steps: 5, predictionType: 'epsilon', seed: 0, cond: { context: bad } })).rejects.toThrow(
      /cond\['context'\] must be batch-first with B = 2, got shape \[3, 3\]/,
    );
    await expect(sampleDdim(d, [2, 4], schedule, { steps: 5, predictionType: 'epsilon', seed: 0, xT: bad })).rejects.toThrow(/xT must have shape \[2, 4\], got \[3, 3\]/);
    await expect(sampleDdim(d, [2, 4], schedule, { steps: 101, predictionType: 'epsilon', seed: 0 })).rejects.toThrow(/steps must be an integer in \[1, T=100\]/);
    await expect(sampleDdim(d, [2, 4], schedule, { steps: 5, eta: 2, predictionType: 'epsilon', seed: 0 })).rejects.toThrow(/eta must be in \[0, 1\], got 2/);
    await expect(sample('ddpm', d, [2, 4], schedule, { steps: 5, predictionType: 'epsilon', seed: 0, eta: 0.5 } as SamplerOptionsByName['ddpm'])).rejects.toThrow(
      /option 'eta' belongs to sampler 'ddim', not 'ddpm'/,
    );
    tf.dispose([ctx, bad]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('sample() dispatches to the named sampler', async () => {
    const d = gaussianDenoiser(schedule, 'epsilon');
    const opts = { steps: 7, predictionType: 'epsilon' as const, seed: 11 };
    expect(await values(await sample('ddim', d, [2, 4], schedule, { ...opts, eta: 0.3 }))).toEqual(
      await values(await sampleDdim(d, [2, 4], schedule, { ...opts, eta: 0.3 })),
    );
    expect(await values(await sample('dpm-solver++', d, [2, 4], schedule, opts))).toEqual(await values(await sampleDpmSolverPP(d, [2, 4], schedule, opts)));
    expect(await values(await sample('ddpm', d, [2, 4], schedule, opts))).toEqual(await values(await sampleDdpm(d, [2, 4], schedule, opts)));
  });
});
