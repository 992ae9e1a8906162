/**
 * Text encoder: forward and every parameter gradient equal cpu autodiff of the
 * same transformer written with plain tf ops; padding is ignored; the pooled
 * embedding is the projected EOS state; the frozen-encoder contract (cache,
 * no weight change while a consumer trains on its outputs).
 */
import * as tf from '@tensorflow/tfjs';
import { TextEncoder, textEncoderConfig, encodeCaptionsCached, TEXT_ENCODER_DEFAULTS } from '../../src/models/textEncoder';
import { ByteTokenizer, PAD_ID } from '../../src/models/tokenizer';
import { Linear } from '../../src/nn/linear';
import { CrossAttention } from '../../src/nn/attention';
import { Module } from '../../src/nn/module';
import { AdamW } from '../../src/train/adamw';
import { Rng } from '../../src/backend/random';
import { useCpuAndWasm, valueAndGrads, randomHost, relErr, refAttention, HostTensor } from '../nn/reference';

beforeAll(async () => {
  await useCpuAndWasm();
});

const TINY = { maxLength: 8, dim: 8, layers: 2, heads: 2, mlpRatio: 2, embedDim: 6, seed: 3 };
const PROMPTS = ['a 7', '', 'seven!'];

// ---------------------------------------------------------------- reference (plain ops, cpu autodiff)

function refLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), w), b);
}

function refGelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
}

/** The encoder from its named weights; eosIndex per row from the host. Returns concat(states.flat, pooled.flat). */
function refEncoder(w: Map<string, tf.Tensor>, ids: Int32Array, mask: Float32Array, B: number, cfg: typeof TINY): tf.Tensor {
  const L = cfg.maxLength;
  const get = (n: string): tf.Tensor => {
    const t = w.get(n);
    if (t === undefined) throw new Error(`no weight ${n}`);
    return t;
  };
  const dense = (x: tf.Tensor, name: string, bias = true): tf.Tensor => {
    const y = tf.matMul(tf.reshape(x, [-1, x.shape[x.rank - 1]]), get(`${name}.weight`));
    return tf.reshape(bias ? tf.add(y, get(`${name}.bias`)) : y, [...x.shape.slice(0, -1), -1]);
  };
  const maskT = tf.tensor2d(mask, [B, L]);
  let h = tf.add(tf.gather(get('token_embedding.weight'), tf.tensor1d(ids, 'int32')).reshape([B, L, cfg.dim]), get('position_embedding'));
  for (let i = 0; i < cfg.layers; i++) {
    const p = `blocks.${i}`;
    const [q, k, v] = tf.split(dense(refLayerNorm(h, get(`${p}.ln_1.weight`), get(`${p}.ln_1.bias`)), `${p}.attn.qkv`), 3, 2);
    h = tf.add(h, dense(refAttention(q, k, v, cfg.heads, maskT), `${p}.attn.proj`));
    const mid = refGelu(dense(refLayerNorm(h, get(`${p}.ln_2.weight`), get(`${p}.ln_2.bias`)), `${p}.mlp.fc1`));
    h = tf.add(h, dense(mid, `${p}.mlp.fc2`));
  }
  const states = refLayerNorm(h, get('ln_final.weight'), get('ln_final.bias')); // [B, L, D]
  const eosRows = Array.from({ length: B }, (_, b) => b * L + mask.subarray(b * L, (b + 1) * L).reduce((a, m) => a + m, 0) - 1);
  const eosStates = tf.gather(tf.reshape(states, [B * L, cfg.dim]), tf.tensor1d(eosRows, 'int32'));
  const pooled = dense(eosStates, 'text_projection', false);
  return tf.concat([tf.reshape(states, [-1]), tf.reshape(pooled, [-1])]);
}

/** Our value and parameter gradients of sum(concat(states, pooled) * dy) on wasm (same dy as valueAndGrads). */
async function oursValueAndGrads(enc: TextEncoder, ids: tf.Tensor2D, mask: tf.Tensor2D): Promise<{ value: HostTensor; grads: HostTensor[] }> {
  const f = (): tf.Tensor => {
    const out = enc.apply(ids, mask);
    return tf.concat([tf.reshape(out.states, [-1]), tf.reshape(out.pooled, [-1])]);
  };
  const y = tf.tidy(f);
  const dy = tf.tensor(randomHost(y.shape, new Rng(12345)).data, y.shape);
  const vars = enc.parameters();
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(), dy)) as tf.Scalar, vars);
  const out = {
    value: { data: (await y.data()) as Float32Array, shape: y.shape },
    grads: await Promise.all(vars.map(async (v) => ({ data: (await grads[v.name].data()) as Float32Array, shape: grads[v.name].shape }))),
  };
  tf.dispose([y, dy, value, ...Object.values(grads)]);
  return out;
}

// ---------------------------------------------------------------- tests

describe('TextEncoder', () => {
  it('matches cpu autodiff of a plain-op transformer: states, pooled and every parameter gradient', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const before = tf.memory().numTensors;
    const enc = new TextEncoder(TINY);
    const tok = new ByteTokenizer({ maxLength: TINY.maxLength });
    const e = tok.encode(PROMPTS);
    const ids = tf.tensor2d(e.ids, [3, TINY.maxLength], 'int32');
    const mask = tf.tensor2d(e.mask, [3, TINY.maxLength]);
    const ours = await oursValueAndGrads(enc, ids, mask);
    const names = enc.namedParameters().map(([n]) => n);
    const hostWeights: HostTensor[] = await Promise.all(enc.parameters().map(async (v) => ({ data: (await v.data()) as Float32Array, shape: v.shape })));
    const ref = await valueAndGrads('cpu', (...ws) => refEncoder(new Map(names.map((n, i) => [n, ws[i]])), e.ids, e.mask, 3, TINY), hostWeights);
    expect(relErr(ours.value, ref.value)).toBeLessThan(1e-5);
    names.forEach((n, i) => {
      const err = relErr(ours.grads[i], ref.grads[i]);
      if (!(err < 1e-4)) throw new Error(`gradient of ${n}: relative error ${err}`);
    });
    expect(names).toContain('blocks.1.mlp.fc2.weight');
    expect(names).toContain('position_embedding');
    tf.dispose([ids, mask]);
    enc.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('ignores padding: other ids at masked positions change no real-token state and not the pooled embedding', async () => {
    const before = tf.memory().numTensors;
    const enc = new TextEncoder(TINY);
    const tok = new ByteTokenizer({ maxLength: TINY.maxLength });
    const e = tok.encode(['ab']);
    const scrambled = Int32Array.from(e.ids, (id, i) => (e.mask[i] === 0 ? (i * 37) % 256 : id));
    expect(Array.from(e.ids).filter((id) => id === PAD_ID)).toHaveLength(4);
    const run = (ids: Int32Array): { s: Float32Array; p: Float32Array } =>
      tf.tidy(() => {
        const out = enc.apply(tf.tensor2d(ids, [1, TINY.maxLength], 'int32'), tf.tensor2d(e.mask, [1, TINY.maxLength]));
        return { s: out.states.slice([0, 0, 0], [1, 4, TINY.dim]).dataSync() as Float32Array, p: out.pooled.dataSync() as Float32Array };
      });
    const a = run(e.ids);
    const b = run(scrambled);
    expect(Array.from(b.s)).toEqual(Array.from(a.s));
    expect(Array.from(b.p)).toEqual(Array.from(a.p));
    enc.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('pools the EOS state through text_projection', () => {
    const enc = new TextEncoder(TINY);
    const tok = new ByteTokenizer({ maxLength: TINY.maxLength });
    const out = enc.encodeTexts(tok, PROMPTS);
    const states = out.states.arraySync();
    const pooled = out.pooled.arraySync();
    const W = (enc.textProjection.weight.arraySync() as number[][]);
    PROMPTS.forEach((p, b) => {
      const eos = Buffer.byteLength(p) + 1;
      const expected = W[0].map((_, j) => states[b][eos].reduce((acc, s, k) => acc + s * W[k][j], 0));
      expected.forEach((v, j) => expect(pooled[b][j]).toBeCloseTo(v, 5));
    });
    tf.dispose([out.states, out.mask, out.pooled]);
    enc.dispose();
  });

  it('validates config and inputs with expected-vs-received messages', () => {
    expect(TEXT_ENCODER_DEFAULTS).toMatchObject({ vocabSize: 259, maxLength: 32, dim: 128, layers: 4, heads: 4 });
    expect(() => textEncoderConfig({ dim: 10, heads: 4 })).toThrow(/dim \(10\) must be divisible by heads \(4\)/);
    expect(() => textEncoderConfig({ layers: 0 })).toThrow(/layers must be a positive integer/);
    const enc = new TextEncoder(TINY);
    const ids = tf.zeros([2, 5], 'int32') as tf.Tensor2D;
    const mask = tf.ones([2, 5]) as tf.Tensor2D;
    expect(() => enc.apply(ids, mask)).toThrow(/ids must be \[B, 8\], got \[2,5\]/);
    expect(() => enc.encodeTexts(new ByteTokenizer({ maxLength: 16 }), ['x'])).toThrow(/tokenizer has maxLength 16 .* expects 8/);
    tf.dispose([ids, mask]);
    enc.dispose();
  });
});

// ---------------------------------------------------------------- frozen-encoder contract

/** A UNet-like consumer: image tokens cross-attend to the text states. */
class Consumer extends Module {
  readonly inp = this.addChild('inp', new Linear({ inFeatures: 3, outFeatures: 8, rng: new Rng('c-in') }));
  readonly cross = this.addChild('cross', new CrossAttention({ dim: 8, contextDim: TINY.dim, heads: 2, rng: new Rng('c-x') }));
  readonly out = this.addChild('out', new Linear({ inFeatures: 8, outFeatures: 3, rng: new Rng('c-out') }));

  apply(x: tf.Tensor3D, context: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor {
    const h = this.inp.apply(x) as tf.Tensor3D;
    return this.out.apply(tf.add(h, this.cross.apply(h, context, mask)));
  }
}

describe('frozen text encoder', () => {
  it('encodes each distinct caption once and looks batches up exactly', () => {
    const before = tf.memory().numTensors;
    const enc = new TextEncoder(TINY);
    const tok = new ByteTokenizer({ maxLength: TINY.maxLength });
    expect(() => encodeCaptionsCached(enc, tok, ['a'])).toThrow(/call encoder.freeze\(\) first/);
    enc.freeze();
    expect(enc.namedTrainableParameters()).toHaveLength(0);
    const captions = ['a 1', 'a 2', 'a 1', 'seven', 'a 2', 'a 1'];
    const cache = encodeCaptionsCached(enc, tok, captions, { batchSize: 2 }); // 3 distinct, 2 batches
    expect(cache.size).toBe(3);
    expect(cache.states.shape).toEqual([3, TINY.maxLength, TINY.dim]);
    const batch = ['seven', 'a 1', 'seven'];
    const got = cache.lookup(batch);
    const direct = enc.encodeTexts(tok, batch);
    expect(got.context.shape).toEqual([3, TINY.maxLength, TINY.dim]);
    expect(Array.from(got.context.dataSync())).toEqual(Array.from(direct.states.dataSync()));
    expect(Array.from(got.mask.dataSync())).toEqual(Array.from(direct.mask.dataSync()));
    expect(Array.from(got.pooled.dataSync())).toEqual(Array.from(direct.pooled.dataSync()));
    expect(() => cache.lookup(['unseen'])).toThrow(/caption 0 \("unseen"\) was not encoded/);
    tf.dispose([got.context, got.mask, got.pooled, direct.states, direct.mask, direct.pooled]);
    cache.dispose();
    enc.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps its weights while a consumer trains on its outputs (gradients only for trainable parameters)', async () => {
    const before = tf.memory().numTensors;
    const enc = new TextEncoder(TINY).freeze();
    const consumer = new Consumer();
    const tok = new ByteTokenizer({ maxLength: TINY.maxLength });
    const initial = enc.cloneWeights();
    const captions = ['red', 'a blue 3', 'red', 'green'];
    const cache = encodeCaptionsCached(enc, tok, captions);
    const rng = new Rng('consumer-data');
    const x = tf.tensor3d(randomHost([4, 5, 3], rng).data, [4, 5, 3]);
    const target = tf.tensor3d(randomHost([4, 5, 3], rng).data, [4, 5, 3]);
    // The trainer's parameter list: consumer + encoder trainables (none, it is frozen).
    const params = [...consumer.namedTrainableParameters(), ...enc.namedTrainableParameters().map(([n, v]) => [`text.${n}`, v] as [string, tf.Variable])];
    expect(params.map(([n]) => n).some((n) => n.startsWith('text.'))).toBe(false);
    const opt = new AdamW({ weightDecay: 0.1 });
    const losses: number[] = [];
    for (let step = 0; step < 25; step++) {
      // Half the steps use cached states, half run the encoder inside the loss: neither may touch its weights.
      const { value, grads } = tf.variableGrads(() => {
        if (step % 2 === 0) {
          const { context, mask } = cache.lookup(captions);
          return tf.losses.meanSquaredError(target, consumer.apply(x, context, mask)) as tf.Scalar;
        }
        const out = enc.encodeTexts(tok, captions);
        return tf.losses.meanSquaredError(target, consumer.apply(x, out.states, out.mask)) as tf.Scalar;
      }, params.map(([, v]) => v));
      const names = new Map(params.map(([n, v]) => [v.name, n]));
      expect(Object.keys(grads).every((vn) => names.has(vn))).toBe(true);
      const norm = opt.applyGradients(params, new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])), 1e-2);
      losses.push((await value.data())[0]);
      tf.dispose([value, norm, ...Object.values(grads)]);
    }
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.8);
    for (const [n, v] of enc.namedParameters()) {
      expect(Array.from(v.dataSync())).toEqual(Array.from((initial.get(n) as tf.Tensor).dataSync()));
    }
    opt.dispose();
    tf.dispose([x, target, ...initial.values()]);
    cache.dispose();
    consumer.dispose();
    enc.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
