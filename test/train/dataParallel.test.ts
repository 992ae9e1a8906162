/**
 * Data-parallel training (config.workers > 1) is the same training as one
 * thread: for a fixed seed and global batch, 2 workers give the losses,
 * weights, EMA and optimiser state of the one-thread loop (to float rounding;
 * the tiny UNet has dropout 0, see src/train/dataParallel.ts). Also: resume
 * with workers, a failing worker, validation.
 *
 * Needs >= 2 logical cores (workers x threads <= cores is enforced).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { relativeError, useBackend, tinyTwoClassDataset } from '../helpers';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig } from '../../src/models/unet';
import { makeSchedule } from '../../src/schedule/schedule';
import { trainDiffusion, STATE_FILE } from '../../src/train/diffusionTraining';
import { trainConfig, TrainConfig } from '../../src/train/trainConfig';
import { loadTrainingState } from '../../src/train/checkpoint';
import { sliceSizes, startDataParallel, validateWorkers, WorkerFault } from '../../src/train/dataParallel';
import { lossAndGrads, GradientContext } from '../../src/train/diffusionTraining';
import { minSnrWeights } from '../../src/train/losses';
import { fixedBatch } from '../../src/data/batches';

const CORES = os.cpus().length;
const describeMulticore = CORES >= 2 ? describe : describe.skip;
if (CORES < 2) process.stderr.write(`dataParallel.test: skipping the training tests, this machine has ${CORES} core (need 2)\n`);

beforeAll(async () => useBackend('wasm'));

const tinyDataset = tinyTwoClassDataset;

// dropout 0 (the default): the UNet's dropout masks are drawn per slice, so only then are the runs equal number for number.
const UNET = unetConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, numClasses: 2 });

// Micro-batch 5 (batch 10, 2 micro-batches) splits 3 + 2 over 2 workers: uneven slices; 24 images = 2.4 steps per epoch.
// AdamW eps 1e-6 instead of 1e-8: with 8 channels in 8 groups, every bias feeding a GroupNorm has a gradient that is 0 in
// exact arithmetic and ~1e-8 of rounding noise in float32, which Adam's g / (sqrt(v) + eps) turns into a step of up to lr
// whose sign depends on the summation order (measured: weights differ by 5e-5 relative at eps 1e-8, 1e-5 at 1e-7, 1e-6 at 1e-6).
const BASE = trainConfig({
  steps: 4, batchSize: 10, gradAccum: 2, seed: 3, lr: 2e-3, warmupSteps: 2, logEvery: 1, valEvery: 2, valSize: 8, checkpointEvery: 2,
  sampleEvery: 0, condDropProb: 0.25, adamw: { eps: 1e-6 },
});
const SCHEDULE = makeSchedule({ kind: 'linear', timesteps: 100 });

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-dp-'));
}

interface RunResult {
  readonly losses: number[];
  /** All model parameters, flat, in namedParameters order. */
  readonly weights: Float32Array;
  /** tf.memory().numTensors at every metrics row. */
  readonly numTensors: number[];
  readonly logs: string[];
}

async function run(cfg: TrainConfig, outDir: string, opts: { resume?: boolean; abortAfter?: number; fault?: WorkerFault } = {}): Promise<RunResult> {
  const model = new UNet(UNET, new Rng(`${cfg.seed}/init`));
  const ema = new UNet(UNET, new Rng(`${cfg.seed}/init`));
  const controller = new AbortController();
  const numTensors: number[] = [];
  const logs: string[] = [];
  try {
    const result = await trainDiffusion({
      model, ema, schedule: SCHEDULE, train: tinyDataset(24, 1), validation: tinyDataset(8, 2),
      config: cfg, outDir, resume: opts.resume ?? false, checkpointConfig: { test: true }, signal: controller.signal,
      workerFault: opts.fault, onLog: (l) => logs.push(l),
      onMetrics: (row) => {
        numTensors.push(tf.memory().numTensors);
        if (opts.abortAfter !== undefined && row.step >= opts.abortAfter) controller.abort();
      },
    });
    const weights = tf.tidy(() => tf.concat(model.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
    return { losses: result.losses, weights, numTensors, logs };
  } finally {
    model.dispose();
    ema.dispose();
  }
}

function expectLossesClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((l, i) => expect(Math.abs(l - expected[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected[i]))));
}

describe('validation', () => {
  it('splits a micro-batch into contiguous slices, the first ones one larger', () => {
    expect(sliceSizes(5, 2)).toEqual([3, 2]);
    expect(sliceSizes(8, 3)).toEqual([3, 3, 2]);
    expect(sliceSizes(4, 4)).toEqual([1, 1, 1, 1]);
  });

  it('refuses more workers than cores, threads x workers over the cores, and slices without examples', () => {
    expect(() => validateWorkers(CORES + 1, 1)).toThrow(new RegExp(`workers ${CORES + 1} x threads 1 = ${CORES + 1} exceeds the ${CORES} logical cores`));
    if (CORES >= 2) expect(() => validateWorkers(2, CORES)).toThrow(/exceeds the \d+ logical cores.*use threads 1 with workers/);
    expect(() => validateWorkers(0, 1)).toThrow(/workers must be a positive integer, received 0/);
    expect(() => validateWorkers(1, CORES)).not.toThrow();
    expect(() => trainConfig({ batchSize: 4, gradAccum: 2, workers: 3 })).toThrow(/micro-batch \(batchSize 4 \/ gradAccum 2 = 2\) must have at least one example per worker \(workers 3\)/);
    expect(() => trainConfig({ workers: 1.5 })).toThrow(/workers must be an integer >= 1, got 1.5/);
  });
});

describeMulticore('trainDiffusion with workers: 2', () => {
  let single: RunResult;
  let parallel: RunResult;
  let singleDir: string;
  let parallelDir: string;

  beforeAll(async () => {
    singleDir = tmpDir();
    parallelDir = tmpDir();
    single = await run(BASE, singleDir);
    parallel = await run({ ...BASE, workers: 2 }, parallelDir);
  });

  it('one micro-batch: the workers\' summed slice gradients equal the one-thread gradient', async () => {
    const model = new UNet(UNET, new Rng('grad-check'));
    const data = tinyDataset(24, 1);
    const indices = Int32Array.from([5, 17, 2, 11, 20]); // split 3 + 2
    const snrWeights = tf.tensor1d(Float32Array.from(minSnrWeights(SCHEDULE.snr, 'epsilon', 5)));
    const ctx: GradientContext = { model, schedule: SCHEDULE, params: model.namedTrainableParameters(), seed: 9, condDropProb: 0.5, snrWeights, textStates: null, lowRes: null, imageEmbeddings: null };
    const workers = await startDataParallel({ workers: 2, model, schedule: SCHEDULE, dataset: data, padTo: undefined, seed: 9, condDropProb: 0.5, minSnrGamma: 5 });
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
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : []), snrWeights]);
      model.dispose();
    }
  });

  it('gives the losses and final weights of the one-thread loop, and keeps the main thread\'s live tensors flat', () => {
    expect(parallel.logs).toContain('data parallel: 2 workers (single-thread wasm each), micro-batch 5 split 3 + 2');
    expect(single.losses).toHaveLength(4);
    expectLossesClose(parallel.losses, single.losses);
    expect(relativeError(parallel.weights, single.weights)).toBeLessThan(1e-5);
    // The runs did train: the weights moved from their initialisation.
    const init = new UNet(UNET, new Rng(`${BASE.seed}/init`));
    const initWeights = tf.tidy(() => tf.concat(init.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
    init.dispose();
    expect(relativeError(single.weights, initWeights)).toBeGreaterThan(1e-3);
    // Main thread: the same number of live tensors at every step after the first (the optimiser moments appear at step 1).
    expect(parallel.numTensors).toHaveLength(4);
    expect(new Set(parallel.numTensors.slice(1)).size).toBe(1);
  });

  it('saves the training state a one-thread run saves (model, EMA, AdamW moments, step, data order)', async () => {
    const a = await loadTrainingState(path.join(singleDir, STATE_FILE));
    const b = await loadTrainingState(path.join(parallelDir, STATE_FILE));
    try {
      expect(b.step).toBe(4);
      expect(b.json.iterator).toEqual(a.json.iterator);
      expect(b.json.optimizerStep).toBe(a.json.optimizerStep);
      expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
      for (const prefix of ['model.', 'ema.', 'optim.m.', 'optim.v.']) {
        const keys = [...a.tensors.keys()].filter((k) => k.startsWith(prefix));
        expect(keys.length).toBeGreaterThan(0);
        const flat = (s: typeof a): Float32Array => Float32Array.from(keys.flatMap((k) => Array.from((s.tensors.get(k) as tf.Tensor).dataSync())));
        // Relative to the largest entry of the group: second moments v are ~g^2, so per-entry rounding is relative to that scale.
        expect(relativeError(flat(b), flat(a))).toBeLessThan(1e-4);
      }
    } finally {
      tf.dispose([...a.tensors.values(), ...b.tensors.values()]);
    }
  });

  it('resumed with workers after a stop, reproduces the uninterrupted workers run exactly; resumed from a one-thread checkpoint, matches to float rounding', async () => {
    const dir = tmpDir();
    const first = await run({ ...BASE, workers: 2 }, dir, { abortAfter: 2 });
    expect(first.losses).toHaveLength(2);
    const rest = await run({ ...BASE, workers: 2 }, dir, { resume: true });
    expect([...first.losses, ...rest.losses]).toEqual(parallel.losses);
    expect(rest.weights).toEqual(parallel.weights);

    const mixed = tmpDir();
    const head = await run(BASE, mixed, { abortAfter: 2 });
    const tail = await run({ ...BASE, workers: 2 }, mixed, { resume: true });
    expectLossesClose([...head.losses, ...tail.losses], single.losses);
  });

  it('a worker that throws ends the run with an error naming it; the last checkpoint stays loadable and no tensor leaks', async () => {
    const dir = tmpDir();
    const before = tf.memory().numTensors;
    await expect(run({ ...BASE, workers: 2 }, dir, { fault: { worker: 1, step: 3, kind: 'throw' } })).rejects.toThrow(
      /data-parallel worker 1 \(of 2\) failed during step 3: injected fault at step 3; training stopped\. The last checkpoint \(step 2\) is kept in /,
    );
    expect(tf.memory().numTensors).toBe(before);
    const state = await loadTrainingState(path.join(dir, STATE_FILE));
    try {
      expect(state.step).toBe(2);
      expect(state.tensors.size).toBeGreaterThan(0);
    } finally {
      tf.dispose([...state.tensors.values()]);
    }
  });

  it('a worker that exits abruptly ends the run with an error naming it', async () => {
    await expect(run({ ...BASE, workers: 2 }, tmpDir(), { fault: { worker: 0, step: 0, kind: 'exit' } })).rejects.toThrow(
      /data-parallel worker 0 \(of 2\) failed during step 0: exited with code 3; training stopped\. No checkpoint had been written yet\./,
    );
  });
});
