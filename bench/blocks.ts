/**
 * Micro-benchmark of the nn building blocks on the active backend: forward and
 * backward time (median over `reps` after one warm-up run, results read back each
 * run) with GFLOP/s, plus the plain matMul ceiling.
 *
 * Backward = median(forward + backward) - median(forward), where forward +
 * backward is one `tf.variableGrads` of sum(y * dy) with respect to the input and
 * every weight (dX included, as inside a network). FLOPs count multiply-adds as 2
 * and only matMul/conv work; backward FLOPs are 2x forward (dX and dW). Rows with
 * no meaningful FLOP count (GroupNorm) report gflops = null.
 *
 * Run alone: `npx tsx bench/blocks.ts [--reps N] [--backend wasm|cpu|tensorflow]`
 * (prints one JSON object per row). Timings need an otherwise idle machine.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/backend';
import { Rng, randomNormal } from '../src/backend/random';
import { conv2d } from '../src/nn/conv2d';
import { linear } from '../src/nn/linear';
import { groupNorm } from '../src/nn/groupNorm';
import { SelfAttention, CrossAttention } from '../src/nn/attention';

export interface BlockBenchRow {
  /** Block name, e.g. 'conv3x3' or 'selfAttention'. */
  readonly block: string;
  /** Shapes in words, e.g. 'B32 32x32x32->32 s1'. */
  readonly config: string;
  readonly pass: 'forward' | 'backward';
  /** Median milliseconds (backward: median(forward + backward) - median(forward)). */
  readonly ms: number;
  /** Counted FLOPs of this pass (null when not meaningful). */
  readonly flops: number | null;
  /** flops / time, or null. */
  readonly gflops: number | null;
}

export interface BenchBlocksOptions {
  /** Timed runs per measurement (after one warm-up). */
  readonly reps: number;
  /** Called as each row is ready. */
  readonly onRow: (row: BlockBenchRow) => void;
}

// ---------------------------------------------------------------------------
// helpers

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median ms of `run` (which must read its results back) over reps, after one warm-up. */
async function timeIt(reps: number, run: () => Promise<void>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

function gflops(flops: number | null, ms: number): number | null {
  return flops === null || ms <= 0 ? null : flops / (ms * 1e6);
}

/** One benchmark case: a forward over `inputs` (variables, so dX is part of backward). */
interface BlockCase {
  readonly block: string;
  readonly config: string;
  readonly forwardFlops: number | null;
  readonly inputs: tf.Variable[];
  readonly forward: () => tf.Tensor;
  readonly dispose: () => void;
}

async function measureCase(c: BlockCase, reps: number, onRow: (row: BlockBenchRow) => void, rows: BlockBenchRow[]): Promise<void> {
  const y0 = tf.tidy(c.forward);
  const dy = randomNormal(y0.shape, new Rng(`dy-${c.block}-${c.config}`));
  y0.dispose();
  try {
    const fwd = await timeIt(reps, async () => {
      const y = tf.tidy(c.forward);
      await y.data();
      y.dispose();
    });
    const both = await timeIt(reps, async () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(c.forward(), dy)) as tf.Scalar, c.inputs);
      await Promise.all(Object.values(grads).map((g) => g.data()));
      tf.dispose([value, ...Object.values(grads)]);
    });
    const bwd = Math.max(both - fwd, 0);
    const bwdFlops = c.forwardFlops === null ? null : 2 * c.forwardFlops;
    for (const row of [
      { block: c.block, config: c.config, pass: 'forward' as const, ms: fwd, flops: c.forwardFlops, gflops: gflops(c.forwardFlops, fwd) },
      { block: c.block, config: c.config, pass: 'backward' as const, ms: bwd, flops: bwdFlops, gflops: gflops(bwdFlops, bwd) },
    ]) {
      rows.push(row);
      onRow(row);
    }
  } finally {
    dy.dispose();
    c.dispose();
  }
}

function variable(shape: number[], rng: Rng, std = 1): tf.Variable {
  const t = randomNormal(shape, rng, 0, std);
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

// ---------------------------------------------------------------------------
// cases

function convCase(b: number, hw: number, cin: number, cout: number, k: 1 | 3, stride: 1 | 2, rng: Rng): BlockCase {
  const x = variable([b, hw, hw, cin], rng);
  const w = variable([k, k, cin, cout], rng, 0.1);
  const out = Math.ceil(hw / stride);
  return {
    block: `conv${k}x${k}`,
    config: `B${b} ${hw}x${hw}x${cin}->${cout} s${stride}`,
    forwardFlops: 2 * b * out * out * k * k * cin * cout,
    inputs: [x, w],
    forward: () => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, { stride }),
    dispose: () => tf.dispose([x, w]),
  };
}

function linearCase(rows: number, inF: number, outF: number, rng: Rng): BlockCase {
  const x = variable([rows, inF], rng);
  const w = variable([inF, outF], rng, 0.1);
  const bias = variable([outF], rng);
  return {
    block: 'linear',
    config: `${rows}x${inF}->${outF}`,
    forwardFlops: 2 * rows * inF * outF,
    inputs: [x, w, bias],
    forward: () => linear(x, w as tf.Tensor2D, bias as tf.Tensor1D),
    dispose: () => tf.dispose([x, w, bias]),
  };
}

function groupNormCase(b: number, hw: number, c: number, groups: number, rng: Rng): BlockCase {
  const x = variable([b, hw, hw, c], rng);
  const gamma = variable([c], rng);
  const beta = variable([c], rng);
  return {
    block: 'groupNorm',
    config: `B${b} ${hw}x${hw}x${c} G${groups}`,
    forwardFlops: null,
    inputs: [x, gamma, beta],
    forward: () => groupNorm(x, gamma as tf.Tensor1D, beta as tf.Tensor1D, groups, 1e-5),
    dispose: () => tf.dispose([x, gamma, beta]),
  };
}

/** SelfAttention module (qkv + 4-head attention + proj) on hw x hw tokens. */
function selfAttentionCase(b: number, hw: number, c: number, heads: number, rng: Rng): BlockCase {
  const n = hw * hw;
  const x = variable([b, n, c], rng);
  const attn = new SelfAttention({ dim: c, heads, rng });
  return {
    block: 'selfAttention',
    config: `B${b} ${hw}x${hw} tokens x${c}, ${heads} heads (qkv + attention + proj)`,
    forwardFlops: 2 * b * n * c * 4 * c + 4 * b * n * n * c,
    inputs: [x, ...attn.parameters()],
    forward: () => attn.apply(x as tf.Tensor3D),
    dispose: () => {
      x.dispose();
      attn.dispose();
    },
  };
}

function crossAttentionCase(b: number, hw: number, c: number, ctxLen: number, ctxDim: number, heads: number, rng: Rng): BlockCase {
  const n = hw * hw;
  const x = variable([b, n, c], rng);
  const ctx = variable([b, ctxLen, ctxDim], rng);
  const attn = new CrossAttention({ dim: c, contextDim: ctxDim, heads, rng });
  return {
    block: 'crossAttention',
    config: `B${b} ${hw}x${hw} tokens x${c}, context ${ctxLen}x${ctxDim}, ${heads} heads`,
    forwardFlops: 2 * b * n * c * 2 * c + 2 * b * ctxLen * ctxDim * 2 * c + 4 * b * n * ctxLen * c,
    inputs: [x, ctx, ...attn.parameters()],
    forward: () => attn.apply(x as tf.Tensor3D, ctx as tf.Tensor3D),
    dispose: () => {
      tf.dispose([x, ctx]);
      attn.dispose();
    },
  };
}

// ---------------------------------------------------------------------------
// entry points

/** Plain tf.matMul of two 1024x1024 matrices: the backend's GFLOP/s ceiling (forward row only). */
export async function matMulCeiling(options: { reps: number } = { reps: 10 }): Promise<BlockBenchRow> {
  const rng = new Rng('matmul-ceiling');
  const a = randomNormal([1024, 1024], rng) as tf.Tensor2D;
  const b = randomNormal([1024, 1024], rng) as tf.Tensor2D;
  try {
    const ms = await timeIt(options.reps, async () => {
      const y = tf.matMul(a, b);
      await y.data();
      y.dispose();
    });
    const flops = 2 * 1024 ** 3;
    return { block: 'matMul', config: '1024x1024 @ 1024x1024', pass: 'forward', ms, flops, gflops: gflops(flops, ms) };
  } finally {
    tf.dispose([a, b]);
  }
}

/** Runs every block case on the active backend. Batch 32 throughout (the benchmark UNet's). */
export async function benchBlocks(options: BenchBlocksOptions): Promise<BlockBenchRow[]> {
  const { reps, onRow } = options;
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`benchBlocks: reps must be a positive integer, got ${reps}`);
  const rows: BlockBenchRow[] = [];
  const ceiling = await matMulCeiling({ reps });
  rows.push(ceiling);
  onRow(ceiling);
  const rng = new Rng('bench-blocks');
  const cases: Array<() => BlockCase> = [
    () => convCase(32, 32, 32, 32, 3, 1, rng),
    () => convCase(32, 16, 64, 64, 3, 1, rng),
    () => convCase(32, 32, 32, 32, 3, 2, rng),
    () => convCase(32, 16, 64, 64, 3, 2, rng),
    () => convCase(32, 16, 64, 64, 1, 1, rng),
    () => linearCase(32 * 64, 64, 192, rng), // qkv projection at 8x8
    () => linearCase(32, 128, 128, rng), // time-embedding MLP
    () => groupNormCase(32, 32, 32, 8, rng),
    () => groupNormCase(32, 16, 64, 8, rng),
    () => selfAttentionCase(32, 8, 64, 4, rng),
    () => selfAttentionCase(32, 16, 64, 4, rng),
    () => crossAttentionCase(32, 8, 64, 8, 64, 4, rng),
  ];
  for (const make of cases) await measureCase(make(), reps, onRow, rows);
  return rows;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  await initBackend(flag('--backend', 'wasm'));
  await benchBlocks({ reps: Number(flag('--reps', '5')), onRow: (row) => process.stdout.write(`${JSON.stringify(row)}\n`) });
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${String(e instanceof Error ? e.stack : e)}\n`);
    process.exit(1);
  });
}
