/**
 * Probe (not library code): is data-parallel training on 2 worker_threads, each
 * with its own tfjs + single-thread SIMD wasm backend, viable? Gradients are
 * averaged through one SharedArrayBuffer (double-buffered slots, one Atomics
 * barrier per step), every worker applies the same averaged gradient, so the
 * replicas stay bitwise identical without a parameter broadcast.
 *
 * Three runs of the same SGD steps on the same fixed batch (each in workers):
 *   1x1  one worker, full batch, single-thread wasm          (the reference)
 *   1x2  one worker, full batch, threaded wasm with 2 threads (./src/backend/wasmThreads.ts)
 *   2x1  two workers, half batch each, single-thread wasm, SAB gradient exchange
 * Reports ms/step (compute | exchange) and the max relative difference of the
 * final parameters against 1x1.
 *
 *   npx tsx bench/dataParallelProbe.ts [--model conv|mlp] [--steps 8] [--batch 32]
 *
 * conv: 3 convs 3x3 (32 ch, 32x32, the project's fast-gradient conv2d), 19k params.
 * mlp: 1024-2048-2048-10 dense via the project's linear() (6.3M params, to expose the exchange cost).
 */
import * as tf from '@tensorflow/tfjs';
import { Worker, isMainThread, parentPort, workerData } from 'worker_threads';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { keyedRng, randomNormal } from '../src/backend/random';
import { conv2d } from '../src/nn/conv2d';
import { linear } from '../src/nn/linear';

type ModelName = 'conv' | 'mlp';

interface ProbeArgs {
  readonly rank: number;
  readonly world: number;
  readonly threads: number;
  readonly model: ModelName;
  readonly steps: number;
  readonly batch: number;
  /** Int32 [arrived, generation]: the barrier. */
  readonly control: SharedArrayBuffer;
  /** Float32 [2 parities][world][numParams]: gradient slots. */
  readonly slots: SharedArrayBuffer | null;
}

interface ProbeResult {
  readonly rank: number;
  readonly params: Float32Array;
  readonly computeMs: number[];
  readonly exchangeMs: number[];
  readonly losses: number[];
}

const SEED = 1234;
const LR = 0.05;

// ---------------------------------------------------------------- model

function paramShapes(model: ModelName): number[][] {
  return model === 'conv'
    ? [[3, 3, 32, 32], [32], [3, 3, 32, 32], [32], [3, 3, 32, 3], [3]]
    : [[1024, 2048], [2048], [2048, 2048], [2048], [2048, 10], [10]];
}

function makeParams(model: ModelName): tf.Variable[] {
  return paramShapes(model).map((shape, i) =>
    tf.tidy(() => {
      const fanIn = shape.length === 1 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const scale = shape.length === 1 ? 0 : 1 / Math.sqrt(fanIn);
      return tf.variable(randomNormal(shape, keyedRng(SEED, 'param', i)).mul(scale));
    }),
  );
}

function makeBatch(model: ModelName, batch: number, rank: number, world: number): [tf.Tensor, tf.Tensor] {
  const per = batch / world;
  return tf.tidy(() => {
    const x = model === 'conv' ? randomNormal([batch, 32, 32, 32], keyedRng(SEED, 'x')) : randomNormal([batch, 1024], keyedRng(SEED, 'x'));
    const y = model === 'conv' ? randomNormal([batch, 32, 32, 3], keyedRng(SEED, 'y')) : randomNormal([batch, 10], keyedRng(SEED, 'y'));
    return [x.slice(rank * per, per), y.slice(rank * per, per)];
  });
}

function loss(model: ModelName, p: tf.Variable[], x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  if (model === 'conv') {
    let h = x as tf.Tensor4D;
    h = tf.relu(tf.add(conv2d(h, p[0] as tf.Tensor4D), p[1])) as tf.Tensor4D;
    h = tf.relu(tf.add(conv2d(h, p[2] as tf.Tensor4D), p[3])) as tf.Tensor4D;
    const out = tf.add(conv2d(h, p[4] as tf.Tensor4D), p[5]);
    return tf.mean(tf.square(tf.sub(out, y)));
  }
  let h = tf.relu(linear(x, p[0] as tf.Tensor2D, p[1] as tf.Tensor1D));
  h = tf.relu(linear(h, p[2] as tf.Tensor2D, p[3] as tf.Tensor1D));
  return tf.mean(tf.square(tf.sub(linear(h, p[4] as tf.Tensor2D, p[5] as tf.Tensor1D), y)));
}

// ---------------------------------------------------------------- exchange

/** Generation barrier on Int32 [arrived, generation]. Atomics.wait is allowed in workers only. */
function barrier(control: Int32Array, world: number): void {
  const generation = Atomics.load(control, 1);
  if (Atomics.add(control, 0, 1) === world - 1) {
    Atomics.store(control, 0, 0);
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
  } else {
    while (Atomics.load(control, 1) === generation) Atomics.wait(control, 1, generation);
  }
}

async function worker(args: ProbeArgs): Promise<ProbeResult> {
  await initBackend('wasm', { threads: args.threads });
  const params = makeParams(args.model);
  const sizes = params.map((p) => p.size);
  const numParams = sizes.reduce((a, b) => a + b, 0);
  const [x, y] = makeBatch(args.model, args.batch, args.rank, args.world);
  const control = new Int32Array(args.control);
  const computeMs: number[] = [];
  const exchangeMs: number[] = [];
  const losses: number[] = [];
  barrier(control, args.world); // start together
  for (let step = 0; step < args.steps; step++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => loss(args.model, params, x, y), params);
    const names = params.map((p) => p.name);
    const flat = tf.tidy(() => tf.concat(names.map((n) => grads[n].reshape([-1]))));
    const local = flat.dataSync() as Float32Array; // sync point: the grads are computed here
    const t1 = performance.now();
    let averaged: tf.Tensor1D;
    if (args.slots === null) {
      averaged = flat.clone() as tf.Tensor1D;
    } else {
      const parity = step % 2;
      const slot = (r: number): Float32Array => new Float32Array(args.slots as SharedArrayBuffer, ((parity * args.world + r) * numParams) * 4, numParams);
      slot(args.rank).set(local);
      barrier(control, args.world);
      // Same summation order in every worker -> bitwise identical replicas.
      averaged = tf.tidy(() => tf.mul(tf.addN(Array.from({ length: args.world }, (_, r) => tf.tensor1d(slot(r)))), 1 / args.world));
    }
    tf.tidy(() => {
      const parts = tf.split(averaged, sizes);
      params.forEach((p, i) => p.assign(tf.sub(p, tf.mul(parts[i].reshape(p.shape), LR))));
    });
    const t2 = performance.now();
    losses.push(value.dataSync()[0]);
    tf.dispose([value, flat, averaged, ...Object.values(grads)]);
    computeMs.push(t1 - t0);
    exchangeMs.push(t2 - t1);
  }
  const final = tf.tidy(() => tf.concat(params.map((p) => p.reshape([-1]))).dataSync() as Float32Array);
  tf.dispose([x, y, ...params]);
  shutdownBackend();
  return { rank: args.rank, params: final, computeMs, exchangeMs, losses };
}

// ---------------------------------------------------------------- main

async function run(world: number, threads: number, model: ModelName, steps: number, batch: number): Promise<ProbeResult[]> {
  const numParams = paramShapes(model).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const control = new SharedArrayBuffer(8);
  const slots = world > 1 ? new SharedArrayBuffer(2 * world * numParams * 4) : null;
  const results = await Promise.all(
    Array.from({ length: world }, (_, rank) => {
      const args: ProbeArgs = { rank, world, threads, model, steps, batch, control, slots };
      return new Promise<ProbeResult>((resolve, reject) => {
        // tsx's hooks do not reach worker_threads (ERR_UNKNOWN_FILE_EXTENSION '.ts'): register them in the worker.
        const w = __filename.endsWith('.ts')
          ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});`, { eval: true, workerData: args })
          : new Worker(__filename, { workerData: args });
        w.once('message', (r: ProbeResult) => resolve(r));
        w.once('error', reject);
      });
    }),
  );
  return results.sort((a, b) => a.rank - b.rank);
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const model = opt('model', 'conv') as ModelName;
  const steps = Number(opt('steps', '8'));
  const batch = Number(opt('batch', '32'));
  const numParams = paramShapes(model).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  console.log(`model ${model} (${numParams} params), batch ${batch}, ${steps} SGD steps; ms/step = median over steps 2..`);
  let reference: Float32Array | null = null;
  for (const [world, threads] of [[1, 1], [1, 2], [2, 1]] as const) {
    const t0 = performance.now();
    const rs = await run(world, threads, model, steps, batch);
    const wall = performance.now() - t0;
    const r0 = rs[0];
    const tail = (v: number[]): number[] => v.slice(2);
    const compute = median(tail(r0.computeMs));
    const exchange = median(tail(r0.exchangeMs));
    if (reference === null) reference = r0.params;
    // Equal shards: the full-batch mean loss is the mean of the workers' losses.
    const fullLoss = (step: number): number => rs.reduce((acc, r) => acc + r.losses[step], 0) / rs.length;
    const replicas = rs.length > 1 ? `, replicas identical: ${rs.every((r) => maxRelDiff(r.params, r0.params) === 0)}` : '';
    console.log(
      `${world}x${threads}: ${(compute + exchange).toFixed(1)} ms/step (compute ${compute.toFixed(1)} | exchange+apply ${exchange.toFixed(1)}), ` +
        `wall ${(wall / 1000).toFixed(1)} s, loss ${fullLoss(0).toFixed(4)} -> ${fullLoss(steps - 1).toFixed(4)}, ` +
        `params vs 1x1: max rel diff ${maxRelDiff(r0.params, reference).toExponential(2)}${replicas}`,
    );
  }
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
} else {
  worker(workerData as ProbeArgs).then(
    (r) => parentPort?.postMessage(r),
    (e) => {
      throw e;
    },
  );
}
