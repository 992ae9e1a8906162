/**
 * Writing pipeline folders (Node): a self-contained folder with its manifest,
 * assembled from training run folders, for each design. Every writer checks that
 * the parts fit together before anything is written and loads what it wrote once.
 * (Loading them anywhere: pipelines/loadPipeline.ts.)
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Clip, CLIP_CHECKPOINT_KIND } from '../models/clip';
import { TextEncoder } from '../models/textEncoder';
import { PRIOR_CHECKPOINT_KIND } from '../models/prior';
import { CheckpointInfo, WEIGHTS_FILE } from '../io/checkpoint';
import { PipelineManifest, PipelinePart } from '../io/pipelineManifest';
import { folderFiles, pipelinePartPath, readPipelineManifest, writePipelineManifest } from '../io/pipeline';
import { LowResConfig } from '../sample/lowResConditioning';
import { PipelineSamplingDefaults } from '../pipelines/pixelDiffusion';
import { AUTOENCODER_FILE, loadTextToImagePipeline, TEXT_ENCODER_FILE, TextUNetCheckpointConfig, textUNetCheckpointConfig } from '../pipelines/textToImage';
import { CascadeSamplingDefaults, CASCADE_PARTS, checkCascadeParts, loadCascadePipeline } from '../pipelines/cascade';
import {
  checkSrDefaults, checkUnclipParts, checkUnclipSuperResolution, clipProvenanceOf, UNCLIP_PARTS, UnclipDecoderCheckpointConfig,
  unclipDecoderCheckpointConfig, UnclipPriorCheckpointConfig, unclipPriorCheckpointConfig, UnclipSamplingDefaults, unclipSamplingDefaults,
} from '../pipelines/unclipConfig';
import { loadUnclipPipeline, unclipDecoderFromCheckpoint } from '../pipelines/unclip';
import { loadModelWeights, readCheckpointFile, readModelConfig, saveModelWeights } from '../io/checkpointFile';
import { loadClip } from './pipelineParts';
import { PRIOR_WEIGHTS_FILE } from '../train/priorTraining';
import { loadPrior } from './pipelineParts';
import { copyUNet, loadTextEncoder, saveTextEncoder } from './pipelineParts';

// ---------------------------------------------------------------- pixel / latent text-to-image: a folder from one run

/** What writeTextPipeline ships. */
export interface TextPipelineAssembly {
  /** A text-to-image run folder (trainTextDiffusion): pipeline.json, model.safetensors, text encoder, autoencoder (latent). */
  readonly run: string;
  /** A UNet file of the run to ship instead of the manifest's (e.g. snapshots/step_002000.safetensors). */
  readonly unetFile?: string;
  /** Weight storage of the shipped files (float16 halves them). Default float32. */
  readonly storage?: 'float32' | 'float16';
  /** Sampling defaults written to the manifest. */
  readonly defaults?: PipelineSamplingDefaults;
}

/**
 * Writes a self-contained pixel / latent text-to-image pipeline folder from a
 * run folder: the UNet (EMA weights, its config, step, seed and training
 * command kept), the frozen text encoder and, latent, the autoencoder, each
 * with the chosen storage, and a manifest with the sampling defaults.
 */
export async function writeTextPipeline(dir: string, a: TextPipelineAssembly): Promise<PipelineManifest> {
  const storage = a.storage ?? 'float32';
  const runManifest = await readPipelineManifest(a.run);
  const unetSource = a.unetFile !== undefined ? path.resolve(a.run, a.unetFile) : pipelinePartPath(a.run, runManifest, 'unet');
  const reference = await loadTextToImagePipeline(folderFiles(a.run), runManifest);
  try {
    const info = await readModelConfig(unetSource);
    await loadModelWeights(unetSource, reference.unet, { expectKind: 'unet' }); // the run's own UNet, or the chosen snapshot
    fs.mkdirSync(dir, { recursive: true });
    const parts: Record<string, PipelinePart> = {};
    await saveModelWeights(path.join(dir, 'unet.safetensors'), reference.unet, {
      kind: 'unet', config: info.config, step: info.step ?? undefined, seed: info.seed ?? undefined, command: info.command ?? undefined, storage,
    });
    parts.unet = { file: 'unet.safetensors', kind: 'unet', description: `text-conditional ${reference.space} UNet (EMA) after ${info.step ?? '?'} steps, ${storage}` };
    await saveTextEncoder(path.join(dir, TEXT_ENCODER_FILE), reference.text, { storage, command: (await readModelConfig(pipelinePartPath(a.run, runManifest, 'text_encoder'))).command ?? undefined });
    parts.text_encoder = { file: TEXT_ENCODER_FILE, kind: 'text-encoder', description: `frozen CLIP text tower, ${storage}` };
    if (reference.autoencoder !== null) {
      const vaeFile = pipelinePartPath(a.run, runManifest, 'vae');
      const vaeInfo = await readModelConfig(vaeFile);
      await saveModelWeights(path.join(dir, AUTOENCODER_FILE), reference.autoencoder, {
        kind: 'autoencoder', config: vaeInfo.config, step: vaeInfo.step ?? undefined, seed: vaeInfo.seed ?? undefined, command: vaeInfo.command ?? undefined, storage,
      });
      parts.vae = { file: AUTOENCODER_FILE, kind: 'autoencoder', description: `frozen KL autoencoder (decoder of the latents), ${storage}` };
    }
    return await writePipelineManifest(dir, { design: reference.space, parts, ...(a.defaults !== undefined ? { defaults: { ...a.defaults } } : {}) });
  } finally {
    reference.dispose();
  }
}

// ---------------------------------------------------------------- cascade: a folder from two runs

export interface CascadeAssembly {
  /** Run folder of the base stage (trainTextDiffusion with stage 'base'): model.safetensors, text_encoder.safetensors. */
  readonly baseRun: string;
  /** Run folder of the super-resolution stage. */
  readonly srRun: string;
  /** A UNet file of the base run to ship instead of model.safetensors (e.g. snapshots/step_002000.safetensors). */
  readonly baseUnet?: string;
  readonly srUnet?: string;
  /** Weight storage of the shipped files (float16 halves them). Default float32. */
  readonly storage?: 'float32' | 'float16';
  /** Sampling defaults written to the manifest. */
  readonly defaults?: CascadeSamplingDefaults;
}

/**
 * Writes a cascade pipeline folder `dir` from a base run and an SR run: base.safetensors,
 * sr.safetensors, text_encoder.safetensors and pipeline.json. The parts are checked
 * to fit together (stages, sizes, text encoder) before anything is written.
 */
export async function writeCascadePipeline(dir: string, a: CascadeAssembly): Promise<PipelineManifest> {
  const storage = a.storage ?? 'float32';
  const baseFile = path.resolve(a.baseRun, a.baseUnet ?? WEIGHTS_FILE);
  const srFile = path.resolve(a.srRun, a.srUnet ?? WEIGHTS_FILE);
  const [baseInfo, srInfo] = await Promise.all([readModelConfig(baseFile), readModelConfig(srFile)]);
  const baseConfig = textUNetCheckpointConfig(baseInfo.config, baseFile);
  const srConfig = textUNetCheckpointConfig(srInfo.config, srFile);
  const text = await loadTextEncoder(path.join(a.baseRun, TEXT_ENCODER_FILE));
  try {
    checkCascadeParts(baseConfig, srConfig, text, `writeCascadePipeline(${dir})`);
    fs.mkdirSync(dir, { recursive: true });
    await saveTextEncoder(path.join(dir, 'text_encoder.safetensors'), text, { storage, command: (await readModelConfig(text.source)).command ?? undefined });
  } finally {
    text.dispose();
  }
  await copyUNet(baseFile, path.join(dir, 'base.safetensors'), storage);
  await copyUNet(srFile, path.join(dir, 'sr.safetensors'), storage);
  const s = baseConfig.unet.sampleSize;
  const S = srConfig.unet.sampleSize;
  const manifest = await writePipelineManifest(dir, {
    design: 'cascade',
    parts: {
      [CASCADE_PARTS.textEncoder]: { file: 'text_encoder.safetensors', kind: 'text-encoder', description: `frozen CLIP text tower, ${storage}` },
      [CASCADE_PARTS.base]: { file: 'base.safetensors', kind: 'unet', description: `text-conditional base UNet ${s}x${s} (EMA) after ${baseInfo.step} steps, ${baseConfig.dataset}, ${storage}` },
      [CASCADE_PARTS.sr]: { file: 'sr.safetensors', kind: 'unet', description: `text-conditional super-resolution UNet ${s}x${s} -> ${S}x${S} (EMA) after ${srInfo.step} steps, ${storage}` },
    },
    ...(a.defaults !== undefined ? { defaults: { ...a.defaults } } : {}),
  });
  (await loadCascadePipeline(folderFiles(dir), manifest)).dispose(); // what was written loads
  return manifest;
}

// ---------------------------------------------------------------- unclip: CLIP, prior, decoder (and an SR stage) from their runs

async function priorConfigOf(file: string): Promise<{ info: CheckpointInfo; config: UnclipPriorCheckpointConfig }> {
  const info = await readModelConfig(file);
  if (info.kind !== PRIOR_CHECKPOINT_KIND) throw new Error(`${file}: expected a '${PRIOR_CHECKPOINT_KIND}' checkpoint, got kind '${info.kind}'`);
  return { info, config: unclipPriorCheckpointConfig(info.config, file) };
}

async function decoderConfigOf(file: string): Promise<{ info: CheckpointInfo; config: UnclipDecoderCheckpointConfig }> {
  const info = await readModelConfig(file);
  if (info.kind !== 'unet') throw new Error(`${file}: expected a 'unet' checkpoint, got kind '${info.kind}'`);
  return { info, config: unclipDecoderCheckpointConfig(info.config, file) };
}

async function srConfigOf(file: string): Promise<{ info: CheckpointInfo; config: TextUNetCheckpointConfig }> {
  const info = await readModelConfig(file);
  if (info.kind !== 'unet') throw new Error(`${file}: expected a 'unet' checkpoint, got kind '${info.kind}'`);
  return { info, config: textUNetCheckpointConfig(info.config, file) };
}

// float16 storage rounds each weight by up to 2^-11 relative: a copy of the same tower stays below this.
const SAME_TOWER_RTOL = 1e-3;

/** max over parameters of max|a - b| / max|b| for two text towers of one config (Infinity when their names or shapes differ). */
function towerWeightDifference(a: TextEncoder, b: TextEncoder): number {
  const theirs = new Map(b.namedParameters());
  let worst = 0;
  for (const [name, v] of a.namedParameters()) {
    const w = theirs.get(name);
    if (w === undefined || w.shape.join(',') !== v.shape.join(',')) return Infinity;
    // A few small tensors, once per assembled folder: the sync reads are fine here.
    const r = tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(v, w))), tf.maximum(tf.max(tf.abs(w)), 1e-12)).dataSync()[0]);
    worst = Math.max(worst, r);
  }
  return worst;
}

/**
 * Throws unless the SR run's text encoder (its text_encoder.safetensors: the tower it was trained with)
 * holds the CLIP's text-tower weights. Configs alike are not enough: another CLIP of the same shape
 * would pass them.
 */
async function checkSrTextWeights(clip: Clip, clipFile: string, file: string, where: string): Promise<void> {
  if (!fs.existsSync(file)) throw new Error(`${where}: no ${file}: the super-resolution run's text encoder is needed to check it was trained with the CLIP's text tower`);
  const text = await loadTextEncoder(file);
  try {
    const d = towerWeightDifference(clip.textEncoder, text.encoder);
    if (!(d <= SAME_TOWER_RTOL)) {
      throw new Error(`${where}: the super-resolution stage was trained with another text tower (${file}) than the CLIP's (${clipFile}): largest relative ` +
        `weight difference ${d.toExponential(2)}, expected <= ${SAME_TOWER_RTOL} (float16 rounding)`);
    }
  } finally {
    text.dispose();
  }
}



export interface UnclipAssembly {
  /** The CLIP checkpoint (kind 'clip') the prior and decoder were trained on. */
  readonly clip: string;
  /** Run folder of the prior (trainUnclipPrior): prior.safetensors. */
  readonly priorRun: string;
  /** Run folder of the decoder (trainUnclipDecoder): model.safetensors. */
  readonly decoderRun: string;
  /** A prior file of the prior run to ship instead of prior.safetensors. */
  readonly priorFile?: string;
  /** A UNet file of the decoder run to ship instead of model.safetensors (e.g. snapshots/step_002000.safetensors). */
  readonly decoderFile?: string;
  /**
   * Run folder of an optional super-resolution stage (trainTextDiffusion with stage 'super-resolution', as a
   * cascade's): model.safetensors, and text_encoder.safetensors, which must be the CLIP's text tower.
   */
  readonly srRun?: string;
  /** A UNet file of the SR run to ship instead of model.safetensors. */
  readonly srUnet?: string;
  /** Weight storage of the shipped files (float16 halves them). Default float32. */
  readonly storage?: 'float32' | 'float16';
  /** Sampling defaults written to the manifest. */
  readonly defaults?: UnclipSamplingDefaults;
}

/** Keeps a source file's step, seed and command when re-saving it. */
function provenanceOf(info: CheckpointInfo): { step?: number; seed?: number; command?: string } {
  return { step: info.step ?? undefined, seed: info.seed ?? undefined, command: info.command ?? undefined };
}

/**
 * Writes an unclip pipeline folder `dir`: clip.safetensors, prior.safetensors,
 * decoder.safetensors, optionally sr.safetensors, and pipeline.json. The parts
 * are checked to fit together (embedding widths, channels, the CLIP the others
 * were trained on; the SR stage's sizes and text tower, its weights included)
 * before anything is written; the written folder is loaded back once.
 */
export async function writeUnclipPipeline(dir: string, a: UnclipAssembly): Promise<PipelineManifest> {
  const where = `writeUnclipPipeline(${dir})`;
  const storage = a.storage ?? 'float32';
  const priorFile = path.resolve(a.priorRun, a.priorFile ?? PRIOR_WEIGHTS_FILE);
  const decoderFile = path.resolve(a.decoderRun, a.decoderFile ?? WEIGHTS_FILE);
  if (a.srUnet !== undefined && a.srRun === undefined) throw new Error(`${where}: srUnet ${a.srUnet} is a file of a super-resolution run: give srRun too`);
  const clipInfo = await readModelConfig(a.clip);
  const provenance = clipProvenanceOf(clipInfo, a.clip);
  const prior = await priorConfigOf(priorFile);
  const decoder = await decoderConfigOf(decoderFile);
  checkUnclipParts(provenance, prior.config, decoder.config, where);
  let sr: { run: string; file: string; info: CheckpointInfo; config: TextUNetCheckpointConfig; lowRes: LowResConfig } | null = null;
  if (a.srRun !== undefined) {
    const file = path.resolve(a.srRun, a.srUnet ?? WEIGHTS_FILE);
    const { info, config } = await srConfigOf(file);
    sr = { run: a.srRun, file, info, config, lowRes: checkUnclipSuperResolution(provenance.config, decoder.config, config, where) };
  }
  if (a.defaults !== undefined) checkSrDefaults(unclipSamplingDefaults({ ...a.defaults }, where), sr?.lowRes ?? null, where);

  const clip = await loadClip(a.clip);
  try {
    if (sr !== null) await checkSrTextWeights(clip, a.clip, path.join(sr.run, TEXT_ENCODER_FILE), where);
    fs.mkdirSync(dir, { recursive: true });
    await saveModelWeights(path.join(dir, 'clip.safetensors'), clip, { kind: CLIP_CHECKPOINT_KIND, config: clipInfo.config, ...provenanceOf(clipInfo), storage });
  } finally {
    clip.dispose();
  }
  const loadedPrior = await loadPrior(priorFile);
  try {
    await saveModelWeights(path.join(dir, 'prior.safetensors'), loadedPrior.prior, { kind: PRIOR_CHECKPOINT_KIND, config: prior.info.config, ...provenanceOf(prior.info), storage });
  } finally {
    loadedPrior.prior.dispose();
  }
  const loadedDecoder = unclipDecoderFromCheckpoint(await readCheckpointFile(decoderFile));
  try {
    await saveModelWeights(path.join(dir, 'decoder.safetensors'), loadedDecoder.unet, { kind: 'unet', config: decoder.info.config, ...provenanceOf(decoder.info), storage });
  } finally {
    loadedDecoder.unet.dispose();
  }
  if (sr !== null) await copyUNet(sr.file, path.join(dir, 'sr.safetensors'), storage);
  const E = provenance.config.image.embedDim;
  const u = decoder.config.unet;
  const S = sr?.config.unet.sampleSize;
  const manifest = await writePipelineManifest(dir, {
    design: 'unclip',
    parts: {
      [UNCLIP_PARTS.clip]: { file: 'clip.safetensors', kind: CLIP_CHECKPOINT_KIND, description: `frozen CLIP (E ${E}, step ${clipInfo.step ?? '?'}): text tower for prompts, image tower for variations, ${storage}` },
      [UNCLIP_PARTS.prior]: { file: 'prior.safetensors', kind: PRIOR_CHECKPOINT_KIND, description: `diffusion prior text -> image embedding (EMA) after ${prior.info.step ?? '?'} steps, ${storage}` },
      [UNCLIP_PARTS.decoder]: {
        file: 'decoder.safetensors', kind: 'unet',
        description: `pixel decoder ${u.sampleSize}x${u.sampleSize} from the image embedding${decoder.config.textEncoder !== null ? ' and the caption' : ''} (EMA) after ${decoder.info.step ?? '?'} steps, ${decoder.config.dataset}, ${storage}`,
      },
      ...(sr !== null ? {
        [UNCLIP_PARTS.sr]: {
          file: 'sr.safetensors', kind: 'unet',
          description: `text-conditional super-resolution UNet ${u.sampleSize}x${u.sampleSize} -> ${S}x${S} (EMA) after ${sr.info.step ?? '?'} steps, ${sr.config.dataset}, ${storage}`,
        },
      } : {}),
    },
    ...(a.defaults !== undefined ? { defaults: { ...a.defaults } } : {}),
  });
  (await loadUnclipPipeline(folderFiles(dir), manifest)).dispose(); // what was written loads
  return manifest;
}
