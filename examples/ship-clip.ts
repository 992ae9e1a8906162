/**
 * Ships a trained CLIP: its weights (float16 halves the file) with the
 * training metadata, and the zero-shot accuracy of the shipped file on the
 * MNIST test split (an RGB CLIP: digit / colour / background retrieval on the
 * Colored MNIST test digits, seen and held-out triples), measured here (so the
 * number belongs to what is shipped).
 *
 *   npx tsx examples/ship-clip.ts --run runs/clip-mnist --out checkpoints/mnist-clip --storage float16
 *   npx tsx examples/ship-clip.ts --run runs/clip-colored --out checkpoints/colored-mnist-clip
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { CLIP_WEIGHTS_FILE } from '../src/train/clipTraining';
import { loadClip } from '../src/node/pipelineParts';
import { readModelConfig, saveModelWeights } from '../src/io/checkpointFile';
import { loadDataset } from '../src/data/load';
import { coloredMnistAccuracy, digitPrompts, zeroShotAccuracy } from '../src/eval/clipScore';
import { loadColoredMnist } from '../src/data/coloredMnist';

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('run', { type: 'string', default: 'runs/clip-mnist' })
    .option('out', { type: 'string', default: 'checkpoints/mnist-clip' })
    .option('storage', { type: 'string', choices: ['float32', 'float16'], default: 'float16' })
    .option('eval-limit', { type: 'number', default: 10000, describe: 'test digits for the zero-shot / retrieval accuracy' })
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1 })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  try {
    const source = path.join(args.run, CLIP_WEIGHTS_FILE);
    const info = await readModelConfig(source);
    const clip = await loadClip(source);
    fs.mkdirSync(args.out, { recursive: true });
    const file = path.join(args.out, CLIP_WEIGHTS_FILE);
    await saveModelWeights(file, clip, {
      kind: info.kind, config: info.config, step: info.step ?? undefined, seed: info.seed ?? undefined, command: info.command ?? undefined,
      storage: args.storage as 'float32' | 'float16',
    });
    clip.dispose();
    for (const extra of ['caption-thresholds.json']) {
      if (fs.existsSync(path.join(args.run, extra))) fs.copyFileSync(path.join(args.run, extra), path.join(args.out, extra));
    }
    const shipped = await loadClip(file);
    const size = `${(fs.statSync(file).size / 1024).toFixed(0)} KB, ${args.storage}, step ${info.step}`;
    try {
      if (shipped.config.image.inChannels === 3) {
        // An RGB CLIP: Colored MNIST retrieval on the test digits coloured with seen and with held-out triples.
        const lines: string[] = [];
        for (const combinations of ['seen', 'held-out'] as const) {
          const data = loadColoredMnist('test', { seed: 0, limit: args['eval-limit'], combinations });
          const r = (await coloredMnistAccuracy(shipped, data)).overall;
          lines.push(`${combinations} (${data.dataset.count} digits): digit ${pct(r.digit)}, colour ${pct(r.color)}, background ${pct(r.background)}, all three ${pct(r.all)}`);
        }
        process.stdout.write(`wrote ${file} (${size}); Colored MNIST retrieval of the shipped file: ${lines.join('; ')}\n`);
      } else {
        const test = loadDataset('mnist', 'test', { limit: args['eval-limit'] });
        const zs = await zeroShotAccuracy(shipped, test, digitPrompts('a handwritten {n}'));
        process.stdout.write(`wrote ${file} (${size}); zero-shot MNIST test accuracy of the shipped file ("a handwritten {n}"): ${pct(zs.accuracy)} on ${test.count} digits\n`);
      }
    } finally {
      shipped.dispose();
    }
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
