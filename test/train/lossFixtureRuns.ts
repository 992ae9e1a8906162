/**
 * The loss-fixture runs (issue 14): one short, seeded run of each model
 * family's trainer, returning the loss of every optimiser step as the trainer
 * reports it. Shared by the test (test/train/lossFixtures.test.ts), which
 * compares against test/fixtures/loss-fixtures.json, and by the script that
 * records that file (test/fixtures/recordLossFixtures.ts).
 *
 * The tiny setups are copied from each trainer's own test (loop, text
 * conditioning, super-resolution, CLIP, autoencoder, prior, classifier), with
 * steps = 50 and logEvery = 1, no validation or evaluation hooks (they do not
 * touch the losses), and one checkpoint at the end. Every run makes its own
 * models and data, writes to a fresh folder under os.tmpdir() and removes it.
 *
 * Changing anything here (a config value, a dataset, the order of
 * construction) changes the losses: regenerate the fixture only for a
 * deliberate, explained change, never to make the test pass.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { tinyTwoClassDataset } from '../helpers';
import { colourDataset, rotatedPairs, squaresDataset } from './tinyData';
import { Rng } from '../../src/backend/random';
import { ImageDataset } from '../../src/data/dataset';
import { UNet, unetConfig } from '../../src/models/unet';
import { TextEncoder, encodeCaptionsCached, NULL_PROMPT } from '../../src/models/textEncoder';
import { ByteTokenizer } from '../../src/models/tokenizer';
import { Clip } from '../../src/models/clip';
import { DiffusionPrior } from '../../src/models/prior';
import { makeSchedule } from '../../src/schedule/schedule';
import { lowResConfig } from '../../src/sample/lowResConditioning';
import { trainDiffusion, TrainDiffusionOptions } from '../../src/train/diffusionTraining';
import { trainConfig } from '../../src/train/trainConfig';
import { clipTrainConfig, trainClip } from '../../src/train/clipTraining';
import { autoencoderTrainConfig, trainAutoencoder } from '../../src/train/autoencoderTraining';
import { priorTrainConfig, trainPrior } from '../../src/train/priorTraining';
import { trainClassifier } from '../../src/eval/trainClassifier';

// ---------------------------------------------------------------- types

/** One family's run: the losses of its 50 steps and what was used (recorded beside them in the fixture). */
export interface FixtureRun {
  /** Loss of step 1..50, float32 values read back as JS numbers. */
  readonly losses: number[];
  /** Other values the trainer itself reports, checked bit-equal too (the classifier's finalLoss). */
  readonly reported?: Record<string, number>;
}

export interface FamilySpec {
  /** The trainer entry point, for the reader of the fixture. */
  readonly trainer: string;
  /** Short description of the setup: the overrides passed to the trainer (defaults elsewhere). */
  readonly config: Record<string, unknown>;
  readonly run: () => Promise<FixtureRun>;
}

export const FIXTURE_STEPS = 50;

// ---------------------------------------------------------------- helpers

function withTmpDir<T>(prefix: string, f: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tfjs-diffusion-lossfix-${prefix}-`));
  return f(dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

function expectSteps(family: string, losses: number[]): number[] {
  if (losses.length !== FIXTURE_STEPS) throw new Error(`${family}: expected ${FIXTURE_STEPS} losses, the trainer returned ${losses.length}`);
  return losses;
}

// ---------------------------------------------------------------- diffusion (src/train/loop.ts)

const UNET_COMMON = { sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 32, timeEmbeddingInputDim: 16 };

/** Shared by the three diffusion runs: 50 steps of batch 4, loss read every step, no validation, one checkpoint at the end. */
const DIFFUSION_TRAIN = { steps: FIXTURE_STEPS, batchSize: 4, lr: 2e-3, warmupSteps: 5, logEvery: 1, valEvery: 0, sampleEvery: 0, checkpointEvery: FIXTURE_STEPS };

/** trainDiffusion of a fresh UNet (model and EMA from Rng(`${seed}/init`)), the rest of the options given. */
async function diffusionRun(
  prefix: string,
  unet: ReturnType<typeof unetConfig>,
  seed: number,
  options: Omit<TrainDiffusionOptions, 'model' | 'ema' | 'outDir' | 'resume' | 'checkpointConfig'>,
): Promise<FixtureRun> {
  const model = new UNet(unet, new Rng(`${seed}/init`));
  const ema = new UNet(unet, new Rng(`${seed}/init`));
  try {
    const result = await withTmpDir(prefix, (outDir) => trainDiffusion({ ...options, model, ema, outDir, resume: false, checkpointConfig: { fixture: prefix } }));
    return { losses: expectSteps(prefix, result.losses) };
  } finally {
    model.dispose();
    ema.dispose();
  }
}

/** As test/train/loop.test.ts: class-conditional pixel UNet, condition dropout 0.25, min-SNR-5 weighting (default). */
const CLASS_UNET = { ...UNET_COMMON, inChannels: 1, numClasses: 2 };
const CLASS_TRAIN = { ...DIFFUSION_TRAIN, seed: 3, condDropProb: 0.25 };
const diffusionClass: FamilySpec = {
  trainer: 'trainDiffusion (src/train/loop.ts)',
  config: { unet: CLASS_UNET, train: CLASS_TRAIN, schedule: { kind: 'linear', timesteps: 100 }, data: 'tinyTwoClassDataset(24, 1)' },
  run: () => diffusionRun('class', unetConfig(CLASS_UNET), CLASS_TRAIN.seed, {
    schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train: tinyTwoClassDataset(24, 1), validation: null, config: trainConfig(CLASS_TRAIN),
  }),
};

/** As test/train/textConditioningLoop.test.ts: cross-attention UNet on the states of a tiny frozen text encoder. */
const TEXT_ENCODER = { maxLength: 8, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 1 };
const TEXT_UNET = { ...UNET_COMMON, inChannels: 1, contextDim: TEXT_ENCODER.dim, numClasses: null, zeroInitOutput: false };
const TEXT_TRAIN = { ...DIFFUSION_TRAIN, seed: 3, condDropProb: 0.25 };
const CAPTIONS = ['top', 'left'];
const diffusionText: FamilySpec = {
  trainer: 'trainDiffusion (src/train/loop.ts) with textStates',
  config: { textEncoder: TEXT_ENCODER, unet: TEXT_UNET, train: TEXT_TRAIN, schedule: { kind: 'linear', timesteps: 100 }, data: "tinyTwoClassDataset(12, 1) captioned 'top' / 'left'" },
  run: async () => {
    const encoder = new TextEncoder(TEXT_ENCODER);
    encoder.freeze();
    const states = encodeCaptionsCached(encoder, new ByteTokenizer({ maxLength: TEXT_ENCODER.maxLength }), [...CAPTIONS, NULL_PROMPT]);
    const d = tinyTwoClassDataset(12, 1);
    const train: ImageDataset = { ...d, captions: Array.from(d.labels as Int32Array, (l) => CAPTIONS[l]) };
    try {
      return await diffusionRun('text', unetConfig(TEXT_UNET), TEXT_TRAIN.seed, {
        schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train, validation: null, config: trainConfig(TEXT_TRAIN), textStates: states,
      });
    } finally {
      states.dispose();
      encoder.dispose();
    }
  },
};

/** As test/train/superResolutionLoop.test.ts: a x2 super-resolution stage with noise-augmented low-res conditioning. */
const SR_UNET = { ...UNET_COMMON, inChannels: 2, outChannels: 1, augLevelEmbedding: true, zeroInitOutput: false };
const SR_LOW_RES = { factor: 2, maxAugLevel: 50 };
const SR_TRAIN = { ...DIFFUSION_TRAIN, seed: 2, condDropProb: 0, minSnrGamma: 5 };
const diffusionSuperResolution: FamilySpec = {
  trainer: 'trainDiffusion (src/train/loop.ts) with lowRes',
  config: { unet: SR_UNET, lowRes: SR_LOW_RES, train: SR_TRAIN, schedule: { kind: 'cosine', timesteps: 100 }, data: 'tinyTwoClassDataset(16, 1)' },
  run: () => diffusionRun('sr', unetConfig(SR_UNET), SR_TRAIN.seed, {
    schedule: makeSchedule({ kind: 'cosine', timesteps: 100 }), train: tinyTwoClassDataset(16, 1), validation: null, config: trainConfig(SR_TRAIN),
    lowRes: lowResConfig(SR_LOW_RES),
  }),
};

// ---------------------------------------------------------------- CLIP (src/train/clipTraining.ts)

const CLIP_MODEL = {
  image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
  text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
  seed: 5,
};
const CLIP_TRAIN = { steps: FIXTURE_STEPS, batchSize: 8, lr: 3e-3, warmupSteps: 5, lrDecay: 'constant' as const, logEvery: 1, evalEvery: 0, checkpointEvery: FIXTURE_STEPS, seed: 1 };


const clip: FamilySpec = {
  trainer: 'trainClip (src/train/clipTraining.ts)',
  config: { clip: CLIP_MODEL, train: CLIP_TRAIN, data: '32 colour patches 8x8x3 (clipTraining.test.ts colourDataset)' },
  run: async () => {
    const model = new Clip(CLIP_MODEL);
    try {
      const result = await withTmpDir('clip', (outDir) => trainClip({ clip: model, train: colourDataset(), config: clipTrainConfig(CLIP_TRAIN), outDir, resume: false }));
      return { losses: expectSteps('clip', result.losses) };
    } finally {
      model.dispose();
    }
  },
};

// ---------------------------------------------------------------- autoencoder (src/train/autoencoderTraining.ts)


const AE_MODEL = { baseChannels: 8, channelMults: [1, 2], groups: 4, latentChannels: 2, heads: 2 };
const AE_TRAIN = { steps: FIXTURE_STEPS, batchSize: 4, seed: 3, lr: 2e-3, warmupSteps: 5, logEvery: 1, valEvery: 0, sampleEvery: 0, checkpointEvery: FIXTURE_STEPS, scaleImages: 0, ema: {}, klWeight: 1e-3 };

const autoencoder: FamilySpec = {
  trainer: 'trainAutoencoder (src/train/autoencoderTraining.ts)',
  config: { autoencoder: AE_MODEL, train: AE_TRAIN, data: 'squares 6x6x1, 24 images seed 1 (padded to 8x8)' },
  run: async () => {
    const result = await withTmpDir('ae', (outDir) => trainAutoencoder({
      train: squaresDataset(24, 1), validation: null, autoencoder: AE_MODEL, config: autoencoderTrainConfig(AE_TRAIN), outDir, resume: false,
    }));
    return { losses: expectSteps('autoencoder', result.losses) };
  },
};

// ---------------------------------------------------------------- prior (src/train/priorTraining.ts)


const PRIOR_MODEL = { embedDim: 8, width: 64, depth: 2, mlpRatio: 2, timeEmbeddingDim: 32, seed: 3 };
const PRIOR_TRAIN = { steps: FIXTURE_STEPS, batchSize: 8, lr: 1e-3, warmupSteps: 5, logEvery: 1, checkpointEvery: FIXTURE_STEPS, seed: 4 };

const prior: FamilySpec = {
  trainer: 'trainPrior (src/train/priorTraining.ts)',
  config: { prior: PRIOR_MODEL, train: PRIOR_TRAIN, schedule: { kind: 'cosine', timesteps: 100 }, data: "rotatedPairs(20, 8, 'fixture')" },
  run: async () => {
    const model = new DiffusionPrior(PRIOR_MODEL);
    const ema = new DiffusionPrior(PRIOR_MODEL);
    try {
      const result = await withTmpDir('prior', (outDir) => trainPrior({
        prior: model, ema, schedule: makeSchedule({ kind: 'cosine', timesteps: 100 }), pairs: rotatedPairs(20, 8, 'fixture'), config: priorTrainConfig(PRIOR_TRAIN),
        outDir, resume: false,
      }));
      return { losses: expectSteps('prior', result.losses) };
    } finally {
      model.dispose();
      ema.dispose();
    }
  },
};

// ---------------------------------------------------------------- classifier (src/eval/trainClassifier.ts)

/**
 * Runs `f` while recording the value of every tf.variableGrads (tfjs routes it through
 * engine.gradients): the per-step loss of a trainer that reads its loss only every 20 steps.
 * Reading a value back changes no computation.
 */
async function recordGradientValues<T>(f: () => Promise<T>): Promise<{ result: T; values: number[] }> {
  type Gradients = (f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) => { value: tf.Tensor; grads: tf.Tensor[] };
  const engine = tf.engine() as unknown as { gradients: Gradients };
  const original = engine.gradients;
  const values: number[] = [];
  engine.gradients = function (this: unknown, fn, xs, dy, allowNoGradients) {
    const out = original.call(this, fn, xs, dy, allowNoGradients);
    values.push(out.value.dataSync()[0]);
    return out;
  };
  try {
    return { result: await f(), values };
  } finally {
    engine.gradients = original;
  }
}

// 40 images, batch 8: 5 steps per epoch, 10 epochs = 50 steps.
const CLASSIFIER_TRAIN = { epochs: 10, batchSize: 8, lr: 1e-2, warmupSteps: 5, seed: 0 };
const CLASSIFIER_MODEL = { convs: [{ channels: 4, stride: 2 as const }, { channels: 8, stride: 2 as const }], groups: 2, featureDim: 8 };

const classifier: FamilySpec = {
  trainer: 'trainClassifier (src/eval/trainClassifier.ts)',
  config: { classifier: CLASSIFIER_MODEL, train: CLASSIFIER_TRAIN, data: 'tinyTwoClassDataset(40, 1)', lossesFrom: 'value of each step\'s tf.variableGrads (the trainer reads its loss every 20 steps only); finalLoss as returned' },
  run: async () => {
    const { result, values } = await recordGradientValues(() => trainClassifier({ train: tinyTwoClassDataset(40, 1), test: null, config: CLASSIFIER_MODEL, ...CLASSIFIER_TRAIN }));
    result.model.dispose();
    if (result.steps !== FIXTURE_STEPS) throw new Error(`classifier: expected ${FIXTURE_STEPS} steps, the trainer ran ${result.steps}`);
    return { losses: expectSteps('classifier', values), reported: { finalLoss: result.finalLoss } };
  },
};

// ---------------------------------------------------------------- all

/** The fixture's families, in the order they are recorded and tested. */
export const FAMILIES: Readonly<Record<string, FamilySpec>> = {
  diffusionClass,
  diffusionText,
  diffusionSuperResolution,
  clip,
  autoencoder,
  prior,
  classifier,
};
