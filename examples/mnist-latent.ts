/**
 * Text-to-image on MNIST in the latent space of the shipped autoencoder (the
 * Stable Diffusion design at small scale): the pipeline behind the README's
 * main job.
 *
 *   npx tsx examples/mnist-latent.ts                       # train (resumes if runs/mnist-latent exists)
 *   npx tsx examples/mnist-latent.ts --steps 20 --limit 512 --out /tmp/latent-smoke --fresh   # a smoke run
 *   npx tsx examples/mnist-latent.ts --space pixel --out runs/mnist-text   # the same model on pixels (= examples/mnist-text.ts)
 *
 * Three independently trained parts:
 *   - text encoder: the text tower of the CLIP trained by examples/train-clip.ts
 *     --attributes (byte-level BPE, 4 pre-LN blocks, D = 128), FROZEN; its token
 *     states of every distinct caption are computed once;
 *   - autoencoder: checkpoints/mnist-autoencoder (32x32x1 -> 8x8x4 KL
 *     autoencoder, latent scale factor 0.603 in its metadata), FROZEN; every
 *     training digit is encoded once to its scaled posterior mean;
 *   - the UNet trained here on 8x8x4 latents: widths 64-128-128 (two levels of
 *     downsampling: 8 -> 4 -> 2), self- and cross-attention at 8x8 and 4x4,
 *     the mean-pooled text states added to the time embedding (every ResBlock
 *     sees the prompt; cross-attention alone learns the digit slowly, see
 *     examples/mnist-pixel.ts);
 * Objective: v-prediction (Salimans & Ho 2022) on the cosine schedule with
 * Min-SNR-5 weighting (eps-prediction left speckle noise under DDIM / DPM-Solver++
 * in the pixel model), 10% of captions replaced by the empty prompt for
 * classifier-free guidance. AdamW lr 1e-3, 100 warm-up steps, cosine decay, EMA.
 * Data: MNIST training digits, captions with measured attribute words
 * ("a thick 3", "the digit seven, slanted left", ...).
 *
 * The run folder is a pipeline (unet + text_encoder + vae):
 *   npx tfjs-diffusion sample --pipeline runs/mnist-latent --prompt "a thick 3"
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as os from 'os';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { trainTextDiffusion } from '../src/pipelines/textTraining';
import { digitPrompts } from '../src/eval/clipScore';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  steps: 4000,
  batchSize: 64,
  lr: 1e-3,
  warmupSteps: 100,
  condDropProb: 0.1,
  minSnrGamma: 5,
  seed: 0,
  unet: { baseChannels: 64, channelMults: [1, 2, 2], numResBlocks: 1, attentionResolutions: [8, 4], heads: 4, timeEmbeddingDim: 128 },
};

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads (with --workers 1)' })
    .option('workers', { type: 'number', default: Math.min(os.cpus().length, 2), describe: 'data-parallel worker threads' })
    .option('space', { type: 'string', choices: ['latent', 'pixel'], default: 'latent' })
    .option('text-encoder', { type: 'string', default: 'checkpoints/mnist-clip/clip.safetensors', describe: 'CLIP (or text-encoder) checkpoint' })
    .option('autoencoder', { type: 'string', default: 'checkpoints/mnist-autoencoder/autoencoder.safetensors' })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('steps', { type: 'number', default: HYPERPARAMETERS.steps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.batchSize })
    .option('out', { type: 'string', default: 'runs/mnist-latent' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of resuming' })
    .strict()
    .parseAsync();
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    const result = await trainTextDiffusion({
      dataset: 'mnist',
      attributes: true,
      limit: args.limit,
      textEncoder: args['text-encoder'],
      space: args.space as 'latent' | 'pixel',
      autoencoder: args.autoencoder,
      preset: 'small',
      unet: HYPERPARAMETERS.unet,
      predictionType: 'v',
      schedule: { kind: 'cosine', timesteps: 1000 },
      train: {
        steps: args.steps,
        batchSize: args.batch,
        lr: HYPERPARAMETERS.lr,
        warmupSteps: Math.min(HYPERPARAMETERS.warmupSteps, Math.floor(args.steps / 10)),
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
      resume: !args.fresh,
      gridPrompts: [...digitPrompts('a handwritten {n}'), 'a thick 3', 'a thin 3', 'a small 8', 'a large 8'],
      gridSampler: { sampler: 'dpm-solver++', steps: 20, guidance: 3, perPrompt: 8 },
      onLog: (l) => process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n'),
      signal: controller.signal,
      command: ['npx tsx examples/mnist-latent.ts', ...hideBin(process.argv)].join(' '),
      isTTY: process.stderr.isTTY === true,
    });
    process.stdout.write(`steps ${result.startStep}..${result.endStep}; sample with: npx tfjs-diffusion sample --pipeline ${args.out} --prompt "a thick 3"\n`);
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
