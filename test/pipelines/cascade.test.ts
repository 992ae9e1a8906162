/**
 * The Imagen-style cascade (src/pipelines/cascade.ts) from tiny folders
 * assembled by hand: it loads; generateCascade is base sample -> resize ->
 * augmentation at augLevel (keyed noise) -> SR sample on [x_t, z] -> crop,
 * checked against the same composition done by hand; deterministic, split by
 * firstIndex / batchSize, guidance wired in both stages (the SR null keeps z);
 * mismatched parts and bad levels refused. Also: loadTextPipeline over the
 * designs, writeCascadePipeline from two run folders, and trainTextDiffusion
 * training a base and an SR stage for two steps each on 8 MNIST digits.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { keyedRng, Rng } from '../../src/backend/random';
import { UNet, unetConfig, UNetConfig } from '../../src/models/unet';
import { Clip } from '../../src/models/clip';
import { learnBpeMerges } from '../../src/models/tokenizer';
import { scheduleConfig } from '../../src/schedule/betas';
import { makeSchedule } from '../../src/schedule/schedule';
import { readModelConfig, saveModelWeights } from '../../src/io/checkpointFile';
import { lowResConfig } from '../../src/sample/lowResConditioning';
import { WEIGHTS_FILE } from '../../src/io/checkpoint';
import { folderFiles, writePipelineManifest, readPipelineManifest } from '../../src/io/pipeline';
import { PipelinePart } from '../../src/io/pipelineManifest';
import { sample } from '../../src/sample/sample';
import { ClipMode } from '../../src/sample/thresholding';
import { unetDenoiser } from '../../src/pipelines/unetDenoiser';
import { encodePrompts, TextEncoderCheckpointConfig } from '../../src/pipelines/textConditioning';
import { loadTextEncoder, saveTextEncoder } from '../../src/node/pipelineParts';
import { generateFromText, loadTextToImagePipeline, textUNetCheckpointConfig } from '../../src/pipelines/textToImage';
import { CascadePipeline, generateCascade, loadCascadePipeline } from '../../src/pipelines/cascade';
import { writeCascadePipeline } from '../../src/node/writePipeline';
import { loadTextPipeline } from '../../src/node/loadPipeline';
import { trainTextDiffusion } from '../../src/recipes/textTraining';

beforeAll(async () => useBackend('cpu'));

const CORPUS = ['a top digit', 'a left digit', 'a thin top digit', 'the left one', 'a top one'];
const SCHEDULE = scheduleConfig({ kind: 'cosine', timesteps: 50 });
const LOW_RES = lowResConfig({ factor: 2, maxAugLevel: 20 });
// zeroInitOutput false: untrained UNets whose output depends on every input (a zero output would hide wiring errors).
const BASE_UNET = unetConfig({
  inChannels: 1, sampleSize: 4, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [2], heads: 2,
  timeEmbeddingDim: 16, timeEmbeddingInputDim: 16, contextDim: 8, zeroInitOutput: false,
});
const SR_UNET = unetConfig({ ...BASE_UNET, inChannels: 2, outChannels: 1, sampleSize: 8, attentionResolutions: [4], augLevelEmbedding: true, predictionType: 'v' });
const DYNAMIC: ClipMode = { kind: 'dynamic', percentile: 0.995 };

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-cascade-'));
}

/** Writes text_encoder.safetensors (a tiny CLIP's text tower with `maxMerges` BPE merges) into dir; returns its config. */
async function writeTextEncoder(dir: string, maxMerges: number, maxLength = 10): Promise<TextEncoderCheckpointConfig> {
  const clip = new Clip({
    image: { inChannels: 1, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
    text: { maxLength, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
    tokenizer: { merges: learnBpeMerges(CORPUS, { maxMerges }) },
    seed: 5,
  });
  const clipFile = path.join(dir, 'clip.safetensors');
  await saveModelWeights(clipFile, clip, { kind: 'clip', config: { clip: clip.config } });
  clip.dispose();
  const text = await loadTextEncoder(clipFile);
  await saveTextEncoder(path.join(dir, 'text_encoder.safetensors'), text);
  const config = text.config;
  text.dispose();
  fs.unlinkSync(clipFile);
  return config;
}

/** The config a trained stage's checkpoint records. */
function stageConfig(unet: UNetConfig, text: TextEncoderCheckpointConfig, stage: unknown, imageSize: number): Record<string, unknown> {
  return { unet, schedule: SCHEDULE, dataset: 'toy', imageSize, imageChannels: 1, space: 'pixel', latentScaleFactor: null, textEncoder: text, stage };
}

interface FolderOptions {
  readonly baseUnet?: UNetConfig;
  readonly srUnet?: UNetConfig;
  readonly baseStage?: unknown;
  readonly srStage?: unknown;
  /** BPE merges of the text encoder recorded in the SR config (6 = the shipped one). */
  readonly srTextMerges?: number;
  readonly omit?: 'sr' | 'base';
  readonly defaults?: Record<string, unknown>;
}

/** A cascade folder: text_encoder, base, sr and pipeline.json. */
async function cascadeFolder(o: FolderOptions = {}): Promise<string> {
  const dir = tmpDir();
  const text = await writeTextEncoder(dir, 6);
  let srText = text;
  if (o.srTextMerges !== undefined) srText = await writeTextEncoder(tmpDir(), o.srTextMerges);
  const baseUnet = o.baseUnet ?? BASE_UNET;
  const srUnet = o.srUnet ?? SR_UNET;
  const base = new UNet(baseUnet, new Rng('base'));
  await saveModelWeights(path.join(dir, 'base.safetensors'), base, { kind: 'unet', config: stageConfig(baseUnet, text, o.baseStage ?? { kind: 'base', factor: 2 }, 3), step: 11 });
  base.dispose();
  const sr = new UNet(srUnet, new Rng('sr'));
  await saveModelWeights(path.join(dir, 'sr.safetensors'), sr, {
    kind: 'unet', config: stageConfig(srUnet, srText, o.srStage ?? { kind: 'super-resolution', lowRes: LOW_RES }, 6), step: 22,
  });
  sr.dispose();
  const parts: Record<string, PipelinePart> = {
    text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' },
    base: { file: 'base.safetensors', kind: 'unet' },
    sr: { file: 'sr.safetensors', kind: 'unet' },
  };
  if (o.omit !== undefined) delete parts[o.omit];
  await writePipelineManifest(dir, {
    design: 'cascade', parts, defaults: o.defaults ?? { sampler: 'ddim', steps: 3, guidance: 2, srSampler: 'dpm-solver++', srSteps: 2, srGuidance: 1.5, augLevel: 10 },
  });
  return dir;
}

function expectInRange(x: tf.Tensor): void {
  const v = x.dataSync();
  expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
  expect(Math.max(...v)).toBeLessThanOrEqual(1);
}

const diff = (u: tf.Tensor, v: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(u, v))).dataSync()[0]);
const P = ['a top digit', 'a left digit', 'the left one', 'a thin top digit'];
const OPTS = { sampler: 'ddim' as const, steps: 2, srSteps: 2, augLevel: 8, seed: 3 };

describe('loadCascadePipeline and generateCascade', () => {
  let p: CascadePipeline;
  let dir: string;
  beforeAll(async () => {
    dir = await cascadeFolder();
    p = await loadCascadePipeline(folderFiles(dir));
  });
  afterAll(() => p?.dispose());

  it('loads the three parts, the stages and the cascade defaults', () => {
    expect(p.base.space).toBe('pixel');
    expect(p.base.config.stage).toEqual({ kind: 'base', factor: 2 });
    expect(p.base.unet.config.sampleSize).toBe(4);
    expect(p.sr.lowRes).toEqual(LOW_RES);
    expect(p.sr.config.imageSize).toBe(6);
    expect(p.sr.unet.config.augLevelEmbedding).toBe(true);
    expect(p.base.text).toBe(p.text);
    expect(p.defaults).toEqual({ sampler: 'ddim', steps: 3, guidance: 2, srSampler: 'dpm-solver++', srSteps: 2, srGuidance: 1.5, augLevel: 10 });
  });

  it('is the base sample, resized, augmented with keyed noise, super-resolved and cropped (composed by hand)', async () => {
    const before = tf.memory().numTensors;
    const prompts = P.slice(0, 2);
    const x = await generateCascade(p, { ...OPTS, prompts, n: 2, guidance: 1, firstIndex: 5 });
    expect(x.shape).toEqual([2, 6, 6, 1]);
    expectInRange(x);

    // by hand: the base pipeline's sample (not cropped), bilinear to 8x8, z = sqrt(abar_a) up + sqrt(1 - abar_a) e
    const low = await generateFromText(p.base, { prompts, n: 2, sampler: 'ddim', steps: 2, guidance: 1, seed: 3, firstIndex: 5, clip: DYNAMIC, cropToImageSize: false });
    expect(low.shape).toEqual([2, 4, 4, 1]);
    const abar = makeSchedule(SCHEDULE).alphasCumprod[8];
    const e = new Float32Array(2 * 64);
    for (let i = 0; i < 2; i++) keyedRng(3, 'cascade-aug', 5 + i).fillNormal(e.subarray(i * 64, (i + 1) * 64));
    const z = tf.tidy(() => tf.add(tf.mul(Math.sqrt(abar), tf.image.resizeBilinear(low, [8, 8], false, true)), tf.mul(Math.sqrt(1 - abar), tf.tensor4d(e, [2, 8, 8, 1]))));
    const { context, mask } = encodePrompts(p.text, prompts);
    const augLevels = tf.tensor1d([8, 8], 'int32');
    const hr = await sample('ddim', unetDenoiser(p.sr.unet), [2, 8, 8, 1], p.sr.schedule, {
      steps: 2, predictionType: 'v', seed: '3/sr', firstIndex: 5, cond: { context, contextMask: mask, lowRes: z, augLevels }, clip: DYNAMIC,
    });
    const ref = tf.tidy(() => tf.slice(tf.clipByValue(hr, -1, 1), [0, 1, 1, 0], [2, 6, 6, 1]));
    await expectClose(x, ref, 1e-5);

    // the SR stage does depend on its low-res input: another level, another image
    const otherLevel = await generateCascade(p, { ...OPTS, prompts, n: 2, guidance: 1, firstIndex: 5, augLevel: 0 });
    expect(diff(otherLevel, x)).toBeGreaterThan(1e-4);
    tf.dispose([x, low, z, context, mask, augLevels, hr, ref, otherLevel]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic; one prompt broadcasts; images differ per index; splits by firstIndex and batchSize', async () => {
    const before = tf.memory().numTensors;
    const a = await generateCascade(p, { ...OPTS, prompts: ['a top digit'], n: 3, guidance: 2 });
    const b = await generateCascade(p, { ...OPTS, prompts: ['a top digit', 'a top digit', 'a top digit'], n: 3, guidance: 2 });
    expect(b.dataSync()).toEqual(a.dataSync());
    expect(tf.tidy(() => diff(tf.slice(a, [0], [1]), tf.slice(a, [1], [1])))).toBeGreaterThan(1e-4);
    const all = await generateCascade(p, { ...OPTS, prompts: P, n: 4, guidance: 2 });
    const tail = await generateCascade(p, { ...OPTS, prompts: P.slice(2), n: 2, guidance: 2, firstIndex: 2 });
    const chunked = await generateCascade(p, { ...OPTS, prompts: P, n: 4, guidance: 2, batchSize: 3 });
    const allTail = tf.slice(all, [2], [2]);
    await expectClose(tail, allTail, 1e-5);
    await expectClose(chunked, all, 1e-5);
    const uncropped = await generateCascade(p, { ...OPTS, prompts: P, n: 4, guidance: 2, cropToImageSize: false });
    expect(uncropped.shape).toEqual([4, 8, 8, 1]);
    const centre = tf.slice(uncropped, [0, 1, 1, 0], [4, 6, 6, 1]);
    await expectClose(centre, all, 1e-5);
    tf.dispose([a, b, all, tail, chunked, allTail, uncropped, centre]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('guides both stages against the empty prompt with the same low-res input', async () => {
    const before = tf.memory().numTensors;
    const o = { ...OPTS, prompts: ['a left digit'], n: 2 };
    const unguided = await generateCascade(p, { ...o, guidance: 1 });
    const guided = await generateCascade(p, { ...o, guidance: 3 });
    const srOnly = await generateCascade(p, { ...o, guidance: 1, srGuidance: 4 });
    expect(diff(guided, unguided)).toBeGreaterThan(1e-4);
    expect(diff(srOnly, unguided)).toBeGreaterThan(1e-4);
    // The empty prompt guided at any scale is the unguided empty prompt: the SR null condition keeps z and its level
    // (were it another z, the guided output would differ).
    const e = { ...OPTS, prompts: [''], n: 2 };
    const emptyGuided = await generateCascade(p, { ...e, guidance: 4, srGuidance: 5 });
    const emptyPlain = await generateCascade(p, { ...e, guidance: 1 });
    await expectClose(emptyGuided, emptyPlain, 1e-5);
    tf.dispose([unguided, guided, srOnly, emptyGuided, emptyPlain]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses levels the SR stage was not trained with, bad n / prompts / batchSize, leaving no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const o = { ...OPTS, prompts: ['a'], n: 1 };
    await expect(generateCascade(p, { ...o, augLevel: 21 })).rejects.toThrow(/augLevel must be an integer in \[0, 20\] .*got 21/);
    await expect(generateCascade(p, { ...o, augLevel: -1 })).rejects.toThrow(/got -1/);
    await expect(generateCascade(p, { ...o, augLevel: 1.5 })).rejects.toThrow(/got 1.5/);
    await expect(generateCascade(p, { ...o, n: 0 })).rejects.toThrow(/n must be a positive integer, got 0/);
    await expect(generateCascade(p, { ...o, prompts: ['a', 'b'], n: 3 })).rejects.toThrow(/give one prompt or n = 3 prompts, got 2/);
    await expect(generateCascade(p, { ...o, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer, got 0/);
    await expect(generateCascade(p, { ...o, clip: { kind: 'dynamic', percentile: 2 } })).rejects.toThrow(/percentile must be in \(0, 1\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loadTextPipeline: the cascade behind the common interface, with its manifest defaults', async () => {
    const before = tf.memory().numTensors;
    const t = await loadTextPipeline(dir);
    try {
      expect([t.design, t.dataset, t.imageSize, t.imageChannels, t.trainingStep]).toEqual(['cascade', 'toy', 6, 1, 22]);
      expect(t.describe()).toMatch(/cascade pipeline .*: base 4x4 \(step 11\) -> super-resolution 8x8 \(step 22, bilinear x2, trained augmentation levels 0\.\.20\)/);
      const x = await t.generate({ prompts: ['a top digit'], n: 2, seed: 1 });
      const ref = await generateCascade(p, {
        prompts: ['a top digit'], n: 2, seed: 1, sampler: 'ddim', steps: 3, guidance: 2, srSampler: 'dpm-solver++', srSteps: 2, srGuidance: 1.5, augLevel: 10,
      });
      await expectClose(x, ref, 1e-6);
      tf.dispose([x, ref]);
    } finally {
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('refusals when loading', () => {
  const refuses = async (dir: string, message: RegExp): Promise<void> => {
    const before = tf.memory().numTensors;
    await expect(loadCascadePipeline(folderFiles(dir))).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  };

  it('a missing part', async () => {
    await refuses(await cascadeFolder({ omit: 'sr' }), /no part 'sr' \(parts: text_encoder, base\)/);
  });

  it('an SR UNet that does not take [x_t, low-res image], or has no level embedding', async () => {
    const one = unetConfig({ ...SR_UNET, inChannels: 1, outChannels: 1 });
    await refuses(await cascadeFolder({ srUnet: one }), /a super-resolution UNet must map 2 channels \(x_t and the low-res image\) to 1 and embed the augmentation level; it maps 1 to 1/);
    const noLevel = unetConfig({ ...SR_UNET, augLevelEmbedding: false });
    await refuses(await cascadeFolder({ srUnet: noLevel }), /it maps 2 to 1 without the level embedding/);
  });

  it('base and SR stages trained with different text encoders', async () => {
    await refuses(await cascadeFolder({ srTextMerges: 3 }), /the base and super-resolution stages were trained with different text encoders/);
  });

  it('parts in the wrong roles, and sizes that do not chain', async () => {
    await refuses(await cascadeFolder({ baseStage: { kind: 'single' } }), /part 'base' is a 'single' UNet, expected a base stage/);
    const big = unetConfig({ ...BASE_UNET, sampleSize: 8, attentionResolutions: [4] });
    await refuses(await cascadeFolder({ baseUnet: big }), /the base stage makes 8x8 images .*the super-resolution stage takes 4x4 inputs \(factor 2\) and makes 8x8/);
    await refuses(await cascadeFolder({ srStage: { kind: 'super-resolution', lowRes: { ...LOW_RES, factor: 4 } } }), /the base stage makes 4x4 images \(data reduced by 2\)/);
    await refuses(await cascadeFolder({ defaults: { srSteps: -1 } }), /defaults\.srSteps must be an integer in \[1, 100000\], got -1/);
  });

  it('a super-resolution UNet on its own, and an unclip folder through loadTextPipeline', async () => {
    const dir = await cascadeFolder();
    fs.copyFileSync(path.join(dir, 'sr.safetensors'), path.join(dir, 'unet.safetensors'));
    await writePipelineManifest(dir, { design: 'pixel', parts: { unet: { file: 'unet.safetensors', kind: 'unet' }, text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' } } });
    await expect(loadTextToImagePipeline(folderFiles(dir))).rejects.toThrow(/a super-resolution stage \(it samples from a low-res image\): use it as the 'sr' part of a cascade/);
    await writePipelineManifest(dir, { design: 'unclip', parts: { text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' } } });
    await expect(loadTextPipeline(dir)).rejects.toThrow(/no part 'clip' \(parts: text_encoder\)/);
    await writePipelineManifest(dir, { design: 'pixel', parts: { unet: { file: 'base.safetensors', kind: 'unet' } } });
    await expect(loadTextPipeline(dir)).rejects.toThrow(/without a 'text_encoder' part is not text-to-image/);
  });

  it('textUNetCheckpointConfig: no stage = single; stages validated', () => {
    const text: TextEncoderCheckpointConfig = {
      text: { vocabSize: 259, maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
      tokenizer: { maxLength: 10, merges: [] },
    };
    const old = { unet: BASE_UNET, schedule: SCHEDULE, space: 'pixel', textEncoder: text };
    expect(textUNetCheckpointConfig(old, 'f').stage).toEqual({ kind: 'single' });
    expect(textUNetCheckpointConfig({ ...old, stage: { kind: 'base', factor: 4 } }, 'f').stage).toEqual({ kind: 'base', factor: 4 });
    const sr = { ...old, unet: SR_UNET, imageChannels: 1, stage: { kind: 'super-resolution', lowRes: { factor: 2 } } };
    expect(textUNetCheckpointConfig(sr, 'f').stage).toEqual({ kind: 'super-resolution', lowRes: { factor: 2, maxAugLevel: 500, resize: 'bilinear' } });
    expect(() => textUNetCheckpointConfig({ ...old, stage: { kind: 'base', factor: 1 } }, 'f')).toThrow(/base stage needs an integer factor >= 2, got 1/);
    expect(() => textUNetCheckpointConfig({ ...old, stage: { kind: 'upsampler' } }, 'f')).toThrow(/stage\.kind must be 'single', 'base' or 'super-resolution', got "upsampler"/);
    expect(() => textUNetCheckpointConfig({ ...sr, stage: { kind: 'super-resolution' } }, 'f')).toThrow(/needs its lowRes config/);
    expect(() => textUNetCheckpointConfig({ ...old, unet: SR_UNET }, 'f')).toThrow(/embeds a noise-augmentation level but the config records no super-resolution stage/);
  });
});

describe('writeCascadePipeline', () => {
  it('assembles a folder from a base run and an SR run (float16), which samples like the parts; refuses swapped runs', async () => {
    const src = await cascadeFolder();
    const baseRun = tmpDir();
    const srRun = tmpDir();
    for (const run of [baseRun, srRun]) fs.copyFileSync(path.join(src, 'text_encoder.safetensors'), path.join(run, 'text_encoder.safetensors'));
    fs.copyFileSync(path.join(src, 'base.safetensors'), path.join(baseRun, WEIGHTS_FILE));
    fs.copyFileSync(path.join(src, 'sr.safetensors'), path.join(srRun, WEIGHTS_FILE));
    const out = path.join(tmpDir(), 'cascade');
    const before = tf.memory().numTensors;
    const m = await writeCascadePipeline(out, { baseRun, srRun, storage: 'float16', defaults: { steps: 2, srSteps: 2, augLevel: 4 } });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.design).toBe('cascade');
    expect(Object.keys(m.parts).sort()).toEqual(['base', 'sr', 'text_encoder']);
    expect((await readPipelineManifest(out)).defaults).toEqual({ steps: 2, srSteps: 2, augLevel: 4 });
    expect((await readModelConfig(path.join(out, 'sr.safetensors'))).step).toBe(22);
    // float16 halves the UNet files
    expect(fs.statSync(path.join(out, 'sr.safetensors')).size).toBeLessThan(0.6 * fs.statSync(path.join(src, 'sr.safetensors')).size);
    const a = await loadCascadePipeline(folderFiles(src));
    const b = await loadCascadePipeline(folderFiles(out));
    const o = { ...OPTS, prompts: ['a top digit'], n: 2, guidance: 2 };
    const x = await generateCascade(a, o);
    const y = await generateCascade(b, o);
    expect(diff(x, y)).toBeLessThan(0.05); // float16 weights: close, not equal
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
    await expect(writeCascadePipeline(path.join(tmpDir(), 'swapped'), { baseRun: srRun, srRun: baseRun })).rejects.toThrow(/part 'base' is a 'super-resolution' UNet/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('trainTextDiffusion stages (2 steps each on 8 MNIST digits)', () => {
  it('trains a base and an SR stage whose runs assemble into a cascade that samples 28x28 digits', async () => {
    const root = tmpDir();
    await writeTextEncoder(root, 6, 24);
    const textEncoder = path.join(root, 'text_encoder.safetensors');
    const common = {
      dataset: 'mnist' as const, limit: 8, attributes: false, textEncoder, space: 'pixel' as const, preset: 'tiny' as const,
      unet: { baseChannels: 8, heads: 2, timeEmbeddingDim: 16, timeEmbeddingInputDim: 16 }, predictionType: 'v' as const,
      schedule: { kind: 'cosine' as const, timesteps: 50 },
      train: { steps: 2, batchSize: 2, warmupSteps: 0, logEvery: 1, valEvery: 2, valSize: 2, sampleEvery: 0, checkpointEvery: 2, condDropProb: 0.5 },
      resume: false, gridPrompts: ['a handwritten 1'], gridSampler: { sampler: 'ddim' as const, steps: 2, guidance: 2, perPrompt: 2 },
    };
    const before = tf.memory().numTensors;
    const baseRun = path.join(root, 'base');
    const srRun = path.join(root, 'sr');
    const base = await trainTextDiffusion({ ...common, outDir: baseRun, stage: { kind: 'base', factor: 2 } });
    expect(base.config.unet.sampleSize).toBe(16);
    expect(base.config.imageSize).toBe(14);
    expect(base.config.stage).toEqual({ kind: 'base', factor: 2 });
    const sr = await trainTextDiffusion({ ...common, outDir: srRun, stage: { kind: 'super-resolution', lowRes: { maxAugLevel: 20 } } });
    expect([sr.config.unet.sampleSize, sr.config.unet.inChannels, sr.config.unet.outChannels, sr.config.unet.augLevelEmbedding]).toEqual([32, 2, 1, true]);
    expect(sr.config.imageSize).toBe(28);
    expect(sr.losses.every((l) => Number.isFinite(l))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    // The base run is a (16x16) pixel pipeline; the SR run wrote its grid but no manifest.
    expect((await readPipelineManifest(baseRun)).design).toBe('pixel');
    expect(fs.existsSync(path.join(srRun, 'pipeline.json'))).toBe(false);
    expect(fs.readdirSync(path.join(srRun, 'samples')).filter((f) => f.endsWith('.png'))).toHaveLength(1);
    expect((textUNetCheckpointConfig((await readModelConfig(path.join(srRun, WEIGHTS_FILE))).config, 'sr')).stage).toEqual({
      kind: 'super-resolution', lowRes: { factor: 2, maxAugLevel: 20, resize: 'bilinear' },
    });
    const baseOnly = await loadTextPipeline(baseRun);
    const small = await baseOnly.generate({ prompts: ['a handwritten 1'], n: 1, steps: 2, seed: 0 });
    expect(small.shape).toEqual([1, 14, 14, 1]);
    small.dispose();
    baseOnly.dispose();
    // Resuming a run as another stage is refused.
    await expect(trainTextDiffusion({ ...common, outDir: srRun, resume: true, stage: { kind: 'base', factor: 2 } })).rejects.toThrow(/the run trains a 'super-resolution' stage, resumed as 'base' \(factor 2\): resume needs the same stage/);
    // Resuming with another text encoder is refused before the run's own copy of it is touched.
    const otherDir = path.join(root, 'other');
    fs.mkdirSync(otherDir);
    await writeTextEncoder(otherDir, 3, 24);
    const kept = fs.readFileSync(path.join(srRun, 'text_encoder.safetensors'));
    await expect(trainTextDiffusion({ ...common, textEncoder: path.join(otherDir, 'text_encoder.safetensors'), outDir: srRun, resume: true, stage: { kind: 'super-resolution', lowRes: { maxAugLevel: 20 } } }))
      .rejects.toThrow(/not the text encoder this run was started with/);
    expect(fs.readFileSync(path.join(srRun, 'text_encoder.safetensors')).equals(kept)).toBe(true);

    const out = path.join(root, 'cascade');
    await writeCascadePipeline(out, { baseRun, srRun, defaults: { sampler: 'ddim', steps: 2, srSteps: 2, augLevel: 5 } });
    const t = await loadTextPipeline(out);
    try {
      const x = await t.generate({ prompts: ['a handwritten 7'], n: 2, seed: 0 });
      expect(x.shape).toEqual([2, 28, 28, 1]);
      expectInRange(x);
      x.dispose();
    } finally {
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  }, 90000);
});
