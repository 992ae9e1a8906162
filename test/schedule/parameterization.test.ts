/**
 * eps / x0 / v conversions: round trips exact to float32 precision, targets
 * against per-element float64 formulas, and behaviour at zero terminal SNR.
 */
import * as tf from '@tensorflow/tfjs';
import { makeSchedule, Schedule } from '../../src/schedule/schedule';
import { qSample } from '../../src/schedule/noising';
import {
  modelOutputToX0AndEps,
  predictEpsFromV,
  predictEpsFromX0,
  predictX0FromEps,
  predictX0FromV,
  PredictionType,
  trainingTarget,
  vTarget,
} from '../../src/schedule/parameterization';
import { keyedRng, randomNormal } from '../../src/backend/random';
import { useBackend, relativeError } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

// Avoid t near T-1 for eps -> x0 (1/sqrt(abar) = 157 at T-1 of 'linear' amplifies float32 rounding).
const TS = [0, 1, 250, 500, 700];
const SHAPE = [5, 3, 4, 2];

function setup(schedule: Schedule): { x0: tf.Tensor; eps: tf.Tensor; t: tf.Tensor1D; xt: tf.Tensor } {
  const x0 = randomNormal(SHAPE, keyedRng(3, 'x0'));
  const eps = randomNormal(SHAPE, keyedRng(3, 'eps'));
  const t = tf.tensor1d(TS, 'int32');
  const xt = qSample(x0, t, eps, schedule);
  return { x0, eps, t, xt };
}

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => tf.abs(tf.sub(a, b)).max());
  const v = (await d.data())[0];
  d.dispose();
  return v;
}

describe.each(['linear', 'cosine'] as const)('parameterisation (%s)', (kind) => {
  const schedule = makeSchedule({ kind, timesteps: 1000 });

  it('round trips eps -> x0 -> eps and v -> (x0, eps) to float32 precision', async () => {
    const before = tf.memory().numTensors;
    const { x0, eps, t, xt } = setup(schedule);
    const x0FromEps = predictX0FromEps(xt, eps, t, schedule);
    const epsFromX0 = predictEpsFromX0(xt, x0, t, schedule);
    const v = vTarget(x0, eps, t, schedule);
    const x0FromV = predictX0FromV(xt, v, t, schedule);
    const epsFromV = predictEpsFromV(xt, v, t, schedule);
    // Errors: x0 from eps scales float32 rounding of x_t by 1/sqrt(abar) (<= ~30 here, t <= 700);
    // eps from x0 by 1/sqrt(1 - abar) (= 100 at t = 0): hence the bounds.
    expect(await maxAbsDiff(x0FromEps, x0)).toBeLessThan(3e-5);
    expect(await maxAbsDiff(epsFromX0, eps)).toBeLessThan(3e-4);
    expect(await maxAbsDiff(x0FromV, x0)).toBeLessThan(2e-6);
    expect(await maxAbsDiff(epsFromV, eps)).toBeLessThan(2e-6);
    tf.dispose([x0, eps, t, xt, x0FromEps, epsFromX0, v, x0FromV, epsFromV]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('v target matches sqrt(abar) eps - sqrt(1 - abar) x0 in float64', async () => {
    const { x0, eps, t, xt } = setup(schedule);
    const v = vTarget(x0, eps, t, schedule);
    const [a, e, got] = [await x0.data(), await eps.data(), await v.data()];
    const per = got.length / SHAPE[0];
    const want = Array.from(got, (_, i) => {
      const abar = schedule.alphasCumprod[TS[Math.floor(i / per)]];
      return Math.sqrt(abar) * e[i] - Math.sqrt(1 - abar) * a[i];
    });
    expect(relativeError(got, want)).toBeLessThan(1e-6);
    tf.dispose([x0, eps, t, xt, v]);
  });

  it.each(['epsilon', 'v', 'x0'] as PredictionType[])('modelOutputToX0AndEps inverts trainingTarget (%s)', async (pt) => {
    const before = tf.memory().numTensors;
    const { x0, eps, t, xt } = setup(schedule);
    const target = trainingTarget(pt, x0, eps, t, schedule);
    const out = modelOutputToX0AndEps(pt, target, xt, t, schedule);
    expect(await maxAbsDiff(out.x0, x0)).toBeLessThan(3e-5);
    expect(await maxAbsDiff(out.eps, eps)).toBeLessThan(3e-4);
    tf.dispose([x0, eps, t, xt, target, out.x0, out.eps]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('zero terminal SNR', () => {
  const schedule = makeSchedule({ kind: 'scaled-linear', rescaleZeroTerminalSnr: true });

  it('v and x0 conversions stay finite at t = T-1; eps -> x0 does not (documented)', async () => {
    const x0 = randomNormal([2, 6], keyedRng(4, 'x0'));
    const eps = randomNormal([2, 6], keyedRng(4, 'eps'));
    const t = tf.tensor1d([999, 999], 'int32');
    const xt = qSample(x0, t, eps, schedule); // = eps exactly: pure noise
    expect(await maxAbsDiff(xt, eps)).toBe(0);
    const v = vTarget(x0, eps, t, schedule); // = -x0
    const negX0 = tf.neg(x0);
    expect(await maxAbsDiff(v, negX0)).toBe(0);
    const fromV = modelOutputToX0AndEps('v', v, xt, t, schedule);
    expect(await maxAbsDiff(fromV.x0, x0)).toBe(0);
    expect(await maxAbsDiff(fromV.eps, eps)).toBe(0);
    const fromX0 = modelOutputToX0AndEps('x0', x0, xt, t, schedule);
    expect(await maxAbsDiff(fromX0.eps, eps)).toBe(0);
    const fromEps = modelOutputToX0AndEps('epsilon', eps, xt, t, schedule);
    expect(Array.from(await fromEps.x0.data()).every((u) => !Number.isFinite(u))).toBe(true);
    tf.dispose([x0, negX0, eps, t, xt, v, fromV.x0, fromV.eps, fromX0.x0, fromX0.eps, fromEps.x0, fromEps.eps]);
  });
});
