/**
 * Training the two models of an unCLIP pipeline (pipelines/unclip.ts; Ramesh
 * et al. 2022) on a captioned dataset and a frozen, already trained CLIP:
 *
 * trainUnclipDecoder (sec. 2.1, the decoder), pixel space:
 *   1. data: a captioned dataset (one caption per image, seeded);
 *   2. every training (and validation) image embedded ONCE by the CLIP image
 *      tower, centre-padded to its side: unit-norm rows of an [N, E] table,
 *      cached in the run folder (keyed by the CLIP file's SHA-256 and the data);
 *   3. the UNet conditioned on its image's embedding (models/unet.ts
 *      imageEmbeddingDim: extra cross-attention tokens + time embedding),
 *      optionally also on the caption (withText: the CLIP text tower's token
 *      states, frozen, cached per caption); trained with the loop of
 *      train/loop.ts, whose condition dropout zeroes the embedding (and
 *      replaces the caption by the empty prompt, same mask): the null of
 *      classifier-free guidance;
 *   4. sample grids: image variations of fixed held-out images (row r: the
 *      image, then samples from its embedding), the prior is not needed;
 *   5. the run folder has no pipeline.json: ship it with a prior and the CLIP
 *      (writeUnclipPipeline).
 *
 *   With `factor` f > 1 the decoder draws the images reduced by f, as a
 *   cascade's base stage is trained (textTraining.ts baseStageData: padded to
 *   the next power of two, block-averaged; MNIST 28 -> 32 -> 16x16 at f = 2,
 *   imageSize 14 recorded), so a super-resolution stage of factor f can follow
 *   it (writeUnclipPipeline srRun; DALL-E 2 decodes at 64x64 and upsamples
 *   twice). Its conditioning stays the CLIP embedding of the FULL-size image
 *   (the CLIP sees 32x32 images), in training, in the validation loss and in
 *   the grids: the decoder learns to draw the small version of the image
 *   whose embedding it is given. The checkpoint records `factor` (f > 1 only:
 *   at f = 1 the config is as before) and resume needs the same f.
 *
 * trainUnclipPrior (sec. 2.1, the prior): the CLIP embeds every training image
 * and its caption once (clipEmbeddingPairs), the held-out pairs come from the
 * test split, and train/priorTraining.ts trains the DiffusionPrior on them.
 *
 * Both record the CLIP (config, training step and seed) in their checkpoints
 * and are resumable from their run folders with the same options.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { decideRunStart } from '../train/runFolder';
import { LoopRow, RunOptions, runOptionsOf } from '../train/loop';
import { DIFFUSION_RUN_FILES } from '../train/diffusionTraining';
import { PRIOR_RUN_FILES } from '../train/priorTraining';
import { Rng } from '../backend/random';
import { ImageDataset } from '../data/dataset';
import { fixedBatch } from '../data/batches';
import { CaptionedDatasetName, loadCaptionedDataset } from '../data/captioned';
import { writeCaptionsFile } from '../data/captions';
import { Clip } from '../models/clip';
import { CaptionStateCache, encodeCaptionsCached } from '../models/textEncoder';
import { UNet, unetConfig, UNetConfigInput } from '../models/unet';
import { UNET_PRESETS, UNetPreset } from '../models/unetPresets';
import { DiffusionPrior, PriorConfig, priorConfig } from '../models/prior';
import { makeSchedule } from '../schedule/schedule';
import { ScheduleConfig, scheduleConfig } from '../schedule/betas';
import { PredictionType } from '../schedule/parameterization';
import { ImageEmbeddingTable, MetricsRow, STATE_FILE, trainDiffusion, TrainResult } from '../train/diffusionTraining';
import { NULL_PROMPT } from '../models/textEncoder';
import { TrainConfig, trainConfig } from '../train/trainConfig';
import { loadTrainingState } from '../train/checkpoint';
import { loadClip } from '../node/pipelineParts';
import {
  clipEmbeddingPairs, EmbeddingPairs, PriorMetricsRow, PriorTrainConfig, priorTrainConfig, PRIOR_STATE_FILE, trainPrior, TrainPriorResult,
} from '../train/priorTraining';
import { readSafetensors, writeSafetensors } from '../io/safetensorsFile';
import { saveImageGrid } from '../io/png';
import { SamplerName } from '../sample/types';
import { nextPowerOfTwo } from './pixelTraining';
import { baseStageData } from './textTraining';
import { fileSha256 } from './latentData';
import { clipDifference, ClipProvenance, UnclipDecoderCheckpointConfig, unclipDecoderCheckpointConfig, recordedClipProvenance } from '../pipelines/unclipConfig';
import { decodeImageEmbeddings } from '../pipelines/unclipDecoder';
import { UNCLIP_GENERATE_DEFAULTS } from '../pipelines/unclip';
import { clipProvenance } from '../node/pipelineParts';

// ---------------------------------------------------------------- image embeddings

export interface ImageEmbeddingOptions {
  /** Images per CLIP forward pass. Default 128. */
  readonly batchSize?: number;
}

/**
 * The CLIP image embedding of every image of `dataset` (centre-padded with -1 to
 * the CLIP's imageSize, as its training data was): unit-norm rows [N, E].
 */
export async function clipImageEmbeddings(clip: Clip, dataset: ImageDataset, options: ImageEmbeddingOptions = {}): Promise<ImageEmbeddingTable> {
  const batchSize = options.batchSize ?? 128;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`clipImageEmbeddings: batchSize must be a positive integer, got ${batchSize}`);
  const { imageSize, inChannels, embedDim: E } = clip.config.image;
  if (dataset.channels !== inChannels) throw new Error(`clipImageEmbeddings: dataset '${dataset.name}' has ${dataset.channels} channel(s), the CLIP expects ${inChannels}`);
  if (dataset.height > imageSize || dataset.width > imageSize) {
    throw new Error(`clipImageEmbeddings: dataset images are ${dataset.height}x${dataset.width}, larger than the CLIP's imageSize ${imageSize}`);
  }
  const padTo = dataset.height === imageSize && dataset.width === imageSize ? undefined : imageSize;
  const values = new Float32Array(dataset.count * E);
  for (let start = 0; start < dataset.count; start += batchSize) {
    const batch = fixedBatch(dataset, Array.from({ length: Math.min(batchSize, dataset.count - start) }, (_, i) => start + i), { padTo });
    try {
      const emb = tf.tidy(() => clip.embedImages(batch.x));
      values.set(await emb.data(), start * E);
      emb.dispose();
    } finally {
      tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
    }
  }
  return { values, dim: E };
}

/**
 * clipImageEmbeddings with a disk cache at `cacheFile`: reused when its key (the
 * CLIP file's SHA-256, dataset name / split / count) matches, else computed and
 * written atomically.
 */
export async function cachedClipImageEmbeddings(
  cacheFile: string,
  clipFile: string,
  clip: Clip,
  dataset: ImageDataset,
  options: ImageEmbeddingOptions & { readonly onLog?: (line: string) => void } = {},
): Promise<ImageEmbeddingTable> {
  const key = JSON.stringify({ clipSha256: fileSha256(clipFile), dataset: dataset.name, split: dataset.split, count: dataset.count, embedding: 'clip-image-unit' });
  const E = clip.config.image.embedDim;
  if (fs.existsSync(cacheFile)) {
    try {
      const file = await readSafetensors(cacheFile);
      const t = file.tensors.get('image_embeddings');
      if (file.metadata.key === key && t !== undefined && t.data instanceof Float32Array && t.shape.join(',') === [dataset.count, E].join(',')) {
        options.onLog?.(`image embeddings: ${dataset.count} cached in ${cacheFile}`);
        return { values: t.data, dim: E };
      }
      options.onLog?.(`image embeddings: ${cacheFile} was made from another CLIP or dataset: embedding again`);
    } catch (e) {
      options.onLog?.(`image embeddings: ${cacheFile} is unreadable (${(e as Error).message}): embedding again`);
    }
  }
  const table = await clipImageEmbeddings(clip, dataset, options);
  await writeSafetensors(cacheFile, new Map([['image_embeddings', { dtype: 'F32' as const, shape: [dataset.count, E], data: table.values }]]), { kind: 'image-embedding-cache', key });
  options.onLog?.(`image embeddings: ${dataset.count} images embedded by the CLIP (E ${E}), cached in ${cacheFile}`);
  return table;
}

export const TRAIN_EMBEDDINGS_FILE = 'image-embeddings-train.safetensors';
export const VALIDATION_EMBEDDINGS_FILE = 'image-embeddings-test.safetensors';

// ---------------------------------------------------------------- the decoder

/** The run options of an unCLIP recipe (no dry run: the recipe embeds and caches its data before the loop). */
type UnclipRunOptions<Row extends LoopRow> = Omit<RunOptions<Row>, 'dryRun'>;

export interface UnclipDecoderTrainingOptions extends UnclipRunOptions<MetricsRow> {
  readonly dataset: CaptionedDatasetName;
  readonly dataDir?: string;
  /** First N training images only. */
  readonly limit?: number;
  /** MNIST: measured attribute words in the captions. */
  readonly attributes: boolean;
  /**
   * Side reduction of the images the decoder draws (integer dividing the data's side padded to the next power of
   * two). Default 1: the data at its size. f > 1: the data padded and block-averaged by f as a cascade base
   * stage's (MNIST 2: 16x16), for a super-resolution stage of factor f to follow; the CLIP still embeds the
   * full-size images (see the header).
   */
  readonly factor?: number;
  /** The trained CLIP (kind 'clip'), frozen: its image tower makes the conditioning, its text tower the caption states (withText). */
  readonly clip: string;
  /** Also condition on the caption (DALL-E 2's decoder optionally did). Default false. */
  readonly withText?: boolean;
  readonly preset: UNetPreset;
  /**
   * Overrides of the preset: e.g. attentionResolutions, imageEmbeddingTokens (default 4), contextDim of an
   * image-only decoder (the width of its image tokens; default E).
   */
  readonly unet?: UNetConfigInput;
  readonly predictionType: PredictionType;
  readonly schedule: Partial<ScheduleConfig>;
  readonly train: Partial<TrainConfig>;
  /** Run folder: model.safetensors (EMA decoder), state, metrics, samples/, the embedding caches. */
  readonly outDir: string;
  /** Sample grids: variations of the first `rows` held-out images (their embeddings, and captions with text), `perImage` each. */
  readonly grid: { readonly rows: number; readonly perImage: number; readonly sampler: SamplerName; readonly steps: number; readonly guidance: number };
  /** Images per CLIP forward pass when embedding the data. */
  readonly embedBatchSize?: number;
}

/** The text tower's config as a text-to-image checkpoint records it. */
function clipTextConfig(clip: Clip): { text: Clip['config']['text']; tokenizer: Clip['config']['tokenizer'] } {
  return { text: clip.config.text, tokenizer: clip.config.tokenizer };
}

/** The factor a decoder checkpoint config records (absent: 1, the data at its size). */
function recordedFactor(raw: unknown, source: string): number {
  const f = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>).factor : undefined;
  if (f === undefined) return 1;
  if (typeof f !== 'number' || !Number.isInteger(f) || f < 2) throw new Error(`${source}: the decoder's factor must be an integer >= 2 when recorded, got ${JSON.stringify(f)}`);
  return f;
}

/** A decoder run's saved config, refused unless it is the run the options describe (factor, captions, CLIP). */
async function savedDecoderConfig(
  statePath: string, o: { factor: number; withText: boolean; provenance: ClipProvenance; clipFile: string },
): Promise<UnclipDecoderCheckpointConfig> {
  const state = await loadTrainingState(statePath, 'diffusion');
  tf.dispose([...state.tensors.values()]);
  const config = unclipDecoderCheckpointConfig(state.json.checkpointConfig, statePath);
  const saved = recordedFactor(state.json.checkpointConfig, statePath);
  if (saved !== o.factor) {
    throw new Error(`${statePath}: the run trains a decoder of the data reduced by factor ${saved}, resumed with factor ${o.factor}: resume needs the same factor`);
  }
  if ((config.textEncoder !== null) !== o.withText) {
    throw new Error(`${statePath}: the run trains a decoder ${config.textEncoder !== null ? 'with' : 'without'} captions, resumed with withText ${o.withText}: resume needs the same value`);
  }
  if (config.clip !== null) {
    const d = clipDifference(config.clip, o.provenance);
    if (d !== null) throw new Error(`${o.clipFile}: not the CLIP this run was started with (${config.clip.source}): ${d} differ (resume needs the same CLIP)`);
  }
  return config;
}

export async function trainUnclipDecoder(opts: UnclipDecoderTrainingOptions): Promise<TrainResult & { config: UnclipDecoderCheckpointConfig }> {
  const log = opts.onLog ?? (() => undefined);
  const cfg = trainConfig(opts.train);
  const withText = opts.withText ?? false;
  const factor = opts.factor ?? 1;
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`trainUnclipDecoder: factor must be an integer >= 1 (1: the data at its size), got ${factor}`);
  const { rows, perImage } = opts.grid;
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(perImage) || perImage < 1) {
    throw new Error(`trainUnclipDecoder: grid.rows and grid.perImage must be positive integers, got ${rows} and ${perImage}`);
  }
  const resuming = decideRunStart(opts.outDir, DIFFUSION_RUN_FILES, opts); // before any work: refuses what would lose a run
  fs.mkdirSync(opts.outDir, { recursive: true });

  // ---- data and captions (seeded by the run's seed)
  const train = loadCaptionedDataset(opts.dataset, 'train', { seed: cfg.seed, attributes: opts.attributes, limit: opts.limit, dataDir: opts.dataDir });
  let validation: ImageDataset | null = null;
  try {
    validation = loadCaptionedDataset(opts.dataset, 'test', { seed: cfg.seed, attributes: opts.attributes, limit: Math.max(cfg.valSize, rows), dataDir: opts.dataDir });
  } catch (e) {
    log(`no test split (${(e as Error).message.split('\n')[0]}): no validation loss; grids vary training images`);
  }
  // Resuming: the run's own config, checked against the options before anything is written into the run folder.
  const statePath = path.join(opts.outDir, STATE_FILE);
  const provenance = await clipProvenance(opts.clip);
  const savedConfig = resuming ? await savedDecoderConfig(statePath, { factor, withText, provenance, clipFile: opts.clip }) : null;
  const trainCaptions = train.captions as string[];
  writeCaptionsFile(path.join(opts.outDir, 'captions-train.txt'), trainCaptions);
  log(`${train.name}: ${train.count} captioned images ${train.height}x${train.width}x${train.channels}, e.g. "${trainCaptions[0]}"`);

  // ---- the images the decoder draws: the data, or its reduced version (a cascade base stage's); the CLIP embeds `train` / `validation`
  let decoderTrain = train;
  let decoderValidation = validation;
  let imageSize = train.height;
  if (factor > 1) {
    const padTo = nextPowerOfTwo(Math.max(train.height, train.width));
    if (padTo % factor !== 0) {
      throw new Error(`trainUnclipDecoder: factor ${factor} does not divide ${padTo}, the side '${train.name}' ${train.height}x${train.width} images are padded to ` +
        `(the next power of two): use a power of two <= ${padTo}`);
    }
    const reduced = baseStageData(train, factor);
    decoderTrain = reduced.data;
    decoderValidation = validation === null ? null : baseStageData(validation, factor).data;
    imageSize = reduced.imageSize;
    log(`decoder images: ${train.height}x${train.width} padded to ${padTo}x${padTo} and reduced by ${factor} to ${decoderTrain.height}x${decoderTrain.width} ` +
      `(imageSize ${imageSize}); the CLIP embeds the full-size images`);
  }

  // ---- the frozen CLIP and the image embeddings, once
  const clip = await loadClip(opts.clip);
  clip.freeze();
  let textStates: CaptionStateCache | null = null;
  let model: UNet | null = null;
  let ema: UNet | null = null;
  try {
    const E = clip.config.image.embedDim;
    const embed = { batchSize: opts.embedBatchSize, onLog: log };
    const trainTable = await cachedClipImageEmbeddings(path.join(opts.outDir, TRAIN_EMBEDDINGS_FILE), opts.clip, clip, train, embed);
    const validationTable = validation === null ? null : await cachedClipImageEmbeddings(path.join(opts.outDir, VALIDATION_EMBEDDINGS_FILE), opts.clip, clip, validation, embed);

    // ---- the model config: from the saved state when resuming (checked above), else from the options
    let config: UnclipDecoderCheckpointConfig;
    if (savedConfig !== null) {
      config = savedConfig;
      log(`resuming the decoder saved in ${statePath}; model options on the command line are ignored`);
    } else {
      const unet = unetConfig({
        ...UNET_PRESETS[opts.preset],
        ...(opts.unet ?? {}),
        inChannels: train.channels,
        outChannels: train.channels,
        sampleSize: nextPowerOfTwo(Math.max(decoderTrain.height, decoderTrain.width)),
        // image-only: the width of the image tokens (default E); with text: the text tower's width
        contextDim: withText ? clip.config.text.dim : (opts.unet?.contextDim ?? E),
        // image-only: no text to pool (an unused projection would have no gradient)
        addPooledContextToTime: withText ? (opts.unet?.addPooledContextToTime ?? true) : false,
        imageEmbeddingDim: E,
        numClasses: null,
        augLevelEmbedding: false,
        predictionType: opts.predictionType,
      });
      config = unclipDecoderCheckpointConfig({
        unet,
        schedule: scheduleConfig(opts.schedule),
        space: 'pixel',
        dataset: opts.dataset,
        imageSize,
        imageChannels: train.channels,
        imageEmbeddingDim: E,
        clip: provenance,
        textEncoder: withText ? clipTextConfig(clip) : null,
      }, 'trainUnclipDecoder');
    }
    // ---- token states of every caption, once (decoders that read captions)
    if (withText) {
      const captions = [...trainCaptions, ...(validation?.captions ?? []), NULL_PROMPT];
      let truncated = 0;
      textStates = encodeCaptionsCached(clip.textEncoder, clip.tokenizer(), captions, { onWarn: () => truncated++ });
      log(`text states: ${textStates.size} distinct captions (with the empty prompt) encoded once by the CLIP text tower${truncated > 0 ? `; ${truncated} truncated` : ''}`);
    }

    model = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
    ema = new UNet(config.unet, new Rng(`${cfg.seed}/init`));
    log(`decoder UNet: ${model.numParameters().toLocaleString('en-US')} parameters, pixel space ${config.unet.sampleSize}x${config.unet.sampleSize}x${config.unet.inChannels}, ` +
      `${config.unet.predictionType}-prediction; conditioning: ${model.describeConditioning()}`);
    const schedule = makeSchedule(config.schedule);

    // ---- sample grids: variations of fixed held-out images (shown as the decoder draws them; embedded at full size)
    const source = decoderValidation ?? decoderTrain;
    const sourceTable = validation === null ? trainTable : (validationTable as ImageEmbeddingTable);
    const gridRows = Math.min(rows, source.count);
    const rowCaptions = (source.captions as string[]).slice(0, gridRows);
    const onSample = async (net: UNet, step: number, file: string): Promise<void> => {
      const owner = Int32Array.from({ length: gridRows * perImage }, (_, k) => Math.floor(k / perImage));
      const emb = tf.tidy(() => tf.gather(tf.tensor2d(sourceTable.values.subarray(0, gridRows * E), [gridRows, E]), owner) as tf.Tensor2D);
      let samples: tf.Tensor4D;
      try {
        samples = await decodeImageEmbeddings({ unet: net, schedule, config }, { clip, tokenizer: clip.tokenizer() }, emb, {
          prompts: withText ? Array.from(owner, (i) => rowCaptions[i]) : null,
          sampler: opts.grid.sampler, steps: opts.grid.steps, guidance: opts.grid.guidance, seed: cfg.seed, firstIndex: 0, clip: UNCLIP_GENERATE_DEFAULTS.clip,
        });
      } finally {
        emb.dispose();
      }
      const batch = fixedBatch(source, Array.from({ length: gridRows }, (_, i) => i), { padTo: config.unet.sampleSize });
      let grid: tf.Tensor4D;
      try {
        grid = tf.tidy(() => {
          // row r: [source image r, its perImage variations], cropped to the data size
          const all = tf.concat([batch.x, samples], 0);
          const order = Int32Array.from({ length: gridRows * (perImage + 1) }, (_, k) => {
            const r = Math.floor(k / (perImage + 1));
            const j = k % (perImage + 1);
            return j === 0 ? r : gridRows + r * perImage + (j - 1);
          });
          const g = tf.gather(all, order) as tf.Tensor4D;
          const off = Math.floor((config.unet.sampleSize - config.imageSize) / 2);
          return tf.slice(g, [0, off, off, 0], [g.shape[0], config.imageSize, config.imageSize, g.shape[3]]);
        });
      } finally {
        tf.dispose([samples, batch.x, ...(batch.labels ? [batch.labels] : [])]);
      }
      try {
        await saveImageGrid(file, grid, { cols: perImage + 1 });
        log(`step ${step}: variations grid ${file} (first column: the ${validation === null ? 'training' : 'held-out'} image whose CLIP embedding conditions the row` +
          `${factor > 1 ? `, reduced by ${factor} as the decoder draws it` : ''})`);
      } finally {
        grid.dispose();
      }
    };

    const result = await trainDiffusion({
      model,
      ema,
      schedule,
      train: decoderTrain,
      validation: decoderValidation,
      config: cfg,
      outDir: opts.outDir,
      ...runOptionsOf(opts),
      onLog: log,
      checkpointConfig: {
        schedule: config.schedule,
        space: config.space,
        dataset: config.dataset,
        imageSize: config.imageSize,
        imageChannels: config.imageChannels,
        imageEmbeddingDim: config.imageEmbeddingDim,
        clip: config.clip,
        textEncoder: config.textEncoder,
        attributes: opts.attributes,
        ...(factor > 1 ? { factor } : {}), // the reduction of the data (see the header); absent at 1, as before
      },
      textStates: textStates ?? undefined,
      imageEmbeddings: trainTable,
      validationImageEmbeddings: validationTable ?? undefined,
      onSample,
    });
    log(`decoder: ${opts.outDir} has no pipeline.json; ship it with a prior and the CLIP as an unclip pipeline (writeUnclipPipeline)`);
    return { ...result, config };
  } finally {
    clip.dispose();
    textStates?.dispose();
    model?.dispose();
    ema?.dispose();
  }
}

// ---------------------------------------------------------------- the prior

export interface UnclipPriorTrainingOptions extends UnclipRunOptions<PriorMetricsRow> {
  readonly dataset: CaptionedDatasetName;
  readonly dataDir?: string;
  /** First N training images only. */
  readonly limit?: number;
  readonly attributes: boolean;
  /** The trained CLIP (kind 'clip'), frozen: embeds every image and caption once. */
  readonly clip: string;
  /** Overrides of PRIOR_DEFAULTS (embedDim is the CLIP's). */
  readonly prior?: Partial<Omit<PriorConfig, 'embedDim'>>;
  readonly schedule: Partial<ScheduleConfig>;
  readonly train: Partial<PriorTrainConfig>;
  /** Run folder: prior.safetensors (EMA), prior-state.safetensors, prior-metrics.jsonl, prior-loss.png. */
  readonly outDir: string;
  /** Images / captions per CLIP forward pass. */
  readonly embedBatchSize?: number;
}

/** A prior run's saved config and schedule, refused unless it was trained on this CLIP. */
async function savedPriorConfig(statePath: string, provenance: ClipProvenance, clipFile: string): Promise<{ config: PriorConfig; schedule: ScheduleConfig }> {
  const state = await loadTrainingState(statePath, 'prior');
  tf.dispose([...state.tensors.values()]);
  const saved = state.json.checkpointConfig as { prior?: Partial<PriorConfig>; schedule?: Partial<ScheduleConfig>; clip?: unknown } | undefined;
  if (saved?.prior === undefined || saved.schedule === undefined) throw new Error(`${statePath}: the training state holds no prior / schedule config`);
  const recorded: ClipProvenance | null = recordedClipProvenance(saved.clip, statePath);
  const d = recorded === null ? null : clipDifference(recorded, provenance);
  if (d !== null) throw new Error(`${clipFile}: not the CLIP this run was started with (${(recorded as ClipProvenance).source}): ${d} differ (resume needs the same CLIP)`);
  return { config: priorConfig(saved.prior), schedule: scheduleConfig(saved.schedule) };
}

export async function trainUnclipPrior(opts: UnclipPriorTrainingOptions): Promise<TrainPriorResult & { config: PriorConfig; pairs: number }> {
  const log = opts.onLog ?? (() => undefined);
  const cfg = priorTrainConfig(opts.train);
  const resuming = decideRunStart(opts.outDir, PRIOR_RUN_FILES, opts); // before any work: refuses what would lose a run
  fs.mkdirSync(opts.outDir, { recursive: true });
  const train = loadCaptionedDataset(opts.dataset, 'train', { seed: cfg.seed, attributes: opts.attributes, limit: opts.limit, dataDir: opts.dataDir });
  let test: ImageDataset | null = null;
  try {
    test = loadCaptionedDataset(opts.dataset, 'test', { seed: cfg.seed, attributes: opts.attributes, limit: cfg.valSize, dataDir: opts.dataDir });
  } catch (e) {
    log(`no test split (${(e as Error).message.split('\n')[0]}): no prior validation`);
  }

  // Resuming: the run's own config, checked against the CLIP before the embeddings are computed.
  const statePath = path.join(opts.outDir, PRIOR_STATE_FILE);
  const provenance = await clipProvenance(opts.clip);
  const saved = resuming ? await savedPriorConfig(statePath, provenance, opts.clip) : null;
  const clip = await loadClip(opts.clip);
  clip.freeze();
  let pairs: EmbeddingPairs;
  let validation: EmbeddingPairs | null = null;
  try {
    const embed = { batchSize: opts.embedBatchSize, onLog: log };
    pairs = await clipEmbeddingPairs(clip, train, embed);
    if (test !== null) validation = await clipEmbeddingPairs(clip, test, embed);
  } finally {
    clip.dispose();
  }
  log(`embedding pairs: ${pairs.count} training, ${validation?.count ?? 0} held-out (E ${pairs.embedDim}) from ${opts.clip}`);

  // ---- the prior's config: from the saved state when resuming (checked above), else from the options
  let config: PriorConfig;
  let scheduleCfg: ScheduleConfig;
  if (saved !== null) {
    ({ config, schedule: scheduleCfg } = saved);
    log(`resuming the prior saved in ${statePath}; model options on the command line are ignored`);
  } else {
    config = priorConfig({ ...(opts.prior ?? {}), embedDim: pairs.embedDim });
    scheduleCfg = scheduleConfig(opts.schedule);
  }
  if (config.embedDim !== pairs.embedDim) throw new Error(`${statePath}: the prior works on ${config.embedDim}-dim embeddings, the CLIP makes ${pairs.embedDim}`);
  const prior = new DiffusionPrior(config);
  const ema = new DiffusionPrior(config);
  try {
    log(`prior: ${prior.numParameters().toLocaleString('en-US')} parameters (width ${config.width}, depth ${config.depth}), ${config.predictionType}-prediction`);
    const result = await trainPrior({
      prior,
      ema,
      schedule: makeSchedule(scheduleCfg),
      pairs,
      validation,
      config: cfg,
      outDir: opts.outDir,
      ...runOptionsOf(opts),
      onLog: log,
      checkpointConfig: { clip: provenance, dataset: opts.dataset, attributes: opts.attributes },
    });
    return { ...result, config, pairs: pairs.count };
  } finally {
    prior.dispose();
    ema.dispose();
  }
}
