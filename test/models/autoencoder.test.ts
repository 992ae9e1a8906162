import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng } from '../../src/backend/random';
import { AdamW } from '../../src/train/adamw';
import {
  Autoencoder, autoencoderConfig, AutoencoderConfig, AUTOENCODER_DEFAULTS, klDivergence, latentSize, LOGVAR_MAX, LOGVAR_MIN,
} from '../../src/models/autoencoder';

beforeAll(async () => useBackend('wasm'));

/** 8x8 -> 4x4x2: every block type (downsample, nin_shortcut, mid attention, upsample) at toy size. */
const TINY: AutoencoderConfig = autoencoderConfig({ sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, groups: 4, latentChannels: 2, heads: 2 });

function hostNormal(shape: number[], seed: string): Float32Array {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  new Rng(seed).fillNormal(data);
  return data;
}

function images(shape: [number, number, number, number], seed: string): tf.Tensor4D {
  return tf.tidy(() => tf.tanh(tf.tensor4d(hostNormal(shape, seed), shape)) as tf.Tensor4D);
}

describe('autoencoderConfig', () => {
  it('defaults map 32x32 to an 8x8x4 latent', () => {
    const c = autoencoderConfig();
    expect(c).toEqual({ ...AUTOENCODER_DEFAULTS, channelMults: [1, 2, 2] });
    expect(latentSize(c)).toBe(8);
    expect(c.latentChannels).toBe(4);
  });

  it('refuses bad configs with the field, expected and received', () => {
    expect(() => autoencoderConfig({ sampelSize: 32 } as unknown as Partial<AutoencoderConfig>)).toThrow(/unknown field 'sampelSize'/);
    expect(() => autoencoderConfig({ sampleSize: 30 })).toThrow(/sampleSize 30 must be divisible by 2\^\(levels - 1\) = 4/);
    expect(() => autoencoderConfig({ groups: 5 })).toThrow(/groups 5 must divide every level width; width 32/);
    expect(() => autoencoderConfig({ heads: 3 })).toThrow(/heads 3 must divide the mid width 64/);
    expect(() => autoencoderConfig({ channelMults: [] })).toThrow(/channelMults must be a non-empty list/);
    expect(() => autoencoderConfig({ latentChannels: 0 })).toThrow(/latentChannels must be an integer >= 1, got 0/);
    expect(() => autoencoderConfig({ channelMults: [1, 1.5] })).toThrow(/channelMults\[1\] must be an integer >= 1, got 1.5/);
    expect(() => autoencoderConfig({ midAttention: 'yes' as unknown as boolean })).toThrow(/midAttention must be true or false/);
  });
});

describe('Autoencoder', () => {
  it('maps [B,32,32,C] to a [B,8,8,4] latent and back, for 1 and 3 channels, without leaking tensors', () => {
    for (const channels of [1, 3]) {
      const ae = new Autoencoder(autoencoderConfig({ inChannels: channels, baseChannels: 8, groups: 4 }), new Rng(1));
      const before = tf.memory().numTensors;
      const x = images([2, 32, 32, channels], 'x');
      const { mean, logvar } = ae.encode(x);
      expect(mean.shape).toEqual([2, 8, 8, 4]);
      expect(logvar.shape).toEqual([2, 8, 8, 4]);
      const out = ae.apply(x, { sample: true, rng: new Rng(2) });
      expect(out.reconstruction.shape).toEqual([2, 32, 32, channels]);
      const dec = ae.decode(mean);
      expect(dec.shape).toEqual([2, 32, 32, channels]);
      tf.dispose([x, mean, logvar, out.reconstruction, out.mean, out.logvar, dec]);
      expect(tf.memory().numTensors).toBe(before);
      ae.dispose();
    }
  });

  it('returns exactly the tensors it promises (numTensors)', () => {
    const ae = new Autoencoder(TINY, new Rng(1));
    const x = images([2, 8, 8, 1], 'x');
    const before = tf.memory().numTensors;
    const out = ae.apply(x, { sample: true, rng: new Rng(3) });
    expect(tf.memory().numTensors).toBe(before + 3);
    const p = ae.encode(x);
    const z = ae.sample(p, new Rng(4));
    const y = ae.decode(z);
    expect(tf.memory().numTensors).toBe(before + 3 + 4);
    tf.dispose([out.reconstruction, out.mean, out.logvar, p.mean, p.logvar, z, y]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    ae.dispose();
  });

  it('refuses inputs and latents of the wrong shape', () => {
    const ae = new Autoencoder(TINY, new Rng(1));
    const x = tf.zeros([1, 16, 16, 1]) as tf.Tensor4D;
    const z = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => ae.encode(x)).toThrow(/x must be \[B, 8, 8, 1\], got \[1,16,16,1\]/);
    expect(() => ae.decode(z)).toThrow(/z must be \[B, 4, 4, 2\], got \[1,4,4,3\]/);
    const x8 = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    expect(() => ae.apply(x8, { sample: true })).toThrow(/needs noise or an rng/);
    tf.dispose([x, z, x8]);
    ae.dispose();
  });

  it('names parameters like the CompVis checkpoints, stably, with the expected count', () => {
    const ae = new Autoencoder(TINY, new Rng(1));
    const names = ae.namedParameters().map(([n]) => n);
    expect(names[0]).toBe('encoder.conv_in.weight');
    for (const n of [
      'encoder.down.0.block.0.norm1.weight', 'encoder.down.0.downsample.conv.weight', 'encoder.down.1.block.0.nin_shortcut.weight',
      'encoder.mid.block_1.conv2.bias', 'encoder.mid.attn_1.norm.weight', 'encoder.mid.attn_1.qkv.weight', 'encoder.mid.attn_1.proj.bias',
      'encoder.mid.block_2.norm2.weight', 'encoder.norm_out.bias', 'encoder.conv_out.weight',
      'decoder.conv_in.weight', 'decoder.mid.attn_1.qkv.bias', 'decoder.up.1.block.1.conv1.weight', 'decoder.up.1.upsample.conv.weight',
      'decoder.up.0.block.0.nin_shortcut.bias', 'decoder.up.0.block.1.conv2.weight', 'decoder.norm_out.weight', 'decoder.conv_out.bias',
      'quant_conv.weight', 'post_quant_conv.bias',
    ]) expect(names).toContain(n);
    expect(names.some((n) => n.startsWith('encoder.down.1.downsample'))).toBe(false); // last encoder level keeps its size
    expect(names.some((n) => n.startsWith('decoder.up.0.upsample'))).toBe(false); // full-resolution decoder level
    for (const n of names) expect(n).toMatch(/^[a-z_]+(\.[a-z_0-9]+)+$/);
    // The same config gives the same names and the same (seeded) values.
    const again = new Autoencoder(TINY, new Rng(1));
    expect(again.namedParameters().map(([n]) => n)).toEqual(names);
    const a = ae.namedParameters()[4][1].dataSync();
    const b = again.namedParameters()[4][1].dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    // Count by hand: conv k*k*i*o + o, GroupNorm 2c, Linear i*o + o.
    const conv = (k: number, i: number, o: number): number => k * k * i * o + o;
    const gn = (c: number): number => 2 * c;
    const res = (i: number, o: number): number => gn(i) + conv(3, i, o) + gn(o) + conv(3, o, o) + (i !== o ? conv(1, i, o) : 0);
    const attn = (c: number): number => gn(c) + (c * 3 * c + 3 * c) + (c * c + c);
    const mid = (c: number): number => res(c, c) + attn(c) + res(c, c);
    const encoder = conv(3, 1, 8) + res(8, 8) + conv(3, 8, 8) + res(8, 16) + mid(16) + gn(16) + conv(3, 16, 4);
    const decoder = conv(3, 2, 16) + mid(16) + res(16, 16) + res(16, 16) + conv(3, 16, 16) + res(16, 8) + res(8, 8) + gn(8) + conv(3, 8, 1);
    expect(ae.numParameters()).toBe(encoder + decoder + conv(1, 4, 4) + conv(1, 2, 2));
    ae.dispose();
    again.dispose();
  });

  it('clamps logvar to [-30, 20] (CompVis DiagonalGaussianDistribution)', () => {
    const ae = new Autoencoder(TINY, new Rng(1));
    // quant_conv = 0 * moments + bias: mean = 0, logvar = +50 (channel 2) and -50 (channel 3).
    ae.quantConv.weight.assign(tf.zerosLike(ae.quantConv.weight));
    (ae.quantConv.bias as tf.Variable).assign(tf.tensor1d([0, 0, 50, -50]));
    const x = images([1, 8, 8, 1], 'x');
    const { mean, logvar } = ae.encode(x);
    const lv = tf.tidy(() => tf.split(logvar, 2, 3).map((t) => Array.from(t.dataSync())));
    expect(new Set(lv[0])).toEqual(new Set([LOGVAR_MAX]));
    expect(new Set(lv[1])).toEqual(new Set([LOGVAR_MIN]));
    expect(LOGVAR_MAX).toBe(20);
    expect(LOGVAR_MIN).toBe(-30);
    tf.dispose([x, mean, logvar]);
    ae.dispose();
  });

  it('KL to N(0, I) equals the closed form on crafted mean / logvar', () => {
    // KL per image = 0.5 * sum(mu^2 + exp(lv) - 1 - lv), computed here in float64.
    const mu = [0.5, -1, 0, 2, 0.1, 0.3, -0.7, 1.5];
    const lv = [0, -1, 1, 0.5, -3, 2, 0, -0.25];
    const mean = tf.tensor4d(mu, [2, 1, 2, 2]);
    const logvar = tf.tensor4d(lv, [2, 1, 2, 2]);
    const kl = klDivergence({ mean, logvar });
    const expected = [0, 1].map((b) => 0.5 * [0, 1, 2, 3].reduce((s, i) => {
      const j = 4 * b + i;
      return s + mu[j] ** 2 + Math.exp(lv[j]) - 1 - lv[j];
    }, 0));
    const got = kl.dataSync();
    expect(kl.shape).toEqual([2]);
    expected.forEach((e, i) => expect(got[i]).toBeCloseTo(e, 5));
    // The standard normal itself has KL 0.
    const zero = klDivergence({ mean: tf.zeros([1, 2, 2, 1]) as tf.Tensor4D, logvar: tf.zeros([1, 2, 2, 1]) as tf.Tensor4D });
    expect(zero.dataSync()[0]).toBe(0);
    tf.dispose([mean, logvar, kl, zero]);
  });

  it('reparameterised sample is mean + exp(logvar / 2) * noise, deterministic given the noise', async () => {
    const ae = new Autoencoder(TINY, new Rng(1));
    const x = images([2, 8, 8, 1], 'x');
    const p = ae.encode(x);
    const noiseData = hostNormal([2, 4, 4, 2], 'eps');
    const noise = tf.tensor4d(noiseData, [2, 4, 4, 2]);
    const z1 = ae.sample(p, noise);
    const z2 = ae.sample(p, noise);
    const m = await p.mean.data();
    const lv = await p.logvar.data();
    const expected = Array.from(m, (v, i) => v + Math.exp(lv[i] / 2) * noiseData[i]);
    const got = await z1.data();
    expect(Array.from(await z2.data())).toEqual(Array.from(got));
    expected.forEach((e, i) => expect(Math.abs(got[i] - e)).toBeLessThan(1e-5 * Math.max(1, Math.abs(e))));
    // The same Rng seed gives the same draw; sampling actually adds noise.
    const r1 = ae.sample(p, new Rng('s'));
    const r2 = ae.sample(p, new Rng('s'));
    expect(Array.from(await r1.data())).toEqual(Array.from(await r2.data()));
    expect(Array.from(await r1.data())).not.toEqual(Array.from(m));
    // apply with noise reconstructs decode(z) of that noise; sample: false decodes the mean.
    const out = ae.apply(x, { sample: true, noise });
    const viaZ = ae.decode(z1);
    expect(Array.from(await out.reconstruction.data())).toEqual(Array.from(await viaZ.data()));
    const det = ae.apply(x, { sample: false });
    const viaMean = ae.decode(p.mean);
    expect(Array.from(await det.reconstruction.data())).toEqual(Array.from(await viaMean.data()));
    expect(() => ae.sample(p, tf.zeros([2, 4, 4, 1]) as tf.Tensor4D)).toThrow(/noise must have the latent's shape \[2,4,4,2\], got \[2,4,4,1\]/);
    tf.dispose([x, p.mean, p.logvar, noise, z1, z2, r1, r2, out.reconstruction, out.mean, out.logvar, viaZ, det.reconstruction, det.mean, det.logvar, viaMean]);
    ae.dispose();
  });

  it('gradients on wasm match a finite-difference directional derivative', async () => {
    const ae = new Autoencoder(TINY, new Rng(7));
    const x = images([2, 8, 8, 1], 'x');
    const noise = tf.tensor4d(hostNormal([2, 4, 4, 2], 'eps'), [2, 4, 4, 2]);
    const params = ae.namedTrainableParameters().map(([, v]) => v);
    const loss = (): tf.Scalar => tf.tidy(() => {
      const out = ae.apply(x, { sample: true, noise });
      const kl = tf.mean(klDivergence(out));
      return tf.add(tf.mean(tf.square(tf.sub(out.reconstruction, x))), tf.mul(kl, 1e-3)) as tf.Scalar;
    });
    const { value, grads } = tf.variableGrads(loss, params);
    value.dispose();
    // Random direction d (one per parameter); analytic g.d against (L(p + e d) - L(p - e d)) / 2e.
    const dirs = params.map((p, i) => tf.tensor(hostNormal(p.shape, `d${i}`), p.shape));
    let analytic = 0;
    params.forEach((p, i) => {
      const g = grads[p.name];
      expect(g).toBeDefined();
      const gd = tf.tidy(() => tf.sum(tf.mul(g, dirs[i])).dataSync()[0]);
      expect(Number.isFinite(gd)).toBe(true);
      analytic += gd;
    });
    const eps = 1e-3;
    const originals = params.map((p) => tf.clone(p));
    const shifted = (sign: number): number => {
      params.forEach((p, i) => p.assign(tf.tidy(() => tf.add(originals[i], tf.mul(dirs[i], sign * eps)))));
      const l = loss();
      const v = l.dataSync()[0];
      l.dispose();
      return v;
    };
    const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
    params.forEach((p, i) => p.assign(originals[i]));
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-2 * Math.abs(analytic));
    // Every parameter receives a gradient, and nearly all of it is nonzero.
    const zeroGrads = params.filter((p) => tf.tidy(() => tf.max(tf.abs(grads[p.name])).dataSync()[0]) === 0).map((p) => p.name);
    expect(zeroGrads).toEqual([]);
    tf.dispose([x, noise, ...dirs, ...originals, ...Object.values(grads)]);
    ae.dispose();
  });

  it('a tiny model overfits one batch (L1 + KL, AdamW, 40 steps) with a flat tensor count', () => {
    const ae = new Autoencoder(TINY, new Rng(3));
    const x = images([4, 8, 8, 1], 'batch');
    const params = ae.namedTrainableParameters();
    const opt = new AdamW({ weightDecay: 0 });
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 0; step < 40; step++) {
      const noise = tf.tidy(() => tf.tensor4d(hostNormal([4, 4, 4, 2], `eps${step}`), [4, 4, 4, 2]));
      const { value, grads } = tf.variableGrads(() => {
        const out = ae.apply(x, { sample: true, noise });
        const kl = tf.div(tf.sum(klDivergence(out)), out.mean.size);
        return tf.add(tf.mean(tf.abs(tf.sub(out.reconstruction, x))), tf.mul(kl, 1e-6)) as tf.Scalar;
      }, params.map(([, v]) => v));
      const byName = new Map(params.map(([n, v]) => [n, grads[v.name]]));
      const norm = opt.applyGradients(params, byName, 3e-3);
      losses.push(value.dataSync()[0]);
      tf.dispose([value, norm, noise, ...Object.values(grads)]);
      counts.push(tf.memory().numTensors);
    }
    expect(losses[39]).toBeLessThan(0.35 * losses[0]);
    expect(new Set(counts.slice(1)).size).toBe(1);
    x.dispose();
    opt.dispose();
    ae.dispose();
  });
});
