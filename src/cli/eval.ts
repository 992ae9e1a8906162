/**
 * `eval`: FID / KID against the test split and conditional accuracy of a trained
 * pipeline. A pipeline folder with a 'text_encoder' part (pixel, latent or
 * cascade design) is evaluated from one prompt per class (plus CLIP score with --eval-clip, attribute agreement with
 * --attributes, colour agreement on seen and held-out Colored MNIST triples with --colors); anything else as a
 * class-conditional / unconditional pixel pipeline.
 */
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { DATASET_NAMES, isDatasetName } from '../data/load';
import { SAMPLER_NAMES, SamplerName } from '../sample/types';
import { evaluatePixelPipeline, evalMarkdownRow, EVAL_TABLE_HEADER } from '../eval/evaluatePixel';
import {
  attributeAgreementOf, AttributeAgreementResult, attributeAgreementTable, colorAgreement, ColorAgreementResult, colorAgreementTable,
  evaluateTextPipeline, evalPrompts, isTextEvalDataset, isTextPipelineFolder, TEXT_EVAL_DATASETS, TEXT_EVAL_TABLE_HEADER, textEvalMarkdownRow,
} from '../eval/evaluateText';
import { TEXT_GENERATE_DEFAULTS } from '../pipelines/textToImage';
import { CASCADE_GENERATE_DEFAULTS } from '../pipelines/cascade';
import { loadTextPipeline } from '../node/loadPipeline';
import { samplingDefaults } from '../pipelines/pixelDiffusion';
import { readPipelineManifest } from '../io/pipeline';
import { PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { writeFileAtomic } from '../io/atomicWrite';
import { BackendArgs, commandLine, runWithBackend, withBackendOptions } from './common';

interface EvalArgs extends BackendArgs {
  pipeline: string;
  dataset?: string;
  'data-dir'?: string;
  n: number;
  'reference-limit'?: number;
  sampler?: string;
  steps?: number;
  guidance?: number;
  seed: number;
  features?: string;
  kid: boolean;
  batch: number;
  out?: string;
  grid?: string;
  'prompt-template'?: string;
  'eval-clip'?: string;
  attributes: boolean;
  'attribute-n': number;
  colors: boolean;
  'color-n': number;
}

const DATASET_CHOICES: string[] = [...new Set<string>([...DATASET_NAMES, ...TEXT_EVAL_DATASETS])];
/** Sampling defaults of the class path (text pipelines take their manifest's, then TEXT_GENERATE_DEFAULTS). */
const PIXEL_SAMPLING = { sampler: 'dpm-solver++' as SamplerName, steps: 20, guidance: 1.5 };

const log = (l: string): void => {
  process.stderr.write(l + '\n');
};

/** The CLIP-score prompt of each class of a class pipeline's dataset (index = label). */
function classPromptsFor(dataset: string, template: string | undefined): string[] {
  if (!isTextEvalDataset(dataset)) throw new Error(`--eval-clip: no class prompts for dataset '${dataset}' (${TEXT_EVAL_DATASETS.join(', ')})`);
  return evalPrompts(dataset, template).prompts;
}

async function evalPixel(args: EvalArgs): Promise<void> {
  const textOnly = [
    ...(args.attributes ? ['attributes'] : []),
    ...(args.colors ? ['colors'] : []),
  ];
  if (textOnly.length > 0) throw new Error(`--${textOnly.join(', --')}: only for text-to-image pipelines (a folder whose ${PIPELINE_MANIFEST_FILE} has a 'text_encoder' part); ${args.pipeline} is not one`);
  const dataset = args.dataset ?? 'mnist';
  if (!isDatasetName(dataset)) throw new Error(`--dataset ${dataset}: class pipelines are evaluated against ${DATASET_NAMES.join(', ')}`);
  const result = await evaluatePixelPipeline({
    pipeline: args.pipeline,
    dataset,
    dataDir: args['data-dir'],
    n: args.n,
    referenceLimit: args['reference-limit'],
    sampler: (args.sampler as SamplerName | undefined) ?? PIXEL_SAMPLING.sampler,
    steps: args.steps ?? PIXEL_SAMPLING.steps,
    guidance: args.guidance ?? PIXEL_SAMPLING.guidance,
    seed: args.seed,
    features: args.features,
    kid: args.kid,
    batchSize: args.batch,
    gridFile: args.grid,
    evalClip: args['eval-clip'],
    classPrompts: args['eval-clip'] === undefined ? undefined : classPromptsFor(dataset, args['prompt-template']),
    onLog: log,
  });
  if (args.out !== undefined) await writeFileAtomic(args.out, JSON.stringify({ ...result, command: commandLine() }, null, 2) + '\n');
  for (const note of result.fidNotes) process.stderr.write(`note: ${note}\n`);
  process.stdout.write(`${EVAL_TABLE_HEADER}\n${evalMarkdownRow(result, commandLine())}\n`);
}

async function evalText(args: EvalArgs): Promise<void> {
  const dataset = args.dataset;
  if (dataset !== undefined && !isTextEvalDataset(dataset)) throw new Error(`--dataset ${dataset}: text pipelines are evaluated against ${TEXT_EVAL_DATASETS.join(', ')}`);
  const manifest = await readPipelineManifest(args.pipeline);
  const d = samplingDefaults(manifest.defaults, path.join(args.pipeline, PIPELINE_MANIFEST_FILE));
  const fallback = manifest.design === 'cascade' ? CASCADE_GENERATE_DEFAULTS : TEXT_GENERATE_DEFAULTS;
  const sampler = (args.sampler as SamplerName | undefined) ?? d.sampler ?? fallback.sampler;
  const steps = args.steps ?? d.steps ?? fallback.steps;
  const guidance = args.guidance ?? d.guidance ?? fallback.guidance;
  // Colours first: a pipeline that is not Colored MNIST is refused before the long FID run.
  let colors: ColorAgreementResult[] | null = null;
  if (args.colors) {
    const pipeline = await loadTextPipeline(args.pipeline);
    try {
      colors = [];
      for (const combinations of ['seen', 'held-out'] as const) {
        colors.push(await colorAgreement(pipeline, { perPrompt: args['color-n'], combinations, sampler, steps, guidance, seed: args.seed, batchSize: args.batch, onLog: log }));
      }
    } finally {
      pipeline.dispose();
    }
  }
  const result = await evaluateTextPipeline({
    pipeline: args.pipeline,
    dataset,
    dataDir: args['data-dir'],
    n: args.n,
    referenceLimit: args['reference-limit'],
    sampler,
    steps,
    guidance,
    seed: args.seed,
    features: args.features,
    kid: args.kid,
    batchSize: args.batch,
    gridFile: args.grid,
    promptTemplate: args['prompt-template'],
    evalClip: args['eval-clip'],
    onLog: log,
  });
  let attributes: AttributeAgreementResult | null = null;
  if (args.attributes) {
    const pipeline = await loadTextPipeline(args.pipeline);
    try {
      attributes = await attributeAgreementOf(pipeline, { perPrompt: args['attribute-n'], sampler, steps, guidance, seed: args.seed, batchSize: args.batch, onLog: log });
    } finally {
      pipeline.dispose();
    }
  }
  if (args.out !== undefined) await writeFileAtomic(args.out, JSON.stringify({ ...result, attributes, colors, command: commandLine() }, null, 2) + '\n');
  for (const note of [...result.fidNotes, ...result.notes]) process.stderr.write(`note: ${note}\n`);
  process.stdout.write(`${TEXT_EVAL_TABLE_HEADER}\n${textEvalMarkdownRow(result, commandLine())}\n`);
  if (attributes !== null) process.stdout.write(`\n${attributeAgreementTable(attributes)}\n`);
  if (colors !== null) process.stdout.write(`\n${colorAgreementTable(colors)}\n`);
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Generate n images and report FID / KID vs the test split, the conditional accuracy and (text pipelines) the CLIP score (JSON + a Markdown row)',
  builder: (y) =>
    withBackendOptions(y)
      .option('pipeline', { type: 'string', default: 'checkpoints/mnist-pixel', describe: 'pipeline folder or UNet .safetensors' })
      .option('dataset', { type: 'string', choices: DATASET_CHOICES, describe: 'reference data (its test split); default mnist, or the dataset a text pipeline was trained on (colored-mnist: text pipelines only)' })
      .option('data-dir', { type: 'string' })
      .option('n', { type: 'number', default: 1000, describe: 'images to generate (labels / class prompts cycle through the classes)' })
      .option('reference-limit', { type: 'number', describe: 'a seeded random subset of the test split (default: all)' })
      .option('sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], describe: `default ${PIXEL_SAMPLING.sampler}; text pipelines: their manifest's, else ${TEXT_GENERATE_DEFAULTS.sampler}` })
      .option('steps', { type: 'number', describe: `default ${PIXEL_SAMPLING.steps}; text pipelines: their manifest's, else ${TEXT_GENERATE_DEFAULTS.steps}` })
      .option('guidance', { type: 'number', describe: `default ${PIXEL_SAMPLING.guidance}; text pipelines: their manifest's, else ${TEXT_GENERATE_DEFAULTS.guidance}` })
      .option('seed', { type: 'number', default: 0 })
      .option('features', { type: 'string', describe: 'feature extractor (default: the dataset classifier); pixels | inception:<path> | <file>.safetensors' })
      .option('kid', { type: 'boolean', default: true, describe: 'also compute KID (unbiased at small n)' })
      .option('batch', { type: 'number', default: 100, describe: 'images per generation batch' })
      .option('out', { type: 'string', describe: 'write the result as JSON here' })
      .option('grid', { type: 'string', describe: 'write a grid of the first batch here' })
      .option('prompt-template', { type: 'string', describe: "text pipelines: one prompt per class, {n} = digit (default 'a handwritten {n}') or {class} (default 'a photo of {class}')" })
      .option('eval-clip', { type: 'string', describe: 'a CLIP checkpoint (clip.safetensors) scoring each image against its prompt (class pipelines: the prompt of its label, --prompt-template)' })
      .option('attributes', { type: 'boolean', default: false, describe: "MNIST text pipelines: also measure whether 'a thick / thin / small / large {n}' gives what it asks" })
      .option('attribute-n', { type: 'number', default: 10, describe: 'images per attribute prompt (word x digit) for --attributes' })
      .option('colors', { type: 'boolean', default: false, describe: "Colored MNIST text pipelines: also measure whether 'a red 3 on a navy background' gives that digit, colour and background, on 20 seen and the 20 held-out triples" })
      .option('color-n', { type: 'number', default: 5, describe: 'images per colour prompt (triple) for --colors' }) as never,
  handler: async (args) =>
    runWithBackend(args, async () => {
      if (await isTextPipelineFolder(args.pipeline)) await evalText(args);
      else await evalPixel(args);
    }),
};
