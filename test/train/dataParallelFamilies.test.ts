/**
 * The data-parallel pool (src/train/dataParallel.ts) for the CLIP and the
 * autoencoder: 2 workers give the one-thread loss and gradients to float
 * rounding. CLIP goes through the two-phase gradient cache
 * (src/train/clipGradients.ts), checked first in one thread against direct
 * tf.variableGrads of clip.loss, then with workers; the batches are split
 * unevenly and hold duplicate captions (multi-positive targets).
 *
 * The worker tests need >= 2 logical cores (workers x threads <= cores is enforced).
 */
import * as os from 'os';
import * as tf from '@tensorflow/tfjs';
import { relativeError, useBackend } from '../helpers';
import { Rng } from '../../src/backend/random';
import { Batch, fixedBatch } from '../../src/data/batches';
import { Autoencoder, autoencoderConfig } from '../../src/models/autoencoder';
import { Clip, duplicateCaptionTargets } from '../../src/models/clip';
import { autoencoderLossAndGrads } from '../../src/train/autoencoderLoss';
import { clipLossAndGradsBySlices } from '../../src/train/clipGradients';
import { startAutoencoderDataParallel, startClipDataParallel } from '../../src/train/dataParallel';
import { colourDataset, squaresDataset } from './tinyData';

const CORES = os.cpus().length;
const describeMulticore = CORES >= 2 ? describe : describe.skip;
if (CORES < 2) process.stderr.write(`dataParallelFamilies.test: skipping the worker tests, this machine has ${CORES} core (need 2)\n`);

beforeAll(async () => useBackend('wasm'));

const TINY_CLIP = {
  image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
  text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
  seed: 5,
};
/** 6x6 squares padded to 8x8 -> 4x4x2 latents. */
const TINY_AE = autoencoderConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], groups: 4, latentChannels: 2, heads: 2 });
const AE_LOSS = { loss: 'l1' as const, klWeight: 0.1, seed: 11 };

/** 7 examples, captions red green blue white red green green: duplicates; split 4 + 3 over 2 workers. */
const CLIP_INDICES = Int32Array.from([0, 1, 2, 3, 4, 5, 9]);
const TIMEOUT = 60_000;

type Params = ReadonlyArray<[string, tf.Variable]>;

function flat(grads: Map<string, tf.Tensor>, params: Params): Float32Array {
  return Float32Array.from(params.flatMap(([n]) => {
    const g = grads.get(n);
    if (g === undefined) throw new Error(`no gradient for ${n}`);
    return Array.from(g.dataSync());
  }));
}

function disposeBatch(batch: Batch): void {
  tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
}

/** The one-thread reference: tf.variableGrads of clip.loss on the whole batch (what src/train/clipTraining.ts does). */
function directClipGrads(clip: Clip, batch: Batch): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const params = clip.namedTrainableParameters();
  const captions = batch.captions as string[];
  const { ids, mask } = clip.tokenizer().encodeTensors(captions);
  const targets = tf.tensor2d(duplicateCaptionTargets(captions), [captions.length, captions.length]);
  try {
    const { value, grads } = tf.variableGrads(() => clip.loss(batch.x, ids, mask, targets), params.map(([, v]) => v));
    const names = new Map(params.map(([n, v]) => [v.name, n]));
    return { loss: value, grads: new Map(Object.entries(grads).map(([vn, g]) => [names.get(vn) as string, g])) };
  } finally {
    tf.dispose([ids, mask, targets]);
  }
}

/** Moves every weight by a seeded amount (so a second step runs on weights the workers have not seen). */
function perturb(model: { namedParameters(): Array<[string, tf.Variable]> }, seed: string): void {
  const rng = new Rng(seed);
  for (const [, v] of model.namedParameters()) {
    const noise = new Float32Array(v.size);
    rng.fillNormal(noise);
    tf.tidy(() => v.assign(tf.add(v, tf.mul(tf.tensor(noise, v.shape), 0.05))));
  }
}

describe('clipLossAndGradsBySlices (one thread)', () => {
  it('gives the loss and gradients of direct tf.variableGrads, for one slice and for uneven slices, with duplicate captions', () => {
    const clip = new Clip(TINY_CLIP);
    const data = colourDataset();
    const batch = fixedBatch(data, CLIP_INDICES);
    const params = clip.namedTrainableParameters();
    const captions = batch.captions as string[];
    const { ids, mask } = clip.tokenizer().encodeTensors(captions);
    const targets = tf.tensor2d(duplicateCaptionTargets(captions), [7, 7]);
    try {
      const before = tf.memory().numTensors;
      const direct = directClipGrads(clip, batch);
      for (const sizes of [[7], [4, 3], [1, 2, 4]]) {
        const sliced = clipLossAndGradsBySlices(clip, params, { images: batch.x, ids, mask }, targets, sizes);
        expect([...sliced.grads.keys()]).toEqual(params.map(([n]) => n));
        expect(relativeError(sliced.loss.dataSync(), direct.loss.dataSync())).toBeLessThan(1e-6);
        expect(relativeError(flat(sliced.grads, params), flat(direct.grads, params))).toBeLessThan(1e-5);
        tf.dispose([sliced.loss, ...sliced.grads.values()]);
      }
      tf.dispose([direct.loss, ...direct.grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tf.dispose([ids, mask, targets]);
      disposeBatch(batch);
      clip.dispose();
    }
  });

  it('respects the clamp of logit_scale: above logitScaleMax its gradient is 0, as in direct grads', () => {
    const clip = new Clip(TINY_CLIP);
    clip.logitScale.assign(tf.scalar(clip.config.logitScaleMax + 0.5));
    const batch = fixedBatch(colourDataset(), CLIP_INDICES);
    const params = clip.namedTrainableParameters();
    const captions = batch.captions as string[];
    const { ids, mask } = clip.tokenizer().encodeTensors(captions);
    const targets = tf.tensor2d(duplicateCaptionTargets(captions), [7, 7]);
    try {
      const direct = directClipGrads(clip, batch);
      const sliced = clipLossAndGradsBySlices(clip, params, { images: batch.x, ids, mask }, targets, [4, 3]);
      expect((sliced.grads.get('logit_scale') as tf.Tensor).dataSync()[0]).toBe(0);
      expect((direct.grads.get('logit_scale') as tf.Tensor).dataSync()[0]).toBe(0);
      expect(relativeError(flat(sliced.grads, params), flat(direct.grads, params))).toBeLessThan(1e-5);
      tf.dispose([direct.loss, sliced.loss, ...direct.grads.values(), ...sliced.grads.values()]);
    } finally {
      tf.dispose([ids, mask, targets]);
      disposeBatch(batch);
      clip.dispose();
    }
  });

  it('refuses slice sizes that do not cover the batch', () => {
    const clip = new Clip(TINY_CLIP);
    const batch = fixedBatch(colourDataset(), CLIP_INDICES);
    const { ids, mask } = clip.tokenizer().encodeTensors(batch.captions as string[]);
    const targets = tf.eye(7) as tf.Tensor2D;
    try {
      expect(() => clipLossAndGradsBySlices(clip, clip.namedTrainableParameters(), { images: batch.x, ids, mask }, targets, [4, 2])).toThrow(
        /slice sizes \[4,2\] must be positive integers summing to the batch size 7/,
      );
    } finally {
      tf.dispose([ids, mask, targets]);
      disposeBatch(batch);
      clip.dispose();
    }
  });
});

describeMulticore('CLIP with 2 workers', () => {
  it('gives the one-thread loss and gradients (uneven split, duplicate captions), on later weights and a smaller batch too; main-thread tensors flat', async () => {
    const clip = new Clip(TINY_CLIP);
    const data = colourDataset();
    const params = clip.namedTrainableParameters();
    const workers = await startClipDataParallel({ workers: 2, clip, dataset: data, padTo: undefined });
    try {
      expect(workers.sliceSizes(7)).toEqual([4, 3]);
      const before = tf.memory().numTensors;
      for (const [indices, seed] of [[CLIP_INDICES, null], [Int32Array.from([8, 12, 13, 6, 31]), 'second step']] as const) {
        if (seed !== null) perturb(clip, seed);
        const batch = fixedBatch(data, indices);
        const direct = directClipGrads(clip, batch);
        workers.broadcastWeights();
        const remote = await workers.lossAndGrads(indices, 3, 0);
        expect(remote.loss.shape).toEqual([]);
        expect([...remote.grads.keys()]).toEqual(params.map(([n]) => n));
        expect(relativeError(remote.loss.dataSync(), direct.loss.dataSync())).toBeLessThan(1e-6);
        expect(relativeError(flat(remote.grads, params), flat(direct.grads, params))).toBeLessThan(1e-5);
        // logit_scale's gradient comes from the main thread's phase (b) alone.
        expect(relativeError((remote.grads.get('logit_scale') as tf.Tensor).dataSync(), (direct.grads.get('logit_scale') as tf.Tensor).dataSync())).toBeLessThan(1e-5);
        tf.dispose([direct.loss, remote.loss, ...direct.grads.values(), ...remote.grads.values()]);
        disposeBatch(batch);
      }
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await workers.close();
      clip.dispose();
    }
  }, TIMEOUT);

  it('a worker that throws rejects the step with an error naming it, and every later step', async () => {
    const clip = new Clip(TINY_CLIP);
    const workers = await startClipDataParallel({ workers: 2, clip, dataset: colourDataset(), padTo: undefined, fault: { worker: 1, step: 3, kind: 'throw' } });
    try {
      const before = tf.memory().numTensors;
      workers.broadcastWeights();
      const ok = await workers.lossAndGrads(CLIP_INDICES, 2, 0);
      tf.dispose([ok.loss, ...ok.grads.values()]);
      await expect(workers.lossAndGrads(CLIP_INDICES, 3, 0)).rejects.toThrow(/data-parallel worker 1 \(of 2\) failed during step 3: injected fault at step 3; training stopped/);
      await expect(workers.lossAndGrads(CLIP_INDICES, 4, 0)).rejects.toThrow(/data-parallel worker 1 \(of 2\) failed during step 3/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await workers.close();
      clip.dispose();
    }
  }, TIMEOUT);

  it('refuses a dataset without captions or with images of another size', async () => {
    const clip = new Clip(TINY_CLIP);
    try {
      await expect(startClipDataParallel({ workers: 2, clip, dataset: squaresDataset(4, 1), padTo: 8 })).rejects.toThrow(/startClipDataParallel: the dataset 'tiny' has no captions/);
      await expect(startClipDataParallel({ workers: 2, clip, dataset: colourDataset(), padTo: 10 })).rejects.toThrow(
        /startClipDataParallel: the model takes 8x8x3 images, the dataset 'patches' gives 10x10x3 \(padded to 10\)/,
      );
    } finally {
      clip.dispose();
    }
  });
});

describeMulticore('autoencoder with 2 workers', () => {
  it('gives the loss parts and gradients of autoencoderLossAndGrads on the whole batch; main-thread tensors flat', async () => {
    const model = new Autoencoder(TINY_AE, new Rng('ae-grad-check'));
    const data = squaresDataset(24, 1);
    const params = model.namedTrainableParameters();
    const indices = Int32Array.from([5, 17, 2, 11, 20]); // split 3 + 2
    const workers = await startAutoencoderDataParallel({ workers: 2, model, dataset: data, padTo: 8, loss: AE_LOSS });
    const batch = fixedBatch(data, indices, { padTo: 8 });
    try {
      const before = tf.memory().numTensors;
      const local = autoencoderLossAndGrads(model, params, AE_LOSS, batch, 7, 10);
      workers.broadcastWeights();
      const remote = await workers.lossAndGrads(indices, 7, 10);
      expect(remote.loss.shape).toEqual([3]);
      expect([...remote.grads.keys()]).toEqual(params.map(([n]) => n));
      expect(relativeError(remote.loss.dataSync(), local.loss.dataSync())).toBeLessThan(1e-5);
      expect(relativeError(flat(remote.grads, params), flat(local.grads, params))).toBeLessThan(1e-5);
      tf.dispose([local.loss, remote.loss, ...local.grads.values(), ...remote.grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await workers.close();
      disposeBatch(batch);
      model.dispose();
    }
  }, TIMEOUT);

  it('a worker that exits abruptly rejects the step with an error naming it', async () => {
    const model = new Autoencoder(TINY_AE, new Rng('ae-fault'));
    const workers = await startAutoencoderDataParallel({ workers: 2, model, dataset: squaresDataset(8, 1), padTo: 8, loss: AE_LOSS, fault: { worker: 0, step: 0, kind: 'exit' } });
    try {
      workers.broadcastWeights();
      await expect(workers.lossAndGrads(Int32Array.from([0, 1, 2]), 0, 0)).rejects.toThrow(/data-parallel worker 0 \(of 2\) failed during step 0: exited with code 3; training stopped/);
    } finally {
      await workers.close();
      model.dispose();
    }
  }, TIMEOUT);
});
