/**
 * Text-to-image on MNIST the DALL-E 2 way (unCLIP; Ramesh et al. 2022,
 * "Hierarchical Text-Conditional Image Generation with CLIP Latents"):
 * a frozen CLIP, a diffusion PRIOR from its text embedding to its image
 * embedding, and a diffusion DECODER from the image embedding to pixels.
 *
 *   npx tsx examples/mnist-unclip.ts                  # train the prior, then the decoder (each resumes), then write the pipeline folder
 *   npx tsx examples/mnist-unclip.ts --prior-steps 4 --decoder-steps 4 --limit 256 --out /tmp/unclip-smoke --fresh   # a smoke run
 *   npx tfjs-diffusion sample --pipeline runs/mnist-unclip/pipeline --prompt "a thick 3"
 *   npx tfjs-diffusion eval --pipeline runs/mnist-unclip/pipeline --n 1000
 *
 * Parts (pipelines/unclip.ts):
 *   - CLIP: checkpoints/mnist-clip (BPE text tower, E = 128), FROZEN; it embeds
 *     every training image and caption once (the prior's pairs, the decoder's
 *     conditioning table);
 *   - prior: a residual MLP over sqrt(E)-scaled image embeddings, predicting the
 *     clean embedding (DALL-E 2 sec. 2.1), the text embedding dropped to a
 *     learned null 10% of the time; AdamW, EMA, validated by the cosine of its
 *     sampled embeddings to the true ones on held-out test digits;
 *   - decoder: a pixel UNet at 32x32 ('small' widths 32-64-64, attention at
 *     8x8), the image embedding projected to 4 extra cross-attention tokens
 *     and added to the time embedding; v-prediction on the cosine schedule
 *     with Min-SNR-5 weighting; the embedding zeroed 10% of the time
 *     (classifier-free guidance). --with-text also feeds it the caption (the
 *     CLIP text tower's token states, dropped with the embedding).
 * Sampling (the manifest's defaults, not tuned): prior 20 DDIM steps at
 * guidance 1, decoder 20 DPM-Solver++ steps at guidance 3.
 *
 * Layout of --out: prior/ and decoder/ (run folders: checkpoints, metrics;
 * decoder/samples holds variation grids of held-out digits) and pipeline/.
 */
import * as os from 'os';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { trainUnclipDecoder, trainUnclipPrior } from '../src/recipes/unclipTraining';
import { writeUnclipPipeline } from '../src/node/writePipeline';
import { runMain } from './text-to-image';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  seed: 0,
  prior: {
    steps: 5000,
    /** Embedding pairs are cheap: a step of 256 pairs costs a few ms. */
    batchSize: 256,
    lr: 3e-4,
    warmupSteps: 100,
    condDropProb: 0.1,
    model: { width: 256, depth: 4 },
  },
  decoder: {
    steps: 4000,
    batchSize: 64,
    lr: 1e-3,
    warmupSteps: 100,
    condDropProb: 0.1,
    minSnrGamma: 5,
    unet: { attentionResolutions: [8], imageEmbeddingTokens: 4 },
  },
  sampling: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3, priorSampler: 'ddim' as const, priorSteps: 20, priorGuidance: 1 },
};

runMain(async () => {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads (with --workers 1)' })
    .option('workers', { type: 'number', default: Math.min(os.cpus().length, 2), describe: 'data-parallel worker threads (decoder)' })
    .option('clip', { type: 'string', default: 'checkpoints/mnist-clip/clip.safetensors', describe: 'the trained CLIP checkpoint' })
    .option('with-text', { type: 'boolean', default: false, describe: 'the decoder also reads the caption' })
    .option('decoder-factor', {
      type: 'number', default: 1,
      describe: 'the decoder draws the digits reduced by this factor (2: 16x16, as a cascade base stage, for a factor-2 super-resolution stage; the CLIP still embeds them at 32x32)',
    })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('prior-steps', { type: 'number', default: HYPERPARAMETERS.prior.steps })
    .option('decoder-steps', { type: 'number', default: HYPERPARAMETERS.decoder.steps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.decoder.batchSize, describe: 'decoder batch' })
    .option('storage', { type: 'string', choices: ['float32', 'float16'], default: 'float32', describe: 'weights of the written pipeline folder' })
    .option('out', { type: 'string', default: 'runs/mnist-unclip' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start both models over instead of resuming' })
    .strict()
    .parseAsync();
  const log = (l: string): void => {
    process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n');
  };
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: log });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const command = ['npx tsx examples/mnist-unclip.ts', ...hideBin(process.argv)].join(' ');
  const priorRun = path.join(args.out, 'prior');
  const decoderRun = path.join(args.out, 'decoder');
  const pipelineDir = path.join(args.out, 'pipeline');
  const common = {
    dataset: 'mnist' as const, attributes: true, limit: args.limit, clip: args.clip, resume: args.fresh ? false : ('if-present' as const), overwrite: args.fresh,
    onLog: log, signal: controller.signal, command, isTTY: process.stderr.isTTY === true,
  };
  try {
    const P = HYPERPARAMETERS.prior;
    const priorSteps = args['prior-steps'];
    log(`---- 1/2: the prior (CLIP text embedding -> CLIP image embedding) -> ${priorRun}`);
    const prior = await trainUnclipPrior({
      ...common,
      outDir: priorRun,
      prior: P.model,
      schedule: { kind: 'cosine', timesteps: 1000 },
      train: {
        steps: priorSteps, batchSize: P.batchSize, lr: P.lr, warmupSteps: Math.min(P.warmupSteps, Math.floor(priorSteps / 10)), condDropProb: P.condDropProb,
        seed: HYPERPARAMETERS.seed, logEvery: 50, checkpointEvery: 500, valEvery: 500, valSize: 512, valSteps: 20,
      },
    });
    if (prior.stoppedEarly) return;

    const D = HYPERPARAMETERS.decoder;
    const decoderSteps = args['decoder-steps'];
    const factor = args['decoder-factor'];
    log(`---- 2/2: the decoder (CLIP image embedding${args['with-text'] ? ' + caption' : ''} -> ${32 / factor}x${32 / factor} pixels) -> ${decoderRun}`);
    const decoder = await trainUnclipDecoder({
      ...common,
      outDir: decoderRun,
      withText: args['with-text'],
      factor,
      preset: 'small',
      unet: D.unet,
      predictionType: 'v',
      schedule: { kind: 'cosine', timesteps: 1000 },
      train: {
        steps: decoderSteps, batchSize: args.batch, lr: D.lr, warmupSteps: Math.min(D.warmupSteps, Math.floor(decoderSteps / 10)), condDropProb: D.condDropProb,
        minSnrGamma: D.minSnrGamma, seed: HYPERPARAMETERS.seed, workers: args.workers,
        logEvery: 25, valEvery: 250, valSize: 512, sampleEvery: 500, checkpointEvery: 100, snapshotEvery: 500,
      },
      grid: { rows: 8, perImage: 7, sampler: HYPERPARAMETERS.sampling.sampler, steps: HYPERPARAMETERS.sampling.steps, guidance: HYPERPARAMETERS.sampling.guidance },
    });
    if (decoder.stoppedEarly) return;

    await writeUnclipPipeline(pipelineDir, {
      clip: args.clip, priorRun, decoderRun, storage: args.storage as 'float32' | 'float16',
      defaults: { ...HYPERPARAMETERS.sampling, prompts: ['a handwritten 7', 'a thick 3'] },
    });
    const v = prior.lastValidation;
    process.stdout.write(`prior steps ${prior.startStep}..${prior.endStep}` +
      (v !== null ? ` (held-out cos(sampled, image) ${v.sampledCosine.toFixed(3)} vs cos(text, image) ${v.textCosine.toFixed(3)})` : '') +
      `, decoder steps ${decoder.startStep}..${decoder.endStep}; wrote ${pipelineDir}; sample with: ` +
      `npx tfjs-diffusion sample --pipeline ${pipelineDir} --prompt "a thick 3"\n`);
  } finally {
    shutdownBackend();
  }
});
