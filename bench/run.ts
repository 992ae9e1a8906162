/**
 * `npm run bench`: measures, prints and appends to BENCHMARKS.md (with date,
 * command, CPU, cores and package versions):
 *   1. the backend's ceiling: plain matMul 1024^3 GFLOP/s;
 *   2. every building block, forward and backward, GFLOP/s and share of the ceiling;
 *   3. the benchmark UNet (PyTorch peer architecture): training and sampling
 *      images/s at 1 thread and at every core (each in its own process);
 *   4. in the same run, the PyTorch peer at 1 and 2 threads when torch is
 *      importable, and the ratios ours / PyTorch;
 *   5. the library's trainer end to end on MNIST at 1 thread, all threads, all workers.
 *   --memory: instead, RSS and live tensors over 1000 steps of a tiny model.
 *   --latent: instead, latent vs pixel text-to-image diffusion at equal UNet
 *      width: trainer images/s (text conditioning, every core as workers) and
 *      sampling time of 16 images (DPM-Solver++ 20 steps, guidance 3).
 *
 * Nothing else should run on the machine meanwhile.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { Rng, randomUniform } from '../src/backend/random';
import { UNet, unetConfig } from '../src/models/unet';
import { makeSchedule } from '../src/schedule/schedule';
import { trainDiffusion } from '../src/train/diffusionTraining';
import { trainConfig } from '../src/train/trainConfig';
import { benchBlocks, BlockBenchRow } from './blocks';
import type { UNetBenchResult } from './unetBench';

const ROOT = path.join(__dirname, '..');
const PEER = process.env.TORCH_PEER ?? path.join(ROOT, '..', 'shared', 'peers', 'torch_unet.py');

interface TorchResult {
  torch: string;
  threads: number;
  params: number;
  fwd_gflops_per_image: number | null;
  train_img_s: number;
  sample_img_s: number;
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function lastJsonLine<T>(stdout: string): T {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line === undefined) throw new Error(`no JSON result in output:\n${stdout.slice(-2000)}`);
  return JSON.parse(line) as T;
}

function runUNetBench(threads: number, extra: string[], steps: number, warmup: number): UNetBenchResult {
  const r = spawnSync(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, 'unetBench.ts'), '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup), ...extra], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`unetBench --threads ${threads} ${extra.join(' ')} failed:\n${r.stderr}`);
  return lastJsonLine<UNetBenchResult>(r.stdout);
}

/**
 * Images/s of `tfjs-diffusion train` over the second half of a short run (metrics logged every steps/2).
 * The run folder is kept in `outDir` when given (e.g. to time sampling from it), else a temporary one.
 */
function runTrainer(flags: string[], steps: number, options: { batch?: number; outDir?: string } = {}): number {
  const out = options.outDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-trainer-'));
  const half = Math.max(1, Math.floor(steps / 2));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'tfjs-diffusion.js'), 'train', '--backend', 'wasm', '--dataset', 'mnist', '--model', 'small',
    '--steps', String(2 * half), '--batch', String(options.batch ?? 32), '--log-every', String(half), '--val-every', '0', '--sample-every', '0', '--grid-steps', '1',
    '--checkpoint-every', String(10 * steps), '--out', out, ...flags], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`train ${flags.join(' ')} failed:\n${r.stderr}`);
  const rows = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; imagesPerSec: number });
  const last = rows.find((row) => row.step === 2 * half);
  if (last === undefined) throw new Error(`train ${flags.join(' ')}: no metrics row at step ${2 * half}`);
  return last.imagesPerSec;
}

interface TextSampleResult {
  space: string;
  params: number;
  n: number;
  seconds: number;
  imagesPerSecond: number;
}

function runTextSampleBench(pipeline: string, threads: number): TextSampleResult {
  const r = spawnSync(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, 'textSampleBench.ts'), '--pipeline', pipeline, '--threads', String(threads)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`textSampleBench ${pipeline} failed:\n${r.stderr}`);
  return lastJsonLine<TextSampleResult>(r.stdout);
}

/** Latent vs pixel text-to-image diffusion at equal UNet width ('small': 32-64-64), trainer and sampler. */
function latentVsPixel(say: (l?: string) => void, opts: { textEncoder: string; autoencoder: string; steps: number; cores: number }): void {
  const batch = 64;
  const spaces = [
    { space: 'pixel', label: 'pixel 32x32x1', flags: ['--space', 'pixel', '--attention-res', '8'] },
    { space: 'latent', label: 'latent 8x8x4', flags: ['--space', 'latent', '--autoencoder', opts.autoencoder, '--attention-res', '4'] },
  ];
  say(`### Latent vs pixel text-to-image diffusion (MNIST captions with attributes, frozen CLIP text tower, 'small' UNet widths 32-64-64, v-prediction)`);
  say('');
  say(`Training: \`tfjs-diffusion train --conditioning text\`, batch ${batch}, ${opts.cores} data-parallel workers, images/s over steps ${opts.steps / 2 + 1}-${opts.steps} ` +
    '(latents and caption states are computed once before step 1 and not timed). Sampling: 16 images, DPM-Solver++ 20 steps, guidance 3 (batch 32 through the UNet), ' +
    `wasm ${opts.cores} threads, median of 3 after a warm-up, decoding included.`);
  say('');
  say('| space | UNet params | train images/s | 16 images, s | sample images/s |');
  say('|---|---|---|---|---|');
  const rows: Array<{ train: number; sample: TextSampleResult }> = [];
  for (const s of spaces) {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${s.space}-`));
    const train = runTrainer(['--conditioning', 'text', '--text-encoder', opts.textEncoder, '--attributes', '--limit', '4096', '--prediction-type', 'v',
      '--workers', String(opts.cores), ...s.flags], opts.steps, { batch, outDir: out });
    const sample = runTextSampleBench(out, opts.cores);
    rows.push({ train, sample });
    say(`| ${s.label} | ${sample.params} | ${f1(train)} | ${f2(sample.seconds)} | ${f1(sample.imagesPerSecond)} |`);
    fs.rmSync(out, { recursive: true, force: true });
  }
  say('');
  say(`Latent / pixel: training ${f2(rows[1].train / rows[0].train)}x, sampling ${f2(rows[1].sample.imagesPerSecond / rows[0].sample.imagesPerSecond)}x.`);
  say('');
}

function torchAvailable(): { ok: true; version: string } | { ok: false; why: string } {
  if (!fs.existsSync(PEER)) return { ok: false, why: `the PyTorch peer script is not at ${PEER} (set TORCH_PEER)` };
  const r = spawnSync('python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) {
    return {
      ok: false,
      why: 'python3 cannot import torch. Install it as ../shared/peers/README.md says: `pip install --no-index --no-deps torch` (wheel from PIP_FIND_LINKS), else `apt-get install python3-torch`',
    };
  }
  return { ok: true, version: r.stdout.trim() };
}

function runTorch(threads: number, extra: string[], steps: number, warmup: number): TorchResult {
  const r = spawnSync('python3', [PEER, '--threads', String(threads), '--batch', '32', '--warmup', String(warmup), '--steps', String(steps), ...extra], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`torch_unet.py --threads ${threads} failed:\n${r.stderr}`);
  return lastJsonLine<TorchResult>(r.stdout);
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

async function memoryMode(steps: number, lines: string[]): Promise<void> {
  await initBackend('wasm');
  try {
    const cfg = unetConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, numClasses: 2 });
    const model = new UNet(cfg, new Rng(0));
    const ema = new UNet(cfg, new Rng(0));
    const rng = new Rng(1);
    const images = Uint8Array.from(randomUniform([64 * 64], rng, 0, 255).dataSync(), (v) => Math.floor(v));
    const data = { name: 'noise', split: 'train' as const, images, count: 64, height: 8, width: 8, channels: 1, labels: Int32Array.from({ length: 64 }, (_, i) => i % 2), classNames: ['a', 'b'], captions: null };
    const samples: Array<{ step: number; rssMb: number; tensors: number; bytes: number }> = [];
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-memory-'));
    await trainDiffusion({
      model, ema, schedule: makeSchedule({ timesteps: 100 }), train: data, validation: null,
      config: trainConfig({ steps, batchSize: 16, logEvery: 100, valEvery: 0, sampleEvery: 0, checkpointEvery: steps }),
      outDir: out, resume: false, checkpointConfig: {},
      onMetrics: (row) => samples.push({ step: row.step, rssMb: process.memoryUsage().rss / 2 ** 20, tensors: tf.memory().numTensors, bytes: tf.memory().numBytes }),
    });
    lines.push(`Tiny UNet (${model.numParameters()} parameters, 8x8, batch 16), ${steps} training steps on wasm:`, '', '| step | RSS MB | live tensors | live tensor MB |', '|---|---|---|---|');
    for (const s of samples) lines.push(`| ${s.step} | ${f1(s.rssMb)} | ${s.tensors} | ${f2(s.bytes / 2 ** 20)} |`);
    model.dispose();
    ema.dispose();
  } finally {
    shutdownBackend();
  }
}

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('reps', { type: 'number', default: 7, describe: 'repetitions per building block (median)' })
    .option('unet-steps', { type: 'number', default: 10, describe: 'timed UNet steps (after warm-up)' })
    .option('warmup', { type: 'number', default: 3 })
    .option('trainer-steps', { type: 'number', default: 16, describe: 'steps of each end-to-end trainer run (the second half is timed)' })
    .option('torch', { type: 'boolean', default: true, describe: 'also run the PyTorch peer when torch is importable' })
    .option('memory', { type: 'boolean', default: false, describe: 'only the memory-flatness run (1000 steps of a tiny model)' })
    .option('latent', { type: 'boolean', default: false, describe: 'only latent vs pixel text-to-image diffusion (trainer and sampler)' })
    .option('text-encoder', { type: 'string', default: path.join(ROOT, 'checkpoints', 'mnist-clip', 'clip.safetensors'), describe: '--latent: the CLIP whose text tower conditions both models' })
    .option('autoencoder', { type: 'string', default: path.join(ROOT, 'checkpoints', 'mnist-autoencoder', 'autoencoder.safetensors'), describe: '--latent: the autoencoder' })
    .option('latent-steps', { type: 'number', default: 20, describe: '--latent: steps of each trainer run (the second half is timed)' })
    .option('out', { type: 'string', default: path.join(ROOT, 'BENCHMARKS.md') })
    .strict()
    .parseAsync();
  const cores = os.cpus().length;
  const lines: string[] = [];
  const say = (l = ''): void => {
    lines.push(l);
    process.stdout.write(l + '\n');
  };
  const load = os.loadavg()[0];
  say(`## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC${args.memory ? ' (memory)' : args.latent ? ' (latent vs pixel)' : ''}`);
  say('');
  say(`Command: \`npm run bench${process.argv.length > 2 ? ' -- ' + hideBin(process.argv).join(' ') : ''}\``);
  say(`Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores, ${f1(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ` +
    `@tensorflow/tfjs ${pkgVersion('@tensorflow/tfjs')}, tfjs-backend-wasm ${pkgVersion('@tensorflow/tfjs-backend-wasm')}; 1-min load average at start ${f2(load)}`);
  say('');
  if (args.latent) {
    latentVsPixel(say, { textEncoder: args['text-encoder'], autoencoder: args.autoencoder, steps: args['latent-steps'], cores });
  } else if (args.memory) {
    const mem: string[] = [];
    await memoryMode(1000, mem);
    mem.forEach((l) => say(l));
  } else {
    // 1 + 2: ceiling and building blocks, single thread.
    await initBackend('wasm');
    let rows: BlockBenchRow[] = [];
    try {
      rows = await benchBlocks({ reps: args.reps, onRow: () => undefined });
    } finally {
      shutdownBackend();
    }
    const ceiling = rows[0].gflops ?? NaN;
    say(`### Building blocks (wasm, 1 thread, batch 32, median of ${args.reps})`);
    say('');
    say(`Ceiling: plain matMul 1024x1024x1024 = ${f1(ceiling)} GFLOP/s (${f1(rows[0].ms)} ms).`);
    say('');
    say('| block | shape | pass | ms | GFLOP/s | share of ceiling |');
    say('|---|---|---|---|---|---|');
    for (const r of rows.slice(1)) {
      say(`| ${r.block} | ${r.config} | ${r.pass} | ${f2(r.ms)} | ${r.gflops === null ? '-' : f1(r.gflops)} | ${r.gflops === null ? '-' : `${Math.round((100 * r.gflops) / ceiling)}%`} |`);
    }
    say('');

    // 3 + 4: the benchmark UNet, ours and PyTorch's.
    const threadCounts = [...new Set([1, cores])];
    const configs: Array<{ label: string; ours: string[]; torch: string[] }> = [
      { label: '1x32x32', ours: [], torch: [] },
      { label: '4x8x8', ours: ['--size', '8', '--channels', '4'], torch: ['--size', '8', '--channels', '4'] },
    ];
    const torch = args.torch ? torchAvailable() : ({ ok: false, why: 'skipped (--no-torch)' } as const);
    say(`### Benchmark UNet (PyTorch peer architecture), batch 32, ${args['unet-steps']} timed steps after ${args.warmup} warm-up`);
    say('');
    say(torch.ok ? `PyTorch: torch ${torch.version}, ${PEER}, same run.` : `PyTorch: not measured: ${torch.why}.`);
    say('');
    say('| input | params | threads | ours train img/s | ours sample img/s | train GFLOP/s (3x fwd) | of ceiling x threads | torch train img/s | torch sample img/s | train ours/torch | sample ours/torch | ours peak RSS MB |');
    say('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const c of configs) {
      for (const th of threadCounts) {
        const ours = runUNetBench(th, c.ours, args['unet-steps'], args.warmup);
        const t = torch.ok ? runTorch(th, c.torch, args['unet-steps'], args.warmup) : null;
        say(`| ${c.label} | ${ours.params} | ${th} | ${f1(ours.trainImgPerS)} | ${f1(ours.sampleImgPerS)} | ${f1(ours.trainGflops)} | ${Math.round((100 * ours.trainGflops) / (ceiling * th))}% | ` +
          `${t ? f1(t.train_img_s) : '-'} | ${t ? f1(t.sample_img_s) : '-'} | ${t ? f2(ours.trainImgPerS / t.train_img_s) : '-'} | ${t ? f2(ours.sampleImgPerS / t.sample_img_s) : '-'} | ${Math.round(ours.peakRssMb)} |`);
        if (t !== null && t.params !== ours.params) say(`(parameter counts differ: ours ${ours.params}, torch ${t.params})`);
      }
    }
    say('');

    // 5: the library's own trainer end to end (data, keyed noise, AdamW, EMA): threads vs data-parallel workers.
    const trainerSteps = args['trainer-steps'];
    say(`### Trainer end to end: MNIST, 'small' preset (1.11M parameters, label-conditional), batch 32, images/s over steps ${trainerSteps / 2 + 1}-${trainerSteps}`);
    say('');
    say('| configuration | images/s |');
    say('|---|---|');
    const trainerConfigs: Array<{ label: string; flags: string[] }> = [
      { label: '1 thread', flags: ['--threads', '1'] },
      ...(cores > 1 ? [{ label: `${cores} threads (threaded wasm)`, flags: ['--threads', String(cores)] }, { label: `${cores} workers (data parallel)`, flags: ['--workers', String(cores)] }] : []),
    ];
    for (const c of trainerConfigs) say(`| ${c.label} | ${f1(runTrainer(c.flags, trainerSteps))} |`);
    say('');
  }
  const header = fs.existsSync(args.out) ? '' : '# Benchmarks\n\nAppended by `npm run bench` (bench/run.ts); newest last. Every figure below was measured by the command in its section.\n\n';
  fs.appendFileSync(args.out, header + lines.join('\n') + '\n\n');
  process.stdout.write(`appended to ${args.out}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
