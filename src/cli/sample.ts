/** `sample`: images from a trained pixel pipeline (folder with pipeline.json, or a UNet .safetensors). */
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { SAMPLER_NAMES, SamplerName } from '../sample/types';
import { generate, loadPixelPipeline, GENERATE_DEFAULTS } from '../pipelines/pixelDiffusion';
import { saveImageGrid, saveImages } from '../io/png';
import { BackendArgs, parseIntList, runWithBackend, withBackendOptions } from './common';

interface SampleArgs extends BackendArgs {
  pipeline: string;
  label?: string;
  n: number;
  sampler?: string;
  steps?: number;
  guidance?: number;
  seed: number;
  out: string;
  'out-dir'?: string;
  cols?: number;
  clip: string;
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

export const sampleCommand: CommandModule<object, SampleArgs> = {
  command: 'sample',
  describe: 'Generate images from a trained pipeline and write a PNG grid (and, with --out-dir, one PNG per image)',
  builder: (y) =>
    withBackendOptions(y)
      .option('pipeline', { type: 'string', default: 'checkpoints/mnist-pixel', describe: 'pipeline folder (pipeline.json) or UNet .safetensors' })
      .option('label', { type: 'string', describe: 'class id(s) or name(s), comma-separated; default: every class, one row each' })
      .option('n', { type: 'number', default: 8, describe: 'images (per class when --label is not given)' })
      .option('sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], describe: `default: the pipeline's, else ${GENERATE_DEFAULTS.sampler}` })
      .option('steps', { type: 'number', describe: `denoiser evaluations (default: the pipeline's, else ${GENERATE_DEFAULTS.steps})` })
      .option('guidance', { type: 'number', describe: `classifier-free guidance scale, 1 = none (default: the pipeline's, else ${GENERATE_DEFAULTS.guidance})` })
      .option('clip', { type: 'string', choices: ['static', 'dynamic', 'none'], default: 'static', describe: 'x0 clipping: [-1,1], Imagen dynamic thresholding (p=0.995), or none' })
      .option('seed', { type: 'number', default: 0 })
      .option('out', { type: 'string', default: 'samples.png', describe: 'grid PNG path' })
      .option('out-dir', { type: 'string', describe: 'also write each image as its own PNG here' })
      .option('cols', { type: 'number', describe: 'grid columns (default: n when sampling every class)' }) as never,
  handler: async (args) =>
    runWithBackend(args, async () => {
      const started = Date.now();
      const pipeline = await loadPixelPipeline(args.pipeline);
      try {
        const labels = parseLabels(args.label, pipeline.config.classNames, args.n);
        const n = labels === null ? args.n : labels.length;
        const clip = args.clip === 'static' ? ({ kind: 'static', value: 1 } as const) : args.clip === 'dynamic' ? ({ kind: 'dynamic', percentile: 0.995 } as const) : ({ kind: 'none' } as const);
        const sampler = (args.sampler as SamplerName | undefined) ?? pipeline.defaults.sampler ?? GENERATE_DEFAULTS.sampler;
        const steps = args.steps ?? pipeline.defaults.steps ?? GENERATE_DEFAULTS.steps;
        const guidance = args.guidance ?? pipeline.defaults.guidance ?? GENERATE_DEFAULTS.guidance;
        const images = await generate(pipeline, { n, labels, sampler, steps, guidance, seed: args.seed, clip });
        try {
          fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
          const cols = args.cols ?? (args.label === undefined ? args.n : Math.min(n, 8));
          await saveImageGrid(args.out, images, { cols });
          if (args['out-dir'] !== undefined) {
            fs.mkdirSync(args['out-dir'], { recursive: true });
            await saveImages(args['out-dir'], images, 'sample_');
          }
        } finally {
          images.dispose();
        }
        const secs = (Date.now() - started) / 1000;
        process.stdout.write(`wrote ${args.out}: ${n} images, ${sampler} ${steps} steps, guidance ${guidance}, seed ${args.seed} (${secs.toFixed(1)} s)\n`);
      } finally {
        pipeline.dispose();
      }
    }),
};
