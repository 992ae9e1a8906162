/**
 * Quality against images seen: evaluates every EMA snapshot of a training run
 * (train with snapshotEvery > 0) with the same sampler and seed, and writes
 * the curve as JSON lines, a Markdown table and a plot.
 *
 *   npx tsx examples/quality-curve.ts --run runs/mnist-pixel --n 100 --every 500 --sampler ddpm --steps 50 --out docs/mnist-pixel-quality
 *
 * For each snapshot: n images (labels cycling 0..9), the given sampler, seed 0,
 * guidance 1.5; conditional accuracy by the shipped MNIST classifier and FID
 * against the test split with its features (n is small, so FID is biased
 * upward; KID, unbiased, is reported beside it).
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { evaluatePixelPipeline, PixelEvalResult } from '../src/eval/evaluatePixel';
import { readModelConfig } from '../src/io/checkpointFile';
import { readSafetensorsHeader } from '../src/io/safetensorsFile';
import { STATE_FILE } from '../src/train/diffusionTraining';
import { DatasetName } from '../src/data/load';
import { SamplerName } from '../src/sample/types';
import { saveLinePlot } from '../src/io/plot';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('run', { type: 'string', default: 'runs/mnist-pixel' })
    .option('dataset', { type: 'string', default: 'mnist' })
    .option('n', { type: 'number', default: 200 })
    .option('reference-limit', { type: 'number', default: 2000 })
    .option('sampler', { type: 'string', default: 'dpm-solver++' })
    .option('steps', { type: 'number', default: 20 })
    .option('guidance', { type: 'number', default: 1.5 })
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1 })
    .option('every', { type: 'number', default: 1, describe: 'only snapshots whose step is a multiple of this' })
    .option('out', { type: 'string', default: 'docs/mnist-pixel-quality' })
    .strict()
    .parseAsync();
  const dir = path.join(args.run, 'snapshots');
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no snapshots (train with snapshotEvery > 0)`);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new Error(`${dir}: no .safetensors snapshots`);
  // Snapshots already measured with the same settings (a previous, interrupted call) are kept, not redone.
  const jsonl = `${args.out}.jsonl`;
  const same = (r: PixelEvalResult): boolean => r.n === args.n && r.sampler === args.sampler && r.steps === args.steps && r.guidance === args.guidance;
  const rows: Array<PixelEvalResult & { images: number }> = fs.existsSync(jsonl)
    ? fs.readFileSync(jsonl, 'utf8').trim().split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as PixelEvalResult & { images: number }).filter(same)
    : [];
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  try {
    for (const f of files) {
      const file = path.join(dir, f);
      const info = await readModelConfig(file);
      if (info.step === null || info.step % args.every !== 0 || rows.some((r) => r.step === info.step)) continue;
      const r = await evaluatePixelPipeline({
        pipeline: file,
        dataset: args.dataset as DatasetName,
        n: args.n,
        referenceLimit: args['reference-limit'],
        sampler: args.sampler as SamplerName,
        steps: args.steps,
        guidance: args.guidance,
        seed: 0,
        kid: true,
        batchSize: 100,
      });
      // Images seen = step x global batch, read from the run's own state (not assumed).
      const batch = await readBatchSize(args.run);
      rows.push({ ...r, images: (info.step ?? 0) * batch });
      rows.sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
      fs.writeFileSync(jsonl, rows.map((row) => JSON.stringify(row)).join('\n') + '\n');
      process.stderr.write(`${f}: step ${info.step}, accuracy ${((r.accuracy ?? 0) * 100).toFixed(1)}%, FID ${r.fid.toFixed(1)}\n`);
    }
  } finally {
    shutdownBackend();
  }
  const md = [
    `| step | images seen | conditional accuracy | FID | KID |`,
    `|---|---|---|---|---|`,
    ...rows.map((r) => `| ${r.step} | ${r.images} | ${((r.accuracy ?? 0) * 100).toFixed(1)}% | ${r.fid.toFixed(1)} | ${r.kid?.mean.toPrecision(3) ?? '-'} |`),
  ].join('\n');
  fs.writeFileSync(`${args.out}.md`, md + '\n');
  saveLinePlot(`${args.out}.png`, [{ name: 'accuracy %', xs: rows.map((r) => r.images), ys: rows.map((r) => 100 * (r.accuracy ?? 0)) }], {
    width: 560,
    height: 340,
    title: `conditional accuracy vs images seen (n=${args.n}/snapshot)`,
  });
  process.stdout.write(md + '\n');
}

/** The run's global batch, from its training state's metadata (header only; the tensors are not read). */
async function readBatchSize(run: string): Promise<number> {
  const file = path.join(run, STATE_FILE);
  const { metadata } = await readSafetensorsHeader(file);
  const state = JSON.parse(metadata.state ?? '{}') as { config?: { batchSize?: number } };
  if (typeof state.config?.batchSize !== 'number') throw new Error(`${file}: no train config in the training state`);
  return state.config.batchSize;
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
