/**
 * `train-classifier`: trains the small CNN that judges generated images (FID
 * features, conditional accuracy) on a labelled dataset and saves it as a
 * self-describing checkpoint (kind 'classifier', config in the metadata).
 *
 *   tfjs-diffusion train-classifier --dataset mnist --out checkpoints/classifiers/mnist.safetensors
 *
 * --dataset colored-mnist: Colored MNIST with seed 0, trained on the seen colour
 * combinations and tested on all of them; the classes are the digits.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { CLASSIFIER_KIND } from '../eval/classifier';
import { CLASSIFIER_DATASETS, ClassifierDatasetName, loadClassifierSplit, trainClassifier } from '../eval/trainClassifier';
import { saveModelWeights } from '../io/checkpointFile';
import { BackendArgs, commandLine, runWithBackend, withBackendOptions } from './common';

interface TrainClassifierArgs extends BackendArgs {
  dataset: string;
  'data-dir'?: string;
  limit?: number;
  'test-limit'?: number;
  out: string;
  epochs: number;
  batch: number;
  lr: number;
  warmup: number;
  'weight-decay': number;
  storage: string;
  seed: number;
}

export const trainClassifierCommand: CommandModule<object, TrainClassifierArgs> = {
  command: 'train-classifier',
  describe: 'Train the evaluation classifier (FID features, conditional accuracy) on a labelled dataset',
  builder: (y) =>
    withBackendOptions(y)
      .option('dataset', { type: 'string', choices: CLASSIFIER_DATASETS as unknown as string[], default: 'mnist', describe: 'labelled training data (colored-mnist: seed 0, classes = digits)' })
      .option('data-dir', { type: 'string', describe: 'folder of the data (cifar10, image-folder; overrides fashion-mnist)' })
      .option('limit', { type: 'number', describe: 'use only the first N training images' })
      .option('test-limit', { type: 'number', describe: 'measure the test accuracy on the first N test images only (default all)' })
      .option('out', { type: 'string', describe: 'output .safetensors (default checkpoints/classifiers/<dataset>.safetensors)' })
      .option('epochs', { type: 'number', default: 3, describe: 'passes over the training set' })
      .option('batch', { type: 'number', default: 128 })
      .option('lr', { type: 'number', default: 2e-3, describe: 'peak AdamW learning rate (warm-up, then cosine decay to 0)' })
      .option('warmup', { type: 'number', default: 100, describe: 'linear warm-up steps' })
      .option('weight-decay', { type: 'number', default: 0.01 })
      .option('storage', { type: 'string', choices: ['float16', 'float32'], default: 'float16', describe: 'weight precision in the file' })
      .option('seed', { type: 'number', default: 0 }) as never,
  handler: async (args) =>
    runWithBackend(args, async () => {
      const name = args.dataset as ClassifierDatasetName;
      const out = args.out ?? path.join('checkpoints', 'classifiers', `${name}.safetensors`);
      const onLog = (l: string): void => {
        process.stderr.write(l + '\n');
      };
      const train = loadClassifierSplit(name, 'train', { dataDir: args['data-dir'], limit: args.limit });
      let test = null;
      try {
        test = loadClassifierSplit(name, 'test', { dataDir: args['data-dir'], limit: args['test-limit'] });
      } catch (e) {
        onLog(`no test split (${(e as Error).message}); skipping the test accuracy`);
      }
      const result = await trainClassifier({
        train,
        test,
        epochs: args.epochs,
        batchSize: args.batch,
        lr: args.lr,
        warmupSteps: args.warmup,
        weightDecay: args['weight-decay'],
        seed: args.seed,
        onLog,
        onProgress: (s) => process.stderr.write(s),
        isTTY: process.stderr.isTTY === true,
      });
      try {
        fs.mkdirSync(path.dirname(out), { recursive: true });
        await saveModelWeights(out, result.model, {
          kind: CLASSIFIER_KIND,
          config: result.model.config,
          step: result.steps,
          seed: args.seed,
          command: commandLine(),
          storage: args.storage as 'float16' | 'float32',
        });
      } finally {
        result.model.dispose();
      }
      const acc = result.testAccuracy === null ? 'n/a' : `${(100 * result.testAccuracy).toFixed(2)}%`;
      process.stdout.write(`test accuracy: ${acc}; ${result.steps} steps in ${result.seconds.toFixed(0)} s; saved ${out} (${fs.statSync(out).size} bytes)\n`);
    }),
};
