/**
 * Sampling speed of a text-to-image pipeline folder, one process (spawned by
 * bench/run.ts --latent): loads the pipeline, warms up with one call, then
 * times generateFromText of `--n` images (`--repeats` times, median). Prints
 * one JSON line { pipeline, space, n, seconds, imagesPerSecond }.
 */
import yargs from 'yargs';
import { folderFiles } from '../src/io/pipeline';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { generateFromText, loadTextToImagePipeline } from '../src/pipelines/textToImage';
import { SamplerName } from '../src/sample/types';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('pipeline', { type: 'string', demandOption: true })
    .option('threads', { type: 'number', default: 1 })
    .option('n', { type: 'number', default: 16 })
    .option('sampler', { type: 'string', default: 'dpm-solver++' })
    .option('steps', { type: 'number', default: 20 })
    .option('guidance', { type: 'number', default: 3 })
    .option('repeats', { type: 'number', default: 3 })
    .strict()
    .parseAsync();
  await initBackend('wasm', { threads: args.threads });
  const pipeline = await loadTextToImagePipeline(folderFiles(args.pipeline));
  try {
    const run = async (): Promise<number> => {
      const t0 = performance.now();
      const images = await generateFromText(pipeline, {
        prompts: Array.from({ length: args.n }, (_, i) => `a handwritten ${i % 10}`), n: args.n,
        sampler: args.sampler as SamplerName, steps: args.steps, guidance: args.guidance, seed: 0, batchSize: args.n,
      });
      await images.data(); // the work is done when the pixels are readable
      images.dispose();
      return (performance.now() - t0) / 1000;
    };
    await run(); // warm-up: kernels compiled, buffers allocated
    const times: number[] = [];
    for (let r = 0; r < args.repeats; r++) times.push(await run());
    times.sort((a, b) => a - b);
    const seconds = times[Math.floor(times.length / 2)];
    process.stdout.write(JSON.stringify({ pipeline: args.pipeline, space: pipeline.space, params: pipeline.unet.numParameters(), n: args.n, seconds, imagesPerSecond: args.n / seconds }) + '\n');
  } finally {
    pipeline.dispose();
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
