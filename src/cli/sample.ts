/**
 * `sample`: images from a trained pipeline, which one decided by its manifest:
 * a text-to-image pipeline (pixel or latent with a text_encoder part, a
 * cascade, unclip) takes --prompt; a class-conditional pixel pipeline (or a
 * bare UNet .safetensors) --label; an unclip pipeline also takes --image (PNG
 * files): DALL-E 2's image variations, each image's CLIP embedding decoded
 * --n times (one row per image, the input first).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import * as tf from '@tensorflow/tfjs';
import { SAMPLER_NAMES, SamplerName } from '../sample/types';
import { ClipMode } from '../sample/thresholding';
import { checkGuidance } from '../sample/guidance';
import { MAX_TIMESTEPS } from '../schedule/betas';
import { generate, GENERATE_DEFAULTS } from '../pipelines/pixelDiffusion';
import { loadPixelPipeline, loadTextPipeline } from '../node/loadPipeline';
import { TEXT_GENERATE_DEFAULTS } from '../pipelines/textToImage';
import { CASCADE_GENERATE_DEFAULTS } from '../pipelines/cascade';
import { GenerateProgress } from '../pipelines/progress';
import { loadUnclipPipeline, UNCLIP_GENERATE_DEFAULTS } from '../pipelines/unclip';
import { imageVariations } from '../pipelines/unclipVariations';
import { folderFiles, readPipelineManifest } from '../io/pipeline';
import { isTextPipelineFolder } from '../eval/evaluateText';
import { loadPngTensor, saveImageGrid, saveImages } from '../io/png';
import { BackendArgs, runWithBackend, withBackendOptions } from './common';

interface SampleArgs extends BackendArgs {
  pipeline: string;
  label?: string;
  prompt?: string[];
  image?: string[];
  n: number;
  sampler?: string;
  steps?: number;
  guidance?: number;
  seed: number;
  out: string;
  'out-dir'?: string;
  cols?: number;
  clip?: string;
}

/** Labels from "3" (all images), "0,1,2" (cycled), or class names, checked against the model's classes. */
function parseLabels(spec: string | undefined, classNames: readonly string[] | null, n: number): number[] | null {
  if (classNames === null) {
    if (spec !== undefined) throw new Error('--label given, but this model is unconditional');
    return null;
  }
  const items = spec === undefined ? classNames.map((_, i) => String(i)) : spec.split(',').map((s) => s.trim());
  const ids = items.map((item) => {
    const byName = classNames.indexOf(item);
    if (byName >= 0) return byName;
    const id = Number(item);
    if (!Number.isInteger(id) || id < 0 || id >= classNames.length) {
      throw new Error(`--label '${item}' is not a class of this model; classes: ${classNames.map((c, i) => `${i}=${c}`).join(', ')}`);
    }
    return id;
  });
  // Without --label: n images per class, one row each; with labels: cycle through them.
  if (spec === undefined) return ids.flatMap((id) => Array.from({ length: n }, () => id));
  return Array.from({ length: n }, (_, i) => ids[i % ids.length]);
}

function clipMode(spec: string | undefined): ClipMode | undefined {
  if (spec === undefined) return undefined;
  if (spec === 'static') return { kind: 'static', value: 1 };
  if (spec === 'dynamic') return { kind: 'dynamic', percentile: 0.995 };
  return { kind: 'none' };
}

/** Images one `sample` call may make: they are held as one tensor and one grid (4096 MNIST-sized images: ~2k x 2k pixels). */
const MAX_SAMPLE_IMAGES = 4096;

/** Bounds every number of the command line before anything loads; errors name the flag. */
function checkSampleArgs(args: SampleArgs): void {
  const int = (flag: string, v: number | undefined, min: number, max: number): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= max)) throw new Error(`--${flag} must be an integer in [${min}, ${max}], got ${v}`);
  };
  int('n', args.n, 1, MAX_SAMPLE_IMAGES);
  int('steps', args.steps, 1, MAX_TIMESTEPS);
  int('cols', args.cols, 1, 1024);
  int('seed', args.seed, 0, Number.MAX_SAFE_INTEGER);
  if (args.guidance !== undefined) checkGuidance(args.guidance, '--guidance');
  checkImageCount(Math.max(1, args.prompt?.length ?? 0, args.image?.length ?? 0), args.n);
}

/** Refuses more than MAX_SAMPLE_IMAGES images (rows may come from the manifest's prompts or the model's classes). */
function checkImageCount(rows: number, n: number): void {
  if (rows * n > MAX_SAMPLE_IMAGES) {
    throw new Error(`${rows} rows x --n ${n} = ${rows * n} images: at most ${MAX_SAMPLE_IMAGES} per call (split the job, e.g. over --seed)`);
  }
}

/** Progress of a long sampling job on stderr: one line per tenth of the denoising steps (all stages, all batches). */
function progressLines(): (p: GenerateProgress) => void {
  let shown = 0;
  return (p) => {
    const tenth = Math.floor((10 * p.step) / p.total);
    if (tenth > shown || p.step === p.total) {
      shown = tenth;
      process.stderr.write(`sampling: ${p.step}/${p.total} denoising steps (${p.stage})\n`);
    }
  };
}

interface Job {
  readonly images: tf.Tensor4D;
  readonly summary: string;
  readonly cols: number;
}

async function sampleText(args: SampleArgs): Promise<Job> {
  if (args.label !== undefined) throw new Error('--label is for class-conditional pipelines; this one is text-to-image: use --prompt');
  const pipeline = await loadTextPipeline(args.pipeline);
  try {
    const d = pipeline.defaults;
    const prompts = args.prompt !== undefined && args.prompt.length > 0 ? args.prompt : d.prompts;
    if (prompts === undefined) throw new Error('this pipeline is text-to-image: give --prompt "..." (repeat it for several rows)');
    checkImageCount(prompts.length, args.n);
    const all = prompts.flatMap((p) => Array.from({ length: args.n }, () => p));
    const fallback = pipeline.design === 'cascade' ? CASCADE_GENERATE_DEFAULTS : TEXT_GENERATE_DEFAULTS;
    const sampler = (args.sampler as SamplerName | undefined) ?? d.sampler ?? fallback.sampler;
    const steps = args.steps ?? d.steps ?? fallback.steps;
    const guidance = args.guidance ?? d.guidance ?? fallback.guidance;
    const images = await pipeline.generate({
      prompts: all, n: all.length, sampler, steps, guidance, seed: args.seed, clip: clipMode(args.clip),
      onWarn: (m) => process.stderr.write(`warning: ${m}\n`), onStep: progressLines(),
    });
    const rows = prompts.map((p) => `"${p}"`).join(', ');
    const sr = pipeline.design === 'cascade'
      ? `; super-resolution ${d.srSampler ?? sampler} ${d.srSteps ?? steps} steps, guidance ${d.srGuidance ?? guidance}, augLevel ${d.augLevel ?? 'default'}`
      : '';
    return { images, cols: args.cols ?? args.n, summary: `${all.length} images (${pipeline.design} pipeline; rows: ${rows}), ${sampler} ${steps} steps, guidance ${guidance}${sr}, seed ${args.seed}` };
  } finally {
    pipeline.dispose();
  }
}

/** Image variations of an unclip pipeline: row i = input image i, then its --n variations. */
async function sampleVariations(args: SampleArgs): Promise<Job> {
  const files = args.image ?? [];
  if (args.label !== undefined) throw new Error('--label is for class-conditional pipelines, not with --image');
  const manifest = await readPipelineManifest(args.pipeline);
  if (manifest.design !== 'unclip') throw new Error(`--image (image variations) needs an unclip pipeline; ${args.pipeline} is '${manifest.design}'`);
  for (const f of files) if (!fs.existsSync(f)) throw new Error(`--image ${f} does not exist`);
  const pipeline = await loadUnclipPipeline(folderFiles(args.pipeline), manifest);
  const inputs = tf.tidy(() => {
    const loaded = files.map((f) => loadPngTensor(f));
    const shapes = loaded.map((t) => t.shape.join('x'));
    if (new Set(shapes).size > 1) throw new Error(`--image files must have one size, got ${shapes.join(', ')}`);
    return tf.stack(loaded) as tf.Tensor4D;
  });
  try {
    const d = pipeline.defaults;
    const withText = pipeline.decoder.config.textEncoder !== null;
    const prompts = args.prompt ?? [];
    if (withText && prompts.length !== 1 && prompts.length !== files.length) {
      throw new Error(`this decoder also reads captions: give --prompt once (for all images) or once per --image (${files.length}), got ${prompts.length}`);
    }
    if (!withText && prompts.length > 0) throw new Error('this decoder is conditioned on the image embedding only: drop --prompt');
    const sampler = (args.sampler as SamplerName | undefined) ?? d.sampler ?? UNCLIP_GENERATE_DEFAULTS.sampler;
    const steps = args.steps ?? d.steps ?? UNCLIP_GENERATE_DEFAULTS.steps;
    const guidance = args.guidance ?? d.guidance ?? UNCLIP_GENERATE_DEFAULTS.guidance;
    const variations = await imageVariations(pipeline, inputs, {
      n: args.n, prompts: withText ? (prompts.length === 1 ? files.map(() => prompts[0]) : prompts) : undefined,
      sampler, steps, guidance, seed: args.seed, ...(args.clip !== undefined ? { clip: clipMode(args.clip) } : {}),
      onWarn: (m) => process.stderr.write(`warning: ${m}\n`),
    });
    // Each row: the input (resized, nearest neighbour, to the output size when they differ), then its variations.
    let images: tf.Tensor4D;
    try {
      images = tf.tidy(() => {
        const [, h, w] = variations.shape;
        const fitted = tf.image.resizeNearestNeighbor(inputs, [h, w]) as tf.Tensor4D;
        const rows = files.map((_, i) => tf.concat([tf.slice(fitted, [i, 0, 0, 0], [1, -1, -1, -1]), tf.slice(variations, [i * args.n, 0, 0, 0], [args.n, -1, -1, -1])]));
        return tf.concat(rows) as tf.Tensor4D;
      });
    } finally {
      variations.dispose();
    }
    return { images, cols: args.n + 1, summary: `${files.length} image(s) and ${args.n} variations each (unclip decoder), ${sampler} ${steps} steps, guidance ${guidance}, seed ${args.seed}` };
  } finally {
    inputs.dispose();
    pipeline.dispose();
  }
}

async function sampleClasses(args: SampleArgs): Promise<Job> {
  if (args.prompt !== undefined && args.prompt.length > 0) throw new Error(`--prompt given, but ${args.pipeline} is not a text-to-image pipeline (no text_encoder part): use --label`);
  const pipeline = await loadPixelPipeline(args.pipeline);
  try {
    const labels = parseLabels(args.label, pipeline.config.classNames, args.n);
    const n = labels === null ? args.n : labels.length;
    const rows = args.label === undefined ? n / args.n : 1; // without --label: one row of --n per class
    checkImageCount(rows, n / rows);
    const sampler = (args.sampler as SamplerName | undefined) ?? pipeline.defaults.sampler ?? GENERATE_DEFAULTS.sampler;
    const steps = args.steps ?? pipeline.defaults.steps ?? GENERATE_DEFAULTS.steps;
    const guidance = args.guidance ?? pipeline.defaults.guidance ?? GENERATE_DEFAULTS.guidance;
    const images = await generate(pipeline, { n, labels, sampler, steps, guidance, seed: args.seed, clip: clipMode(args.clip ?? 'static'), onStep: progressLines() });
    return { images, cols: args.cols ?? (args.label === undefined ? args.n : Math.min(n, 8)), summary: `${n} images, ${sampler} ${steps} steps, guidance ${guidance}, seed ${args.seed}` };
  } finally {
    pipeline.dispose();
  }
}

export const sampleCommand: CommandModule<object, SampleArgs> = {
  command: 'sample',
  describe: 'Generate images from a trained pipeline (text prompts or class labels, as its manifest says) and write a PNG grid (and, with --out-dir, one PNG per image)',
  builder: (y) =>
    withBackendOptions(y)
      .option('pipeline', { type: 'string', default: 'checkpoints/mnist-pixel', describe: 'pipeline folder (pipeline.json) or UNet .safetensors' })
      .option('prompt', { type: 'string', array: true, describe: 'text-to-image pipelines: a prompt (repeat for several; one grid row each, --n images per prompt)' })
      .option('image', { type: 'string', array: true, describe: 'unclip pipelines: image variations of these PNGs (one row each: the input, then --n variations; a text decoder also needs --prompt)' })
      .option('label', { type: 'string', describe: 'class pipelines: class id(s) or name(s), comma-separated; default: every class, one row each' })
      .option('n', { type: 'number', default: 8, describe: 'images per prompt (per class when --label is not given)' })
      .option('sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], describe: "default: the pipeline's" })
      .option('steps', { type: 'number', describe: "denoiser evaluations (default: the pipeline's)" })
      .option('guidance', { type: 'number', describe: "classifier-free guidance scale, 1 = none (default: the pipeline's)" })
      .option('clip', { type: 'string', choices: ['static', 'dynamic', 'none'], describe: 'x0 clipping: [-1,1], Imagen dynamic thresholding (p=0.995), or none (default: static in pixel space, none in latent space, dynamic in a cascade)' })
      .option('seed', { type: 'number', default: 0 })
      .option('out', { type: 'string', default: 'samples.png', describe: 'grid PNG path' })
      .option('out-dir', { type: 'string', describe: 'also write each image as its own PNG here' })
      .option('cols', { type: 'number', describe: 'grid columns (default: --n)' }) as never,
  handler: async (args) => {
    checkSampleArgs(args); // before the backend starts or anything loads
    return runWithBackend(args, async () => {
      const started = Date.now();
      const job = args.image !== undefined && args.image.length > 0 ? await sampleVariations(args)
        : (await isTextPipelineFolder(args.pipeline)) ? await sampleText(args) : await sampleClasses(args);
      try {
        fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
        await saveImageGrid(args.out, job.images, { cols: job.cols });
        if (args['out-dir'] !== undefined) {
          fs.mkdirSync(args['out-dir'], { recursive: true });
          await saveImages(args['out-dir'], job.images, 'sample_');
        }
      } finally {
        job.images.dispose();
      }
      const secs = (Date.now() - started) / 1000;
      process.stdout.write(`wrote ${args.out}: ${job.summary} (${secs.toFixed(1)} s)\n`);
    });
  },
};
