/**
 * Profile one training step (forward + backward) of the MNIST UNet on the active
 * backend: `unetConfig({ ...UNET_PRESETS.small, inChannels: 1, sampleSize: 32,
 * numClasses: 10 })`, loss = mean((model(x, t, labels) - target)^2), gradients by
 * tf.variableGrads over net.parameters().
 *
 * Prints: median step and forward time over --steps runs after --warmup runs,
 * the per-kernel table (src/train/profile.ts: nested customGrad scopes left out),
 * and with --modules a per-block breakdown: each top-level block of the UNet is
 * re-run alone at the shapes it sees in the network (forward, and
 * forward + backward w.r.t. its input and parameters).
 *
 * Run alone: `npx tsx bench/profileStep.ts [--batch 32] [--steps 5] [--warmup 2]
 *   [--top 20] [--modules] [--shapes] [--threads 1] [--backend wasm]`.
 * --shapes adds the top kernels grouped by name and input shapes.
 * The machine is shared: trust only medians and repeat runs.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { Rng, randomNormal } from '../src/backend/random';
import { UNet, unetConfig } from '../src/models/unet';
import { UNET_PRESETS } from '../src/models/unetPresets';
import { Module } from '../src/nn/module';
import { profileKernels } from '../src/train/profile';

interface Args {
  batch: number;
  steps: number;
  warmup: number;
  top: number;
  modules: boolean;
  shapes: boolean;
  threads: number;
  backend: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { batch: 32, steps: 5, warmup: 2, top: 20, modules: false, shapes: false, threads: 1, backend: 'wasm' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '--batch') a.batch = Number(next());
    else if (k === '--steps') a.steps = Number(next());
    else if (k === '--warmup') a.warmup = Number(next());
    else if (k === '--top') a.top = Number(next());
    else if (k === '--modules') a.modules = true;
    else if (k === '--shapes') a.shapes = true;
    else if (k === '--threads') a.threads = Number(next());
    else if (k === '--backend') a.backend = next();
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Wall ms per run; also CPU ms (user + sys of this process, robust to other load) in `cpu` if given. */
async function timeRuns(warmup: number, steps: number, run: () => Promise<void>, cpu?: number[]): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await run();
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await run();
    out.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu?.push((c.user + c.system) / 1000);
  }
  return out;
}

/** Forward and forward + backward of one block, alone, at a recorded input shape. */
async function profileBlock(
  name: string,
  block: Module,
  inputs: tf.Tensor[],
  call: (xs: tf.Tensor[]) => tf.Tensor,
  reps: number,
): Promise<{ name: string; fwd: number; fwdBwd: number }> {
  const vars = inputs.map((t) => (t.dtype === 'float32' ? tf.variable(t.clone(), true) : null));
  const args = (): tf.Tensor[] => inputs.map((t, i) => vars[i] ?? t);
  const params = [...block.parameters(), ...vars.filter((v): v is tf.Variable => v !== null)];
  const fwd = await timeRuns(1, reps, async () => {
    const y = tf.tidy(() => call(args()));
    await y.data();
    y.dispose();
  });
  const fb = await timeRuns(1, reps, async () => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(call(args()))) as tf.Scalar, params);
    await value.data();
    value.dispose();
    tf.dispose(Object.values(grads));
  });
  vars.forEach((v) => v?.dispose());
  return { name, fwd: median(fwd), fwdBwd: median(fb) };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const info = await initBackend(a.backend, { threads: a.threads });
  const cfg = unetConfig({ ...UNET_PRESETS.small, inChannels: 1, sampleSize: 32, numClasses: 10 });
  const net = new UNet(cfg, new Rng(1));
  const rng = new Rng(2);
  const B = a.batch;
  const x = randomNormal([B, 32, 32, 1], rng) as tf.Tensor4D;
  const target = randomNormal([B, 32, 32, 1], rng) as tf.Tensor4D;
  const t = tf.tensor1d(Array.from({ length: B }, () => rng.int(1000)), 'float32');
  const labels = tf.tensor1d(Array.from({ length: B }, () => rng.int(11)), 'int32');
  const params = net.parameters();
  console.log(`backend ${tf.getBackend()} (${info.threads ?? '-'} threads), batch ${B}, ${net.numParameters()} parameters, load ${loadavg()}`);

  const lossFn = (): tf.Scalar => tf.mean(tf.square(tf.sub(net.apply({ x, t, classLabels: labels, training: true }), target)));
  const step = (): void => {
    const { value, grads } = tf.variableGrads(lossFn, params);
    value.dataSync();
    value.dispose();
    tf.dispose(Object.values(grads));
  };
  const forward = (): void => {
    const y = tf.tidy(() => net.apply({ x, t, classLabels: labels }));
    y.dataSync();
    y.dispose();
  };

  const n0 = tf.memory().numTensors;
  const stepCpu: number[] = [];
  const fwdCpu: number[] = [];
  const stepTimes = await timeRuns(a.warmup, a.steps, async () => step(), stepCpu);
  const fwdTimes = await timeRuns(1, a.steps, async () => forward(), fwdCpu);
  if (tf.memory().numTensors !== n0) console.log(`WARNING: tensor leak ${tf.memory().numTensors - n0}`);
  const fmt = (v: number[]): string => `median ${median(v).toFixed(0)} ms, min ${Math.min(...v).toFixed(0)} [${v.map((q) => q.toFixed(0)).join(', ')}]`;
  console.log(`step    ${fmt(stepTimes)}  = ${((B * 1000) / median(stepTimes)).toFixed(1)} img/s`);
  console.log(`forward ${fmt(fwdTimes)}  = ${((B * 1000) / median(fwdTimes)).toFixed(1)} img/s`);
  console.log(`cpu time (user+sys; main thread + helpers): step median ${median(stepCpu).toFixed(0)} ms, forward median ${median(fwdCpu).toFixed(0)} ms`);
  console.log(`wasm heap after: ${((tf.memory() as { numBytesInWASMHeap?: number }).numBytesInWASMHeap ?? 0) / 1e6} MB, rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);

  const prof = await profileKernels(step, a.top);
  console.log(`\nkernels of one step: ${prof.totalMs.toFixed(0)} ms in kernels, wall ${prof.wallMs.toFixed(0)} ms (other kernels ${prof.otherMs.toFixed(0)} ms)`);
  for (const r of prof.rows) {
    console.log(`  ${r.kernel.padEnd(28)} ${r.ms.toFixed(1).padStart(8)} ms ${(100 * r.share).toFixed(1).padStart(5)}%  ${String(r.calls).padStart(5)} calls`);
  }

  if (a.shapes) await shapeBreakdown(step, a.top * 2);
  if (a.modules) await moduleBreakdown(net, x, t, labels, Math.max(3, a.steps));
  shutdownBackend();
}

/** Kernel time grouped by kernel name and input shapes (customGrad scopes left out). */
async function shapeBreakdown(step: () => void, top: number): Promise<void> {
  const info = await tf.profile(() => step());
  const rows = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    if (tf.getKernel(k.name, tf.getBackend()) === undefined) continue;
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const r = rows.get(key) ?? { ms: 0, calls: 0 };
    r.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    r.calls += 1;
    rows.set(key, r);
  }
  console.log('\nby kernel and input shapes:');
  for (const [key, r] of [...rows.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, top)) {
    console.log(`  ${r.ms.toFixed(1).padStart(8)} ms ${String(r.calls).padStart(4)}x  ${key}`);
  }
}

function loadavg(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const os = require('os') as { loadavg: () => number[] };
  return os.loadavg().map((v) => v.toFixed(1)).join(' ');
}

/** Records the inputs each top-level block sees in one forward, then profiles each alone. */
async function moduleBreakdown(net: UNet, x: tf.Tensor4D, t: tf.Tensor1D, labels: tf.Tensor1D, reps: number): Promise<void> {
  type Rec = { name: string; block: Module; inputs: tf.Tensor[]; call: (xs: tf.Tensor[]) => tf.Tensor };
  const recs: Rec[] = [];
  const restore: Array<() => void> = [];
  const hook = (name: string, m: Module): void => {
    const target = m as unknown as { apply: (...xs: unknown[]) => tf.Tensor };
    const orig = target.apply;
    target.apply = function (...xs: unknown[]): tf.Tensor {
      const tensors = xs.filter((v): v is tf.Tensor => v instanceof tf.Tensor);
      recs.push({
        name,
        block: m,
        inputs: tensors.map((v) => tf.keep(v.clone())),
        call: (ins) => {
          let k = 0;
          const replaced = xs.map((v) => (v instanceof tf.Tensor ? ins[k++] : v));
          return orig.apply(m, replaced);
        },
      });
      return orig.apply(m, xs);
    };
    restore.push(() => {
      target.apply = orig;
    });
  };
  for (const [groupName, group] of net.namedChildren()) {
    if (groupName === 'down' || groupName === 'mid' || groupName === 'up') {
      for (const [i, child] of group.namedChildren()) hook(`${groupName}.${i}:${child.constructor.name}`, child);
    } else {
      hook(`${groupName}:${group.constructor.name}`, group);
    }
  }
  tf.tidy(() => {
    net.apply({ x, t, classLabels: labels });
  });
  restore.forEach((r) => r());
  console.log('\nper block, alone (median ms): forward | forward+backward | backward');
  let sumF = 0;
  let sumFB = 0;
  for (const r of recs) {
    const res = await profileBlock(r.name, r.block, r.inputs, r.call, reps);
    sumF += res.fwd;
    sumFB += res.fwdBwd;
    const shape = r.inputs.map((v) => `[${v.shape}]`).join(' ');
    console.log(`  ${r.name.padEnd(26)} ${res.fwd.toFixed(1).padStart(7)} ${res.fwdBwd.toFixed(1).padStart(8)} ${(res.fwdBwd - res.fwd).toFixed(1).padStart(8)}   ${shape}`);
    tf.dispose(r.inputs);
  }
  console.log(`  ${'sum'.padEnd(26)} ${sumF.toFixed(1).padStart(7)} ${sumFB.toFixed(1).padStart(8)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
