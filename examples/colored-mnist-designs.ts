/**
 * The three text-to-image designs of the notes trained on Colored MNIST under
 * one CPU-time budget each, all stages included, for the side-by-side
 * comparison of issue #8 (evaluated by examples/compare-designs.ts):
 *
 *   latent  (Stable Diffusion): KL autoencoder 32x32x3 -> 8x8x4, the training
 *           set encoded once, a text-conditional UNet on the latents;
 *   cascade (Imagen): a text-conditional 16x16 base model, then a
 *           text-conditional 16x16 -> 32x32 super-resolution model with noise
 *           augmentation of its low-res input;
 *   unclip  (DALL-E 2): a diffusion prior from the CLIP text embedding to the
 *           CLIP image embedding, then a 32x32 decoder conditioned on the image
 *           embedding (4 tokens + time) and the caption.
 *
 *   npx tsx examples/colored-mnist-designs.ts --design latent --budget 90 --out runs/designs/latent
 *   npx tsx examples/colored-mnist-designs.ts --design cascade --budget 90 --out runs/designs/cascade
 *   npx tsx examples/colored-mnist-designs.ts --design unclip --budget 90 --out runs/designs/unclip
 *   npx tsx examples/colored-mnist-designs.ts --design latent --budget 2 --limit 256 --ae-steps 20 --out /tmp/designs-smoke   # a smoke run
 *
 * The budget is wall-clock minutes from the first stage's start to the end of
 * the last stage's training (data preparation, latent encoding and CLIP
 * embedding of the training set, sample grids and checkpoints all count); it
 * survives restarts: the time spent is kept in <out>/budget.json and a rerun
 * resumes the interrupted stage with what is left. Stages with a fixed size
 * (the autoencoder's and the prior's steps) run to the end; the UNet stages
 * train with a constant learning rate (after warm-up) and an EMA of the
 * weights until their share of the budget is used: the cascade's base stage
 * for half the budget (its training loop's time), every last stage until the
 * whole budget is spent (the deadline every trainer checks after each step).
 * Stages of a fixed size do not stop at the deadline: if they use it all, the
 * next stage takes one step. Then the pipeline folder <out>/pipeline is
 * written (float16 weights) and the per-stage times land in budget.json.
 *
 * Shared by the three and not counted: the frozen CLIP (examples/train-clip.ts
 * --dataset colored-mnist), whose text tower conditions every UNet and whose
 * embeddings the prior and decoder use. Common to all UNets: the 'small'
 * preset (widths 32-64-64), v-prediction on the cosine schedule, Min-SNR-5
 * weighting, 10% of captions dropped (classifier-free guidance), AdamW lr 1e-3,
 * batch 64, seed 0, one worker. The colours of the data are drawn with seed 0
 * and the 20 held-out (digit, colour, background) triples never appear in any
 * stage's training data.
 */
import * as fs from 'fs';
import * as path from 'path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend, shutdownBackend, BackendChoice } from '../src/backend/backend';
import { coloredMnistPrompt, COLORED_MNIST_HELD_OUT } from '../src/data/coloredMnist';
import { loadClassifierSplit } from '../src/eval/trainClassifier';
import { autoencoderTrainConfig, trainAutoencoder, WEIGHTS_FILE as AUTOENCODER_FILE } from '../src/train/autoencoderTraining';
import { TrainConfig } from '../src/train/trainConfig';
import { STATE_FILE } from '../src/train/diffusionTraining';
import { trainTextDiffusion, TextTrainingOptions } from '../src/recipes/textTraining';
import { trainUnclipDecoder, trainUnclipPrior } from '../src/recipes/unclipTraining';
import { writeCascadePipeline } from '../src/node/writePipeline';
import { writeTextPipeline } from '../src/node/writePipeline';
import { writeUnclipPipeline } from '../src/node/writePipeline';
import { BudgetClock, readBudgetRecord } from '../src/train/timeBudget';
import { runMain } from './text-to-image';

export const DESIGNS = ['latent', 'cascade', 'unclip'] as const;
export type DesignName = (typeof DESIGNS)[number];

// ---------------------------------------------------------------- hyperparameters
const HYPERPARAMETERS = {
  seed: 0,
  unet: { batchSize: 64, lr: 1e-3, warmupSteps: 100, condDropProb: 0.1, minSnrGamma: 5 },
  /** More steps than any budget here reaches: the time budget ends the UNet stages. */
  unetStepCap: 1_000_000,
  /** The sample grids written while training (every design's first stage; the SR stage adds its guidance and level). */
  grid: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3, perPrompt: 8 },
  autoencoder: { steps: 400, batchSize: 16, lr: 1e-3, warmupSteps: 40, klWeight: 1e-6, model: { baseChannels: 32, channelMults: [1, 2, 2], latentChannels: 4 } },
  latent: { attentionResolutions: [4], sampling: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3 } },
  cascade: {
    baseShare: 0.5,
    factor: 2,
    base: { attentionResolutions: [8, 4] },
    sr: { attentionResolutions: [8], maxAugLevel: 500, resize: 'bilinear' as const },
    sampling: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3, srSteps: 20, srGuidance: 1.5, augLevel: 100 },
  },
  unclip: {
    prior: { steps: 1000, batchSize: 256, lr: 3e-4, warmupSteps: 100, condDropProb: 0.1, model: { width: 256, depth: 4 } },
    decoder: { attentionResolutions: [8], imageEmbeddingTokens: 4 },
    sampling: { sampler: 'dpm-solver++' as const, steps: 20, guidance: 3, priorSampler: 'ddim' as const, priorSteps: 20, priorGuidance: 1 },
  },
};

const SEEN_PROMPTS = [[3, 0, 1], [7, 2, 0], [1, 4, 2], [8, 6, 3]].map(([d, c, b]) => coloredMnistPrompt(d, c, b));
const HELD_OUT_PROMPTS = COLORED_MNIST_HELD_OUT.slice(0, 4).map((h) => coloredMnistPrompt(h.digit, h.color, h.background));
const GRID_PROMPTS = [...SEEN_PROMPTS, ...HELD_OUT_PROMPTS];

runMain(async () => {
  const args = await yargs(hideBin(process.argv))
    .option('design', { type: 'string', choices: DESIGNS as unknown as string[], demandOption: true })
    .option('budget', { type: 'number', default: 90, describe: 'wall-clock minutes for all stages of the design' })
    .option('backend', { type: 'string', default: 'auto' })
    .option('threads', { type: 'number', default: 1, describe: 'wasm threads' })
    .option('clip', { type: 'string', default: 'runs/clip-colored/clip.safetensors', describe: 'the frozen Colored MNIST CLIP' })
    .option('limit', { type: 'number', describe: 'first N training images only' })
    .option('ae-steps', { type: 'number', default: HYPERPARAMETERS.autoencoder.steps, describe: 'latent: autoencoder steps' })
    .option('prior-steps', { type: 'number', default: HYPERPARAMETERS.unclip.prior.steps, describe: 'unclip: prior steps' })
    .option('out', { type: 'string', describe: 'run folder (default runs/designs/<design>)' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of resuming' })
    .strict()
    .parseAsync();
  const design = args.design as DesignName;
  if (!(Number.isFinite(args.budget) && args.budget > 0)) throw new Error(`--budget must be a positive number of minutes, got ${args.budget}`);
  if (!fs.existsSync(args.clip)) throw new Error(`--clip ${args.clip} does not exist: train it first (npx tsx examples/train-clip.ts --dataset colored-mnist --out runs/clip-colored)`);
  const out = args.out ?? path.join('runs', 'designs', design);
  if (args.fresh) fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const log = (l: string): void => {
    process.stderr.write(l.endsWith('\n') || l.startsWith('\r') ? l : l + '\n');
  };
  const budgetFile = path.join(out, 'budget.json');
  const budget = readBudgetRecord(budgetFile, design, args.budget);
  if (budget.finished) {
    log(`${out}: already finished (${(budget.spentSeconds / 60).toFixed(1)} of ${budget.budgetMinutes} min); pipeline in ${path.join(out, 'pipeline')}`);
    return;
  }
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: log });
  const controller = new AbortController();
  // Ctrl-C or kill: the running stage finishes its step, writes a checkpoint and returns (rerun to resume).
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  const clock = new BudgetClock(budgetFile, budget);
  clock.save();
  const deadline = clock.deadline;
  log(`${design}: budget ${args.budget} min, ${(budget.spentSeconds / 60).toFixed(1)} spent before this run`);
  const command = ['npx tsx examples/colored-mnist-designs.ts', ...hideBin(process.argv)].join(' ');
  const pipelineDir = path.join(out, 'pipeline');
  // The stages log every few steps: each line also keeps the budget record current.
  const stageLog = (l: string): void => {
    log(l);
    clock.tick();
  };
  const common = { signal: controller.signal, onLog: stageLog, command, isTTY: process.stderr.isTTY === true };
  const U = HYPERPARAMETERS.unet;
  const unetTrain = (extra: Partial<TrainConfig> = {}): Partial<TrainConfig> => ({
    steps: HYPERPARAMETERS.unetStepCap, batchSize: U.batchSize, lr: U.lr, warmupSteps: U.warmupSteps, lrDecay: 'constant',
    condDropProb: U.condDropProb, minSnrGamma: U.minSnrGamma, seed: HYPERPARAMETERS.seed, workers: 1,
    logEvery: 25, valEvery: 500, valSize: 512, sampleEvery: 1000, checkpointEvery: 100, snapshotEvery: 1000, ...extra,
  });
  const textStage = (outDir: string): Omit<TextTrainingOptions, 'space' | 'unet' | 'stage' | 'train'> => ({
    ...common, dataset: 'colored-mnist', attributes: false, limit: args.limit, textEncoder: args.clip,
    preset: 'small', predictionType: 'v', schedule: { kind: 'cosine', timesteps: 1000 }, outDir, resume: 'if-present',
    gridPrompts: GRID_PROMPTS, gridSampler: HYPERPARAMETERS.grid,
  });

  /** A last stage whose deadline has passed and which has trained already (a rerun after the budget): nothing to add. */
  const spentAlready = (runDir: string, what: string): boolean => {
    const done = clock.deadlineReached && fs.existsSync(path.join(runDir, STATE_FILE));
    if (done) log(`---- ${what}: the budget is spent and ${runDir} holds its checkpoint: not trained further`);
    return done;
  };

  try {
    if (design === 'latent') {
      const aeRun = path.join(out, 'autoencoder');
      const A = { ...HYPERPARAMETERS.autoencoder, steps: args['ae-steps'] };
      log(`---- 1/2: KL autoencoder 32x32x3 -> 8x8x4 (${A.steps} steps) -> ${aeRun}`);
      const ae = await clock.stage('autoencoder', () => trainAutoencoder({
        ...common,
        train: loadClassifierSplit('colored-mnist', 'train', { limit: args.limit }),
        validation: loadClassifierSplit('colored-mnist', 'test', { limit: 512 }),
        autoencoder: A.model,
        config: autoencoderTrainConfig({
          steps: A.steps, batchSize: A.batchSize, lr: A.lr, warmupSteps: Math.min(A.warmupSteps, Math.floor(A.steps / 10)), klWeight: A.klWeight,
          loss: 'mse', logEvery: 25, valEvery: 200, sampleEvery: 200, checkpointEvery: 50, seed: HYPERPARAMETERS.seed,
        }),
        outDir: aeRun,
        resume: 'if-present',
      }));
      if (ae.stoppedEarly) {
        log('interrupted in the autoencoder stage: run the same command to resume');
        return;
      }
      const unetRun = path.join(out, 'unet');
      if (!spentAlready(unetRun, '2/2: latent UNet')) {
        log(`---- 2/2: latent UNet until ${clock.leftMinutes().toFixed(1)} more minutes are spent -> ${unetRun}`);
        const unet = await clock.stage('unet', () => trainTextDiffusion({
          ...textStage(unetRun),
          space: 'latent',
          autoencoder: path.join(aeRun, AUTOENCODER_FILE),
          unet: { attentionResolutions: HYPERPARAMETERS.latent.attentionResolutions },
          train: unetTrain(),
          deadline,
        }));
        if (unet.stoppedEarly) return;
      }
    } else if (design === 'cascade') {
      const C = HYPERPARAMETERS.cascade;
      const baseRun = path.join(out, 'base');
      const srRun = path.join(out, 'sr');
      // The loop counts its own training time across restarts (its metrics keep the wall time), so the base's
      // share is given whole; its data preparation (caption states) is seconds.
      const baseMinutes = C.baseShare * args.budget;
      log(`---- 1/2: base model 16x16, ${baseMinutes.toFixed(1)} min of training -> ${baseRun}`);
      if (clock.spent() / 60 < baseMinutes) {
        const base = await clock.stage('base', () => trainTextDiffusion({
          ...textStage(baseRun),
          space: 'pixel',
          unet: { attentionResolutions: C.base.attentionResolutions },
          stage: { kind: 'base', factor: C.factor },
          train: unetTrain({ timeBudgetMinutes: baseMinutes }),
          deadline,
        }));
        if (base.stoppedEarly) return;
      }
      if (!spentAlready(srRun, '2/2: super-resolution')) {
        log(`---- 2/2: super-resolution 16x16 -> 32x32 until ${clock.leftMinutes().toFixed(1)} more minutes are spent -> ${srRun}`);
        const sr = await clock.stage('sr', () => trainTextDiffusion({
          ...textStage(srRun),
          space: 'pixel',
          unet: { attentionResolutions: C.sr.attentionResolutions },
          stage: { kind: 'super-resolution', lowRes: { factor: C.factor, maxAugLevel: C.sr.maxAugLevel, resize: C.sr.resize } },
          train: unetTrain(),
          gridSampler: { ...HYPERPARAMETERS.grid, guidance: C.sampling.srGuidance, augLevel: C.sampling.augLevel },
          deadline,
        }));
        if (sr.stoppedEarly) return;
      }
    } else {
      const P = { ...HYPERPARAMETERS.unclip.prior, steps: args['prior-steps'] };
      const priorRun = path.join(out, 'prior');
      const decoderRun = path.join(out, 'decoder');
      const clipData = { dataset: 'colored-mnist' as const, attributes: false, limit: args.limit, clip: args.clip, resume: 'if-present' as const };
      log(`---- 1/2: the prior (${P.steps} steps) -> ${priorRun}`);
      const prior = await clock.stage('prior', () => trainUnclipPrior({
        ...common, ...clipData,
        outDir: priorRun,
        prior: P.model,
        schedule: { kind: 'cosine', timesteps: 1000 },
        train: {
          steps: P.steps, batchSize: P.batchSize, lr: P.lr, warmupSteps: Math.min(P.warmupSteps, Math.floor(P.steps / 10)), condDropProb: P.condDropProb,
          seed: HYPERPARAMETERS.seed, logEvery: 100, checkpointEvery: 500, valEvery: 1000, valSize: 512, valSteps: 20,
        },
      }));
      if (prior.stoppedEarly) {
        log('interrupted in the prior stage: run the same command to resume');
        return;
      }
      if (!spentAlready(decoderRun, '2/2: the decoder')) {
        log(`---- 2/2: the decoder (image embedding + caption) until ${clock.leftMinutes().toFixed(1)} more minutes are spent -> ${decoderRun}`);
        const S = HYPERPARAMETERS.unclip.sampling;
        const decoder = await clock.stage('decoder', () => trainUnclipDecoder({
          ...common, ...clipData,
          outDir: decoderRun,
          withText: true,
          preset: 'small',
          unet: HYPERPARAMETERS.unclip.decoder,
          predictionType: 'v',
          schedule: { kind: 'cosine', timesteps: 1000 },
          train: unetTrain(),
          grid: { rows: 8, perImage: 7, sampler: S.sampler, steps: S.steps, guidance: S.guidance },
          deadline,
        }));
        if (decoder.stoppedEarly) return;
      }
    }
    clock.stop(); // the pipeline's writing is not training time
    clock.save();
    log(`training done: ${(budget.spentSeconds / 60).toFixed(1)} of ${args.budget} min; writing ${pipelineDir}`);
    await writeDesignPipeline(design, out, args.clip);
    clock.save(true);
    process.stdout.write(`${design}: stages ${Object.entries(budget.stages).map(([k, v]) => `${k} ${(v / 60).toFixed(1)} min`).join(', ')}; ` +
      `pipeline ${pipelineDir}; sample with: npx tfjs-diffusion sample --pipeline ${pipelineDir} --prompt "${SEEN_PROMPTS[0]}"\n`);
  } finally {
    clock.stop();
    clock.save();
    shutdownBackend();
  }
});

/** The pipeline folder of a trained design: <out>/pipeline, float16 weights. */
async function writeDesignPipeline(design: DesignName, out: string, clip: string): Promise<void> {
  const pipelineDir = path.join(out, 'pipeline');
  const prompts = [SEEN_PROMPTS[0], HELD_OUT_PROMPTS[0]];
  if (design === 'latent') {
    await writeTextPipeline(pipelineDir, { run: path.join(out, 'unet'), storage: 'float16', defaults: { ...HYPERPARAMETERS.latent.sampling, prompts } });
  } else if (design === 'cascade') {
    await writeCascadePipeline(pipelineDir, {
      baseRun: path.join(out, 'base'), srRun: path.join(out, 'sr'), storage: 'float16', defaults: { ...HYPERPARAMETERS.cascade.sampling, prompts },
    });
  } else {
    await writeUnclipPipeline(pipelineDir, {
      clip, priorRun: path.join(out, 'prior'), decoderRun: path.join(out, 'decoder'), storage: 'float16',
      defaults: { ...HYPERPARAMETERS.unclip.sampling, prompts },
    });
  }
}
