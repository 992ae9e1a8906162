/**
 * Turns a training run folder into a small shipped pipeline: the EMA weights
 * stored as float16 (half the size; samples are checked against float32 below)
 * and a pipeline.json naming the part and the sampling defaults.
 *
 *   npx tsx examples/ship-pipeline.ts --run runs/mnist-pixel --out checkpoints/mnist-pixel
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { loadPixelPipeline, generate } from '../src/pipelines/pixelDiffusion';
import { readModelConfig, saveModelWeights } from '../src/train/checkpoint';
import { writePipelineManifest } from '../src/io/pipeline';
import { WEIGHTS_FILE } from '../src/train/loop';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('run', { type: 'string', default: 'runs/mnist-pixel' })
    .option('out', { type: 'string', default: 'checkpoints/mnist-pixel' })
    .option('steps', { type: 'number', default: 20, describe: 'default sampler steps written to the manifest' })
    .option('guidance', { type: 'number', default: 1.5, describe: 'default guidance written to the manifest' })
    .option('backend', { type: 'string', default: 'auto' })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { onLog: (l) => process.stderr.write(l + '\n') });
  try {
    const source = path.join(args.run, WEIGHTS_FILE);
    const info = await readModelConfig(source);
    const pipe = await loadPixelPipeline(source);
    fs.mkdirSync(args.out, { recursive: true });
    const file = path.join(args.out, 'unet.safetensors');
    await saveModelWeights(file, pipe.unet, {
      kind: 'unet',
      config: info.config,
      step: info.step ?? undefined,
      seed: info.seed ?? undefined,
      command: info.command ?? undefined, // the command that trained it, not this export
      storage: 'float16',
    });
    await writePipelineManifest(args.out, {
      design: 'pixel',
      parts: { unet: { file: 'unet.safetensors', kind: 'unet', description: `label-conditional ${pipe.config.dataset} UNet, EMA weights after ${info.step} steps, float16` } },
      defaults: { sampler: 'dpm-solver++', steps: args.steps, guidance: args.guidance },
    });
    // float16 storage must not change what the model draws: compare a few samples.
    const shipped = await loadPixelPipeline(args.out);
    const labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const a = await generate(pipe, { n: 10, labels, steps: 10, seed: 0 });
    const b = await generate(shipped, { n: 10, labels, steps: 10, seed: 0 });
    const maxDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    tf.dispose([a, b]);
    shipped.dispose();
    pipe.dispose();
    process.stdout.write(`wrote ${file} (${(fs.statSync(file).size / 1024).toFixed(0)} KB, step ${info.step}); max |float32 - float16 sample| = ${maxDiff.toFixed(4)} (images in [-1, 1])\n`);
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
