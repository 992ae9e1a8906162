/** `train-clip`: train a small CLIP on a captioned dataset (library: trainClipOnDataset). */
import type { CommandModule } from 'yargs';
import { CLIP_DATASETS, CLIP_TRAIN_DEFAULTS, DEFAULT_BPE_MERGES, ClipDatasetName, trainClipOnDataset } from '../train/clipTraining';
import { IMAGE_ENCODER_DEFAULTS } from '../models/clip';
import { TEXT_ENCODER_DEFAULTS } from '../models/textEncoder';
import { validateWorkers } from '../train/dataParallel';
import { BackendArgs, parseIntList, runWithBackend, withBackendOptions, stopOnSignals, cliRunOptions } from './common';

interface TrainClipArgs extends BackendArgs {
  dataset: string;
  'data-dir'?: string;
  limit?: number;
  attributes: boolean;
  'eval-limit': number;
  'image-channels'?: string;
  'text-dim': number;
  'text-layers': number;
  'text-heads': number;
  'max-length'?: number;
  'bpe-merges': number;
  'embed-dim': number;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  'lr-decay': string;
  'weight-decay': number;
  out: string;
  resume: boolean;
  overwrite: boolean;
  'log-every': number;
  'eval-every': number;
  'checkpoint-every': number;
  seed: number;
  workers: number;
  'dry-run': boolean;
}

export const trainClipCommand: CommandModule<object, TrainClipArgs> = {
  command: 'train-clip',
  describe: 'Train a small CLIP (image CNN + byte-level text transformer, contrastive loss) on captioned MNIST / Colored MNIST / Fashion-MNIST / CIFAR-10',
  builder: (y) =>
    withBackendOptions(y)
      .option('dataset', { type: 'string', choices: CLIP_DATASETS as unknown as string[], default: 'mnist', describe: 'training data (captioned from labels)' })
      .option('data-dir', { type: 'string', describe: 'folder of the data (cifar10; overrides fashion-mnist)' })
      .option('limit', { type: 'number', describe: 'use only the first N training images' })
      .option('attributes', { type: 'boolean', default: false, describe: 'mnist: add measured thickness / size / slant words to captions' })
      .option('eval-limit', { type: 'number', default: 1000, describe: 'test images used by the evaluation' })
      .option('image-channels', { type: 'string', describe: `image tower widths per stage (default ${IMAGE_ENCODER_DEFAULTS.channels.join(',')})` })
      .option('text-dim', { type: 'number', default: TEXT_ENCODER_DEFAULTS.dim, describe: 'text transformer width D' })
      .option('text-layers', { type: 'number', default: TEXT_ENCODER_DEFAULTS.layers })
      .option('text-heads', { type: 'number', default: TEXT_ENCODER_DEFAULTS.heads })
      .option('bpe-merges', { type: 'number', default: DEFAULT_BPE_MERGES, describe: 'byte-level BPE merges learned from the captions (at most; 0 = plain bytes)' })
      .option('max-length', { type: 'number', describe: 'tokens per caption incl. BOS/EOS (default: fits the longest caption, >= 32)' })
      .option('embed-dim', { type: 'number', default: TEXT_ENCODER_DEFAULTS.embedDim, describe: 'shared embedding width E' })
      .option('steps', { type: 'number', default: CLIP_TRAIN_DEFAULTS.steps })
      .option('batch', { type: 'number', default: CLIP_TRAIN_DEFAULTS.batchSize, describe: 'image-caption pairs per step' })
      .option('lr', { type: 'number', default: CLIP_TRAIN_DEFAULTS.lr, describe: 'peak learning rate' })
      .option('warmup', { type: 'number', default: CLIP_TRAIN_DEFAULTS.warmupSteps })
      .option('lr-decay', { type: 'string', choices: ['constant', 'cosine'], default: CLIP_TRAIN_DEFAULTS.lrDecay })
      .option('weight-decay', { type: 'number', default: CLIP_TRAIN_DEFAULTS.weightDecay })
      .option('out', { type: 'string', default: 'runs/clip', describe: 'run / checkpoint folder' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from <out>/clip-state.safetensors' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'start over in an --out that holds a run (its state, weights and metrics are deleted first); without it such a folder is refused' })
      .option('log-every', { type: 'number', default: CLIP_TRAIN_DEFAULTS.logEvery })
      .option('eval-every', { type: 'number', default: CLIP_TRAIN_DEFAULTS.evalEvery, describe: 'evaluation every N steps (0 = at the end only)' })
      .option('checkpoint-every', { type: 'number', default: CLIP_TRAIN_DEFAULTS.checkpointEvery })
      .option('seed', { type: 'number', default: 0, describe: 'seed of captions, colours, weights and batch order' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'check the run (folder, resume, memory), print the resolved config and the memory estimate of a step, and exit without training or writing anything' })
      .option('workers', { type: 'number', default: 1, describe: 'data-parallel worker threads, each a single-thread wasm backend embedding a slice of every batch (the loss still takes its negatives from the whole batch; workers x threads <= cores)' }) as never,
  handler: async (args) => {
    validateWorkers(args.workers, args.threads); // before loading anything
    await runWithBackend(args, async () => {
      const stop = stopOnSignals();
      const controller = { signal: stop.signal };
      const result = await trainClipOnDataset({
        dataset: args.dataset as ClipDatasetName,
        dataDir: args['data-dir'],
        limit: args.limit,
        attributes: args.attributes,
        evalLimit: args['eval-limit'],
        bpeMerges: args['bpe-merges'],
        clip: {
          seed: args.seed,
          image: {
            embedDim: args['embed-dim'],
            ...(args['image-channels'] !== undefined ? { channels: parseIntList('image-channels', args['image-channels']) } : {}),
          },
          text: {
            dim: args['text-dim'],
            layers: args['text-layers'],
            heads: args['text-heads'],
            embedDim: args['embed-dim'],
            seed: args.seed,
            ...(args['max-length'] !== undefined ? { maxLength: args['max-length'] } : {}),
          },
        },
        train: {
          steps: args.steps,
          batchSize: args.batch,
          lr: args.lr,
          warmupSteps: args.warmup,
          lrDecay: args['lr-decay'] as 'constant' | 'cosine',
          weightDecay: args['weight-decay'],
          logEvery: args['log-every'],
          evalEvery: args['eval-every'],
          checkpointEvery: args['checkpoint-every'],
          seed: args.seed,
          workers: args.workers,
        },
        outDir: args.out,
        ...cliRunOptions(args, controller.signal),
      });
      stop.release();
      result.clip.dispose();
      if (args['dry-run']) return;
      const evalText = result.lastEval === null ? '' : `; final eval: ${Object.entries(result.lastEval).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`;
      process.stdout.write(`trained CLIP steps ${result.startStep}..${result.endStep}${evalText}; weights: ${args.out}/clip.safetensors\n`);
    });
  },
};
