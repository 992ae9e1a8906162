/**
 * The first stage of Stable Diffusion at MNIST scale: a KL autoencoder that
 * compresses 32x32x1 digits (28x28 padded) to 8x8x4 latents, trained on its own.
 * The latent diffusion model that will run on these latents is a later stage.
 *
 *   npx tsx examples/mnist-autoencoder.ts                        # train (resumes if runs/mnist-autoencoder exists)
 *   npx tsx examples/mnist-autoencoder.ts --steps 150 --limit 2048 --out /tmp/ae-smoke   # a short smoke run
 *
 * What it does, in order:
 *   1. data: the 60k MNIST training digits, scaled to [-1, 1] and centre-padded
 *      to 32x32 with -1 (black); the test split is held out;
 *   2. model: encoder -> diagonal Gaussian q(z|x) -> decoder, with Stable
 *      Diffusion's layout (Rombach et al. 2022; CompVis ldm Encoder/Decoder):
 *      widths 32-64-64, one ResBlock per encoder level and two per decoder level,
 *      GroupNorm + SiLU, self-attention in the 8x8 mid blocks, two stride-2
 *      downsamples, so a digit becomes 8x8x4 = 256 numbers (4x fewer than its pixels);
 *   3. objective: squared-error reconstruction of a SAMPLED latent
 *      z = mean + sigma * eps plus a small KL(q || N(0, I)) (weight 1e-6 on
 *      per-element means). SD uses L1 + LPIPS + a patch GAN; on digits L1 stalls
 *      at an all-black output (the per-pixel median is background) and MSE does not;
 *   4. optimisation: AdamW, lr 1e-3, 100 warm-up steps, cosine decay, global-norm
 *      clipping at 1; no EMA (SD's autoencoder has none);
 *   5. every 250 steps: L1 / MSE / PSNR on 512 test digits, and a grid of test
 *      digits (odd columns) next to their reconstructions (even columns) in
 *      <out>/samples/; a checkpoint to resume from;
 *   6. at the end: the latent scale factor 1 / std(z) over 1024 training digits
 *      goes into autoencoder.safetensors' metadata (latent diffusion multiplies
 *      by it, as SD's 0.18215), then the test report with reconstruction FID
 *      under the shipped MNIST classifier's features.
 */
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { loadDataset } from '../src/data/load';
import { loadFeatureExtractor } from '../src/eval/features';
import { autoencoderTrainConfig, evaluateAutoencoder, trainAutoencoder, WEIGHTS_FILE } from '../src/train/autoencoderTraining';
import { loadAutoencoder } from '../src/node/pipelineParts';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  steps: 2000,
  batchSize: 32,
  lr: 1e-3,
  warmupSteps: 100,
  loss: 'mse' as const,
  klWeight: 1e-6,
  seed: 0,
  /** Architecture (AUTOENCODER_DEFAULTS spelled out): 32x32x1 -> 8x8x4. */
  autoencoder: { baseChannels: 32, channelMults: [1, 2, 2], numResBlocks: 1, latentChannels: 4, groups: 8, midAttention: true, heads: 1 },
  /** Test digits for the final report (L1, MSE, PSNR, rFID). */
  evalImages: 2000,
};

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads' })
    .option('steps', { type: 'number', default: HYPERPARAMETERS.steps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.batchSize })
    .option('limit', { type: 'number', describe: 'use only the first N training digits' })
    .option('out', { type: 'string', default: 'runs/mnist-autoencoder' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of resuming' })
    .strict()
    .parseAsync();
  const log = (l: string): void => {
    process.stderr.write(l + '\n');
  };
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: log });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    // 1. data
    const train = loadDataset('mnist', 'train', { limit: args.limit });
    const test = loadDataset('mnist', 'test');

    // 2-6. model, objective, optimisation, validation and grids, scale factor
    const result = await trainAutoencoder({
      train,
      validation: test,
      autoencoder: HYPERPARAMETERS.autoencoder,
      config: autoencoderTrainConfig({
        steps: args.steps,
        batchSize: args.batch,
        lr: HYPERPARAMETERS.lr,
        warmupSteps: HYPERPARAMETERS.warmupSteps,
        loss: HYPERPARAMETERS.loss,
        klWeight: HYPERPARAMETERS.klWeight,
        seed: HYPERPARAMETERS.seed,
        logEvery: 25,
        valEvery: 250,
        sampleEvery: 250,
        checkpointEvery: 250,
      }),
      outDir: args.out,
      resume: args.fresh ? false : 'if-present', overwrite: args.fresh,
      onLog: log,
      signal: controller.signal,
      command: ['npx tsx examples/mnist-autoencoder.ts', ...hideBin(process.argv)].join(' '),
      isTTY: process.stderr.isTTY === true,
    });
    if (result.stoppedEarly) return;

    // The report: reconstructions of held-out digits by the saved weights.
    const extractor = await loadFeatureExtractor('mnist');
    const { model, config } = await loadAutoencoder(path.join(args.out, WEIGHTS_FILE));
    try {
      const m = await evaluateAutoencoder(model, test, { count: HYPERPARAMETERS.evalImages, seed: HYPERPARAMETERS.seed, extractor });
      process.stdout.write(
        `steps ${result.startStep}..${result.endStep}: test (${m.count} digits) L1 ${m.l1.toFixed(4)}, MSE ${m.mse.toFixed(5)}, ` +
          `PSNR ${m.psnr.toFixed(2)} dB, rFID (mnist features) ${m.fid?.distance.toFixed(3) ?? 'n/a'}; latent scale factor ${config.scaleFactor ?? 'n/a'}\n`,
      );
    } finally {
      model.dispose();
      extractor.dispose();
    }
  } finally {
    shutdownBackend();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
