import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { learningRate } from '../../src/train/lr';
import { emaDecay, updateEma, EMA_DEFAULTS } from '../../src/train/ema';
import { minSnrWeights, diffusionLoss } from '../../src/train/losses';
import { conditionDropMask, dropLabels } from '../../src/train/cfgDropout';
import { Module } from '../../src/nn/module';

beforeAll(async () => useBackend('wasm'));

class Tiny extends Module {
  readonly w: tf.Variable;
  constructor(v: number) {
    super();
    this.w = this.addParameter('w', tf.fill([3], v));
  }
}

describe('learning rate', () => {
  const cfg = { peak: 1e-3, warmupSteps: 10, decay: 'cosine' as const, totalSteps: 110, minRatio: 0.1 };
  it('warms up linearly, peaks, and decays by cosine to the floor', () => {
    expect(learningRate(0, cfg)).toBeCloseTo(1e-4, 12);
    expect(learningRate(9, cfg)).toBeCloseTo(1e-3, 12);
    expect(learningRate(10, cfg)).toBeCloseTo(1e-3, 12);
    expect(learningRate(60, cfg)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12); // halfway: cos(pi/2) = 0
    expect(learningRate(110, cfg)).toBeCloseTo(1e-4, 12);
    expect(learningRate(500, cfg)).toBeCloseTo(1e-4, 12);
    expect(learningRate(50, { ...cfg, decay: 'constant' })).toBe(1e-3);
  });
});

describe('EMA', () => {
  it('warms its decay up: small early, bounded by maxDecay', () => {
    expect(emaDecay(0)).toBe(0);
    expect(emaDecay(1)).toBeCloseTo(1 - Math.pow(2, -0.75), 12);
    expect(emaDecay(1000)).toBeGreaterThan(0.99);
    expect(emaDecay(1e9)).toBe(EMA_DEFAULTS.maxDecay);
    for (let s = 1; s < 2000; s += 97) expect(emaDecay(s + 1)).toBeGreaterThanOrEqual(emaDecay(s));
  });
  it('at step 0 copies the model; later mixes by the decay; leaks nothing', async () => {
    const model = new Tiny(2);
    const ema = new Tiny(0);
    const before = tf.memory().numTensors;
    updateEma(ema, model, emaDecay(0));
    await expectClose(ema.w, [2, 2, 2]);
    model.w.assign(tf.fill([3], 4));
    updateEma(ema, model, 0.75);
    await expectClose(ema.w, [2.5, 2.5, 2.5]);
    expect(tf.memory().numTensors).toBe(before + 1); // the fill() above
    model.dispose();
    ema.dispose();
  });
});

describe('losses', () => {
  it('min-SNR weights follow Hang et al. (eps: min(snr,g)/snr, v: min(snr,g)/(snr+1), x0: min(snr,g))', () => {
    const snr = [100, 5, 1, 0.01];
    expect(Array.from(minSnrWeights(snr, 'epsilon', 5))).toEqual([0.05, 1, 1, 1]);
    const v = minSnrWeights(snr, 'v', 5);
    expect(v[0]).toBeCloseTo(5 / 101, 12);
    expect(v[3]).toBeCloseTo(0.01 / 1.01, 12);
    expect(Array.from(minSnrWeights(snr, 'x0', 5))).toEqual([5, 5, 1, 0.01]);
    expect(Array.from(minSnrWeights(snr, 'epsilon', null))).toEqual([1, 1, 1, 1]);
  });
  it('diffusionLoss is the per-example weighted MSE', async () => {
    const out = tf.tensor2d([[1, 1], [0, 0]]);
    const target = tf.tensor2d([[0, 0], [0, 2]]);
    const t = tf.tensor1d([0, 1], 'int32');
    const weights = tf.tensor1d([0.5, 2]);
    const before = tf.memory().numTensors;
    const plain = diffusionLoss(out, target, t, null);
    const weighted = diffusionLoss(out, target, t, weights);
    expect((await plain.data())[0]).toBeCloseTo((1 + 2) / 2, 6); // per-example MSE 1 and 2
    expect((await weighted.data())[0]).toBeCloseTo((0.5 * 1 + 2 * 2) / 2, 6);
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(() => diffusionLoss(out, tf.zeros([2, 3]), t, null)).toThrow(/shape/);
    tf.dispose([out, target, t, weights, plain, weighted]);
  });
});

describe('condition dropout', () => {
  it('is keyed by (seed, step, example): independent of batch split, rate near p', () => {
    const ids = Array.from({ length: 4000 }, (_, i) => i);
    const all = conditionDropMask(7, 3, ids, 0.1);
    const part = conditionDropMask(7, 3, ids.slice(1000, 1010), 0.1);
    expect(Array.from(part)).toEqual(Array.from(all.slice(1000, 1010)));
    const rate = all.reduce((a, b) => a + b, 0) / all.length;
    expect(Math.abs(rate - 0.1)).toBeLessThan(0.02); // 4.7 standard errors of a binomial(4000, 0.1) rate
    expect(Array.from(conditionDropMask(8, 3, ids.slice(0, 50), 0.5))).not.toEqual(Array.from(conditionDropMask(7, 3, ids.slice(0, 50), 0.5)));
    expect(() => conditionDropMask(1, 1, [0], 1.5)).toThrow(/\[0, 1\]/);
  });
  it('replaces dropped labels with the null class', () => {
    expect(Array.from(dropLabels(Int32Array.from([3, 5, 7]), Uint8Array.from([0, 1, 0]), 10))).toEqual([3, 10, 7]);
  });
});
