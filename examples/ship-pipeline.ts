/**
 * Turns a training run folder into a shipped pipeline: the EMA weights (float32,
 * or float16 for half the size) and a pipeline.json naming the part and the
 * sampling defaults; then checks that the shipped file draws what the run draws.
 *
 *   npx tsx examples/ship-pipeline.ts --run runs/mnist-pixel --out checkpoints/mnist-pixel --sampler ddpm --steps 50
 *
 * A text-to-image run (its pipeline.json has a text_encoder part) ships all its
 * parts: the UNet, the frozen text encoder and, latent, the autoencoder, with
 * the manifest's default prompts (--prompt, repeatable); --unet picks another
 * UNet file of the run (e.g. an EMA snapshot) instead of model.safetensors:
 *
 *   npx tsx examples/ship-pipeline.ts --run runs/mnist-latent --out checkpoints/mnist-latent --storage float16 \
 *       --sampler dpm-solver++ --steps 20 --guidance 3 --prompt "a handwritten 7" --prompt "a thick 3"
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { generate } from '../src/pipelines/pixelDiffusion';
import { loadPixelPipeline } from '../src/node/loadPipeline';
import { loadModelWeights, readModelConfig, saveModelWeights } from '../src/io/checkpointFile';
import { folderFiles, readPipelineManifest, writePipelineManifest } from '../src/io/pipeline';
import { generateFromText, loadTextToImagePipeline } from '../src/pipelines/textToImage';
import { writeTextPipeline } from '../src/node/writePipeline';
import { SamplerName } from '../src/sample/types';
import { WEIGHTS_FILE } from '../src/io/checkpoint';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('run', { type: 'string', default: 'runs/mnist-pixel' })
    .option('out', { type: 'string', default: 'checkpoints/mnist-pixel' })
    .option('sampler', { type: 'string', choices: ['ddpm', 'ddim', 'dpm-solver++'], default: 'ddpm', describe: 'default sampler written to the manifest' })
    .option('steps', { type: 'number', default: 50, describe: 'default sampler steps written to the manifest' })
    .option('storage', { type: 'string', choices: ['float32', 'float16'], default: 'float32', describe: 'weight storage (float16 halves the file)' })
    .option('guidance', { type: 'number', default: 1.5, describe: 'default guidance written to the manifest' })
    .option('prompt', { type: 'string', array: true, describe: 'text pipelines: default prompts written to the manifest' })
    .option('unet', { type: 'string', describe: 'text pipelines: ship this UNet file of the run instead of model.safetensors (e.g. snapshots/step_000500.safetensors)' })
    .option('backend', { type: 'string', default: 'auto' })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { onLog: (l) => process.stderr.write(l + '\n') });
  try {
    const runManifest = fs.existsSync(path.join(args.run, 'pipeline.json')) ? await readPipelineManifest(args.run) : null;
    if (runManifest !== null && Object.prototype.hasOwnProperty.call(runManifest.parts, 'text_encoder')) {
      await shipTextPipeline(args.run, args.out, {
        storage: args.storage as 'float32' | 'float16', sampler: args.sampler, steps: args.steps, guidance: args.guidance,
        prompts: args.prompt ?? [], unet: args.unet,
      });
      return;
    }
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
      storage: args.storage as 'float32' | 'float16',
    });
    await writePipelineManifest(args.out, {
      design: 'pixel',
      parts: { unet: { file: 'unet.safetensors', kind: 'unet', description: `label-conditional ${pipe.config.dataset} UNet, EMA weights after ${info.step} steps, ${args.storage}` } },
      defaults: { sampler: args.sampler, steps: args.steps, guidance: args.guidance },
    });
    // The shipped file must draw what the run's weights draw: compare a few samples (identical for float32).
    const shipped = await loadPixelPipeline(args.out);
    const labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const a = await generate(pipe, { n: 10, labels, sampler: 'ddim', steps: 10, seed: 0 });
    const b = await generate(shipped, { n: 10, labels, sampler: 'ddim', steps: 10, seed: 0 });
    const [maxDiff, meanDiff] = tf.tidy(() => {
      const d = tf.abs(tf.sub(a, b));
      return [tf.max(d).dataSync()[0], tf.mean(d).dataSync()[0]];
    });
    tf.dispose([a, b]);
    shipped.dispose();
    pipe.dispose();
    process.stdout.write(`wrote ${file} (${(fs.statSync(file).size / 1024).toFixed(0)} KB, ${args.storage}, step ${info.step}); ` +
      `|run - shipped| over 10 samples: max ${maxDiff.toFixed(4)}, mean ${meanDiff.toFixed(5)} (images in [-1, 1])\n`);
  } finally {
    shutdownBackend();
  }
}

interface TextShipOptions {
  readonly storage: 'float32' | 'float16';
  readonly sampler: string;
  readonly steps: number;
  readonly guidance: number;
  readonly prompts: readonly string[];
  readonly unet?: string;
}

/** Ships every part of a text-to-image run folder and checks the shipped pipeline draws what the run draws. */
async function shipTextPipeline(run: string, out: string, o: TextShipOptions): Promise<void> {
  const manifest = await writeTextPipeline(out, {
    run, unetFile: o.unet, storage: o.storage,
    defaults: { sampler: o.sampler as SamplerName, steps: o.steps, guidance: o.guidance, ...(o.prompts.length > 0 ? { prompts: [...o.prompts] } : {}) },
  });
  const reference = await loadTextToImagePipeline(folderFiles(run));
  if (o.unet !== undefined) await loadModelWeights(path.resolve(run, o.unet), reference.unet, { expectKind: 'unet' });
  const shipped = await loadTextToImagePipeline(folderFiles(out));
  const prompts = [...(o.prompts.length > 0 ? o.prompts : ['a handwritten 7'])];
  const a = await generateFromText(reference, { prompts, n: 10, sampler: 'ddim', steps: 10, guidance: 3, seed: 0 });
  const b = await generateFromText(shipped, { prompts, n: 10, sampler: 'ddim', steps: 10, guidance: 3, seed: 0 });
  const [maxDiff, meanDiff] = tf.tidy(() => {
    const d = tf.abs(tf.sub(a, b));
    return [tf.max(d).dataSync()[0], tf.mean(d).dataSync()[0]];
  });
  tf.dispose([a, b]);
  shipped.dispose();
  reference.dispose();
  const files = Object.values(manifest.parts).map((p) => p.file);
  const size = files.reduce((n, f) => n + fs.statSync(path.join(out, f)).size, 0);
  process.stdout.write(`wrote ${out} (${Object.keys(manifest.parts).join(', ')}: ${(size / 1024).toFixed(0)} KB, ${o.storage}); ` +
    `|run - shipped| over 10 samples: max ${maxDiff.toFixed(4)}, mean ${meanDiff.toFixed(5)} (images in [-1, 1])\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
