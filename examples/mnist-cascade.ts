/**
 * Text-to-image on MNIST as an Imagen-style cascade (Saharia et al. 2022;
 * Ho et al. 2022, "Cascaded Diffusion Models"): a text-conditional base model
 * at 16x16, then a text-conditional super-resolution model 16x16 -> 32x32
 * conditioned on the base model's (noise-augmented) sample.
 *
 *   npx tsx examples/mnist-cascade.ts                  # train both stages (each resumes), then write the pipeline folder
 *   npx tsx examples/mnist-cascade.ts --base-steps 4 --sr-steps 4 --limit 256 --out /tmp/cascade-smoke --fresh   # a smoke run
 *   npx tfjs-diffusion sample --pipeline runs/mnist-cascade/pipeline --prompt "a thick 3"
 *   npx tfjs-diffusion eval --pipeline runs/mnist-cascade/pipeline --n 1000
 *
 * Parts (pipelines/cascade.ts):
 *   - text encoder: the CLIP text tower of checkpoints/mnist-clip, FROZEN, shared by both stages
 *     (the token states of every caption computed once per stage);
 *   - base: the digits padded to 32x32 and averaged over 2x2 blocks (16x16, the
 *     low-res images the SR stage is conditioned on); 'small' widths 32-64-64,
 *     self- and cross-attention at 8x8 and 4x4 (cheap at this size);
 *   - super-resolution: 32x32, input [x_t, z_s] (2 channels), z_s = the 16x16
 *     version of the training image upsampled (bilinear) and noised to a level s
 *     drawn from {0, ..., 500} (conditioning augmentation), s embedded like a
 *     timestep; 'small' widths, attention (and cross-attention) only at 8x8:
 *     attention at 32x32 / 16x16 costs most of a step on wasm.
 * Objective of both: v-prediction on the cosine schedule with Min-SNR-5
 * weighting, 10% of captions dropped to the empty prompt (classifier-free
 * guidance), AdamW lr 1e-3 with warm-up and cosine decay, EMA.
 * Sampling (the manifest's defaults): base 20 DPM-Solver++ steps at guidance 3,
 * SR 20 steps at guidance 1.5 from the base sample augmented at level 100
 * (abar ~ 0.97); dynamic thresholding (p = 0.995) in both stages. The SR
 * guidance and level are not tuned yet.
 *
 * Layout of --out: base/ and sr/ (run folders: checkpoints, metrics, sample
 * grids; base/ is itself a 16x16 pixel pipeline) and pipeline/ (the cascade).
 */
import * as os from 'os';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { trainTextDiffusion, TextTrainingOptions } from '../src/recipes/textTraining';
import { writeCascadePipeline } from '../src/node/writePipeline';
import { digitPrompts } from '../src/eval/clipScore';
import { runMain } from './text-to-image';

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  baseSteps: 4000,
  srSteps: 4000,
  batchSize: 64,
  lr: 1e-3,
  warmupSteps: 100,
  condDropProb: 0.1,
  minSnrGamma: 5,
  seed: 0,
  /** Side reduction of the base stage: 32x32 (padded MNIST) -> 16x16. */
  factor: 2,
  base: { attentionResolutions: [8, 4] },
  sr: { attentionResolutions: [8], maxAugLevel: 500, resize: 'bilinear' as const },
  sampling: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3, srSteps: 20, srGuidance: 1.5, augLevel: 100 },
};
const GRID_PROMPTS = [...digitPrompts('a handwritten {n}'), 'a thick 3', 'a thin 3', 'a small 8', 'a large 8'];

runMain(async () => {
  const args = await yargs(hideBin(process.argv))
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads (with --workers 1)' })
    .option('workers', { type: 'number', default: Math.min(os.cpus().length, 2), describe: 'data-parallel worker threads' })
    .option('text-encoder', { type: 'string', default: 'checkpoints/mnist-clip/clip.safetensors', describe: 'CLIP (or text-encoder) checkpoint' })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('base-steps', { type: 'number', default: HYPERPARAMETERS.baseSteps })
    .option('sr-steps', { type: 'number', default: HYPERPARAMETERS.srSteps })
    .option('batch', { type: 'number', default: HYPERPARAMETERS.batchSize })
    .option('storage', { type: 'string', choices: ['float32', 'float16'], default: 'float32', describe: 'weights of the written pipeline folder' })
    .option('out', { type: 'string', default: 'runs/mnist-cascade' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start both stages over instead of resuming' })
    .strict()
    .parseAsync();
  const log = (l: string): void => {
    process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n');
  };
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: log });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const command = ['npx tsx examples/mnist-cascade.ts', ...hideBin(process.argv)].join(' ');
  const baseRun = path.join(args.out, 'base');
  const srRun = path.join(args.out, 'sr');
  const pipelineDir = path.join(args.out, 'pipeline');
  try {
    const stage = (steps: number): Omit<TextTrainingOptions, 'outDir' | 'unet' | 'stage'> => ({
      dataset: 'mnist',
      attributes: true,
      limit: args.limit,
      textEncoder: args['text-encoder'],
      space: 'pixel',
      preset: 'small',
      predictionType: 'v',
      schedule: { kind: 'cosine', timesteps: 1000 },
      train: {
        steps,
        batchSize: args.batch,
        lr: HYPERPARAMETERS.lr,
        warmupSteps: Math.min(HYPERPARAMETERS.warmupSteps, Math.floor(steps / 10)),
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
      resume: args.fresh ? false : 'if-present', overwrite: args.fresh,
      gridPrompts: GRID_PROMPTS,
      gridSampler: { sampler: HYPERPARAMETERS.sampling.sampler, steps: HYPERPARAMETERS.sampling.steps, guidance: HYPERPARAMETERS.sampling.guidance, perPrompt: 8 },
      onLog: log,
      signal: controller.signal,
      command,
      isTTY: process.stderr.isTTY === true,
    });

    log(`---- stage 1/2: base model 16x16 -> ${baseRun}`);
    const base = await trainTextDiffusion({
      ...stage(args['base-steps']),
      outDir: baseRun,
      unet: { attentionResolutions: HYPERPARAMETERS.base.attentionResolutions },
      stage: { kind: 'base', factor: HYPERPARAMETERS.factor },
    });
    if (base.stoppedEarly) return;

    log(`---- stage 2/2: super-resolution 16x16 -> 32x32 -> ${srRun}`);
    const sr = await trainTextDiffusion({
      ...stage(args['sr-steps']),
      outDir: srRun,
      unet: { attentionResolutions: HYPERPARAMETERS.sr.attentionResolutions },
      stage: { kind: 'super-resolution', lowRes: { factor: HYPERPARAMETERS.factor, maxAugLevel: HYPERPARAMETERS.sr.maxAugLevel, resize: HYPERPARAMETERS.sr.resize } },
      gridSampler: { ...stage(args['sr-steps']).gridSampler, guidance: HYPERPARAMETERS.sampling.srGuidance, augLevel: HYPERPARAMETERS.sampling.augLevel },
    });
    if (sr.stoppedEarly) return;

    await writeCascadePipeline(pipelineDir, {
      baseRun, srRun, storage: args.storage as 'float32' | 'float16', defaults: { ...HYPERPARAMETERS.sampling, prompts: ['a handwritten 7', 'a thick 3'] },
    });
    process.stdout.write(`base steps ${base.startStep}..${base.endStep}, SR steps ${sr.startStep}..${sr.endStep}; wrote ${pipelineDir}; sample with: ` +
      `npx tfjs-diffusion sample --pipeline ${pipelineDir} --prompt "${GRID_PROMPTS[0]}"\n`);
  } finally {
    shutdownBackend();
  }
});
