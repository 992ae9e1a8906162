/**
 * Throughput of the benchmark UNet (the PyTorch peer's architecture, same
 * parameter count) on one backend configuration, printed as one JSON line.
 * Run by bench/run.ts in a child process per thread count:
 *
 *   npx tsx bench/unetBench.ts --threads 1 [--cross-attn] [--size 32 --channels 1] [--steps 10 --warmup 3]
 *
 * Training step = the peer's: x0 fixed random data in [-1, 1], t uniform,
 * eps ~ N(0, 1), linear betas (1e-4..0.02, T = 1000), loss MSE(model(x_t, t), eps),
 * AdamW lr 2e-4, weight decay 0.01. Sampling = one forward pass of the batch.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { Rng, randomNormal, randomUniform } from '../src/backend/random';
import { UNet, unetConfig } from '../src/models/unet';
import { unetForwardFlops } from '../src/models/unetFlops';
import { makeSchedule } from '../src/schedule/schedule';
import { qSample } from '../src/schedule/noising';
import { AdamW } from '../src/train/adamw';

export interface UNetBenchResult {
  backend: string;
  threads: number | null;
  batch: number;
  size: number;
  channels: number;
  crossAttn: boolean;
  params: number;
  fwdGflopsPerImage: number;
  trainSteps: number;
  trainStepMedianS: number;
  trainImgPerS: number;
  sampleSteps: number;
  sampleStepMedianS: number;
  sampleImgPerS: number;
  trainGflops: number;
  peakRssMb: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'wasm' })
    .option('threads', { type: 'number', default: 1 })
    .option('batch', { type: 'number', default: 32 })
    .option('size', { type: 'number', default: 32 })
    .option('channels', { type: 'number', default: 1 })
    .option('cross-attn', { type: 'boolean', default: false })
    .option('steps', { type: 'number', default: 10 })
    .option('warmup', { type: 'number', default: 3 })
    .strict()
    .parseAsync();
  const info = await initBackend(args.backend as BackendChoice, { threads: args.threads });
  try {
    const B = args.batch;
    const S = args.size;
    const C = args.channels;
    const ctxLen = 8;
    const ctxDim = 64;
    // The peer: attention at 8x8, or at size/2 when the input is 8x8; cross-attention context [B, 8, 64].
    const cfg = unetConfig({
      inChannels: C,
      sampleSize: S,
      attentionResolutions: [S === 8 ? S / 2 : 8],
      contextDim: args['cross-attn'] ? ctxDim : null,
      addPooledContextToTime: false,
      zeroInitOutput: false,
    });
    const rng = new Rng('unet-bench');
    const net = new UNet(cfg, rng);
    const schedule = makeSchedule({ kind: 'linear', timesteps: 1000 });
    const opt = new AdamW({ weightDecay: 0.01, decayRank1: true, clipGradNorm: 0 });
    const params = net.namedParameters();
    const x0 = randomUniform([B, S, S, C], rng, -1, 1) as tf.Tensor4D;
    const context = args['cross-attn'] ? (randomNormal([B, ctxLen, ctxDim], rng) as tf.Tensor3D) : null;

    const trainStep = (): void => {
      const t = tf.tensor1d(Int32Array.from({ length: B }, () => rng.int(1000)), 'int32');
      const eps = randomNormal([B, S, S, C], rng);
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const xt = qSample(x0, t, eps, schedule) as tf.Tensor4D;
          return tf.mean(tf.square(tf.sub(net.apply({ x: xt, t, context }), eps))) as tf.Scalar;
        }),
      );
      const named = new Map(params.map(([n, v]) => [n, grads[v.name]]));
      const norm = opt.applyGradients(params, named, 2e-4);
      value.dataSync(); // the step is done when its loss is readable (the peer calls loss.item())
      tf.dispose([t, eps, value, norm, ...Object.values(grads)]);
    };
    const trainTimes: number[] = [];
    for (let i = 0; i < args.warmup + args.steps; i++) {
      const t0 = performance.now();
      trainStep();
      if (i >= args.warmup) trainTimes.push((performance.now() - t0) / 1000);
    }
    const sampleTimes: number[] = [];
    const xt = randomNormal([B, S, S, C], rng) as tf.Tensor4D;
    for (let i = 0; i < args.warmup + args.steps; i++) {
      const t = tf.fill([B], 999 - i, 'int32') as tf.Tensor1D;
      const t0 = performance.now();
      const y = net.apply({ x: xt, t, context });
      y.dataSync();
      if (i >= args.warmup) sampleTimes.push((performance.now() - t0) / 1000);
      tf.dispose([t, y]);
    }
    const fwd = unetForwardFlops(cfg, ctxLen);
    const trainImgPerS = (B * trainTimes.length) / trainTimes.reduce((a, b) => a + b, 0);
    const result: UNetBenchResult = {
      backend: info.choice,
      threads: info.threads,
      batch: B,
      size: S,
      channels: C,
      crossAttn: args['cross-attn'],
      params: net.numParameters(),
      fwdGflopsPerImage: fwd / 1e9,
      trainSteps: trainTimes.length,
      trainStepMedianS: median(trainTimes),
      trainImgPerS,
      sampleSteps: sampleTimes.length,
      sampleStepMedianS: median(sampleTimes),
      sampleImgPerS: (B * sampleTimes.length) / sampleTimes.reduce((a, b) => a + b, 0),
      trainGflops: (3 * fwd * trainImgPerS) / 1e9,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
    tf.dispose([x0, xt, ...(context ? [context] : [])]);
    opt.dispose();
    net.dispose();
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
