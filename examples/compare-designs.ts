/**
 * The side-by-side comparison of the three designs trained by
 * examples/colored-mnist-designs.ts (issue #8): for every pipeline and every
 * sampling seed, with each pipeline's own sampling defaults (its manifest's):
 *
 *   - FID against the 10,000 Colored MNIST test images, of n images generated
 *     from the captions of the first n test images (the prompt distribution of
 *     the test split, COCO style), features of the Colored MNIST classifier;
 *   - CLIP score of those images against their captions, graded by a CLIP
 *     other than the one the designs were conditioned on (--eval-clip);
 *   - conditional accuracy on those captions (the classifier's digit);
 *   - colour agreement on the 20 seen and the 20 held-out (digit, colour,
 *     background) triples, --per-prompt images each: digit (classifier),
 *     digit colour and background (measured), all three;
 *
 * mean and sample standard deviation over the seeds; then the cost:
 * parameters per part (read from the shipped weights; the text tower / CLIP
 * is the shared frozen CLIP, marked so), the training time per
 * stage (the design's budget.json) and the sampling time per image (a separate
 * timed pass of --time-n images in one batch after a warm-up, nothing else
 * running: run this script alone). Writes <out>/compare.json, compare.md and
 * a prompt grid per design (4 seen, then 4 held-out triples, 8 images each).
 *
 *   npx tsx examples/compare-designs.ts --threads 2 --out docs/designs \
 *       --eval-clip runs/clip-colored-eval/clip.safetensors \
 *       --pipeline runs/designs/latent/pipeline --pipeline runs/designs/cascade/pipeline --pipeline runs/designs/unclip/pipeline
 *
 * or, faster on several cores, one process per design without timing, then
 * the rows joined and timed alone:
 *
 *   npx tsx examples/compare-designs.ts --threads 1 --time-n 0 --out runs/compare/latent --eval-clip ... --pipeline runs/designs/latent/pipeline  # (one per design, side by side)
 *   npx tsx examples/compare-designs.ts --threads 2 --out docs/designs --merge runs/compare/latent/compare.json --merge ...
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { coloredMnistPrompt, COLORED_MNIST_HELD_OUT } from '../src/data/coloredMnist';
import { colorAgreement, ColorAgreementResult, evaluateTextPipeline, TextEvalResult } from '../src/eval/evaluateText';
import { TextPipeline } from '../src/pipelines/loadPipeline';
import { loadTextPipeline } from '../src/node/loadPipeline';
import { readPipelineManifest } from '../src/io/pipeline';
import { readSafetensorsHeader } from '../src/io/safetensorsFile';
import { readModelConfig } from '../src/io/checkpointFile';
import { saveImageGrid } from '../src/io/png';
import { writeFileAtomic } from '../src/io/atomicWrite';
import { runMain } from './text-to-image';

const GRID_TRIPLES = [[3, 0, 1], [7, 2, 0], [1, 4, 2], [8, 6, 3], ...COLORED_MNIST_HELD_OUT.slice(0, 4).map((h) => [h.digit, h.color, h.background])];
const GRID_PER_PROMPT = 8;

/** Parts that come from the shared, separately trained CLIP (frozen): listed, not counted as the design's training. */
const FROZEN_SHARED_PARTS = ['text_encoder', 'clip'];

interface SeedResult {
  readonly seed: number;
  readonly fid: number;
  readonly clipScore: number;
  readonly captionAccuracy: number;
  readonly seen: ColorAgreementResult;
  readonly heldOut: ColorAgreementResult;
}

interface DesignResult {
  readonly pipeline: string;
  readonly design: string;
  /** The row's name: the design, or design-k when several pipelines share a design (e.g. a defaults sweep). */
  readonly name: string;
  /** Parameters per part role, from the shipped weights. */
  readonly parameters: Record<string, number>;
  /** Training steps recorded in each part's weights (null when not recorded). */
  readonly steps: Record<string, number | null>;
  /** Training wall seconds per stage and the budget, from <pipeline>/../budget.json (null when absent). */
  readonly training: { budgetMinutes: number; spentSeconds: number; stages: Record<string, number> } | null;
  readonly defaults: Record<string, unknown>;
  readonly seeds: SeedResult[];
  readonly secondsPerImage: number;
  readonly timeN: number;
  readonly threads: number;
}

/** Parameters of a safetensors file: the element count of every tensor. */
async function parameterCount(file: string): Promise<number> {
  const header = await readSafetensorsHeader(file);
  let n = 0;
  for (const info of header.tensors.values()) n += info.shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Mean and sample std; a value missing from the data (null in JSON, NaN) makes both NaN, shown as n/a. */
function meanStd(values: readonly (number | null)[]): { mean: number; std: number } {
  const xs = values.map((v) => (typeof v === 'number' ? v : NaN));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

const pct = (xs: readonly (number | null)[]): string => {
  const { mean, std } = meanStd(xs.map((x) => (x === null ? null : 100 * x)));
  return Number.isFinite(mean) ? `${mean.toFixed(1)} ± ${std.toFixed(1)}` : 'n/a';
};
const num = (xs: readonly (number | null)[], digits: number): string => {
  const { mean, std } = meanStd(xs);
  return Number.isFinite(mean) ? `${mean.toFixed(digits)} ± ${std.toFixed(digits)}` : 'n/a';
};

async function timeSampling(pipeline: TextPipeline, n: number): Promise<number> {
  const prompts = [coloredMnistPrompt(3, 0, 1)];
  tf.dispose(await pipeline.generate({ prompts, n: 2, seed: 0, batchSize: n })); // warm-up: kernels, buffers
  const t0 = Date.now();
  const images = await pipeline.generate({ prompts, n, seed: 0, batchSize: n });
  await images.data(); // wait for the work, not just its scheduling
  const seconds = (Date.now() - t0) / 1000;
  images.dispose();
  return seconds / n;
}

runMain(async () => {
  const args = await yargs(hideBin(process.argv))
    .option('pipeline', { type: 'string', array: true, default: [] as string[], describe: 'pipeline folders (repeatable)' })
    .option('merge', {
      type: 'string', array: true, default: [] as string[],
      describe: 'compare.json files of earlier runs (e.g. one process per design): their rows are joined, timed again with --time-n (alone), and tabled',
    })
    .option('seeds', { type: 'string', default: '0,1,2', describe: 'sampling seeds' })
    .option('n', { type: 'number', default: 500, describe: 'images per seed for FID / CLIP score / caption accuracy' })
    .option('per-prompt', { type: 'number', default: 5, describe: 'images per (digit, colour, background) triple, 20 seen + 20 held-out triples' })
    .option('eval-clip', { type: 'string', describe: 'the CLIP that grades (not the one that conditioned the designs); needed with --pipeline' })
    .option('time-n', { type: 'number', default: 64, describe: 'images of the timed sampling pass (0: no timing)' })
    .option('batch', { type: 'number', default: 100, describe: 'images per generation batch' })
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 2 })
    .option('out', { type: 'string', default: 'docs/designs' })
    .strict()
    .parseAsync();
  const seeds = args.seeds.split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
  if (seeds.some((s) => !Number.isInteger(s))) throw new Error(`--seeds must be comma-separated integers, got "${args.seeds}"`);
  for (const p of args.pipeline) if (!fs.existsSync(p)) throw new Error(`--pipeline ${p} does not exist`);
  for (const p of args.merge) if (!fs.existsSync(p)) throw new Error(`--merge ${p} does not exist`);
  if ((args.pipeline.length === 0) === (args.merge.length === 0)) throw new Error('give either --pipeline folders to evaluate or --merge compare.json files, not both or neither');
  const evalClip = args['eval-clip'];
  if (args.pipeline.length > 0 && (evalClip === undefined || !fs.existsSync(evalClip))) throw new Error(`--eval-clip ${evalClip ?? '(missing)'}: give an existing CLIP checkpoint`);
  const log = (l: string): void => {
    process.stderr.write(l + '\n');
  };
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: log });
  fs.mkdirSync(args.out, { recursive: true });
  const command = ['npx tsx examples/compare-designs.ts', ...hideBin(process.argv)].join(' ');
  const results: DesignResult[] = [];
  if (args.merge.length > 0) {
    try {
      await mergeRuns(args.merge, args['time-n'], args.threads, args.out, command, log);
    } finally {
      shutdownBackend();
    }
    return;
  }
  const designs = await Promise.all(args.pipeline.map(async (dir) => (await readPipelineManifest(dir)).design));
  const names = designs.map((d, i) => (designs.filter((x) => x === d).length > 1 ? `${d}-${i}` : d));
  try {
    for (const [index, dir] of args.pipeline.entries()) {
      const manifest = await readPipelineManifest(dir);
      const name = names[index];
      const parameters: Record<string, number> = {};
      const steps: Record<string, number | null> = {};
      for (const [role, part] of Object.entries(manifest.parts)) {
        parameters[role] = await parameterCount(path.join(dir, part.file));
        steps[role] = (await readModelConfig(path.join(dir, part.file))).step;
      }
      const budgetFile = path.join(dir, '..', 'budget.json');
      const training = fs.existsSync(budgetFile) ? (JSON.parse(fs.readFileSync(budgetFile, 'utf8')) as DesignResult['training']) : null;
      const pipeline = await loadTextPipeline(dir);
      const seedResults: SeedResult[] = [];
      let secondsPerImage: number;
      try {
        log(`==== ${dir}: ${pipeline.describe()}`);
        const d = pipeline.defaults;
        const grid = await pipeline.generate({
          prompts: GRID_TRIPLES.flatMap(([dg, c, b]) => Array.from({ length: GRID_PER_PROMPT }, () => coloredMnistPrompt(dg, c, b))),
          n: GRID_TRIPLES.length * GRID_PER_PROMPT, seed: 0, batchSize: args.batch,
        });
        try {
          await saveImageGrid(path.join(args.out, `${name}-grid.png`), grid, { cols: GRID_PER_PROMPT });
        } finally {
          grid.dispose();
        }
        for (const seed of seeds) {
          const common = { seed, batchSize: args.batch, onLog: (l: string) => log(`  [${name} seed ${seed}] ${l}`) };
          const seen = await colorAgreement(pipeline, { ...common, perPrompt: args['per-prompt'], combinations: 'seen' });
          const heldOut = await colorAgreement(pipeline, { ...common, perPrompt: args['per-prompt'], combinations: 'held-out' });
          // evaluateTextPipeline loads the pipeline itself (its own copy).
          const e: TextEvalResult = await evaluateTextPipeline({
            ...common, pipeline: dir, n: args.n, promptSource: 'test-captions', kid: false, evalClip,
            sampler: d.sampler ?? 'dpm-solver++', steps: d.steps ?? 20, guidance: d.guidance ?? 3,
          });
          seedResults.push({ seed, fid: e.fid, clipScore: e.clipScore?.mean ?? NaN, captionAccuracy: e.accuracy ?? NaN, seen, heldOut });
          log(`  seed ${seed}: FID ${e.fid.toFixed(2)}, CLIP ${(e.clipScore?.mean ?? NaN).toFixed(2)}, caption accuracy ${(100 * (e.accuracy ?? NaN)).toFixed(1)} %, ` +
            `seen all ${(100 * seen.all).toFixed(1)} %, held-out all ${(100 * heldOut.all).toFixed(1)} %`);
        }
        secondsPerImage = args['time-n'] > 0 ? await timeSampling(pipeline, args['time-n']) : NaN;
        if (args['time-n'] > 0) log(`  sampling: ${secondsPerImage.toFixed(3)} s/image (${args['time-n']} images in one batch, ${args.threads} thread(s))`);
      } finally {
        pipeline.dispose();
      }
      results.push({
        pipeline: dir, design: manifest.design, name, parameters, steps, training, defaults: manifest.defaults ?? {}, seeds: seedResults,
        secondsPerImage, timeN: args['time-n'], threads: args.threads,
      });
      // Written after every design: a cut-short run keeps what it measured.
      await writeFileAtomic(path.join(args.out, 'compare.json'), JSON.stringify({ command, n: args.n, perPrompt: args['per-prompt'], evalClip, results }, null, 2) + '\n');
    }
    const md = comparisonMarkdown(results, { n: args.n, perPrompt: args['per-prompt'], command });
    await writeFileAtomic(path.join(args.out, 'compare.md'), md);
    process.stdout.write(md);
  } finally {
    shutdownBackend();
  }
});

interface CompareFile {
  readonly command: string;
  readonly n: number;
  readonly perPrompt: number;
  readonly evalClip: string;
  readonly results: DesignResult[];
}

/** Joins the rows of several compare.json files (same n / per-prompt / eval CLIP), times each pipeline again, writes the table. */
async function mergeRuns(files: readonly string[], timeN: number, threads: number, out: string, command: string, log: (l: string) => void): Promise<void> {
  const runs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as CompareFile);
  for (const [i, r] of runs.entries()) {
    if (!Array.isArray(r.results) || typeof r.command !== 'string') throw new Error(`--merge ${files[i]}: not a compare.json (results, command)`);
    if (r.n !== runs[0].n || r.perPrompt !== runs[0].perPrompt || r.evalClip !== runs[0].evalClip) {
      throw new Error(`--merge ${files[i]}: n ${r.n} / per-prompt ${r.perPrompt} / eval CLIP ${r.evalClip} differ from ${files[0]}'s (${runs[0].n} / ${runs[0].perPrompt} / ${runs[0].evalClip})`);
    }
  }
  const results: DesignResult[] = [];
  for (const r of runs.flatMap((x) => x.results)) {
    let timed = { secondsPerImage: r.secondsPerImage, timeN: r.timeN, threads: r.threads };
    if (timeN > 0) {
      const pipeline = await loadTextPipeline(r.pipeline);
      try {
        timed = { secondsPerImage: await timeSampling(pipeline, timeN), timeN, threads };
      } finally {
        pipeline.dispose();
      }
      log(`${r.name}: ${timed.secondsPerImage.toFixed(3)} s/image (${timeN} images in one batch, ${threads} thread(s))`);
    }
    results.push({ ...r, ...timed });
  }
  fs.mkdirSync(out, { recursive: true });
  const commands = [...runs.map((r) => r.command), command].join('`, then `');
  await writeFileAtomic(path.join(out, 'compare.json'), JSON.stringify({ command: commands, n: runs[0].n, perPrompt: runs[0].perPrompt, evalClip: runs[0].evalClip, results }, null, 2) + '\n');
  const md = comparisonMarkdown(results, { n: runs[0].n, perPrompt: runs[0].perPrompt, command: commands });
  await writeFileAtomic(path.join(out, 'compare.md'), md);
  process.stdout.write(md);
}

function comparisonMarkdown(results: readonly DesignResult[], o: { n: number; perPrompt: number; command: string }): string {
  const lines: string[] = [];
  const seedsOf = (r: DesignResult): string => r.seeds.map((s) => s.seed).join(', ');
  lines.push(`Quality (mean ± sample std over sampling seeds; FID / CLIP score / caption accuracy on n = ${o.n} images from test captions; ` +
    `colour agreement on 20 triples x ${o.perPrompt} images each, digit / colour / background / all three):`, '');
  lines.push('| design | seeds | FID | CLIP score | digit accuracy (test captions) | seen: digit / colour / background / all (%) | held-out: digit / colour / background / all (%) |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of results) {
    const s = r.seeds;
    const four = (pick: (x: SeedResult) => ColorAgreementResult): string =>
      [(a: ColorAgreementResult) => a.digit, (a: ColorAgreementResult) => a.color, (a: ColorAgreementResult) => a.background, (a: ColorAgreementResult) => a.all]
        .map((f) => pct(s.map((x) => f(pick(x))))).join(' / ');
    lines.push(`| ${r.name} | ${seedsOf(r)} | ${num(s.map((x) => x.fid), 2)} | ${num(s.map((x) => x.clipScore), 2)} | ${pct(s.map((x) => x.captionAccuracy))} % | ` +
      `${four((x) => x.seen)} | ${four((x) => x.heldOut)} |`);
  }
  lines.push('', 'Cost (parameters from the shipped weights; training wall time per stage from budget.json; sampling time per image, manifest defaults):', '');
  lines.push('| design | parameters per part (training steps) | training per stage (min) | training in all (min) | sampling (s/image) | sampling defaults |');
  lines.push('|---|---|---|---|---|---|');
  for (const r of results) {
    const params = Object.entries(r.parameters)
      .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}${FROZEN_SHARED_PARTS.includes(k) ? ' (shared CLIP, not trained here)' : r.steps[k] === null || r.steps[k] === undefined ? '' : ` (${r.steps[k]} steps)`}`)
      .join(', ');
    const stages = r.training === null ? 'n/a' : Object.entries(r.training.stages).map(([k, v]) => `${k} ${(v / 60).toFixed(1)}`).join(', ');
    const total = r.training === null ? 'n/a' : `${(r.training.spentSeconds / 60).toFixed(1)} (budget ${r.training.budgetMinutes})`;
    const defaults = Object.entries(r.defaults).filter(([k]) => k !== 'prompts').map(([k, v]) => `${k} ${String(v)}`).join(', ');
    const timing = Number.isFinite(r.secondsPerImage) ? `${r.secondsPerImage.toFixed(3)} (${r.timeN} in one batch, ${r.threads} threads)` : 'not timed';
    lines.push(`| ${r.name} | ${params} | ${stages} | ${total} | ${timing} | ${defaults} |`);
  }
  lines.push('', `Commands: \`${o.command}\``, '');
  return lines.join('\n');
}
