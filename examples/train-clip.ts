/**
 * A small CLIP on captioned MNIST: the text-image judge for later text-to-image runs.
 *
 *   npx tsx examples/train-clip.ts                                   # the real run (resumes if runs/clip-mnist exists)
 *   npx tsx examples/train-clip.ts --steps 30 --limit 512 --batch 64 --lr-decay constant \
 *       --eval-limit 500 --out /tmp/clip-smoke --fresh          # a tiny check (~1-2 min): the loss must fall
 *   npx tsx examples/train-clip.ts --dataset colored-mnist --out runs/clip-colored
 *   npx tsx examples/train-clip.ts --seed 1 --image-channels 32,64,128,128 --steps 600 \
 *       --out runs/clip-mnist-eval                              # a second CLIP, to grade the others' samples
 *
 * What it does, in order:
 *   1. data: MNIST training digits, each with one caption drawn from varied
 *      templates ("a handwritten 7", "the digit seven", "seven", ...), with
 *      measured attribute words ("thick", "small", "slanted left") when
 *      --attributes is on; images centre-padded to 32x32 in [-1, 1]. The
 *      captions land in <out>/captions-train.txt;
 *   2. model: image tower = a GroupNorm/SiLU CNN with three stride-2 stages
 *      (32-64-128 channels, global average pool, linear to E = 128); text tower
 *      = byte-level BPE learned from the captions (--bpe-merges 0: bytes) + 4-layer pre-LN transformer (D = 128, 4 heads), pooled
 *      at the EOS token; ~1.2M parameters in all;
 *   3. objective: symmetric InfoNCE with a learnable temperature (init 1/0.07,
 *      scale clamped at 100). Identical caption strings in a batch are all
 *      positives of each other (multi-positive targets), since MNIST repeats
 *      "the digit seven" many times;
 *   4. optimisation: AdamW lr 5e-4, 100 warm-up steps, cosine decay, weight
 *      decay 0.1, global-norm clipping at 1, batch 128. (From scratch both towers
 *      start nearly constant, cos ~0.9 between any two images' embeddings; too
 *      large a step collapses them to identical embeddings, loss log B, where the
 *      gradient vanishes: batch 64 on 512 digits collapsed at lr 1e-3 and learned
 *      at 5e-4);
 *   5. every 500 steps: zero-shot accuracy on 1000 test digits with the prompts
 *      "a handwritten 0" .. "a handwritten 9", and a checkpoint
 *      (<out>/clip.safetensors, kind 'clip', config in the metadata).
 *
 * Load the result with `loadClip('<out>/clip.safetensors')` and score images
 * with `clipScore` / `zeroShotAccuracy` (src/eval/clipScore.ts).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { CLIP_DATASETS, ClipDatasetName, trainClipOnDataset } from '../src/train/clipTraining';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  steps: 3000,
  batchSize: 128,
  lr: 5e-4,
  warmupSteps: 100,
  weightDecay: 0.1,
  evalEvery: 500,
  checkpointEvery: 500,
  seed: 0,
};

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads' })
    .option('dataset', { type: 'string', choices: CLIP_DATASETS as unknown as string[], default: 'mnist' })
    .option('attributes', { type: 'boolean', default: false, describe: 'mnist: measured attribute words in captions' })
    .option('bpe-merges', { type: 'number', default: 1000, describe: 'BPE merges learned from the captions (0 = plain bytes)' })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('eval-limit', { type: 'number', default: 1000 })
    .option('steps', { type: 'number', default: HYPERPARAMETERS.steps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.batchSize })
    .option('lr', { type: 'number', default: HYPERPARAMETERS.lr, describe: 'peak learning rate' })
    .option('lr-decay', { type: 'string', choices: ['constant', 'cosine'], default: 'cosine' })
    .option('eval-every', { type: 'number', default: HYPERPARAMETERS.evalEvery })
    .option('out', { type: 'string', default: 'runs/clip-mnist' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of resuming' })
    .option('seed', { type: 'number', default: HYPERPARAMETERS.seed, describe: 'initialisation, data order and caption draws' })
    .option('image-channels', { type: 'string', default: '32,64,128', describe: 'image tower widths, one stride-2 stage each' })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    const result = await trainClipOnDataset({
      dataset: args.dataset as ClipDatasetName,
      limit: args.limit,
      attributes: args.attributes,
      evalLimit: args['eval-limit'],
      bpeMerges: args['bpe-merges'],
      clip: { seed: args.seed, text: { seed: args.seed }, image: { channels: parseWidths(args['image-channels']) } },
      train: {
        steps: args.steps,
        batchSize: args.batch,
        lr: args.lr,
        warmupSteps: Math.min(HYPERPARAMETERS.warmupSteps, Math.floor(args.steps / 10)),
        lrDecay: args['lr-decay'] as 'constant' | 'cosine',
        weightDecay: HYPERPARAMETERS.weightDecay,
        logEvery: 10,
        evalEvery: args['eval-every'],
        checkpointEvery: HYPERPARAMETERS.checkpointEvery,
        seed: args.seed,
      },
      outDir: args.out,
      resume: args.fresh ? false : 'if-present', overwrite: args.fresh,
      onLog: (l) => process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n'),
      signal: controller.signal,
      command: ['npx tsx examples/train-clip.ts', ...hideBin(process.argv)].join(' '),
      isTTY: process.stderr.isTTY === true,
    });
    const first = result.losses.slice(0, 5);
    const last = result.losses.slice(-5);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
    process.stdout.write(
      `steps ${result.startStep}..${result.endStep}: loss ${mean(first).toFixed(3)} (first 5) -> ${mean(last).toFixed(3)} (last 5)` +
        (result.lastEval === null ? '' : `; eval ${JSON.stringify(result.lastEval)}`) + '\n',
    );
    result.clip.dispose();
  } finally {
    shutdownBackend();
  }
}

function parseWidths(text: string): number[] {
  const widths = text.split(',').map((w) => Number(w.trim()));
  if (widths.length === 0 || widths.some((w) => !Number.isInteger(w) || w <= 0)) {
    throw new Error(`--image-channels must be comma-separated positive integers, got "${text}"`);
  }
  return widths;
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
