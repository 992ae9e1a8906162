/**
 * Trains a pixel-space diffusion model on a dataset, end to end: load data,
 * build (or rebuild on resume) the UNet and schedule, run the training loop
 * with periodic sample grids, and leave a pipeline folder that `sample` and
 * `loadPixelPipeline` read. The CLI's `train` command and the examples call this.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { decideRunStart } from '../train/runFolder';
import { RunOptions, runOptionsOf } from '../train/loop';
import { DIFFUSION_RUN_FILES } from '../train/diffusionTraining';
import { Rng } from '../backend/random';
import { loadDataset, DatasetName } from '../data/load';
import { ImageDataset } from '../data/dataset';
import { UNet, unetConfig, UNetConfig, UNetConfigInput } from '../models/unet';
import { UNET_PRESETS, UNetPreset } from '../models/unetPresets';
import { makeSchedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { PredictionType } from '../schedule/parameterization';
import { trainDiffusion, TrainResult, STATE_FILE, MetricsRow } from '../train/diffusionTraining';
import { WEIGHTS_FILE } from '../io/checkpoint';
import { trainConfig, TrainConfig } from '../train/trainConfig';
import { loadTrainingState } from '../train/checkpoint';
import { saveImageGrid } from '../io/png';
import { writePipelineManifest } from '../io/pipeline';
import { SamplerName } from '../sample/types';
import { generate, PixelCheckpointConfig, pixelCheckpointConfig } from '../pipelines/pixelDiffusion';

export interface PixelTrainingOptions extends RunOptions<MetricsRow> {
  readonly dataset: DatasetName;
  readonly dataDir?: string;
  /** Use only the first n training images. */
  readonly limit?: number;
  /** Model width/depth preset, refined by `unet`. */
  readonly preset: UNetPreset;
  readonly unet?: UNetConfigInput;
  /** 'class': label-conditional with a null class for guidance; 'none': unconditional. */
  readonly conditioning: 'class' | 'none';
  readonly predictionType: PredictionType;
  readonly schedule: Partial<ScheduleConfig>;
  readonly train: Partial<TrainConfig>;
  readonly outDir: string;
  /** Sampler used for the periodic grids. */
  readonly gridSampler: { sampler: SamplerName; steps: number; guidance: number; perClass: number };
}

/** The dataset's class names; labels without names (e.g. an image folder) are named by their ids. */
function classNamesOf(d: ImageDataset): readonly string[] | null {
  if (d.classNames !== null) return d.classNames;
  if (d.labels === null) return null;
  const count = d.labels.reduce((m, l) => Math.max(m, l + 1), 0);
  return Array.from({ length: count }, (_, i) => String(i));
}

/** The smallest power of two >= n: the side a dataset is centre-padded to for the UNet. */
export function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

export async function trainPixelDiffusion(opts: PixelTrainingOptions): Promise<TrainResult & { config: PixelCheckpointConfig }> {
  const log = opts.onLog ?? (() => undefined);
  const train = loadDataset(opts.dataset, 'train', { dataDir: opts.dataDir, limit: opts.limit });
  let validation = null;
  try {
    validation = loadDataset(opts.dataset, 'test', { dataDir: opts.dataDir });
  } catch (e) {
    log(`no validation split (${(e as Error).message.split('\n')[0]}); validation loss disabled`);
  }
  const cfg = trainConfig(opts.train);
  const statePath = path.join(opts.outDir, STATE_FILE);
  const resuming = decideRunStart(opts.outDir, DIFFUSION_RUN_FILES, opts); // before any work: refuses what would lose a run

  // Model config: from the saved state when resuming (the run continues the same model), else from the options.
  let config: PixelCheckpointConfig;
  if (resuming) {
    const state = await loadTrainingState(statePath, 'diffusion');
    tf.dispose([...state.tensors.values()]);
    config = pixelCheckpointConfig(state.json.checkpointConfig, statePath);
    log(`resuming the model saved in ${statePath}; model options on the command line are ignored`);
  } else {
    const size = nextPowerOfTwo(Math.max(train.height, train.width));
    const classNames = opts.conditioning === 'class' ? classNamesOf(train) : null;
    if (opts.conditioning === 'class' && classNames === null) throw new Error(`dataset '${opts.dataset}' has no class labels; use conditioning 'none'`);
    const unet: UNetConfig = unetConfig({
      ...UNET_PRESETS[opts.preset],
      ...(opts.unet ?? {}),
      inChannels: train.channels,
      sampleSize: size,
      numClasses: classNames === null ? null : classNames.length,
      predictionType: opts.predictionType,
    });
    config = { unet, schedule: scheduleConfig(opts.schedule), dataset: opts.dataset, classNames, imageSize: train.height };
  }
  const model = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
  const ema = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
  log(`UNet: ${model.numParameters().toLocaleString('en-US')} parameters; data: ${train.name} ${train.count} images ${train.height}x${train.width}x${train.channels}`);
  const schedule = makeSchedule(config.schedule);

  const grid = opts.gridSampler;
  const onSample = async (net: UNet, step: number, file: string): Promise<void> => {
    const classes = config.unet.numClasses;
    const labels = classes === null ? null : Array.from({ length: classes * grid.perClass }, (_, i) => Math.floor(i / grid.perClass));
    const n = labels === null ? 8 * grid.perClass : labels.length;
    const images = await generate(
      { unet: net, schedule, config, source: 'training', defaults: {}, trainingStep: step, dispose: () => undefined },
      { n, labels, sampler: grid.sampler, steps: grid.steps, guidance: grid.guidance, seed: cfg.seed },
    );
    try {
      await saveImageGrid(file, images, { cols: grid.perClass });
      log(`step ${step}: sample grid ${file}${labels === null ? '' : ` (row r = class ${config.classNames?.[0] ?? 0}..)`}`);
    } finally {
      images.dispose();
    }
  };

  try {
    const result = await trainDiffusion({
      model,
      ema,
      schedule,
      train,
      validation,
      config: cfg,
      outDir: opts.outDir,
      ...runOptionsOf(opts),
      onLog: log,
      checkpointConfig: { schedule: config.schedule, dataset: config.dataset, classNames: config.classNames, imageSize: config.imageSize },
      onSample,
    });
    if (opts.dryRun === true) return { ...result, config };
    await writePipelineManifest(opts.outDir, {
      design: 'pixel',
      parts: { unet: { file: WEIGHTS_FILE, kind: 'unet', description: `EMA weights, ${config.dataset}, step ${result.endStep}` } },
      defaults: { sampler: grid.sampler, steps: grid.steps, guidance: grid.guidance },
    });
    return { ...result, config };
  } finally {
    model.dispose();
    ema.dispose();
  }
}
