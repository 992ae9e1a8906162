/** `train`: diffusion training on a dataset: class / unconditional pixel models (trainPixelDiffusion), text-conditional pixel or latent models (trainTextDiffusion). */
import * as os from 'os';
import type { CommandModule } from 'yargs';
import { DATASET_NAMES, DatasetName } from '../data/load';
import { UNET_PRESET_NAMES, UNetPreset } from '../models/unetPresets';
import { SCHEDULE_KINDS, ScheduleKind } from '../schedule/betas';
import { PREDICTION_TYPES, PredictionType } from '../schedule/parameterization';
import { SAMPLER_NAMES, SamplerName } from '../sample/types';
import { trainPixelDiffusion } from '../recipes/pixelTraining';
import { trainTextDiffusion } from '../recipes/textTraining';
import { CAPTIONED_DATASETS, isCaptionedDatasetName } from '../data/captioned';
import { digitPrompts } from '../eval/clipScore';
import { TRAIN_DEFAULTS } from '../train/trainConfig';
import { validateWorkers } from '../train/dataParallel';
import { BackendArgs, parseIntList, runWithBackend, withBackendOptions, stopOnSignals, cliRunOptions } from './common';

interface TrainArgs extends BackendArgs {
  dataset: string;
  'data-dir'?: string;
  limit?: number;
  model: string;
  'base-channels'?: number;
  'channel-mults'?: string;
  'res-blocks'?: number;
  'attention-res'?: string;
  dropout?: number;
  conditioning: string;
  'text-encoder'?: string;
  space: string;
  autoencoder?: string;
  attributes: boolean;
  'grid-prompts'?: string;
  'prediction-type': string;
  schedule: string;
  timesteps: number;
  steps: number;
  batch: number;
  'grad-accum': number;
  workers?: number;
  lr: number;
  warmup: number;
  'lr-decay': string;
  'cond-drop': number;
  'min-snr-gamma': number;
  out: string;
  resume: boolean;
  overwrite: boolean;
  'log-every': number;
  'val-every': number;
  'sample-every': number;
  'checkpoint-every': number;
  'snapshot-every': number;
  'time-budget'?: number;
  'grid-sampler': string;
  'grid-steps': number;
  'grid-guidance': number;
  seed: number;
  profile: boolean;
  'dry-run': boolean;
}

/** Every core for data-parallel workers (measured fastest: BENCHMARKS.md), unless the wasm threads already use them. */
function defaultWorkers(threads: number, microBatch: number): number {
  if (threads > 1) return 1;
  return Math.max(1, Math.min(os.cpus().length, Math.floor(microBatch)));
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train a pixel-space diffusion UNet (label-conditional or unconditional) on a dataset',
  builder: (y) =>
    withBackendOptions(y)
      .option('dataset', { type: 'string', choices: [...new Set([...DATASET_NAMES, ...CAPTIONED_DATASETS])], default: 'mnist', describe: 'training data (text conditioning: a captioned dataset)' })
      .option('data-dir', { type: 'string', describe: 'folder of the data (cifar10, image-folder; overrides fashion-mnist)' })
      .option('limit', { type: 'number', describe: 'use only the first N training images' })
      .option('model', { type: 'string', choices: UNET_PRESET_NAMES, default: 'small', describe: 'UNet size preset' })
      .option('base-channels', { type: 'number', describe: 'override the preset: width of level 0' })
      .option('channel-mults', { type: 'string', describe: 'override the preset: width multipliers per level, e.g. 1,2,2' })
      .option('res-blocks', { type: 'number', describe: 'override the preset: ResBlocks per level' })
      .option('attention-res', { type: 'string', describe: 'override the preset: resolutions with self-attention, e.g. 8' })
      .option('dropout', { type: 'number', describe: 'ResBlock dropout' })
      .option('conditioning', { type: 'string', choices: ['class', 'text', 'none'], default: 'class', describe: 'class labels (with a null class for guidance), captions through a frozen text encoder (--text-encoder), or none' })
      .option('text-encoder', { type: 'string', describe: 'text conditioning: a CLIP (train-clip) or text-encoder checkpoint; its text tower is frozen' })
      .option('space', { type: 'string', choices: ['pixel', 'latent'], default: 'pixel', describe: 'text conditioning: diffuse pixels, or the latents of --autoencoder' })
      .option('autoencoder', { type: 'string', describe: 'latent space: the autoencoder checkpoint (train-autoencoder; its metadata holds the scale factor)' })
      .option('attributes', { type: 'boolean', default: false, describe: 'mnist text conditioning: measured thickness / size / slant words in the captions' })
      .option('grid-prompts', { type: 'string', describe: 'text conditioning: prompts of the sample grids, separated by "|" (default: "a handwritten 0" .. "a handwritten 9" on MNIST data)' })
      .option('prediction-type', { type: 'string', choices: PREDICTION_TYPES as unknown as string[], default: 'epsilon' })
      .option('schedule', { type: 'string', choices: SCHEDULE_KINDS as unknown as string[], default: 'cosine', describe: 'noise schedule' })
      .option('timesteps', { type: 'number', default: 1000, describe: 'diffusion steps T' })
      .option('steps', { type: 'number', default: TRAIN_DEFAULTS.steps, describe: 'optimiser steps' })
      .option('batch', { type: 'number', default: TRAIN_DEFAULTS.batchSize, describe: 'global batch size' })
      .option('grad-accum', { type: 'number', default: TRAIN_DEFAULTS.gradAccum, describe: 'micro-batches per step (batch must divide)' })
      .option('workers', {
        type: 'number',
        describe: 'data-parallel worker threads, each a single-thread wasm backend computing a slice of every micro-batch (same training; workers x threads <= cores). ' +
          'Default: every core when --threads is 1 (capped by the micro-batch), else 1',
      })
      .option('lr', { type: 'number', default: TRAIN_DEFAULTS.lr, describe: 'peak learning rate' })
      .option('warmup', { type: 'number', default: TRAIN_DEFAULTS.warmupSteps, describe: 'LR warm-up steps' })
      .option('lr-decay', { type: 'string', choices: ['constant', 'cosine'], default: TRAIN_DEFAULTS.lrDecay })
      .option('cond-drop', { type: 'number', default: TRAIN_DEFAULTS.condDropProb, describe: 'condition dropout probability (classifier-free guidance)' })
      .option('min-snr-gamma', { type: 'number', default: TRAIN_DEFAULTS.minSnrGamma ?? 0, describe: 'Min-SNR loss weighting gamma; 0 = plain MSE' })
      .option('out', { type: 'string', default: 'runs/train', describe: 'run / checkpoint folder' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from <out>/state.safetensors' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'start over in an --out that holds a run (its state, weights and metrics are deleted first); without it such a folder is refused' })
      .option('log-every', { type: 'number', default: TRAIN_DEFAULTS.logEvery })
      .option('val-every', { type: 'number', default: TRAIN_DEFAULTS.valEvery, describe: 'validation loss every N steps (0 = never)' })
      .option('sample-every', { type: 'number', default: TRAIN_DEFAULTS.sampleEvery, describe: 'sample grid every N steps (0 = at the end only)' })
      .option('checkpoint-every', { type: 'number', default: TRAIN_DEFAULTS.checkpointEvery })
      .option('time-budget', { type: 'number', describe: 'stop (with a checkpoint) once the run has trained this many minutes (wall time over all sessions); pair with --lr-decay constant' })
      .option('snapshot-every', { type: 'number', default: TRAIN_DEFAULTS.snapshotEvery, describe: 'keep float16 EMA weights every N steps in <out>/snapshots (0 = never)' })
      .option('grid-sampler', { type: 'string', choices: SAMPLER_NAMES as unknown as string[], default: 'dpm-solver++' })
      .option('grid-steps', { type: 'number', default: 20 })
      .option('grid-guidance', { type: 'number', default: 1.5 })
      .option('seed', { type: 'number', default: 0 })
      .option('profile', { type: 'boolean', default: false, describe: 'before training, print the ten most expensive kernels of one step' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'check the run (folder, resume, memory), print the resolved config and the memory estimate of a step, and exit without training or writing anything' }) as never,
  handler: async (args) => {
    const workers = args.workers ?? defaultWorkers(args.threads, args.batch / args['grad-accum']);
    validateWorkers(workers, args.threads); // before loading anything
    await runWithBackend(args, async () => {
      const stop = stopOnSignals();
      const controller = { signal: stop.signal };
      const unet = {
        ...(args['base-channels'] !== undefined ? { baseChannels: args['base-channels'] } : {}),
        ...(args['channel-mults'] !== undefined ? { channelMults: parseIntList('channel-mults', args['channel-mults']) } : {}),
        ...(args['res-blocks'] !== undefined ? { numResBlocks: args['res-blocks'] } : {}),
        ...(args['attention-res'] !== undefined ? { attentionResolutions: parseIntList('attention-res', args['attention-res']) } : {}),
        ...(args.dropout !== undefined ? { dropout: args.dropout } : {}),
      };
      const train = {
        steps: args.steps,
        batchSize: args.batch,
        gradAccum: args['grad-accum'],
        workers,
        lr: args.lr,
        warmupSteps: args.warmup,
        lrDecay: args['lr-decay'] as 'constant' | 'cosine',
        condDropProb: args['cond-drop'],
        minSnrGamma: args['min-snr-gamma'] > 0 ? args['min-snr-gamma'] : null,
        logEvery: args['log-every'],
        valEvery: args['val-every'],
        sampleEvery: args['sample-every'],
        checkpointEvery: args['checkpoint-every'],
        snapshotEvery: args['snapshot-every'],
        timeBudgetMinutes: args['time-budget'] ?? null,
        seed: args.seed,
      };
      if (args.conditioning === 'text') {
        if (args['text-encoder'] === undefined) throw new Error('--conditioning text needs --text-encoder <clip.safetensors> (train one with train-clip)');
        if (!isCaptionedDatasetName(args.dataset)) throw new Error(`--conditioning text needs a captioned dataset (${CAPTIONED_DATASETS.join(', ')}), got '${args.dataset}'`);
        if (args.space === 'latent' && args.autoencoder === undefined) throw new Error('--space latent needs --autoencoder <autoencoder.safetensors> (train one with train-autoencoder)');
        const gridPrompts = args['grid-prompts'] !== undefined
          ? args['grid-prompts'].split('|').map((p) => p.trim()).filter((p) => p.length > 0)
          : args.dataset === 'mnist' || args.dataset === 'colored-mnist' ? digitPrompts('a handwritten {n}') : ['a photo'];
        const result = await trainTextDiffusion({
          dataset: args.dataset,
          dataDir: args['data-dir'],
          limit: args.limit,
          attributes: args.attributes,
          textEncoder: args['text-encoder'],
          space: args.space as 'pixel' | 'latent',
          autoencoder: args.autoencoder,
          preset: args.model as UNetPreset,
          unet,
          predictionType: args['prediction-type'] as PredictionType,
          schedule: { kind: args.schedule as ScheduleKind, timesteps: args.timesteps },
          train,
          outDir: args.out,
          ...cliRunOptions(args, controller.signal),
          gridPrompts,
          gridSampler: { sampler: args['grid-sampler'] as SamplerName, steps: args['grid-steps'], guidance: args['grid-guidance'], perPrompt: 8 },
          profile: args.profile,
        });
        stop.release();
        if (args['dry-run']) return;
        process.stdout.write(`trained steps ${result.startStep}..${result.endStep}; pipeline folder: ${args.out} (sample --pipeline ${args.out} --prompt "...")\n`);
        return;
      }
      if (args['text-encoder'] !== undefined || args.space !== 'pixel' || args.autoencoder !== undefined || args['grid-prompts'] !== undefined || args.attributes) {
        throw new Error('--text-encoder, --space, --autoencoder, --attributes and --grid-prompts are for --conditioning text');
      }
      if (args.dataset === 'colored-mnist') throw new Error('colored-mnist is a captioned dataset: train it with --conditioning text');
      const result = await trainPixelDiffusion({
        dataset: args.dataset as DatasetName,
        dataDir: args['data-dir'],
        limit: args.limit,
        preset: args.model as UNetPreset,
        unet,
        conditioning: args.conditioning as 'class' | 'none',
        predictionType: args['prediction-type'] as PredictionType,
        schedule: { kind: args.schedule as ScheduleKind, timesteps: args.timesteps },
        train,
        outDir: args.out,
        ...cliRunOptions(args, controller.signal),
        gridSampler: { sampler: args['grid-sampler'] as SamplerName, steps: args['grid-steps'], guidance: args['grid-guidance'], perClass: 8 },
        profile: args.profile,
      });
      stop.release();
      if (args['dry-run']) return;
      process.stdout.write(`trained steps ${result.startStep}..${result.endStep}; pipeline folder: ${args.out}\n`);
    });
  },
};
