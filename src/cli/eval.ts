/** `eval`: FID / KID against the test split and conditional accuracy of a trained pipeline. */
import type { CommandModule } from 'yargs';
import { DATASET_NAMES, DatasetName } from '../data/load';
import { SAMPLER_NAMES, SamplerName } from '../sample/types';
import { evaluatePixelPipeline, evalMarkdownRow, EVAL_TABLE_HEADER } from '../pipelines/evaluatePixel';
import { writeFileAtomic } from '../io/atomicWrite';
import { BackendArgs, commandLine, runWithBackend, withBackendOptions } from './common';

interface EvalArgs extends BackendArgs {
  pipeline: string;
  dataset: string;
  'data-dir'?: string;
  n: number;
  'reference-limit'?: number;
  sampler: string;
  steps: number;
  guidance: number;
  seed: number;
  features?: string;
  kid: boolean;
  batch: number;
  out?: string;
  grid?: string;
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Generate n images and report FID / KID vs the test split and the conditional accuracy (JSON + a Markdown row)',
  builder: (y) =>
    withBackendOptions(y)
      .option('pipeline', { type: 'string', default: 'checkpoints/mnist-pixel', describe: 'pipeline folder or UNet .safetensors' })
      .option('dataset', { type: 'string', choices: DATASET_NAMES as unknown as string[], default: 'mnist', describe: 'reference data (its test split)' })
      .option('data-dir', { type: 'string' })
      .option('n', { type: 'number', default: 1000, describe: 'images to generate (labels cycle through the classes)' })
      .option('reference-limit', { type: 'number', describe: 'a seeded random subset of the test split (default: all)' })
      .option('sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], default: 'dpm-solver++' })
      .option('steps', { type: 'number', default: 20 })
      .option('guidance', { type: 'number', default: 1.5 })
      .option('seed', { type: 'number', default: 0 })
      .option('features', { type: 'string', describe: 'feature extractor (default: the dataset classifier); pixels | inception:<path> | <file>.safetensors' })
      .option('kid', { type: 'boolean', default: true, describe: 'also compute KID (unbiased at small n)' })
      .option('batch', { type: 'number', default: 100, describe: 'images per generation batch' })
      .option('out', { type: 'string', describe: 'write the result as JSON here' })
      .option('grid', { type: 'string', describe: 'write a grid of the first batch here' }) as never,
  handler: async (args) =>
    runWithBackend(args, async () => {
      const result = await evaluatePixelPipeline({
        pipeline: args.pipeline,
        dataset: args.dataset as DatasetName,
        dataDir: args['data-dir'],
        n: args.n,
        referenceLimit: args['reference-limit'],
        sampler: args.sampler as SamplerName,
        steps: args.steps,
        guidance: args.guidance,
        seed: args.seed,
        features: args.features,
        kid: args.kid,
        batchSize: args.batch,
        gridFile: args.grid,
        onLog: (l) => process.stderr.write(l + '\n'),
      });
      if (args.out !== undefined) await writeFileAtomic(args.out, JSON.stringify({ ...result, command: commandLine() }, null, 2) + '\n');
      for (const note of result.fidNotes) process.stderr.write(`note: ${note}\n`);
      process.stdout.write(`${EVAL_TABLE_HEADER}\n${evalMarkdownRow(result, commandLine())}\n`);
    }),
};
