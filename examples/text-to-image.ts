/**
 * Text-to-image training, pixel or latent space, on a captioned dataset: the
 * shared body of examples/mnist-latent.ts (the README's main job), mnist-text.ts,
 * colored-mnist-text.ts, colored-mnist-latent.ts and cifar10-latent.ts, which
 * fix the dataset, the space and the parts. Run those; every flag below can
 * override their defaults.
 *
 * Three independently trained parts:
 *   - text encoder: the text tower of a CLIP trained by examples/train-clip.ts
 *     (byte-level BPE, 4 pre-LN blocks, D = 128), FROZEN; the token states of
 *     every distinct caption are computed once;
 *   - latent space only: an autoencoder (examples/mnist-autoencoder.ts, or
 *     `tfjs-diffusion train-autoencoder --dataset colored-mnist | cifar10`: 32x32
 *     -> 8x8x4 KL autoencoder, latent scale factor in its metadata), FROZEN; every
 *     training image is encoded once to its scaled posterior mean;
 *   - the UNet trained here: the 'small' widths 32-64-64 (one ResBlock per
 *     level), the mean-pooled text states added to the time embedding (every
 *     ResBlock sees the prompt; cross-attention alone learns the digit slowly,
 *     see examples/mnist-pixel.ts) and cross-attention to the token states where
 *     there is self-attention: 4x4 in latent space (8x8 attention runs on
 *     tfjs-wasm's slow batched-matMul path and cost a third of the step,
 *     measured with --profile), 8x8 in pixel space.
 * Objective: v-prediction (Salimans & Ho 2022) on the cosine schedule with
 * Min-SNR-5 weighting (eps-prediction left speckle noise under DDIM / DPM-Solver++
 * in the pixel model), 10% of captions replaced by the empty prompt for
 * classifier-free guidance. AdamW lr 1e-3, 100 warm-up steps, cosine decay, EMA.
 *
 * The run folder is a pipeline (unet + text_encoder [+ vae]):
 *   npx tfjs-diffusion sample --pipeline <out> --prompt "a thick 3"
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as os from 'os';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { trainTextDiffusion } from '../src/recipes/textTraining';
import { CAPTIONED_DATASETS, CaptionedDatasetName } from '../src/data/captioned';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  steps: 4000,
  batchSize: 64,
  lr: 1e-3,
  warmupSteps: 100,
  condDropProb: 0.1,
  minSnrGamma: 5,
  seed: 0,
  /** Self- and cross-attention resolutions per space (the rest is the 'small' preset). */
  attention: { latent: [4], pixel: [8] },
};

export interface TextToImageExample {
  /** The script's name, recorded in checkpoints as the command. */
  readonly script: string;
  readonly dataset: CaptionedDatasetName;
  readonly space: 'latent' | 'pixel';
  readonly attributes: boolean;
  readonly textEncoder: string;
  readonly autoencoder?: string;
  readonly out: string;
  readonly gridPrompts: readonly string[];
}

export async function runTextToImageExample(example: TextToImageExample): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads (with --workers 1)' })
    .option('workers', { type: 'number', default: Math.min(os.cpus().length, 2), describe: 'data-parallel worker threads' })
    .option('dataset', { type: 'string', choices: CAPTIONED_DATASETS as unknown as string[], default: example.dataset })
    .option('space', { type: 'string', choices: ['latent', 'pixel'], default: example.space })
    .option('text-encoder', { type: 'string', default: example.textEncoder, describe: 'CLIP (or text-encoder) checkpoint' })
    .option('autoencoder', { type: 'string', default: example.autoencoder, describe: 'latent space: the autoencoder checkpoint' })
    .option('data-dir', { type: 'string', describe: 'folder of the data (cifar10; overrides fashion-mnist)' })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('steps', { type: 'number', default: HYPERPARAMETERS.steps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.batchSize })
    .option('out', { type: 'string', default: example.out })
    .option('lr-decay', { type: 'string', choices: ['cosine', 'constant'], default: 'cosine' })
    .option('time-budget', { type: 'number', describe: 'stop after this many minutes of training (use with --lr-decay constant)' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of resuming' })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    const result = await trainTextDiffusion({
      dataset: args.dataset as CaptionedDatasetName,
      attributes: example.attributes && args.dataset === 'mnist',
      dataDir: args['data-dir'],
      limit: args.limit,
      textEncoder: args['text-encoder'],
      space: args.space as 'latent' | 'pixel',
      autoencoder: args.autoencoder,
      preset: 'small',
      unet: { attentionResolutions: HYPERPARAMETERS.attention[args.space as 'latent' | 'pixel'] },
      predictionType: 'v',
      schedule: { kind: 'cosine', timesteps: 1000 },
      train: {
        steps: args.steps,
        batchSize: args.batch,
        lr: HYPERPARAMETERS.lr,
        warmupSteps: Math.min(HYPERPARAMETERS.warmupSteps, Math.floor(args.steps / 10)),
        lrDecay: args['lr-decay'] as 'cosine' | 'constant',
        timeBudgetMinutes: args['time-budget'] ?? null,
        condDropProb: HYPERPARAMETERS.condDropProb,
        minSnrGamma: HYPERPARAMETERS.minSnrGamma,
        seed: HYPERPARAMETERS.seed,
        workers: args.workers,
        logEvery: 25,
        valEvery: 250,
        valSize: 512,
        sampleEvery: 500,
        checkpointEvery: 100,
        snapshotEvery: 500,
      },
      outDir: args.out,
      resume: args.fresh ? false : 'if-present', overwrite: args.fresh,
      gridPrompts: example.gridPrompts,
      gridSampler: { sampler: 'dpm-solver++', steps: 20, guidance: 3, perPrompt: 8 },
      onLog: (l) => process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n'),
      signal: controller.signal,
      command: [`npx tsx examples/${example.script}`, ...hideBin(process.argv)].join(' '),
      isTTY: process.stderr.isTTY === true,
    });
    process.stdout.write(`steps ${result.startStep}..${result.endStep}; sample with: npx tfjs-diffusion sample --pipeline ${args.out} --prompt "${example.gridPrompts[0]}"\n`);
  } finally {
    shutdownBackend();
  }
}

/** Runs an example's main, reporting an error as one line and exit code 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
