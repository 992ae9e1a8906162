/**
 * Data-parallel gradients over worker_threads: the training loop's
 * `config.workers > 1` (./loop.ts). Each worker is a thread with its own
 * tfjs and single-thread SIMD wasm backend holding a replica of the UNet; it
 * computes the gradient of a contiguous slice of every micro-batch.
 *
 *   main thread                                    worker r of W (./dataParallelWorker.ts)
 *   broadcastWeights(): params -> weights          load the weights when their version changed
 *   lossAndGrads(indices, step, first):
 *     split the B examples into slices b_r  ---->  batch  <- dataset[slice r]
 *                                                  l_r, g_r <- loop.ts lossAndGrads(slice, step, first + offset_r)
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
 * dropout > 0 the runs agree in distribution, not number for number.
 *
 * The optimiser stays here. The main thread owns the weights, the AdamW
 * moments and the EMA and publishes the weights once per step (P floats),
 * rather than every worker repeating the update on its replica: a checkpoint
 * is exactly what a one-thread run saves, the main thread may use any backend,
 * and the replicas cannot drift apart.
 *
 * Shared memory, allocated once: the dataset's pixels and labels (a copy the
 * workers read; MNIST is 47 MB), the weights [P], one gradient slot
 * [P_trainable] per worker. Messages carry only step numbers and example
 * indices. An Atomics store / load on `control` orders the shared writes
 * with the messages.
 *
 * Failure: a worker's 'error' or unexpected 'exit' rejects the pending step and
 * every later one with an error naming the worker. The exchange is
 * message-based (no barrier in shared memory), so there is nothing to deadlock on.
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';
import { threadedWasmInfo } from '../backend/wasmThreads';
import { ImageDataset } from '../data/dataset';
import { CaptionStateArrays, CaptionStateCache } from '../models/textEncoder';
import { LowResConfig } from '../sample/lowResConditioning';
import type { ImageEmbeddingTable } from './diffusionTraining';
import { UNet, UNetConfig } from '../models/unet';
import { Schedule } from '../schedule/schedule';

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

/** A worker's start data (structured-cloned; the SharedArrayBuffers are shared, not copied). */
export interface WorkerInit {
  readonly rank: number;
  readonly workers: number;
  readonly unet: UNetConfig;
  readonly schedule: Schedule;
  /** images and labels are views on SharedArrayBuffers. */
  readonly dataset: ImageDataset;
  readonly padTo: number | null;
  readonly seed: number;
  readonly condDropProb: number;
  readonly minSnrGamma: number | null;
  /** The caption-state cache as arrays in SharedArrayBuffers, or null (no text conditioning). */
  readonly textStates: CaptionStateArrays | null;
  readonly lowRes: LowResConfig | null;
  /** values in a SharedArrayBuffer, or null. */
  readonly imageEmbeddings: ImageEmbeddingTable | null;
  /** Names of all parameters in weights-buffer order (the replica checks it has the same). */
  readonly weightNames: readonly string[];
  /** Names of the trained parameters in gradient-slot order. */
  readonly gradNames: readonly string[];
  /** Float32 [P]: all parameters, concatenated flat. */
  readonly weights: SharedArrayBuffer;
  /** Float32 [W, P_trainable]: one gradient slot per worker. */
  readonly grads: SharedArrayBuffer;
  /** Int32 [W + 1]: [r] = seq of worker r's last written slot, [W] = weights version. */
  readonly control: SharedArrayBuffer;
  readonly fault: { readonly step: number; readonly kind: 'throw' | 'exit' } | null;
}

/** Main -> worker: compute the slice gradient of examples `indices` (global example index `first`...). */
export interface StepRequest {
  readonly seq: number;
  readonly step: number;
  /** Global example index of indices[0] within the step (keys t, noise, condition dropout). */
  readonly first: number;
  /** Examples in the whole micro-batch (the slice gradient is weighted by indices.length / total). */
  readonly total: number;
  /** Dataset indices of this worker's slice. */
  readonly indices: Int32Array;
  readonly weightsVersion: number;
}

/** Worker -> main. */
export type WorkerReply = { readonly kind: 'ready' } | { readonly kind: 'done'; readonly seq: number; readonly loss: number };

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

/** A copy of the dataset's values and labels in shared memory (captions are cloned only when the workers look up text states). */
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

interface PendingStep {
  readonly seq: number;
  readonly step: number;
  remaining: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class DataParallel {
  readonly workers: number;
  private readonly threads: Worker[] = [];
  private readonly weightParams: ReadonlyArray<[string, tf.Variable]>;
  private readonly gradParams: ReadonlyArray<[string, tf.Variable]>;
  private readonly weights: Float32Array;
  private readonly grads: SharedArrayBuffer;
  private readonly control: Int32Array;
  private readonly losses: Float64Array;
  private weightsVersion = 0;
  private seq = 0;
  private pending: PendingStep | null = null;
  private failure: Error | null = null;
  private closing = false;
  private readonly ready: Promise<void>;

  /** Use startDataParallel(). */
  constructor(opts: DataParallelOptions) {
    validateWorkers(opts.workers, threadedWasmInfo()?.threads ?? 1);
    if (opts.fault !== undefined && !(Number.isInteger(opts.fault.worker) && opts.fault.worker >= 0 && opts.fault.worker < opts.workers)) {
      throw new Error(`workerFault.worker must be in [0, ${opts.workers}), received ${opts.fault.worker}`);
    }
    this.workers = opts.workers;
    this.weightParams = opts.model.namedParameters();
    this.gradParams = opts.model.namedTrainableParameters();
    const weights = new SharedArrayBuffer(flatSize(this.weightParams) * 4);
    this.weights = new Float32Array(weights);
    this.grads = new SharedArrayBuffer(opts.workers * flatSize(this.gradParams) * 4);
    const control = new SharedArrayBuffer((opts.workers + 1) * 4);
    this.control = new Int32Array(control);
    this.losses = new Float64Array(opts.workers);
    const dataset = sharedDataset(opts.dataset, opts.textStates !== undefined);
    const textStates = opts.textStates === undefined ? null : opts.textStates.toArrays(true);
    let imageEmbeddings: ImageEmbeddingTable | null = null;
    if (opts.imageEmbeddings !== undefined) {
      const values = new Float32Array(new SharedArrayBuffer(opts.imageEmbeddings.values.length * 4));
      values.set(opts.imageEmbeddings.values);
      imageEmbeddings = { values, dim: opts.imageEmbeddings.dim };
    }
    const started: Array<Promise<void>> = [];
    for (let rank = 0; rank < opts.workers; rank++) {
      const init: WorkerInit = {
        rank,
        workers: opts.workers,
        unet: opts.model.config,
        schedule: opts.schedule,
        dataset,
        padTo: opts.padTo ?? null,
        seed: opts.seed,
        condDropProb: opts.condDropProb,
        minSnrGamma: opts.minSnrGamma,
        textStates,
        lowRes: opts.lowRes ?? null,
        imageEmbeddings,
        weightNames: this.weightParams.map(([n]) => n),
        gradNames: this.gradParams.map(([n]) => n),
        weights,
        grads: this.grads,
        control,
        fault: opts.fault !== undefined && opts.fault.worker === rank ? { step: opts.fault.step, kind: opts.fault.kind } : null,
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
   * Loss (mean over the B = indices.length examples) and gradients by parameter
   * name of examples [first, first + B) of `step`, computed by the workers on the
   * weights of the last broadcastWeights(). The caller owns the returned tensors.
   */
  async lossAndGrads(indices: Int32Array, step: number, first: number): Promise<{ loss: tf.Scalar; grads: Map<string, tf.Tensor> }> {
    if (this.failure !== null) throw this.failure;
    if (this.weightsVersion === 0) throw new Error('DataParallel.lossAndGrads: call broadcastWeights() first');
    const total = indices.length;
    const sizes = this.sliceSizes(total);
    const seq = ++this.seq;
    const active = sizes.map((b, r) => (b > 0 ? r : -1)).filter((r) => r >= 0);
    const done = new Promise<void>((resolve, reject) => {
      this.pending = { seq, step, remaining: active.length, resolve, reject };
    });
    let offset = 0;
    sizes.forEach((b, r) => {
      if (b > 0) {
        const req: StepRequest = { seq, step, first: first + offset, total, indices: indices.slice(offset, offset + b), weightsVersion: this.weightsVersion };
        this.threads[r].postMessage(req);
      }
      offset += b;
    });
    try {
      await done;
    } finally {
      this.pending = null;
    }

    // Sum the weighted slot gradients, in worker order.
    const count = flatSize(this.gradParams);
    const sum = new Float32Array(count);
    let loss = 0;
    for (const r of active) {
      if (Atomics.load(this.control, r) !== seq) throw new Error(`data-parallel worker ${r}: its gradient slot is not from request ${seq}`);
      const slot = new Float32Array(this.grads, r * count * 4, count);
      for (let i = 0; i < count; i++) sum[i] += slot[i];
      loss += this.losses[r];
    }
    const grads = new Map<string, tf.Tensor>();
    let at = 0;
    for (const [name, v] of this.gradParams) {
      grads.set(name, tf.tensor(sum.subarray(at, at + v.size), v.shape, 'float32'));
      at += v.size;
    }
    return { loss: tf.scalar(loss), grads };
  }

  /** Stops every worker (safe to call twice, and after a failure). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((w) => w.terminate()));
  }

  private onDone(rank: number, seq: number, loss: number): void {
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

/** Starts `workers` worker threads with replicas of `model` and waits until all are ready. */
export async function startDataParallel(opts: DataParallelOptions): Promise<DataParallel> {
  const pool = new DataParallel(opts);
  try {
    await pool.whenReady();
  } catch (e) {
    await pool.close();
    throw e;
  }
  return pool;
}
