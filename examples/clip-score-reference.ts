/**
 * What CLIP scores mean for a given CLIP: the score of REAL test images with
 * their true prompt, and with a wrong digit's prompt ("a handwritten {d+1}").
 * Generated images are read against these two numbers.
 *
 *   npx tsx examples/clip-score-reference.ts --clip checkpoints/mnist-clip-eval/clip.safetensors --n 1000
 */
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { loadClip } from '../src/train/clipTraining';
import { loadDataset } from '../src/data/load';
import { fixedBatch } from '../src/data/batches';
import { clipScore } from '../src/eval/clipScore';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('clip', { type: 'string', default: 'checkpoints/mnist-clip-eval/clip.safetensors' })
    .option('n', { type: 'number', default: 1000, describe: 'first n MNIST test digits' })
    .strict()
    .parseAsync();
  await initBackend('wasm');
  const clip = await loadClip(args.clip);
  const test = loadDataset('mnist', 'test', { limit: args.n });
  const batch = fixedBatch(test, Array.from({ length: test.count }, (_, i) => i), { padTo: clip.config.image.imageSize });
  try {
    const labels = Array.from(test.labels as Int32Array);
    const right = await clipScore(clip, batch.x, labels.map((d) => `a handwritten ${d}`));
    const wrong = await clipScore(clip, batch.x, labels.map((d) => `a handwritten ${(d + 1) % 10}`));
    process.stdout.write(`${args.clip}, ${test.count} MNIST test digits: CLIP score with the true prompt ${right.mean.toFixed(2)}, with a wrong digit's prompt ${wrong.mean.toFixed(2)}\n`);
  } finally {
    tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    clip.dispose();
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
