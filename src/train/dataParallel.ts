/**
 * Data-parallel gradients over worker_threads: the training loop's
 * `config.workers > 1` (./loop.ts). Each worker is a thread with its own
 * tfjs and single-thread SIMD wasm backend holding a replica of the model (the
 * diffusion UNet, the autoencoder or the CLIP); it computes the gradient of a
 * contiguous slice of every micro-batch. One pool, three families:
 *
 *   startDataParallel            diffusion UNet  (the diagram below)
 *   startAutoencoderDataParallel autoencoder     (the diagram below; the loss is the parts [total, rec, kl])
 *   startClipDataParallel        CLIP            (two phases, see "CLIP" below)
 *
 *   main thread                                    worker r of W (./dataParallelWorker.ts)
 *   broadcastWeights(): params -> weights          load the weights when their version changed
 *   lossAndGrads(indices, step, first):
 *     split the B examples into slices b_r  ---->  batch  <- dataset[slice r]
 *                                                  l_r, g_r <- the family's lossAndGrads(slice, step, first + offset_r)
 *                                                  slot r <- (b_r / B) g_r
 *                                          <----   'done' with (b_r / B) l_r
 *     g = sum_r slot r,  loss = sum_r (b_r / B) l_r
 *
 * The micro-batch loss is the mean over its B examples, so
 *   dL/dw = (1/B) sum_i dl_i/dw = sum_r (b_r / B) * [(1/b_r) sum_{i in r} dl_i/dw]:
 * the weighted slice gradients sum to the one-thread gradient (up to float
 * rounding), and t, noise and condition dropout are keyed by example index,
 * so the draws are the same too. UNet dropout masks are drawn per slice
 * (loop.ts keys the dropout seed by the slice's first example): with
 * dropout > 0 the runs agree in distribution, not number for number. The
 * autoencoder's loss is a mean over examples too (posterior noise keyed by
 * example index), and so is each of its parts: the weighted parts sum likewise.
 *
 * CLIP: the contrastive loss is not a mean of per-example terms (every example
 * is a negative of every other), so slices cannot be summed. The workers run
 * the gradient cache of ./clipGradients.ts, which derives the math:
 *
 *   main thread                                    worker r
 *   phase (a) 'embed'                       ---->  I[r], T[r] <- unit-norm embeddings of slice r -> exchange rows
 *   phase (b) L, G_I, G_T, dL/dlogit_scale
 *             on the gathered [B, E] I, T;
 *             G -> exchange rows
 *   phase (c) 'vjp'                         ---->  slot r <- d/dtheta [sum(I[r] G_I[r]) + sum(T[r] G_T[r])]
 *     g = sum_r slot r, + dL/dlogit_scale
 *
 * which is the one-thread gradient up to float rounding, for one extra
 * forward pass per slice and two exchanges of [B, E] matrices.
 *
 * The optimiser stays here. The main thread owns the weights, the AdamW
 * moments and the EMA and publishes the weights once per step (P floats),
 * rather than every worker repeating the update on its replica: a checkpoint
 * is exactly what a one-thread run saves, the main thread may use any backend,
 * and the replicas cannot drift apart.
 *
 * Shared memory, allocated once: the dataset's pixels and labels (a copy the
 * workers read; MNIST is 47 MB), the weights [P], one gradient slot
 * [P_trainable] per worker. CLIP also has the exchange [4, B, E] (I, T, G_I,
 * G_T), allocated at the first step and again only when a larger micro-batch
 * arrives. Messages carry only step numbers, example indices and the
 * exchange's handle. An Atomics store / load on `control` orders the shared
 * writes with the messages.
 *
 * Failure: a worker's 'error' or unexpected 'exit' rejects the pending step and
 * every later one with an error naming the worker. The protocol is
 * message-based (no barrier in shared memory), so there is nothing to deadlock on.
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';
import { threadedWasmInfo } from '../backend/wasmThreads';
import { ImageDataset } from '../data/dataset';
import { Autoencoder, AutoencoderConfig } from '../models/autoencoder';
import { Clip, ClipConfig, duplicateCaptionTargets } from '../models/clip';
import { CaptionStateArrays, CaptionStateCache } from '../models/textEncoder';
import { LowResConfig } from '../sample/lowResConditioning';
import type { ImageEmbeddingTable } from './diffusionTraining';
import { UNet, UNetConfig } from '../models/unet';
import { Module } from '../nn/module';
import { Schedule } from '../schedule/schedule';
import type { ReconstructionLoss } from './autoencoderLoss';
import { clipEmbeddingGrads, ClipEmbeddingGrads } from './clipGradients';

// ---------------------------------------------------------------- types

/** Tests only: make worker `worker` throw (or exit abruptly) when it receives `step`. */
export interface WorkerFault {
  readonly worker: number;
  readonly step: number;
  readonly kind: 'throw' | 'exit';
}

export interface DataParallelOptions {
  /** Number of worker threads (>= 1; workers x this thread's wasm threads <= cores). */
  readonly workers: number;
  /** The main thread's model: its config builds the replicas, its weights are broadcast. */
  readonly model: UNet;
  readonly schedule: Schedule;
  /** Training images; copied once into shared memory. */
  readonly dataset: ImageDataset;
  /** Centre-pad the images to padTo x padTo (as the loop's BatchIterator). */
  readonly padTo: number | undefined;
  readonly seed: number;
  readonly condDropProb: number;
  readonly minSnrGamma: number | null;
  /** Frozen text-encoder states per caption (text-conditional models); shared with the workers once. */
  readonly textStates?: CaptionStateCache;
  /** Super-resolution stage: the low-res conditioning (sample/lowResConditioning.ts). */
  readonly lowRes?: LowResConfig;
  /** The DALL-E 2 decoder's image embedding per training image; shared with the workers once. */
  readonly imageEmbeddings?: ImageEmbeddingTable;
  readonly fault?: WorkerFault;
}

/** The autoencoder's loss settings (train/autoencoderLoss.ts); seed keys the posterior noise. */
export interface AutoencoderLossOptions {
  readonly loss: ReconstructionLoss;
  readonly klWeight: number;
  readonly seed: number;
}

export interface AutoencoderDataParallelOptions {
  /** Number of worker threads (>= 1; workers x this thread's wasm threads <= cores). */
  readonly workers: number;
  /** The main thread's model: its config builds the replicas, its weights are broadcast. */
  readonly model: Autoencoder;
  /** Training images (sampleSize x sampleSize after padding); copied once into shared memory. */
  readonly dataset: ImageDataset;
  /** Centre-pad the images to padTo x padTo (as the loop's BatchIterator). */
  readonly padTo: number | undefined;
  readonly loss: AutoencoderLossOptions;
  readonly fault?: WorkerFault;
}

export interface ClipDataParallelOptions {
  /** Number of worker threads (>= 1; workers x this thread's wasm threads <= cores). */
  readonly workers: number;
  /** The main thread's CLIP: its config builds the replicas, its weights are broadcast, its logit_scale enters phase (b). */
  readonly clip: Clip;
  /** Captioned training images; pixels copied once into shared memory, captions cloned to each worker. */
  readonly dataset: ImageDataset;
  /** Centre-pad the images to padTo x padTo (as the loop's BatchIterator). */
  readonly padTo: number | undefined;
  readonly fault?: WorkerFault;
}

/** What a worker's replica is and what its slice loss depends on, by family. */
export type FamilyInit =
  | {
      readonly kind: 'diffusion';
      readonly unet: UNetConfig;
      readonly schedule: Schedule;
      readonly seed: number;
      readonly condDropProb: number;
      readonly minSnrGamma: number | null;
      /** The caption-state cache as arrays in SharedArrayBuffers, or null (no text conditioning). */
      readonly textStates: CaptionStateArrays | null;
      readonly lowRes: LowResConfig | null;
      /** values in a SharedArrayBuffer, or null. */
      readonly imageEmbeddings: ImageEmbeddingTable | null;
    }
  | { readonly kind: 'autoencoder'; readonly autoencoder: AutoencoderConfig; readonly loss: AutoencoderLossOptions }
  | { readonly kind: 'clip'; readonly clip: ClipConfig };

/** A worker's start data (structured-cloned; the SharedArrayBuffers are shared, not copied). */
export interface WorkerInit {
  readonly rank: number;
  readonly workers: number;
  readonly family: FamilyInit;
  /** images and labels are views on SharedArrayBuffers (captions are a copy, CLIP only). */
  readonly dataset: ImageDataset;
  readonly padTo: number | null;
  /** Names of all parameters in weights-buffer order (the replica checks it has the same). */
  readonly weightNames: readonly string[];
  /** Names of the trained parameters in gradient-slot order. */
  readonly gradNames: readonly string[];
  /** Float32 [P]: all parameters, concatenated flat. */
  readonly weights: SharedArrayBuffer;
  /** Float32 [W, P_trainable]: one gradient slot per worker. */
  readonly grads: SharedArrayBuffer;
  /** Int32 [W + 2]: [r] = seq of worker r's last written slot / exchange rows, [W] = weights version, [W + 1] = seq of the main thread's last exchange write. */
  readonly control: SharedArrayBuffer;
  readonly fault: { readonly step: number; readonly kind: 'throw' | 'exit' } | null;
}

interface RequestBase {
  readonly seq: number;
  readonly step: number;
  /** Dataset indices of this worker's slice. */
  readonly indices: Int32Array;
  readonly weightsVersion: number;
  /** Examples in the whole micro-batch. */
  readonly total: number;
}

/**
 * Main -> worker.
 *   'slice' (diffusion, autoencoder): the weighted slice loss and gradient into the slot.
 *   'embed' (CLIP phase a): the slice's I, T into exchange rows [offset, offset + b).
 *   'vjp'   (CLIP phase c): the VJP of exchange rows G_I, G_T [offset, offset + b) into the slot.
 */
export type StepRequest =
  | (RequestBase & {
      readonly kind: 'slice';
      /** Global example index of indices[0] within the step (keys t, noise, condition dropout; the slice is weighted by indices.length / total). */
      readonly first: number;
    })
  | (RequestBase & {
      readonly kind: 'embed' | 'vjp';
      /** Row of indices[0] in the micro-batch. */
      readonly offset: number;
      /** Float32 [4, total, E]: I, T, G_I, G_T. */
      readonly exchange: SharedArrayBuffer;
    });

/** Worker -> main. loss: the slice's weighted loss parts ('slice'), [] for the CLIP phases. */
export type WorkerReply = { readonly kind: 'ready' } | { readonly kind: 'done'; readonly seq: number; readonly loss: readonly number[] };

/** Float32 views of the CLIP exchange for a micro-batch of `total` rows of width `dim`. */
export function exchangeViews(exchange: SharedArrayBuffer, total: number, dim: number): { image: Float32Array; text: Float32Array; dImage: Float32Array; dText: Float32Array } {
  const n = total * dim;
  const at = (k: number): Float32Array => new Float32Array(exchange, k * n * 4, n);
  return { image: at(0), text: at(1), dImage: at(2), dText: at(3) };
}

// ---------------------------------------------------------------- helpers

/**
 * Throws unless `workers` is a positive integer and workers x threads (the wasm
 * threads of the calling thread's backend) fits the machine's logical cores.
 */
export function validateWorkers(workers: number, threads: number): void {
  const cores = os.cpus().length;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers must be a positive integer, received ${workers}`);
  if (workers > 1 && workers * threads > cores) {
    throw new Error(
      `workers ${workers} x threads ${threads} = ${workers * threads} exceeds the ${cores} logical cores of this machine (os.cpus().length): ` +
        `each worker runs its own single-thread wasm backend, so use threads 1 with workers, and at most ${cores} workers`,
    );
  }
}

/** Contiguous split of `total` examples over `workers`: the first total % workers slices get one more. */
export function sliceSizes(total: number, workers: number): number[] {
  return Array.from({ length: workers }, (_, r) => Math.floor(total / workers) + (r < total % workers ? 1 : 0));
}

/** A copy of the dataset's values and labels in shared memory (captions are cloned only when the workers read them). */
function sharedDataset(d: ImageDataset, withCaptions: boolean): ImageDataset {
  const images = d.images instanceof Float32Array
    ? new Float32Array(new SharedArrayBuffer(d.images.length * 4))
    : new Uint8Array(new SharedArrayBuffer(d.images.length));
  images.set(d.images);
  let labels: Int32Array | null = null;
  if (d.labels !== null) {
    labels = new Int32Array(new SharedArrayBuffer(d.labels.length * 4));
    labels.set(d.labels);
  }
  return { ...d, images, labels, captions: withCaptions ? d.captions : null };
}

/** Throws unless the batches of `dataset` (padded to padTo) are [B, side, side, channels] as the model expects. */
function checkImageShape(what: string, dataset: ImageDataset, padTo: number | undefined, side: number, channels: number): void {
  const h = padTo ?? dataset.height;
  const w = padTo ?? dataset.width;
  if (h !== side || w !== side || dataset.channels !== channels) {
    throw new Error(
      `${what}: the model takes ${side}x${side}x${channels} images, the dataset '${dataset.name}' gives ${h}x${w}x${dataset.channels}` +
        (padTo === undefined ? '' : ` (padded to ${padTo})`),
    );
  }
}

/** Starts the worker thread; from the TypeScript sources (tests, tsx) tsx's hook is registered in it first. */
function spawnWorker(init: WorkerInit): Worker {
  const entry = path.join(__dirname, `dataParallelWorker${path.extname(__filename)}`);
  if (entry.endsWith('.ts')) {
    // The require hook of tsx (or ts-jest) does not reach worker threads: register tsx's in the worker.
    let tsx: string;
    try {
      tsx = require.resolve('tsx/cjs');
    } catch {
      throw new Error(`data-parallel workers started from the TypeScript sources (${entry}) need tsx (npm install -D tsx), or run the compiled dist/`);
    }
    const bootstrap = `require(${JSON.stringify(tsx)});\nrequire(${JSON.stringify(entry)});`;
    return new Worker(bootstrap, { eval: true, workerData: init });
  }
  return new Worker(entry, { workerData: init });
}

function flatSize(params: ReadonlyArray<[string, tf.Variable]>): number {
  return params.reduce((n, [, v]) => n + v.size, 0);
}

// ---------------------------------------------------------------- the pool

/** What the pool is built from (startDataParallel, startAutoencoderDataParallel, startClipDataParallel make it). */
export interface PoolSpec {
  readonly workers: number;
  /** The main thread's model (the weights to broadcast, the trainable parameters). */
  readonly model: Module;
  /** Original (not shared) dataset; the main thread reads its captions for CLIP targets. */
  readonly dataset: ImageDataset;
  readonly padTo: number | undefined;
  /** The workers' family data (dataset-sized arrays already in shared memory). */
  readonly family: FamilyInit;
  /** CLIP: the main model, for phase (b). */
  readonly clip: Clip | null;
  readonly fault: WorkerFault | undefined;
}

interface PendingPhase {
  readonly seq: number;
  readonly step: number;
  remaining: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/**
 * The worker pool. L is the loss's tensor type: a scalar for diffusion and
 * CLIP, the parts [total, reconstruction, kl] (Tensor1D) for the autoencoder.
 */
export class DataParallel<L extends tf.Tensor = tf.Tensor> {
  readonly workers: number;
  private readonly threads: Worker[] = [];
  private readonly weightParams: ReadonlyArray<[string, tf.Variable]>;
  private readonly gradParams: ReadonlyArray<[string, tf.Variable]>;
  private readonly weights: Float32Array;
  private readonly grads: SharedArrayBuffer;
  private readonly control: Int32Array;
  private readonly losses: Array<readonly number[]>;
  private readonly family: FamilyInit['kind'];
  /** CLIP: the main model and the captions (targets), and the exchange (grown on demand). */
  private readonly clip: Clip | null;
  private readonly captions: readonly string[] | null;
  private exchange: SharedArrayBuffer | null = null;
  private weightsVersion = 0;
  private seq = 0;
  private pending: PendingPhase | null = null;
  private failure: Error | null = null;
  private closing = false;
  private readonly ready: Promise<void>;

  /** Use startDataParallel(), startAutoencoderDataParallel() or startClipDataParallel(). */
  constructor(spec: PoolSpec) {
    validateWorkers(spec.workers, threadedWasmInfo()?.threads ?? 1);
    if (spec.fault !== undefined && !(Number.isInteger(spec.fault.worker) && spec.fault.worker >= 0 && spec.fault.worker < spec.workers)) {
      throw new Error(`workerFault.worker must be in [0, ${spec.workers}), received ${spec.fault.worker}`);
    }
    this.workers = spec.workers;
    this.family = spec.family.kind;
    this.clip = spec.clip;
    this.captions = spec.family.kind === 'clip' ? spec.dataset.captions : null;
    this.weightParams = spec.model.namedParameters();
    this.gradParams = spec.model.namedTrainableParameters();
    const weights = new SharedArrayBuffer(flatSize(this.weightParams) * 4);
    this.weights = new Float32Array(weights);
    this.grads = new SharedArrayBuffer(spec.workers * flatSize(this.gradParams) * 4);
    const control = new SharedArrayBuffer((spec.workers + 2) * 4);
    this.control = new Int32Array(control);
    this.losses = Array.from({ length: spec.workers }, () => []);
    const withCaptions = spec.family.kind === 'clip' || (spec.family.kind === 'diffusion' && spec.family.textStates !== null);
    const dataset = sharedDataset(spec.dataset, withCaptions);
    const started: Array<Promise<void>> = [];
    for (let rank = 0; rank < spec.workers; rank++) {
      const init: WorkerInit = {
        rank,
        workers: spec.workers,
        family: spec.family,
        dataset,
        padTo: spec.padTo ?? null,
        weightNames: this.weightParams.map(([n]) => n),
        gradNames: this.gradParams.map(([n]) => n),
        weights,
        grads: this.grads,
        control,
        fault: spec.fault !== undefined && spec.fault.worker === rank ? { step: spec.fault.step, kind: spec.fault.kind } : null,
      };
      const worker = spawnWorker(init);
      this.threads.push(worker);
      started.push(
        new Promise<void>((resolve, reject) => {
          worker.on('message', (m: WorkerReply) => (m.kind === 'ready' ? resolve() : this.onDone(rank, m.seq, m.loss)));
          worker.on('error', (e: Error) => reject(this.fail(rank, e.message)));
          worker.on('messageerror', (e: Error) => reject(this.fail(rank, `a message could not be deserialised: ${e.message}`)));
          worker.on('exit', (code: number) => {
            if (!this.closing) reject(this.fail(rank, `exited with code ${code}`));
          });
        }),
      );
    }
    this.ready = Promise.all(started).then(() => undefined);
  }

  /** Resolves when every worker has built its replica (rejects with the first failure). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /** Slice sizes of a micro-batch of `total` examples. */
  sliceSizes(total: number): number[] {
    return sliceSizes(total, this.workers);
  }

  /** Publishes the main model's current weights; the workers load them at their next slice (a sync point: reads every parameter). */
  broadcastWeights(): void {
    let offset = 0;
    for (const [, v] of this.weightParams) {
      this.weights.set(v.dataSync() as Float32Array, offset);
      offset += v.size;
    }
    this.weightsVersion += 1;
    Atomics.store(this.control, this.workers, this.weightsVersion);
  }

  /**
   * Loss and gradients by parameter name of examples [first, first + B) of `step`
   * (B = indices.length), computed by the workers on the weights of the last
   * broadcastWeights(). Diffusion and autoencoder: the loss is the mean over the
   * B examples (the autoencoder's: the parts [total, reconstruction, kl]); CLIP:
   * the contrastive loss of the B pairs (which draws nothing: `first` is unused).
   * The caller owns the returned tensors.
   */
  async lossAndGrads(indices: Int32Array, step: number, first: number): Promise<{ loss: L; grads: Map<string, tf.Tensor> }> {
    if (this.failure !== null) throw this.failure;
    if (this.weightsVersion === 0) throw new Error('DataParallel.lossAndGrads: call broadcastWeights() first');
    if (indices.length === 0) throw new Error('DataParallel.lossAndGrads: indices is empty');
    return this.family === 'clip' ? this.contrastiveStep(indices, step) : this.slicedStep(indices, step, first);
  }

  /** Stops every worker (safe to call twice, and after a failure). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((w) => w.terminate()));
  }

  // ---- the two kinds of step

  /** Diffusion, autoencoder: each worker's weighted slice loss and gradient, summed. */
  private async slicedStep(indices: Int32Array, step: number, first: number): Promise<{ loss: L; grads: Map<string, tf.Tensor> }> {
    const seq = ++this.seq;
    const active = await this.runPhase(seq, step, indices, (base, offset) => ({ ...base, kind: 'slice', first: first + offset }));
    const parts = new Float64Array(this.losses[active[0]].length);
    for (const r of active) this.losses[r].forEach((l, k) => (parts[k] += l));
    const loss = this.family === 'autoencoder' ? tf.tensor1d(Float32Array.from(parts)) : tf.scalar(parts[0]);
    return { loss: loss as L, grads: this.gradTensors(this.sumSlots(active, seq), null) };
  }

  /** CLIP: phases (a), (b), (c) of the header; the main thread computes the loss on the gathered embeddings. */
  private async contrastiveStep(indices: Int32Array, step: number): Promise<{ loss: L; grads: Map<string, tf.Tensor> }> {
    const clip = this.clip as Clip;
    const captions = this.captions as readonly string[];
    const total = indices.length;
    const dim = clip.config.image.embedDim;
    if (this.exchange === null || this.exchange.byteLength < 4 * total * dim * 4) this.exchange = new SharedArrayBuffer(4 * total * dim * 4);
    const exchange = this.exchange;
    const views = exchangeViews(exchange, total, dim);

    // (a) every worker writes its rows of I and T.
    const embedSeq = ++this.seq;
    const active = await this.runPhase(embedSeq, step, indices, (base, offset) => ({ ...base, kind: 'embed', offset, exchange }));
    for (const r of active) this.checkSeq(r, embedSeq);

    // (b) the whole-batch loss and G = dL/dI, dL/dT (slice(): the tensors must not alias the shared rows).
    const batchCaptions = Array.from(indices, (i) => captions[i]);
    const image = tf.tensor2d(views.image.slice(), [total, dim]);
    const text = tf.tensor2d(views.text.slice(), [total, dim]);
    const targets = tf.tensor2d(duplicateCaptionTargets(batchCaptions), [total, total]);
    let g: ClipEmbeddingGrads;
    try {
      g = clipEmbeddingGrads(clip, image, text, targets);
    } finally {
      tf.dispose([image, text, targets]);
    }
    try {
      let dLogitScale: number;
      try {
        views.dImage.set(g.dImage.dataSync()); // sync point
        views.dText.set(g.dText.dataSync());
        dLogitScale = g.dLogitScale.dataSync()[0];
      } finally {
        tf.dispose([g.dImage, g.dText, g.dLogitScale]);
      }

      // (c) every worker writes its VJP into its slot.
      const vjpSeq = ++this.seq;
      Atomics.store(this.control, this.workers + 1, vjpSeq); // orders the G writes before the requests
      await this.runPhase(vjpSeq, step, indices, (base, offset) => ({ ...base, kind: 'vjp', offset, exchange }));
      const sum = this.sumSlots(active, vjpSeq);
      return { loss: g.loss as tf.Tensor as L, grads: this.gradTensors(sum, { variable: clip.logitScale, grad: dLogitScale }) };
    } catch (e) {
      g.loss.dispose();
      throw e;
    }
  }

  // ---- helpers of the steps

  /** Posts one request per worker with a non-empty slice and waits for all replies; returns those workers' ranks. */
  private async runPhase(
    seq: number,
    step: number,
    indices: Int32Array,
    request: (base: RequestBase, offset: number) => StepRequest,
  ): Promise<number[]> {
    const total = indices.length;
    const sizes = this.sliceSizes(total);
    const active = sizes.map((b, r) => (b > 0 ? r : -1)).filter((r) => r >= 0);
    const done = new Promise<void>((resolve, reject) => {
      this.pending = { seq, step, remaining: active.length, resolve, reject };
    });
    let offset = 0;
    sizes.forEach((b, r) => {
      if (b > 0) this.threads[r].postMessage(request({ seq, step, total, indices: indices.slice(offset, offset + b), weightsVersion: this.weightsVersion }, offset));
      offset += b;
    });
    try {
      await done;
    } finally {
      this.pending = null;
    }
    return active;
  }

  private checkSeq(rank: number, seq: number): void {
    if (Atomics.load(this.control, rank) !== seq) throw new Error(`data-parallel worker ${rank}: its shared output is not from request ${seq}`);
  }

  /** Sum of the active workers' gradient slots, in worker order. */
  private sumSlots(active: readonly number[], seq: number): Float32Array {
    const count = flatSize(this.gradParams);
    const sum = new Float32Array(count);
    for (const r of active) {
      this.checkSeq(r, seq);
      const slot = new Float32Array(this.grads, r * count * 4, count);
      for (let i = 0; i < count; i++) sum[i] += slot[i];
    }
    return sum;
  }

  /** The flat gradient as tensors by name; `extra` is added to one scalar parameter's entry (CLIP's logit_scale). */
  private gradTensors(sum: Float32Array, extra: { variable: tf.Variable; grad: number } | null): Map<string, tf.Tensor> {
    const grads = new Map<string, tf.Tensor>();
    let at = 0;
    for (const [name, v] of this.gradParams) {
      if (extra !== null && v === extra.variable) sum[at] += extra.grad;
      grads.set(name, tf.tensor(sum.subarray(at, at + v.size), v.shape, 'float32'));
      at += v.size;
    }
    return grads;
  }

  private onDone(rank: number, seq: number, loss: readonly number[]): void {
    const p = this.pending;
    if (p === null || p.seq !== seq) return;
    this.losses[rank] = loss;
    p.remaining -= 1;
    if (p.remaining === 0) p.resolve();
  }

  /** Records the first failure, rejects the pending step with it and returns it. */
  private fail(rank: number, why: string): Error {
    if (this.failure === null) {
      const during = this.pending !== null ? ` during step ${this.pending.step}` : '';
      this.failure = new Error(`data-parallel worker ${rank} (of ${this.workers}) failed${during}: ${why}; training stopped`);
      this.pending?.reject(this.failure);
    }
    return this.failure;
  }
}

// ---------------------------------------------------------------- starting a pool

async function start<L extends tf.Tensor>(spec: PoolSpec): Promise<DataParallel<L>> {
  const pool = new DataParallel<L>(spec);
  try {
    await pool.whenReady();
  } catch (e) {
    await pool.close();
    throw e;
  }
  return pool;
}

/** Starts `workers` worker threads with replicas of the diffusion `model` and waits until all are ready. */
export async function startDataParallel(opts: DataParallelOptions): Promise<DataParallel<tf.Scalar>> {
  let imageEmbeddings: ImageEmbeddingTable | null = null;
  if (opts.imageEmbeddings !== undefined) {
    const values = new Float32Array(new SharedArrayBuffer(opts.imageEmbeddings.values.length * 4));
    values.set(opts.imageEmbeddings.values);
    imageEmbeddings = { values, dim: opts.imageEmbeddings.dim };
  }
  return start<tf.Scalar>({
    workers: opts.workers,
    model: opts.model,
    dataset: opts.dataset,
    padTo: opts.padTo,
    family: {
      kind: 'diffusion',
      unet: opts.model.config,
      schedule: opts.schedule,
      seed: opts.seed,
      condDropProb: opts.condDropProb,
      minSnrGamma: opts.minSnrGamma,
      textStates: opts.textStates === undefined ? null : opts.textStates.toArrays(true),
      lowRes: opts.lowRes ?? null,
      imageEmbeddings,
    },
    clip: null,
    fault: opts.fault,
  });
}

/** Starts `workers` worker threads with replicas of the autoencoder `model`; lossAndGrads returns the parts [total, reconstruction, kl]. */
export async function startAutoencoderDataParallel(opts: AutoencoderDataParallelOptions): Promise<DataParallel<tf.Tensor1D>> {
  const c = opts.model.config;
  checkImageShape('startAutoencoderDataParallel', opts.dataset, opts.padTo, c.sampleSize, c.inChannels);
  return start<tf.Tensor1D>({
    workers: opts.workers,
    model: opts.model,
    dataset: opts.dataset,
    padTo: opts.padTo,
    family: { kind: 'autoencoder', autoencoder: c, loss: { loss: opts.loss.loss, klWeight: opts.loss.klWeight, seed: opts.loss.seed } },
    clip: null,
    fault: opts.fault,
  });
}

/** Starts `workers` worker threads with replicas of `clip` (the gradient-cache phases of the header); lossAndGrads returns the scalar loss. */
export async function startClipDataParallel(opts: ClipDataParallelOptions): Promise<DataParallel<tf.Scalar>> {
  const c = opts.clip.config.image;
  if (opts.dataset.captions === null) throw new Error(`startClipDataParallel: the dataset '${opts.dataset.name}' has no captions`);
  checkImageShape('startClipDataParallel', opts.dataset, opts.padTo, c.imageSize, c.inChannels);
  return start<tf.Scalar>({
    workers: opts.workers,
    model: opts.clip,
    dataset: opts.dataset,
    padTo: opts.padTo,
    family: { kind: 'clip', clip: opts.clip.config },
    clip: opts.clip,
    fault: opts.fault,
  });
}
