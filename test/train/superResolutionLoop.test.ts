/**
 * The training loop's super-resolution path (src/train/loop.ts with `lowRes`):
 * the UNet sees concat([x_t, z_s]) with z_s = q(z_s | resize(avgpool_f(x0)))
 * at a keyed level s, and embeds s. Checked: lossAndGrads equals a loss
 * assembled by hand from the same keyed draws (and the level matters); a
 * short run on wasm trains with flat live tensors; mismatched models are
 * refused; with 2 workers a micro-batch's gradient equals the one-thread one.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { relativeError, tinyTwoClassDataset, useBackend } from '../helpers';
import { keyedRng, Rng } from '../../src/backend/random';
import { UNet, unetConfig, UNetConfig } from '../../src/models/unet';
import { makeSchedule } from '../../src/schedule/schedule';
import { fixedBatch } from '../../src/data/batches';
import { lossAndGrads, GradientContext, trainDiffusion } from '../../src/train/diffusionTraining';
import { trainConfig } from '../../src/train/trainConfig';
import { lowResConfig } from '../../src/sample/lowResConditioning';
import { startDataParallel } from '../../src/train/dataParallel';

beforeAll(async () => useBackend('wasm'));

// zeroInitOutput false: the untrained output then depends on every input, so a wrong wiring changes the loss.
const SR_UNET: UNetConfig = unetConfig({
  inChannels: 2, outChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2,
  timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, augLevelEmbedding: true, zeroInitOutput: false,
});
const LOW_RES = lowResConfig({ factor: 2, maxAugLevel: 50 });
const T = 100;
const SCHEDULE = makeSchedule({ kind: 'cosine', timesteps: T });

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-sr-'));
}

/**
 * The loss of examples `indices` of `step` (first index `first`), assembled from the keyed draws the loop
 * documents: t ('t'), eps ('noise'), s ('aug-level', in [0, maxAugLevel]), e ('aug-noise'); eps-prediction, plain MSE.
 * `levelOverride` replaces s (to see that the level reaches the model).
 */
function handLoss(model: UNet, x0: tf.Tensor4D, seed: number, step: number, first: number, levelOverride?: number): number {
  const [b, h, w, c] = x0.shape;
  const per = h * w * c;
  const ts = Array.from({ length: b }, (_, i) => keyedRng(seed, 't', step, first + i).int(T));
  const levels = Array.from({ length: b }, (_, i) => levelOverride ?? keyedRng(seed, 'aug-level', step, first + i).int(LOW_RES.maxAugLevel + 1));
  const eps = new Float32Array(b * per);
  const e = new Float32Array(b * per);
  for (let i = 0; i < b; i++) {
    keyedRng(seed, 'noise', step, first + i).fillNormal(eps.subarray(i * per, (i + 1) * per));
    keyedRng(seed, 'aug-noise', step, first + i).fillNormal(e.subarray(i * per, (i + 1) * per));
  }
  const col = (values: number[]): tf.Tensor4D => tf.tensor4d(values, [b, 1, 1, 1]);
  return tf.tidy(() => {
    const abarT = ts.map((t) => SCHEDULE.alphasCumprod[t]);
    const abarS = levels.map((s) => SCHEDULE.alphasCumprod[s]);
    const noise = tf.tensor4d(eps, [b, h, w, c]);
    const xt = tf.add(tf.mul(col(abarT.map(Math.sqrt)), x0), tf.mul(col(abarT.map((a) => Math.sqrt(1 - a))), noise));
    const up = tf.image.resizeBilinear(tf.avgPool(x0, 2, 2, 'valid'), [h, w], false, true);
    const z = tf.add(tf.mul(col(abarS.map(Math.sqrt)), up), tf.mul(col(abarS.map((a) => Math.sqrt(1 - a))), tf.tensor4d(e, [b, h, w, c])));
    const out = model.apply({ x: tf.concat([xt, z], 3) as tf.Tensor4D, t: tf.tensor1d(ts, 'int32'), augLevels: tf.tensor1d(levels, 'int32') });
    return tf.mean(tf.square(tf.sub(out, noise))).dataSync()[0];
  });
}

describe('lossAndGrads with lowRes', () => {
  it('equals the loss assembled by hand from the same keyed draws; the augmentation level reaches the model', () => {
    const model = new UNet(SR_UNET, new Rng('sr'));
    const data = tinyTwoClassDataset(12, 1);
    const batch = fixedBatch(data, [3, 8, 1, 10]);
    const ctx: GradientContext = { model, schedule: SCHEDULE, params: model.namedTrainableParameters(), seed: 5, condDropProb: 0, snrWeights: null, textStates: null, lowRes: LOW_RES, imageEmbeddings: null };
    try {
      const before = tf.memory().numTensors;
      const { loss, grads } = lossAndGrads(ctx, batch, 6, 2);
      const value = loss.dataSync()[0];
      expect(grads.size).toBe(ctx.params.length);
      expect([...grads.keys()].filter((k) => k.startsWith('aug_temb.')).length).toBeGreaterThan(0);
      const augGrad = tf.tidy(() => tf.addN([...grads].filter(([k]) => k.startsWith('aug_temb.')).map(([, g]) => tf.sum(tf.abs(g)))).dataSync()[0]);
      expect(augGrad).toBeGreaterThan(0); // the level embedding is trained
      tf.dispose([loss, ...grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
      const hand = handLoss(model, batch.x, 5, 6, 2);
      expect(Math.abs(value - hand)).toBeLessThan(1e-5 * Math.max(1, hand));
      expect(Math.abs(value - handLoss(model, batch.x, 5, 6, 2, 40))).toBeGreaterThan(1e-5); // another level, another loss
      expect(Math.abs(value - handLoss(model, batch.x, 5, 6, 0))).toBeGreaterThan(1e-5); // other example keys, another loss
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
      model.dispose();
    }
  });
});

describe('trainDiffusion with lowRes', () => {
  const CFG = trainConfig({
    steps: 4, batchSize: 4, seed: 2, lr: 2e-3, warmupSteps: 1, logEvery: 1, valEvery: 2, valSize: 4, checkpointEvery: 2, sampleEvery: 0,
    condDropProb: 0, minSnrGamma: 5,
  });

  it('trains a few steps on wasm: finite losses, moving weights, validation loss, flat live tensors', async () => {
    const model = new UNet(SR_UNET, new Rng('2/init'));
    const ema = new UNet(SR_UNET, new Rng('2/init'));
    const init = tf.tidy(() => tf.concat(model.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
    const numTensors: number[] = [];
    const rows: Array<{ valLoss?: number }> = [];
    try {
      const result = await trainDiffusion({
        model, ema, schedule: SCHEDULE, train: tinyTwoClassDataset(16, 1), validation: tinyTwoClassDataset(4, 2), config: CFG, outDir: tmpDir(),
        resume: false, checkpointConfig: { test: true }, lowRes: LOW_RES,
        onMetrics: (row) => {
          numTensors.push(tf.memory().numTensors);
          rows.push(row);
        },
      });
      expect(result.losses).toHaveLength(4);
      for (const l of result.losses) expect(Number.isFinite(l) && l > 0).toBe(true);
      expect(rows.filter((r) => r.valLoss !== undefined)).toHaveLength(2);
      expect(new Set(numTensors.slice(1)).size).toBe(1);
      const after = tf.tidy(() => tf.concat(model.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
      expect(relativeError(after, init)).toBeGreaterThan(1e-4);
    } finally {
      model.dispose();
      ema.dispose();
    }
  });

  it('refuses a model whose channels do not fit the stage, and a level embedding without lowRes', async () => {
    const before = tf.memory().numTensors;
    const attempt = async (config: UNetConfig, lowRes: typeof LOW_RES | undefined): Promise<void> => {
      const model = new UNet(config, new Rng(0));
      const ema = new UNet(config, new Rng(0));
      try {
        await trainDiffusion({
          model, ema, schedule: SCHEDULE, train: tinyTwoClassDataset(4, 1), validation: null, config: CFG, outDir: tmpDir(), resume: false, checkpointConfig: {}, lowRes,
        });
      } finally {
        model.dispose();
        ema.dispose();
      }
    };
    const plain = unetConfig({ ...SR_UNET, inChannels: 1, outChannels: 1, augLevelEmbedding: false });
    await expect(attempt(plain, LOW_RES)).rejects.toThrow(/has 1 channel\(s\): the model must map 2 to 1 channels \(x_t and the low-res image in, a super-resolution stage\), it maps 1 to 1/);
    await expect(attempt(SR_UNET, undefined)).rejects.toThrow(/the model must map 1 to 1 channels, it maps 2 to 1/);
    await expect(attempt(unetConfig({ ...plain, augLevelEmbedding: true }), undefined)).rejects.toThrow(/embeds a noise-augmentation level \(augLevelEmbedding\) but no lowRes config was given/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

const describeMulticore = os.cpus().length >= 2 ? describe : describe.skip;
describeMulticore('data parallel with lowRes (2 workers)', () => {
  it('one micro-batch: the workers\' summed slice gradients equal the one-thread gradient', async () => {
    const model = new UNet(SR_UNET, new Rng('grad-check'));
    const data = tinyTwoClassDataset(24, 1);
    const indices = Int32Array.from([5, 17, 2, 11, 20]); // split 3 + 2
    const ctx: GradientContext = { model, schedule: SCHEDULE, params: model.namedTrainableParameters(), seed: 9, condDropProb: 0, snrWeights: null, textStates: null, lowRes: LOW_RES, imageEmbeddings: null };
    const workers = await startDataParallel({ workers: 2, model, schedule: SCHEDULE, dataset: data, padTo: undefined, seed: 9, condDropProb: 0, minSnrGamma: null, lowRes: LOW_RES });
    const batch = fixedBatch(data, indices);
    try {
      const before = tf.memory().numTensors;
      const local = lossAndGrads(ctx, batch, 7, 4);
      workers.broadcastWeights();
      const remote = await workers.lossAndGrads(indices, 7, 4);
      const flat = (g: Map<string, tf.Tensor>): Float32Array => Float32Array.from(ctx.params.flatMap(([n]) => Array.from((g.get(n) as tf.Tensor).dataSync())));
      expect(relativeError(flat(remote.grads), flat(local.grads))).toBeLessThan(1e-5);
      expect(relativeError(remote.loss.dataSync(), local.loss.dataSync())).toBeLessThan(1e-6);
      tf.dispose([local.loss, remote.loss, ...local.grads.values(), ...remote.grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await workers.close();
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
      model.dispose();
    }
  }, 60000);
});
