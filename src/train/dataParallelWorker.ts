/**
 * Entry of one data-parallel training worker (started by ./dataParallel.ts,
 * which documents the protocol). The worker holds a replica of the UNet on its
 * own single-thread SIMD wasm backend and, for each request, computes the
 * gradient of its slice of the micro-batch with the loop's own
 * `lossAndGrads`, weighted by slice size / micro-batch, into its shared slot.
 */
import * as tf from '@tensorflow/tfjs';
import { isMainThread, parentPort, workerData, MessagePort } from 'worker_threads';
import { initBackend } from '../backend/backend';
import { Rng } from '../backend/random';
import { fixedBatch } from '../data/batches';
import { UNet } from '../models/unet';
import { CaptionStateCache } from '../models/textEncoder';
import { minSnrWeights } from './losses';
import { lossAndGrads, GradientContext } from './diffusionTraining';
import type { StepRequest, WorkerInit, WorkerReply } from './dataParallel';

async function serve(init: WorkerInit, port: MessagePort): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  // The initial weights do not matter: the main thread's are loaded before the first slice.
  const model = new UNet(init.unet, new Rng(`data-parallel-replica-${init.rank}`));
  const all = model.namedParameters();
  const names = all.map(([n]) => n);
  if (names.join('\n') !== init.weightNames.join('\n')) {
    throw new Error(`the replica's ${names.length} parameters differ from the main model's ${init.weightNames.length} (names or order)`);
  }
  const byName = new Map(all);
  const params = init.gradNames.map((n): [string, tf.Variable] => [n, byName.get(n) as tf.Variable]);
  const snrWeights = init.minSnrGamma === null
    ? null
    : tf.tensor1d(Float32Array.from(minSnrWeights(init.schedule.snr, model.config.predictionType, init.minSnrGamma)));
  const textStates = init.textStates === null ? null : CaptionStateCache.fromArrays(init.textStates);
  const ctx: GradientContext = { model, schedule: init.schedule, params, seed: init.seed, condDropProb: init.condDropProb, snrWeights, textStates, lowRes: init.lowRes, imageEmbeddings: init.imageEmbeddings };

  const weights = new Float32Array(init.weights);
  const control = new Int32Array(init.control);
  const count = params.reduce((n, [, v]) => n + v.size, 0);
  const slot = new Float32Array(init.grads, init.rank * count * 4, count);
  let loadedVersion = 0;

  port.on('message', (req: StepRequest) => {
    if (init.fault !== null && req.step === init.fault.step) {
      if (init.fault.kind === 'exit') process.exit(3); // ends this thread only
      throw new Error(`injected fault at step ${req.step}`);
    }
    if (req.weightsVersion !== loadedVersion) {
      const published = Atomics.load(control, init.workers); // orders the reads below after the main thread's writes
      if (published !== req.weightsVersion) throw new Error(`weights version ${published} published, ${req.weightsVersion} requested`);
      tf.tidy(() => {
        let at = 0;
        for (const [, v] of all) {
          v.assign(tf.tensor(weights.slice(at, at + v.size), v.shape, 'float32'));
          at += v.size;
        }
      });
      loadedVersion = req.weightsVersion;
    }
    const batch = fixedBatch(init.dataset, req.indices, { padTo: init.padTo ?? undefined });
    try {
      const { loss, grads } = lossAndGrads(ctx, batch, req.step, req.first);
      try {
        const share = req.indices.length / req.total; // this slice's part of the micro-batch mean
        let at = 0;
        for (const [name] of params) {
          const g = (grads.get(name) as tf.Tensor).dataSync(); // sync point: the backward pass runs here
          for (let i = 0; i < g.length; i++) slot[at + i] = share * g[i];
          at += g.length;
        }
        const reply: WorkerReply = { kind: 'done', seq: req.seq, loss: share * loss.dataSync()[0] };
        Atomics.store(control, init.rank, req.seq); // orders the slot writes before the reply
        port.postMessage(reply);
      } finally {
        tf.dispose([loss, ...grads.values()]);
      }
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
  });
  const ready: WorkerReply = { kind: 'ready' };
  port.postMessage(ready);
}

if (!isMainThread && parentPort !== null) {
  // A failure to start is rethrown as an uncaught exception: the main thread sees it as the worker's 'error' event.
  serve(workerData as WorkerInit, parentPort).catch((e: unknown) => {
    setImmediate(() => {
      throw e;
    });
  });
}
