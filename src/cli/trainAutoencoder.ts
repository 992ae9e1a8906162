/**
 * `train-autoencoder`: the Stable-Diffusion-style KL autoencoder, trained on its
 * own (library: trainAutoencoder). Leaves <out>/autoencoder.safetensors with the
 * latent scale factor in its metadata, then reports reconstruction metrics on
 * the test split (and rFID with --features).
 *
 *   tfjs-diffusion train-autoencoder --dataset mnist --steps 2000 --out runs/ae-mnist
 *   tfjs-diffusion train-autoencoder --dataset colored-mnist --features colored-mnist --out runs/colored-mnist-autoencoder
 *
 * Data: the loadDataset names, plus Colored MNIST as the text pipelines and the
 * shipped classifier see it (colours of seed 0; train = the 'seen' (digit,
 * colour, background) triples, test = all 480), 32x32x3 -> 8x8x4 latents.
 */
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { ImageDataset } from '../data/dataset';
import { CLASSIFIER_DATASETS, ClassifierDatasetName, loadClassifierSplit } from '../eval/trainClassifier';
import { loadFeatureExtractor } from '../eval/features';
import { AUTOENCODER_DEFAULTS, AutoencoderConfig } from '../models/autoencoder';
import { AUTOENCODER_TRAIN_DEFAULTS, autoencoderTrainConfig, evaluateAutoencoder, ReconstructionLoss, trainAutoencoder, WEIGHTS_FILE } from '../train/autoencoderTraining';
import { loadAutoencoder } from '../node/pipelineParts';
import { validateWorkers } from '../train/dataParallel';
import { BackendArgs, parseIntList, runWithBackend, withBackendOptions, stopOnSignals, cliRunOptions, logToStderr } from './common';

interface TrainAutoencoderArgs extends BackendArgs {
  dataset: string;
  'data-dir'?: string;
  limit?: number;
  'base-channels': number;
  'channel-mults': string;
  'res-blocks': number;
  'latent-channels': number;
  'mid-attention': boolean;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  'kl-weight': number;
  loss: string;
  ema: boolean;
  out: string;
  resume: boolean;
  overwrite: boolean;
  'log-every': number;
  'val-every': number;
  'sample-every': number;
  'checkpoint-every': number;
  'eval-images': number;
  features?: string;
  seed: number;
  workers: number;
  'dry-run': boolean;
}

const D = AUTOENCODER_TRAIN_DEFAULTS;

export const trainAutoencoderCommand: CommandModule<object, TrainAutoencoderArgs> = {
  command: 'train-autoencoder',
  describe: 'Train the KL autoencoder of latent diffusion (encoder -> diagonal Gaussian latent -> decoder) on a dataset',
  builder: (y) =>
    withBackendOptions(y)
      .option('dataset', {
        type: 'string',
        choices: CLASSIFIER_DATASETS as unknown as string[],
        default: 'mnist',
        describe: 'training data, padded to a power-of-two side (colored-mnist: colours of seed 0, seen triples; its test split has all)',
      })
      .option('data-dir', { type: 'string', describe: 'folder of the data (cifar10, image-folder; overrides fashion-mnist)' })
      .option('limit', { type: 'number', describe: 'use only the first N training images (colored-mnist: of the MNIST digits it colours)' })
      .option('base-channels', { type: 'number', default: AUTOENCODER_DEFAULTS.baseChannels, describe: 'width of the full-resolution level' })
      .option('channel-mults', { type: 'string', default: AUTOENCODER_DEFAULTS.channelMults.join(','), describe: 'width multipliers per level; L levels downsample by 2^(L-1)' })
      .option('res-blocks', { type: 'number', default: AUTOENCODER_DEFAULTS.numResBlocks, describe: 'ResBlocks per encoder level (decoder: one more)' })
      .option('latent-channels', { type: 'number', default: AUTOENCODER_DEFAULTS.latentChannels, describe: 'channels of the latent' })
      .option('mid-attention', { type: 'boolean', default: AUTOENCODER_DEFAULTS.midAttention, describe: 'self-attention in the mid blocks (--no-mid-attention to drop)' })
      .option('steps', { type: 'number', default: D.steps, describe: 'optimiser steps' })
      .option('batch', { type: 'number', default: D.batchSize, describe: 'images per step' })
      .option('lr', { type: 'number', default: D.lr, describe: 'peak AdamW learning rate (warm-up, then cosine decay)' })
      .option('warmup', { type: 'number', default: D.warmupSteps, describe: 'LR warm-up steps' })
      .option('kl-weight', { type: 'number', default: D.klWeight, describe: 'weight of the KL term (both terms are means per element)' })
      .option('loss', { type: 'string', choices: ['l1', 'mse'], default: D.loss, describe: 'pixel reconstruction loss' })
      .option('ema', { type: 'boolean', default: D.ema !== null, describe: 'keep an EMA of the weights and ship / evaluate it' })
      .option('out', { type: 'string', default: 'runs/autoencoder', describe: 'run / checkpoint folder' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from <out>/state.safetensors' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'start over in an --out that holds a run (its state, weights and metrics are deleted first); without it such a folder is refused' })
      .option('log-every', { type: 'number', default: D.logEvery })
      .option('val-every', { type: 'number', default: D.valEvery, describe: 'validation L1 / MSE / PSNR every N steps (0 = never)' })
      .option('sample-every', { type: 'number', default: D.sampleEvery, describe: 'originals | reconstructions grid every N steps (0 = at the end only)' })
      .option('checkpoint-every', { type: 'number', default: D.checkpointEvery })
      .option('eval-images', { type: 'number', default: 2000, describe: 'test images for the final report (0 = skip)' })
      .option('features', { type: 'string', describe: 'feature extractor for reconstruction FID in the final report, e.g. mnist' })
      .option('seed', { type: 'number', default: D.seed })
      .option('dry-run', { type: 'boolean', default: false, describe: 'check the run (folder, resume, memory), print the resolved config and the memory estimate of a step, and exit without training or writing anything' })
      .option('workers', { type: 'number', default: D.workers, describe: 'data-parallel worker threads, each a single-thread wasm backend computing a slice of every batch (same training; workers x threads <= cores)' }) as never,
  handler: async (args) => {
    validateWorkers(args.workers, args.threads); // before loading anything
    await runWithBackend(args, async () => {
      const onLog = logToStderr;
      const stop = stopOnSignals();
      const controller = { signal: stop.signal };
      // The classifier trainer's splits: the same images (and Colored MNIST colours) as the classifier behind --features.
      const name = args.dataset as ClassifierDatasetName;
      const train = loadClassifierSplit(name, 'train', { dataDir: args['data-dir'], limit: args.limit });
      let test: ImageDataset | null = null;
      try {
        test = loadClassifierSplit(name, 'test', { dataDir: args['data-dir'] });
      } catch (e) {
        onLog(`no test split (${(e as Error).message.split('\n')[0]}); validation disabled`);
      }
      const autoencoder: Partial<AutoencoderConfig> = {
        baseChannels: args['base-channels'],
        channelMults: parseIntList('channel-mults', args['channel-mults']),
        numResBlocks: args['res-blocks'],
        latentChannels: args['latent-channels'],
        midAttention: args['mid-attention'],
      };
      const result = await trainAutoencoder({
        train,
        validation: test,
        autoencoder,
        config: autoencoderTrainConfig({
          steps: args.steps,
          batchSize: args.batch,
          lr: args.lr,
          warmupSteps: args.warmup,
          klWeight: args['kl-weight'],
          loss: args.loss as ReconstructionLoss,
          ema: args.ema ? {} : null,
          logEvery: args['log-every'],
          valEvery: args['val-every'],
          sampleEvery: args['sample-every'],
          checkpointEvery: args['checkpoint-every'],
          seed: args.seed,
          workers: args.workers,
        }),
        outDir: args.out,
        ...cliRunOptions(args, controller.signal),
      });
      stop.release();
      if (args['dry-run']) return;
      const file = path.join(args.out, WEIGHTS_FILE);
      process.stdout.write(`trained steps ${result.startStep}..${result.endStep}; weights: ${file}` +
        `${result.config.scaleFactor === null ? '' : `; latent scale factor ${result.config.scaleFactor.toPrecision(5)}`}\n`);
      if (result.stoppedEarly || test === null || args['eval-images'] <= 0) return;

      // Final report on the test split, from the saved weights (what a later stage will load).
      const extractor = args.features === undefined ? null : await loadFeatureExtractor(args.features);
      const { model } = await loadAutoencoder(file);
      try {
        const m = await evaluateAutoencoder(model, test, { count: args['eval-images'], seed: args.seed, extractor });
        const fid = m.fid === null ? '' : `, rFID (${m.features}) ${m.fid.distance.toFixed(3)}`;
        process.stdout.write(`test (${m.count} images): L1 ${m.l1.toFixed(4)}, MSE ${m.mse.toFixed(5)}, PSNR ${m.psnr.toFixed(2)} dB ` +
          `(mean per image ${m.meanPsnr.toFixed(2)} dB)${fid}\n`);
      } finally {
        model.dispose();
        extractor?.dispose();
      }
    });
  },
};
