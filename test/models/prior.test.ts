/**
 * The diffusion prior (models/prior.ts): config validation, parameter names,
 * zero-initialised output, forward and gradients against an independent
 * float64 re-implementation in plain JavaScript (gradients by central finite
 * differences of that reference), the null text embedding and its keep mask,
 * the sampler Denoiser and classifier-free guidance wiring, and sampling on [B, E].
 */
import * as tf from '@tensorflow/tfjs';
import { DiffusionPrior, priorCond, priorConfig, priorDenoiser, priorNullCond, PRIOR_DEFAULTS, samplePriorEmbeddings } from '../../src/models/prior';
import { l2Normalize } from '../../src/models/clip';
import { classifierFreeGuidance } from '../../src/sample/guidance';
import { sample } from '../../src/sample/sample';
import { makeSchedule } from '../../src/schedule/schedule';
import { Rng } from '../../src/backend/random';
import { expectClose, relativeError, useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('wasm');
});

const TINY = { embedDim: 3, width: 4, depth: 2, mlpRatio: 2, timeEmbeddingDim: 4, seed: 7 };

/** Overwrites every parameter with N(0, 0.5^2) (the zero-initialised output layer would hide everything). */
function randomizeWeights(prior: DiffusionPrior, seed: string): void {
  const rng = new Rng(seed);
  for (const [, v] of prior.namedParameters()) {
    const data = rng.fillNormal(new Float32Array(v.size), 0, 0.5);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

function randomTensor(shape: number[], rng: Rng, std = 1): tf.Tensor {
  return tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, std), shape);
}

// ---------------------------------------------------------------- float64 reference

type Params = Map<string, { data: Float64Array; shape: number[] }>;

async function readParams(prior: DiffusionPrior): Promise<Params> {
  const out: Params = new Map();
  for (const [n, v] of prior.namedParameters()) out.set(n, { data: Float64Array.from(await v.data()), shape: v.shape });
  return out;
}

/** erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!  (all terms positive: no cancellation). */
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
const silu = (x: number): number => x / (1 + Math.exp(-x));

/** rows [B][in] x W [in, out] + b. */
function lin(p: Params, name: string, x: number[][]): number[][] {
  const w = p.get(`${name}.weight`);
  const b = p.get(`${name}.bias`);
  if (!w || !b) throw new Error(`no parameter ${name}`);
  const [inF, outF] = w.shape;
  return x.map((row) => {
    if (row.length !== inF) throw new Error(`${name}: input width ${row.length} != ${inF}`);
    return Array.from({ length: outF }, (_, o) => row.reduce((acc, v, i) => acc + v * w.data[i * outF + o], b.data[o]));
  });
}

function ln(p: Params, name: string, x: number[][]): number[][] {
  const w = (p.get(`${name}.weight`) as { data: Float64Array }).data;
  const b = (p.get(`${name}.bias`) as { data: Float64Array }).data;
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
    return row.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[i] + b[i]);
  });
}

const add = (a: number[][], b: number[][]): number[][] => a.map((r, i) => r.map((v, j) => v + b[i][j]));
const map = (a: number[][], f: (v: number) => number): number[][] => a.map((r) => r.map(f));

/** The prior's forward pass, written from the file header's equations, in float64. */
function referenceForward(p: Params, cfg: { embedDim: number; depth: number; timeEmbeddingDim: number; imageEmbedScale: number }, x: number[][], t: number[], text: number[][], keep: number[]): number[][] {
  const nul = (p.get('null_text_embedding') as { data: Float64Array }).data;
  const s = text.map((row, i) => row.map((v, k) => cfg.imageEmbedScale * (keep[i] * v + (1 - keep[i]) * nul[k])));
  const half = cfg.timeEmbeddingDim / 2;
  const freqs = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
  const sinus = t.map((ti) => [...freqs.map((f) => Math.sin(ti * f)), ...freqs.map((f) => Math.cos(ti * f))]);
  const temb = lin(p, 'time_embedding.2', map(lin(p, 'time_embedding.0', sinus), silu));
  const c = add(temb, lin(p, 'text_projection', s));
  let h = add(lin(p, 'proj_in', x.map((row, i) => [...row, ...s[i]])), c);
  const siluC = map(c, silu);
  for (let b = 0; b < cfg.depth; b++) {
    const u = add(ln(p, `blocks.${b}.norm`, h), lin(p, `blocks.${b}.emb_proj`, siluC));
    h = add(h, lin(p, `blocks.${b}.fc2`, map(lin(p, `blocks.${b}.fc1`, u), gelu)));
  }
  return lin(p, 'proj_out', ln(p, 'norm_out', h));
}

const refLossOf = (out: number[][], r: number[][]): number => out.reduce((a, row, i) => a + row.reduce((b, v, k) => b + v * r[i][k], 0), 0);

// ---------------------------------------------------------------- config

describe('priorConfig', () => {
  it('fills defaults, with imageEmbedScale = sqrt(embedDim) unless given', () => {
    const cfg = priorConfig({ embedDim: 16 });
    expect(cfg).toEqual({ ...PRIOR_DEFAULTS, embedDim: 16, imageEmbedScale: 4 });
    expect(cfg.predictionType).toBe('x0');
    expect(priorConfig().imageEmbedScale).toBeCloseTo(Math.sqrt(128), 12);
    expect(priorConfig({ embedDim: 16, imageEmbedScale: 1 }).imageEmbedScale).toBe(1);
  });

  it('refuses bad values, naming the field', () => {
    expect(() => priorConfig({ embedDim: 0 })).toThrow(/embedDim must be a positive integer, got 0/);
    expect(() => priorConfig({ width: 2.5 })).toThrow(/width must be a positive integer/);
    expect(() => priorConfig({ depth: -1 })).toThrow(/depth/);
    expect(() => priorConfig({ timeEmbeddingDim: 5 })).toThrow(/timeEmbeddingDim must be even/);
    expect(() => priorConfig({ predictionType: 'eps' as never })).toThrow(/predictionType must be one of epsilon, v, x0, got 'eps'/);
    expect(() => priorConfig({ activation: 'relu' as never })).toThrow(/activation must be 'gelu' or 'silu'/);
    expect(() => priorConfig({ imageEmbedScale: 0 })).toThrow(/imageEmbedScale must be a finite number > 0/);
    expect(() => priorConfig({ seed: 0.5 })).toThrow(/seed must be an integer/);
  });
});

// ---------------------------------------------------------------- the network

describe('DiffusionPrior', () => {
  it('has PyTorch-style parameter names and shapes', () => {
    const prior = new DiffusionPrior(TINY);
    const shapes = Object.fromEntries(prior.namedParameters().map(([n, v]) => [n, v.shape]));
    const block = (i: number): Record<string, number[]> => ({
      [`blocks.${i}.norm.weight`]: [4], [`blocks.${i}.norm.bias`]: [4],
      [`blocks.${i}.emb_proj.weight`]: [4, 4], [`blocks.${i}.emb_proj.bias`]: [4],
      [`blocks.${i}.fc1.weight`]: [4, 8], [`blocks.${i}.fc1.bias`]: [8],
      [`blocks.${i}.fc2.weight`]: [8, 4], [`blocks.${i}.fc2.bias`]: [4],
    });
    expect(shapes).toEqual({
      null_text_embedding: [3],
      'time_embedding.0.weight': [4, 4], 'time_embedding.0.bias': [4],
      'time_embedding.2.weight': [4, 4], 'time_embedding.2.bias': [4],
      'text_projection.weight': [3, 4], 'text_projection.bias': [4],
      'proj_in.weight': [6, 4], 'proj_in.bias': [4],
      ...block(0), ...block(1),
      'norm_out.weight': [4], 'norm_out.bias': [4],
      'proj_out.weight': [4, 3], 'proj_out.bias': [3],
    });
    expect(prior.parameterLayouts().get('proj_in.weight')).toBe('linear');
    prior.dispose();
  });

  it('outputs exactly zero at initialisation (zero-initialised proj_out), shape [B, E]', async () => {
    const before = tf.memory().numTensors;
    const prior = new DiffusionPrior({ ...TINY, embedDim: 5 });
    const rng = new Rng('zero');
    const x = randomTensor([2, 5], rng) as tf.Tensor2D;
    const text = randomTensor([2, 5], rng) as tf.Tensor2D;
    const t = tf.tensor1d([0, 999], 'int32');
    const out = prior.apply({ x, t, textEmbedding: text });
    expect(out.shape).toEqual([2, 5]);
    expect(Array.from(await out.data())).toEqual(new Array(10).fill(0));
    tf.dispose([x, text, t, out]);
    prior.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('matches a float64 reference forward, and its gradients match finite differences of that reference', async () => {
    const before = tf.memory().numTensors;
    const prior = new DiffusionPrior(TINY);
    randomizeWeights(prior, 'grad-check');
    const rng = new Rng('inputs');
    const xv = Array.from({ length: 3 }, () => [rng.normal(), rng.normal(), rng.normal()]);
    const textv = Array.from({ length: 3 }, () => [rng.normal(), rng.normal(), rng.normal()]);
    const tv = [3, 41, 97];
    const keepv = [1, 0, 1];
    const rv = Array.from({ length: 3 }, () => [rng.normal(), rng.normal(), rng.normal()]); // loss = sum(out * R)
    const x = tf.tensor2d(xv);
    const text = tf.tensor2d(textv);
    const t = tf.tensor1d(tv, 'int32');
    const keep = tf.tensor2d(keepv, [3, 1]);
    const r = tf.tensor2d(rv);
    const cfg = prior.config;

    const p = await readParams(prior);
    const refOut = referenceForward(p, cfg, xv, tv, textv, keepv);
    const out = prior.apply({ x, t, textEmbedding: text, keep });
    await expectClose(await out.data(), refOut.flat(), 1e-5);

    const names = prior.namedParameters();
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(prior.apply({ x, t, textEmbedding: text, keep }), r)) as tf.Scalar, names.map(([, v]) => v));
    expect((await value.data())[0]).toBeCloseTo(refLossOf(refOut, rv), 4);
    const refLoss = (q: Params): number => refLossOf(referenceForward(q, cfg, xv, tv, textv, keepv), rv);
    // A few entries of each kind of parameter: null embedding, time MLP, input and text projections, a norm, both MLP layers, output.
    const probes: Array<[string, number]> = [
      ['null_text_embedding', 1], ['time_embedding.0.weight', 5], ['time_embedding.2.bias', 2], ['text_projection.weight', 7],
      ['proj_in.weight', 13], ['blocks.0.norm.weight', 3], ['blocks.1.emb_proj.weight', 6], ['blocks.0.fc1.weight', 9],
      ['blocks.1.fc2.weight', 20], ['norm_out.bias', 1], ['proj_out.weight', 4],
    ];
    const h = 1e-6;
    for (const [name, i] of probes) {
      const v = names.find(([n]) => n === name)?.[1] as tf.Variable;
      const analytic = (await grads[v.name].data())[i];
      const entry = p.get(name) as { data: Float64Array; shape: number[] };
      const orig = entry.data[i];
      entry.data[i] = orig + h;
      const up = refLoss(p);
      entry.data[i] = orig - h;
      const down = refLoss(p);
      entry.data[i] = orig;
      const numeric = (up - down) / (2 * h);
      expect(Math.abs(numeric)).toBeGreaterThan(1e-3); // a probe that tests something
      if (!(Math.abs(analytic - numeric) <= 2e-4 * Math.max(1, Math.abs(numeric)))) {
        throw new Error(`${name}[${i}]: autodiff ${analytic} vs finite difference ${numeric}`);
      }
    }
    tf.dispose([x, text, t, keep, r, out, value, ...Object.values(grads)]);
    prior.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses the learned null embedding exactly where keep = 0, and only there it receives gradient', async () => {
    const before = tf.memory().numTensors;
    const prior = new DiffusionPrior({ ...TINY, embedDim: 6 });
    randomizeWeights(prior, 'keep');
    const rng = new Rng('keep-inputs');
    const x = randomTensor([4, 6], rng) as tf.Tensor2D;
    const text = randomTensor([4, 6], rng) as tf.Tensor2D;
    const t = tf.tensor1d([5, 50, 500, 900], 'int32');
    const keep = tf.tensor2d([1, 0, 1, 0], [4, 1]);
    const mixed = prior.apply({ x, t, textEmbedding: text, keep });
    const plain = prior.apply({ x, t, textEmbedding: text });
    // The same batch with rows 1 and 3 replaced by the null embedding itself and no keep mask.
    const nulled = tf.tidy(() => {
      const nul = tf.broadcastTo(tf.reshape(prior.nullTextEmbedding, [1, 6]), [4, 6]);
      return tf.where(tf.cast(tf.broadcastTo(keep, [4, 6]), 'bool'), text, nul) as tf.Tensor2D;
    });
    const viaNull = prior.apply({ x, t, textEmbedding: nulled });
    const m = await mixed.array();
    const p = await plain.array();
    const n = await viaNull.array();
    for (const i of [0, 2]) expect(relativeError(m[i], p[i])).toBe(0);
    for (const i of [1, 3]) expect(relativeError(m[i], n[i])).toBeLessThan(1e-6);
    for (const i of [1, 3]) expect(relativeError(m[i], p[i])).toBeGreaterThan(1e-3);

    const nullGrad = async (k: tf.Tensor2D): Promise<number[]> => {
      const { value, grads } = tf.variableGrads(() => tf.sum(prior.apply({ x, t, textEmbedding: text, keep: k })) as tf.Scalar, [prior.nullTextEmbedding]);
      const values = Array.from(await grads[prior.nullTextEmbedding.name].data());
      tf.dispose([value, ...Object.values(grads)]);
      return values;
    };
    expect((await nullGrad(keep)).some((v) => Math.abs(v) > 1e-4)).toBe(true);
    const allKeep = tf.ones([4, 1]) as tf.Tensor2D;
    expect(await nullGrad(allKeep)).toEqual(new Array(6).fill(0));
    tf.dispose([x, text, t, keep, allKeep, mixed, plain, nulled, viaNull]);
    prior.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses inputs of the wrong shape, naming what it expected', () => {
    const prior = new DiffusionPrior(TINY);
    const x = tf.zeros([2, 3]) as tf.Tensor2D;
    const x4 = tf.zeros([2, 4]) as tf.Tensor2D;
    const t = tf.tensor1d([1, 2], 'int32');
    const t3 = tf.tensor1d([1, 2, 3], 'int32');
    const keepInt = tf.ones([2, 1], 'int32') as tf.Tensor2D;
    expect(() => prior.apply({ x: x4, t, textEmbedding: x })).toThrow(/x must be \[B, 3\], got \[2,4\]/);
    expect(() => prior.apply({ x, t: t3, textEmbedding: x })).toThrow(/t must be \[2\]/);
    expect(() => prior.apply({ x, t, textEmbedding: x4 })).toThrow(/textEmbedding must be \[2, 3\], got \[2,4\]/);
    expect(() => prior.apply({ x, t, textEmbedding: x, keep: keepInt })).toThrow(/keep must be float32 \[2, 1\]/);
    tf.dispose([x, x4, t, t3, keepInt]);
    prior.dispose();
  });
});

// ---------------------------------------------------------------- denoiser and guidance

describe('priorDenoiser and classifier-free guidance', () => {
  it('reads {textEmbedding, keep}; guidance 1 == conditional, 0 == null, 2 == 2 cond - null; unknown keys refused', async () => {
    const before = tf.memory().numTensors;
    const prior = new DiffusionPrior({ ...TINY, embedDim: 5 });
    randomizeWeights(prior, 'cfg');
    const rng = new Rng('cfg-inputs');
    const x = randomTensor([3, 5], rng);
    const text = tf.tidy(() => l2Normalize(randomTensor([3, 5], rng) as tf.Tensor2D));
    const t = tf.tensor1d([10, 400, 800], 'int32');
    const denoise = priorDenoiser(prior);
    const cond = priorCond(prior, text);
    const uncond = priorNullCond(prior);
    const condOut = denoise(x, t, cond);
    const direct = prior.apply({ x: x as tf.Tensor2D, t, textEmbedding: text });
    await expectClose(condOut, direct, 0);
    const zerosKeep = tf.zeros([3, 1]) as tf.Tensor2D;
    const nullOut = prior.apply({ x: x as tf.Tensor2D, t, textEmbedding: text, keep: zerosKeep }); // text is ignored where keep = 0
    const uncondNullCond = denoise(x, t, null);
    await expectClose(uncondNullCond, nullOut, 1e-6);

    const g1 = classifierFreeGuidance(denoise, { scale: 1, uncond })(x, t, cond);
    const g0 = classifierFreeGuidance(denoise, { scale: 0, uncond })(x, t, cond);
    const g2 = classifierFreeGuidance(denoise, { scale: 2, uncond })(x, t, cond);
    await expectClose(g1, condOut, 1e-5);
    await expectClose(g0, nullOut, 1e-5);
    const expected2 = tf.tidy(() => tf.sub(tf.mul(condOut, 2), nullOut));
    await expectClose(g2, expected2, 1e-5);
    expect(relativeError(await condOut.data(), await nullOut.data())).toBeGreaterThan(1e-3); // the test distinguishes them

    expect(() => denoise(x, t, { textEmbedding: text, context: text })).toThrow(/unknown condition key\(s\) context/);
    expect(() => denoise(x, t, { keep: zerosKeep })).toThrow(/needs 'textEmbedding'/);
    tf.dispose([x, text, t, cond.keep, ...Object.values(uncond), condOut, direct, zerosKeep, nullOut, uncondNullCond, g1, g0, g2, expected2]);
    prior.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

// ---------------------------------------------------------------- sampling

describe('samplePriorEmbeddings', () => {
  it('samples unit-norm [B, E] with every sampler; guidance 1 equals the sampler on the plain denoiser', async () => {
    const before = tf.memory().numTensors;
    const prior = new DiffusionPrior({ ...TINY, embedDim: 4 });
    randomizeWeights(prior, 'sampling');
    const schedule = makeSchedule({ kind: 'cosine', timesteps: 50 });
    const text = tf.tidy(() => l2Normalize(randomTensor([3, 4], new Rng('s')) as tf.Tensor2D));
    for (const sampler of ['ddim', 'ddpm', 'dpm-solver++'] as const) {
      const out = await samplePriorEmbeddings(prior, schedule, text, { sampler, steps: 5, seed: 3 });
      expect(out.shape).toEqual([3, 4]);
      const normsT = tf.norm(out, 2, 1);
      const norms = await normsT.data();
      normsT.dispose();
      for (const nrm of norms) expect(nrm).toBeCloseTo(1, 5);
      if (sampler === 'ddim') {
        // By hand: the sampler over the raw denoiser, then L2-normalise.
        const keep = tf.ones([3, 1]);
        const raw = await sample('ddim', priorDenoiser(prior), [3, 4], schedule, { steps: 5, predictionType: 'x0', seed: 3, cond: { textEmbedding: text, keep } });
        const byHand = l2Normalize(raw as tf.Tensor2D);
        await expectClose(out, byHand, 1e-6);
        // guidance != 1 runs the guided denoiser and gives a different sample; same seed: same result twice.
        const g3a = await samplePriorEmbeddings(prior, schedule, text, { steps: 5, seed: 3, guidance: 3 });
        const g3b = await samplePriorEmbeddings(prior, schedule, text, { steps: 5, seed: 3, guidance: 3 });
        await expectClose(g3a, g3b, 0);
        expect(relativeError(await g3a.data(), await out.data())).toBeGreaterThan(1e-4);
        tf.dispose([keep, raw, byHand, g3a, g3b]);
      }
      out.dispose();
    }
    const wrongE = tf.zeros([2, 5]) as tf.Tensor2D;
    await expect(samplePriorEmbeddings(prior, schedule, wrongE, { steps: 2, seed: 0 })).rejects.toThrow(/text embeddings must be \[B, 4\] \(the prior's embedDim\), got \[2,5\]/);
    await expect(samplePriorEmbeddings(prior, schedule, text, { steps: 2, seed: 0, guidance: -1 })).rejects.toThrow(/guidance must be a finite number >= 0/);
    tf.dispose([text, wrongE]);
    prior.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
