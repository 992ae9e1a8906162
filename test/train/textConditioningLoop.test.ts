/**
 * Text conditioning in the diffusion loop (src/train/loop.ts with textStates):
 * a tiny cross-attention UNet trains on frozen caption states (finite loss,
 * flat live tensors, the text encoder untouched); the loop's refusals; condition
 * dropout replaces captions by NULL_PROMPT's states; data-parallel workers give
 * the one-thread gradient; CaptionStateCache's array round trip.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { relativeError, useBackend, tinyTwoClassDataset } from '../helpers';
import { Rng } from '../../src/backend/random';
import { ImageDataset } from '../../src/data/dataset';
import { fixedBatch, Batch } from '../../src/data/batches';
import { UNet, unetConfig } from '../../src/models/unet';
import { TextEncoder, encodeCaptionsCached, CaptionStateCache } from '../../src/models/textEncoder';
import { ByteTokenizer } from '../../src/models/tokenizer';
import { makeSchedule } from '../../src/schedule/schedule';
import { trainDiffusion, lossAndGrads, GradientContext } from '../../src/train/diffusionTraining';
import { NULL_PROMPT } from '../../src/models/textEncoder';
import { trainConfig } from '../../src/train/trainConfig';
import { startDataParallel } from '../../src/train/dataParallel';

const CORES = os.cpus().length;
const itMulticore = CORES >= 2 ? it : it.skip;
if (CORES < 2) process.stderr.write(`textConditioningLoop.test: skipping the data-parallel test, this machine has ${CORES} core (need 2)\n`);

beforeAll(async () => useBackend('wasm'));

const TEXT = { maxLength: 8, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 1 };
// zeroInitOutput false: a zero-initialised conv_out makes the untrained output 0 whatever the context, so no
// test below could see the text condition.
const UNET = unetConfig({
  inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2,
  timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, contextDim: TEXT.dim, numClasses: null, zeroInitOutput: false,
});
const SCHEDULE = makeSchedule({ kind: 'linear', timesteps: 100 });
const CAPTIONS = ['top', 'left'];

/** tinyTwoClassDataset with caption CAPTIONS[label] per image (labels dropped: the model is text-only). */
function captioned(count: number, seed: number): ImageDataset {
  const d = tinyTwoClassDataset(count, seed);
  return { ...d, captions: Array.from(d.labels as Int32Array, (l) => CAPTIONS[l]) };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-textloop-'));
}

function frozenEncoder(): { encoder: TextEncoder; tokenizer: ByteTokenizer } {
  const encoder = new TextEncoder(TEXT);
  encoder.freeze();
  return { encoder, tokenizer: new ByteTokenizer({ maxLength: TEXT.maxLength }) };
}

function flatWeights(m: { namedParameters(): Array<[string, tf.Variable]> }): Float32Array {
  return tf.tidy(() => tf.concat(m.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
}

function disposeBatch(b: Batch): void {
  tf.dispose([b.x, ...(b.labels ? [b.labels] : [])]);
}

const BASE = trainConfig({
  steps: 3, batchSize: 4, seed: 3, lr: 2e-3, warmupSteps: 1, logEvery: 1, valEvery: 3, valSize: 4, checkpointEvery: 100, sampleEvery: 0, condDropProb: 0.25,
});

describe('trainDiffusion with text states', () => {
  let encoder: TextEncoder;
  let tokenizer: ByteTokenizer;
  let states: CaptionStateCache;

  beforeAll(() => {
    ({ encoder, tokenizer } = frozenEncoder());
    states = encodeCaptionsCached(encoder, tokenizer, [...CAPTIONS, NULL_PROMPT]);
  });
  afterAll(() => {
    states.dispose();
    encoder.dispose();
  });

  it('trains a cross-attention UNet: finite losses, flat live tensors, the frozen text encoder bit-identical, the cache not disposed', async () => {
    const model = new UNet(UNET, new Rng('3/init'));
    const ema = new UNet(UNET, new Rng('3/init'));
    const encoderBefore = flatWeights(encoder);
    const modelBefore = flatWeights(model);
    const cacheBefore = states.states.dataSync().slice();
    const counts: number[] = [];
    const valLosses: number[] = [];
    try {
      const result = await trainDiffusion({
        model, ema, schedule: SCHEDULE, train: captioned(12, 1), validation: captioned(4, 2), config: BASE, outDir: tmpDir(), resume: false,
        checkpointConfig: {}, textStates: states,
        onMetrics: (row) => {
          counts.push(tf.memory().numTensors);
          if (row.valLoss !== undefined) valLosses.push(row.valLoss);
        },
      });
      expect(result.losses).toHaveLength(3);
      for (const l of result.losses) expect(Number.isFinite(l) && l > 0).toBe(true);
      expect(valLosses).toHaveLength(1);
      expect(Number.isFinite(valLosses[0])).toBe(true);
      // The UNet did train.
      expect(relativeError(flatWeights(model), modelBefore)).toBeGreaterThan(1e-4);
    } finally {
      model.dispose();
      ema.dispose();
    }
    expect(counts).toHaveLength(3);
    expect(new Set(counts.slice(1)).size).toBe(1);
    // The frozen encoder was not trained, and the loop did not dispose or change the cache it does not own.
    expect(flatWeights(encoder)).toEqual(encoderBefore);
    expect(states.states.isDisposed).toBe(false);
    expect(states.states.dataSync()).toEqual(cacheBefore);
  });

  /** trainDiffusion of a fresh tiny text UNet on `train` (models disposed after). */
  async function runOn(train: ImageDataset, textStates: CaptionStateCache | undefined): Promise<void> {
    const model = new UNet(UNET, new Rng(1));
    const ema = new UNet(UNET, new Rng(1));
    try {
      await trainDiffusion({
        model, ema, schedule: SCHEDULE, train, validation: null, config: BASE, outDir: tmpDir(), resume: false, checkpointConfig: {}, textStates,
      });
    } finally {
      model.dispose();
      ema.dispose();
    }
  }

  const MISSING = (): ImageDataset => ({ ...captioned(8, 1), captions: Array.from({ length: 8 }, (_, i) => (i === 0 ? 'a zebra' : CAPTIONS[i % 2])) });

  it('refuses a cross-attention model without textStates, textStates without NULL_PROMPT, a dataset without captions, a caption missing from the cache (naming it)', async () => {
    const noNull = encodeCaptionsCached(encoder, tokenizer, CAPTIONS);
    try {
      await expect(runOn(captioned(8, 1), undefined)).rejects.toThrow(/cross-attention \(contextDim 8\): pass textStates/);
      await expect(runOn(captioned(8, 1), noNull)).rejects.toThrow(/textStates must include NULL_PROMPT/);
    } finally {
      noNull.dispose();
    }
    await expect(runOn({ ...captioned(8, 1), captions: null }, states)).rejects.toThrow(/text-conditional \(contextDim 8\) but the dataset has no captions/);
    await expect(runOn(MISSING(), states)).rejects.toThrow(/caption 0 \("a zebra"\) was not encoded/);
  });

  // Each refusal on its own: the number of live tensors is the same after the error as before the call.
  it('a refusal for missing textStates leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    await expect(runOn(captioned(8, 1), undefined)).rejects.toThrow(/pass textStates/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a refusal for textStates without NULL_PROMPT leaves no tensor behind', async () => {
    const noNull = encodeCaptionsCached(encoder, tokenizer, CAPTIONS);
    const before = tf.memory().numTensors;
    try {
      await expect(runOn(captioned(8, 1), noNull)).rejects.toThrow(/NULL_PROMPT/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      noNull.dispose();
    }
  });

  it('a refusal for a caption missing from the cache leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    await expect(runOn(MISSING(), states)).rejects.toThrow(/was not encoded/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('lossAndGrads with text states', () => {
  let encoder: TextEncoder;
  let tokenizer: ByteTokenizer;
  let states: CaptionStateCache;
  let model: UNet;
  const data = captioned(8, 4);
  const indices = [0, 1, 2, 3, 4];

  beforeAll(() => {
    ({ encoder, tokenizer } = frozenEncoder());
    states = encodeCaptionsCached(encoder, tokenizer, [...CAPTIONS, 'unused', NULL_PROMPT]);
    model = new UNet(UNET, new Rng('loss'));
  });
  afterAll(() => {
    states.dispose();
    encoder.dispose();
    model.dispose();
  });

  function ctx(condDropProb: number, textStates: CaptionStateCache): GradientContext {
    return { model, schedule: SCHEDULE, params: model.namedTrainableParameters(), seed: 9, condDropProb, snrWeights: null, textStates, lowRes: null, imageEmbeddings: null };
  }

  /** The loss of `indices` of `d` at step 5 (first 0), and its gradients flat. */
  function lossOf(c: GradientContext, d: ImageDataset): { loss: number; grads: Float32Array } {
    const batch = fixedBatch(d, indices);
    try {
      const { loss, grads } = lossAndGrads(c, batch, 5, 0);
      const out = { loss: loss.dataSync()[0], grads: Float32Array.from(c.params.flatMap(([n]) => Array.from((grads.get(n) as tf.Tensor).dataSync()))) };
      tf.dispose([loss, ...grads.values()]);
      return out;
    } finally {
      disposeBatch(batch);
    }
  }

  /** `cache` with row `caption` of the states shifted by 0.5 (a new cache; the caller disposes it). */
  function withShiftedRow(cache: CaptionStateCache, caption: string): CaptionStateCache {
    const a = cache.toArrays();
    const r = cache.index.get(caption) as number;
    const per = a.length * a.dim;
    const statesCopy = a.states.slice();
    for (let i = r * per; i < (r + 1) * per; i++) statesCopy[i] += 0.5;
    return CaptionStateCache.fromArrays({ ...a, states: statesCopy });
  }

  it('condDropProb 1 gives the loss and gradients of the same examples all captioned with the empty prompt', () => {
    const before = tf.memory().numTensors;
    const dropped = lossOf(ctx(1, states), data);
    const empty = lossOf(ctx(0, states), { ...data, captions: data.captions?.map(() => NULL_PROMPT) ?? null });
    const kept = lossOf(ctx(0, states), data);
    expect(dropped.loss).toBe(empty.loss);
    expect(dropped.grads).toEqual(empty.grads);
    // ...and the text condition does matter: with the real captions the loss differs.
    expect(Math.abs(kept.loss - dropped.loss)).toBeGreaterThan(1e-6 * Math.abs(kept.loss));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('condDropProb 0: changing the states of a caption in the batch changes the loss; of a caption not in it, not', () => {
    const before = tf.memory().numTensors;
    const base = lossOf(ctx(0, states), data);
    const leftShifted = withShiftedRow(states, 'left');
    const unusedShifted = withShiftedRow(states, 'unused');
    try {
      expect(Math.abs(lossOf(ctx(0, leftShifted), data).loss - base.loss)).toBeGreaterThan(1e-6 * base.loss);
      expect(lossOf(ctx(0, unusedShifted), data).loss).toBe(base.loss);
    } finally {
      leftShifted.dispose();
      unusedShifted.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  const MISSING_AT_2 = (): ImageDataset => ({ ...data, captions: data.captions?.map((c, i) => (i === 2 ? 'a zebra' : c)) ?? null });

  it('refuses a caption missing from the cache (naming it), a dataset without captions, a null textStates', () => {
    expect(() => lossOf(ctx(0, states), MISSING_AT_2())).toThrow(/caption 2 \("a zebra"\) was not encoded/);
    expect(() => lossOf(ctx(0, states), { ...data, captions: null })).toThrow(/dataset has no captions/);
    expect(() => lossOf({ ...ctx(0, states), textStates: null }, data)).toThrow(/no text states were given/);
  });

  it('a refusal inside lossAndGrads leaves no tensor behind', () => {
    const before = tf.memory().numTensors;
    expect(() => lossOf(ctx(0, states), MISSING_AT_2())).toThrow(/was not encoded/);
    expect(tf.memory().numTensors).toBe(before);
  });

  itMulticore('data parallel, one micro-batch: the workers\' summed slice gradients equal the one-thread gradient', async () => {
    const c = ctx(0.5, states);
    const workers = await startDataParallel({ workers: 2, model, schedule: SCHEDULE, dataset: data, padTo: undefined, seed: 9, condDropProb: 0.5, minSnrGamma: null, textStates: states });
    const idx = Int32Array.from([5, 7, 2, 1, 6]); // split 3 + 2
    const batch = fixedBatch(data, idx);
    try {
      const before = tf.memory().numTensors;
      const local = lossAndGrads(c, batch, 7, 4);
      workers.broadcastWeights();
      const remote = await workers.lossAndGrads(idx, 7, 4);
      const flat = (g: Map<string, tf.Tensor>): Float32Array => Float32Array.from(c.params.flatMap(([n]) => Array.from((g.get(n) as tf.Tensor).dataSync())));
      expect(relativeError(flat(remote.grads), flat(local.grads))).toBeLessThan(1e-5);
      expect(relativeError(remote.loss.dataSync(), local.loss.dataSync())).toBeLessThan(1e-6);
      // The workers did look the captions up: with all captions dropped the gradient is a different one.
      const droppedLocal = lossAndGrads(ctx(1, states), batch, 7, 4);
      expect(relativeError(flat(droppedLocal.grads), flat(local.grads))).toBeGreaterThan(1e-4);
      tf.dispose([local.loss, remote.loss, droppedLocal.loss, ...local.grads.values(), ...remote.grads.values(), ...droppedLocal.grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await workers.close();
      disposeBatch(batch);
    }
  });
});

describe('CaptionStateCache arrays', () => {
  it('toArrays (plain and shared) -> fromArrays gives the same captions and identical lookups', () => {
    const { encoder, tokenizer } = frozenEncoder();
    const cache = encodeCaptionsCached(encoder, tokenizer, ['a', 'bb', NULL_PROMPT, 'a', 'ccc']);
    const before = tf.memory().numTensors;
    try {
      expect(cache.captions()).toEqual(['a', 'bb', NULL_PROMPT, 'ccc']);
      const query = ['ccc', NULL_PROMPT, 'a', 'ccc'];
      const ref = cache.lookup(query);
      for (const shared of [false, true]) {
        const arrays = cache.toArrays(shared);
        expect(arrays.states.buffer instanceof SharedArrayBuffer).toBe(shared);
        expect(arrays.mask.buffer instanceof SharedArrayBuffer).toBe(shared);
        expect([arrays.rows, arrays.length, arrays.dim, arrays.embedDim]).toEqual([4, TEXT.maxLength, TEXT.dim, TEXT.embedDim]);
        const back = CaptionStateCache.fromArrays(arrays);
        expect(back.captions()).toEqual(cache.captions());
        const got = back.lookup(query);
        expect(got.context.shape).toEqual([4, TEXT.maxLength, TEXT.dim]);
        expect(got.context.dataSync()).toEqual(ref.context.dataSync());
        expect(got.mask.dataSync()).toEqual(ref.mask.dataSync());
        expect(got.pooled.dataSync()).toEqual(ref.pooled.dataSync());
        tf.dispose([got.context, got.mask, got.pooled]);
        back.dispose();
      }
      tf.dispose([ref.context, ref.mask, ref.pooled]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      cache.dispose();
      encoder.dispose();
    }
  });

  it('fromArrays refuses inconsistent sizes', () => {
    const { encoder, tokenizer } = frozenEncoder();
    const cache = encodeCaptionsCached(encoder, tokenizer, ['a', NULL_PROMPT]);
    const a = cache.toArrays();
    cache.dispose();
    encoder.dispose();
    const before = tf.memory().numTensors;
    expect(() => CaptionStateCache.fromArrays({ ...a, captions: ['a'] })).toThrow(/sizes disagree \(1 captions, 2 rows/);
    expect(() => CaptionStateCache.fromArrays({ ...a, states: a.states.subarray(1) })).toThrow(/sizes disagree/);
    expect(() => CaptionStateCache.fromArrays({ ...a, mask: a.mask.subarray(1) })).toThrow(/sizes disagree/);
    expect(() => CaptionStateCache.fromArrays({ ...a, pooled: a.pooled.subarray(1) })).toThrow(/sizes disagree/);
    expect(() => CaptionStateCache.fromArrays({ ...a, dim: a.dim + 1 })).toThrow(/sizes disagree/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
