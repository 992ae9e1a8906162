/**
 * Ships a trained CLIP: its weights (float16 halves the file) with the
 * training metadata, and the zero-shot accuracy of the shipped file on the
 * MNIST test split, measured here (so the number belongs to what is shipped).
 *
 *   npx tsx examples/ship-clip.ts --run runs/clip-mnist --out checkpoints/mnist-clip --storage float16
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { CLIP_WEIGHTS_FILE, loadClip } from '../src/train/clipTraining';
import { readModelConfig, saveModelWeights } from '../src/train/checkpoint';
import { loadDataset } from '../src/data/load';
import { digitPrompts, zeroShotAccuracy } from '../src/eval/clipScore';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('run', { type: 'string', default: 'runs/clip-mnist' })
    .option('out', { type: 'string', default: 'checkpoints/mnist-clip' })
    .option('storage', { type: 'string', choices: ['float32', 'float16'], default: 'float16' })
    .option('eval-limit', { type: 'number', default: 10000, describe: 'MNIST test digits for the zero-shot accuracy' })
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
    const test = loadDataset('mnist', 'test', { limit: args['eval-limit'] });
    const zs = await zeroShotAccuracy(shipped, test, digitPrompts('a handwritten {n}'));
    shipped.dispose();
    process.stdout.write(`wrote ${file} (${(fs.statSync(file).size / 1024).toFixed(0)} KB, ${args.storage}, step ${info.step}); ` +
      `zero-shot MNIST test accuracy of the shipped file ("a handwritten {n}"): ${(100 * zs.accuracy).toFixed(2)}% on ${test.count} digits\n`);
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
