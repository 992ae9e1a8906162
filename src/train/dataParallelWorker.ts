/**
 * Entry of one data-parallel training worker (started by ./dataParallel.ts,
 * which documents the protocol). The worker holds a replica of the model (the
 * family in its init data) on its own single-thread SIMD wasm backend and, for
 * each request:
 *
 *   'slice'  diffusion: the loop's `lossAndGrads`; autoencoder: `autoencoderLossAndGrads`,
 *            of its slice, weighted by slice size / micro-batch, into its shared slot
 *   'embed'  CLIP phase (a): its slice's unit-norm embeddings I, T into the exchange
 *   'vjp'    CLIP phase (c): the VJP of the exchange's G_I, G_T rows into its slot
 *            (./clipGradients.ts)
 */
import * as tf from '@tensorflow/tfjs';
import { isMainThread, parentPort, workerData, MessagePort } from 'worker_threads';
import { initBackend } from '../backend/backend';
import { Rng } from '../backend/random';
import { Batch, fixedBatch } from '../data/batches';
import { Autoencoder } from '../models/autoencoder';
import { Clip } from '../models/clip';
import { UNet } from '../models/unet';
import { CaptionStateCache } from '../models/textEncoder';
import { Module } from '../nn/module';
import { minSnrWeights } from './losses';
import { lossAndGrads, GradientContext } from './diffusionTraining';
import { autoencoderLossAndGrads } from './autoencoderLoss';
import { clipEmbeddingVjp, clipEmbeddings, ClipBatch } from './clipGradients';
import { exchangeViews } from './dataParallel';
import type { FamilyInit, StepRequest, WorkerInit, WorkerReply } from './dataParallel';

/** Writes `share` x each gradient into the slot, in `params` order (zeros for a parameter without one). */
function writeSlot(slot: Float32Array, params: ReadonlyArray<[string, tf.Variable]>, grads: Map<string, tf.Tensor>, share: number): void {
  let at = 0;
  for (const [name, v] of params) {
    const g = grads.get(name);
    if (g === undefined) slot.fill(0, at, at + v.size);
    else {
      const values = g.dataSync(); // sync point: the backward pass runs here
      for (let i = 0; i < values.length; i++) slot[at + i] = share * values[i];
    }
    at += v.size;
  }
}

/** The replica of the family's model (its initial weights do not matter: the main thread's are loaded before the first slice). */
function buildReplica(family: FamilyInit, rank: number): Module {
  const rng = new Rng(`data-parallel-replica-${rank}`);
  switch (family.kind) {
    case 'diffusion':
      return new UNet(family.unet, rng);
    case 'autoencoder':
      return new Autoencoder(family.autoencoder, rng);
    case 'clip':
      return new Clip(family.clip);
  }
}

/**
 * The request handler of the family: writes the slot (or the exchange rows) of one
 * request on the batch of its slice and returns the weighted loss parts for the reply.
 */
type Handler = (req: StepRequest, batch: Batch) => number[];

function familyHandler(init: WorkerInit, model: Module, params: ReadonlyArray<[string, tf.Variable]>, slot: Float32Array, control: Int32Array): Handler {
  const family = init.family;
  const wrongKind = (req: StepRequest): Error => new Error(`a ${family.kind} worker cannot serve a '${req.kind}' request`);
  switch (family.kind) {
    case 'diffusion': {
      const snrWeights = family.minSnrGamma === null
        ? null
        : tf.tensor1d(Float32Array.from(minSnrWeights(family.schedule.snr, family.unet.predictionType, family.minSnrGamma)));
      const textStates = family.textStates === null ? null : CaptionStateCache.fromArrays(family.textStates);
      const ctx: GradientContext = {
        model: model as UNet, schedule: family.schedule, params, seed: family.seed, condDropProb: family.condDropProb,
        snrWeights, textStates, lowRes: family.lowRes, imageEmbeddings: family.imageEmbeddings,
      };
      return (req, batch) => {
        if (req.kind !== 'slice') throw wrongKind(req);
        const { loss, grads } = lossAndGrads(ctx, batch, req.step, req.first);
        try {
          const share = req.indices.length / req.total; // this slice's part of the micro-batch mean
          writeSlot(slot, params, grads, share);
          return [share * loss.dataSync()[0]];
        } finally {
          tf.dispose([loss, ...grads.values()]);
        }
      };
    }
    case 'autoencoder':
      return (req, batch) => {
        if (req.kind !== 'slice') throw wrongKind(req);
        const { loss, grads } = autoencoderLossAndGrads(model as Autoencoder, params, family.loss, batch, req.step, req.first);
        try {
          const share = req.indices.length / req.total; // each part is a mean over the examples too
          writeSlot(slot, params, grads, share);
          return Array.from(loss.dataSync(), (l) => share * l);
        } finally {
          tf.dispose([loss, ...grads.values()]);
        }
      };
    case 'clip': {
      const clip = model as Clip;
      const tokenizer = clip.tokenizer();
      const dim = clip.config.image.embedDim;
      return (req, batch) => {
        if (req.kind === 'slice') throw wrongKind(req);
        const rows = exchangeViews(req.exchange, req.total, dim);
        const from = req.offset * dim;
        const to = (req.offset + req.indices.length) * dim;
        const { ids, mask } = tokenizer.encodeTensors(batch.captions as string[]);
        const slice: ClipBatch = { images: batch.x, ids, mask };
        try {
          if (req.kind === 'embed') {
            const { image, text } = clipEmbeddings(clip, slice);
            try {
              rows.image.set(image.dataSync(), from);
              rows.text.set(text.dataSync(), from);
            } finally {
              tf.dispose([image, text]);
            }
          } else {
            const written = Atomics.load(control, init.workers + 1); // orders the reads below after the main thread's writes
            if (written !== req.seq) throw new Error(`exchange gradients of request ${written} written, ${req.seq} requested`);
            const n = req.indices.length;
            const dImage = tf.tensor2d(rows.dImage.slice(from, to), [n, dim]);
            const dText = tf.tensor2d(rows.dText.slice(from, to), [n, dim]);
            try {
              const grads = clipEmbeddingVjp(clip, params, slice, dImage, dText);
              try {
                writeSlot(slot, params, grads, 1); // G already carries the 1/(2B) of the loss: the VJPs simply add up
              } finally {
                tf.dispose([...grads.values()]);
              }
            } finally {
              tf.dispose([dImage, dText]);
            }
          }
          return [];
        } finally {
          tf.dispose([ids, mask]);
        }
      };
    }
  }
}

async function serve(init: WorkerInit, port: MessagePort): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  const model = buildReplica(init.family, init.rank);
  const all = model.namedParameters();
  const names = all.map(([n]) => n);
  if (names.join('\n') !== init.weightNames.join('\n')) {
    throw new Error(`the replica's ${names.length} parameters differ from the main model's ${init.weightNames.length} (names or order)`);
  }
  const byName = new Map(all);
  const params = init.gradNames.map((n): [string, tf.Variable] => [n, byName.get(n) as tf.Variable]);

  const weights = new Float32Array(init.weights);
  const control = new Int32Array(init.control);
  const count = params.reduce((n, [, v]) => n + v.size, 0);
  const slot = new Float32Array(init.grads, init.rank * count * 4, count);
  const handle = familyHandler(init, model, params, slot, control);
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
      const reply: WorkerReply = { kind: 'done', seq: req.seq, loss: handle(req, batch) };
      Atomics.store(control, init.rank, req.seq); // orders the slot / exchange writes before the reply
      port.postMessage(reply);
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
