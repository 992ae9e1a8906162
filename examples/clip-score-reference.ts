/**
 * What CLIP scores mean for a given CLIP: the score of REAL test images with
 * their true prompt, and with a wrong digit's prompt ("a handwritten {d+1}").
 * Generated images are read against these two numbers. With --dataset
 * colored-mnist: the test images' own captions (seed 0, as the comparison of
 * the designs asks with), and the caption of the next test image as the wrong one.
 *
 *   npx tsx examples/clip-score-reference.ts --clip checkpoints/mnist-clip-eval/clip.safetensors --n 1000
 *   npx tsx examples/clip-score-reference.ts --dataset colored-mnist --clip checkpoints/colored-mnist-clip-eval/clip.safetensors --n 300
 */
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend } from '../src/backend/backend';
import { loadClip } from '../src/node/pipelineParts';
import { loadDataset } from '../src/data/load';
import { loadCaptionedDataset } from '../src/data/captioned';
import { fixedBatch } from '../src/data/batches';
import { clipScore } from '../src/eval/clipScore';

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('clip', { type: 'string', default: 'checkpoints/mnist-clip-eval/clip.safetensors' })
    .option('n', { type: 'number', default: 1000, describe: 'first n test digits' })
    .option('dataset', { type: 'string', choices: ['mnist', 'colored-mnist'], default: 'mnist' })
    .strict()
    .parseAsync();
  await initBackend('wasm');
  const clip = await loadClip(args.clip);
  const colored = args.dataset === 'colored-mnist';
  const test = colored ? loadCaptionedDataset('colored-mnist', 'test', { seed: 0, limit: args.n }) : loadDataset('mnist', 'test', { limit: args.n });
  const batch = fixedBatch(test, Array.from({ length: test.count }, (_, i) => i), { padTo: clip.config.image.imageSize });
  try {
    const labels = Array.from(test.labels as Int32Array);
    const captions = test.captions ?? [];
    const truePrompts = colored ? [...captions] : labels.map((d) => `a handwritten ${d}`);
    const wrongPrompts = colored ? captions.map((_, i) => captions[(i + 1) % captions.length]) : labels.map((d) => `a handwritten ${(d + 1) % 10}`);
    const right = await clipScore(clip, batch.x, truePrompts);
    const wrong = await clipScore(clip, batch.x, wrongPrompts);
    process.stdout.write(`${args.clip}, ${test.count} ${args.dataset} test images: CLIP score with the true prompt ${right.mean.toFixed(2)}, ` +
      `with a wrong ${colored ? "(the next image's) caption" : "digit's prompt"} ${wrong.mean.toFixed(2)}\n`);
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
