/**
 * The guidance trade-off of a text-to-image pipeline: FID against CLIP score
 * (and conditional accuracy) as the classifier-free guidance scale grows, the
 * curve Imagen (Saharia et al. 2022, Fig. A.11) and SD papers draw.
 *
 *   npx tsx examples/guidance-sweep.ts --pipeline checkpoints/mnist-latent --eval-clip checkpoints/mnist-clip-eval/clip.safetensors \
 *       --scales 1,1.5,2,3,5,8 --n 500 --threads 2
 *
 * For each scale: n images (prompts "a handwritten {d}", d cycling), the same
 * seed and noise at every scale, evaluated by evaluateTextPipeline (FID / KID vs
 * the test split with the dataset classifier's features, its conditional
 * accuracy, CLIP score by a CLIP other than the pipeline's own). Writes
 * <out>.jsonl (one row per scale, resumable: scales already measured are
 * skipped), <out>.md (a table with the command) and <out>.png (FID vs CLIP score).
 */
import * as fs from 'fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { evaluateTextPipeline, TextEvalResult } from '../src/eval/evaluateText';
import { SamplerName, SAMPLER_NAMES } from '../src/sample/types';
import { saveLinePlot } from '../src/io/plot';
import { writeFileAtomic } from '../src/io/atomicWrite';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('pipeline', { type: 'string', default: 'checkpoints/mnist-latent' })
    .option('eval-clip', { type: 'string', demandOption: true, describe: 'the CLIP that scores (not the pipeline\'s own text encoder)' })
    .option('scales', { type: 'string', default: '1,1.5,2,3,5,8' })
    .option('n', { type: 'number', default: 500 })
    .option('sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], default: 'dpm-solver++' })
    .option('steps', { type: 'number', default: 20 })
    .option('seed', { type: 'number', default: 0 })
    .option('batch', { type: 'number', default: 100 })
    .option('out', { type: 'string', default: 'docs/mnist-latent-guidance' })
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1 })
    .strict()
    .parseAsync();
  const scales = args.scales.split(',').map((s) => Number(s.trim()));
  if (scales.some((s) => !Number.isFinite(s) || s < 0)) throw new Error(`--scales must be numbers >= 0, got ${args.scales}`);
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  const command = ['npx tsx examples/guidance-sweep.ts', ...hideBin(process.argv)].join(' ');
  const jsonl = `${args.out}.jsonl`;
  const done = new Map<number, TextEvalResult>();
  if (fs.existsSync(jsonl)) {
    for (const line of fs.readFileSync(jsonl, 'utf8').split('\n').filter((l) => l.trim().length > 0)) {
      const r = JSON.parse(line) as TextEvalResult & { n: number };
      if (r.n === args.n && r.steps === args.steps && r.sampler === args.sampler && r.seed === args.seed) done.set(r.guidance, r);
    }
  }
  try {
    for (const guidance of scales) {
      if (done.has(guidance)) {
        process.stderr.write(`guidance ${guidance}: already measured in ${jsonl}\n`);
        continue;
      }
      const r = await evaluateTextPipeline({
        pipeline: args.pipeline, n: args.n, sampler: args.sampler as SamplerName, steps: args.steps, guidance, seed: args.seed,
        kid: true, batchSize: args.batch, evalClip: args['eval-clip'], onLog: (l) => process.stderr.write(`[guidance ${guidance}] ${l}\n`),
      });
      done.set(guidance, r);
      fs.appendFileSync(jsonl, JSON.stringify(r) + '\n');
      process.stderr.write(`guidance ${guidance}: FID ${r.fid.toFixed(2)}, CLIP score ${r.clipScore?.mean.toFixed(2)}, accuracy ${r.accuracy === null ? '-' : (100 * r.accuracy).toFixed(1)}%\n`);
    }
  } finally {
    shutdownBackend();
  }
  const rows = scales.map((g) => done.get(g) as TextEvalResult);
  const md = [
    `Guidance sweep of \`${args.pipeline}\`: n = ${args.n} per scale, ${args.sampler} ${args.steps} steps, seed ${args.seed}; FID / KID against the test split ` +
      `(${rows[0].features} features), CLIP score by \`${args['eval-clip']}\`.`,
    '',
    '| guidance | FID | KID | CLIP score | conditional accuracy | s / image |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.guidance} | ${r.fid.toFixed(2)} | ${r.kid === null ? '-' : `${r.kid.mean.toPrecision(3)} +- ${r.kid.std.toPrecision(2)}`} | ` +
      `${r.clipScore === null ? '-' : `${r.clipScore.mean.toFixed(2)} +- ${r.clipScore.std.toFixed(2)}`} | ${r.accuracy === null ? '-' : `${(100 * r.accuracy).toFixed(1)}%`} | ${r.secondsPerImage.toFixed(3)} |`),
    '',
    `Command: \`${command}\``,
    '',
  ].join('\n');
  await writeFileAtomic(`${args.out}.md`, md);
  saveLinePlot(`${args.out}.png`, [{ name: `FID vs CLIP score, guidance ${scales.join(', ')}`, xs: rows.map((r) => r.clipScore?.mean ?? NaN), ys: rows.map((r) => r.fid) }],
    { width: 640, height: 400, title: 'guidance sweep: FID (y) against CLIP score (x)' });
  process.stdout.write(md);
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
