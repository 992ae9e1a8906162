/**
 * The unCLIP pipeline (src/pipelines/unclip.ts) from tiny folders assembled by
 * hand: it loads; generateUnclip is CLIP text embedding -> prior sample (keyed
 * noise `${seed}/prior`) -> decoder sample (keyed noise `seed`) -> crop,
 * checked against the same composition done by hand; guidance 0 in either stage
 * is that stage's null condition sampled alone (the prior's learned null text
 * embedding; the decoder's zero image embedding, plus the empty prompt for a
 * decoder that reads captions); deterministic; split by firstIndex / batchSize;
 * image variations; refusals; loadTextPipeline; writeUnclipPipeline from run
 * folders. unetDenoiser's imageEmbedding key too.
 *
 * The optional super-resolution stage (a cascade SR UNet, 8x8 -> 16x16, as
 * trainTextDiffusion with stage 'super-resolution' records it): generateUnclip
 * is the decoder's whole sample -> bilinear resize -> augmentation with noise
 * keyed (seed, 'cascade-aug', index) -> SR sample (seed `${seed}/sr`, CFG
 * against the empty prompt's CLIP token states with the same z, dynamic
 * thresholding) -> crop, composed by hand; loadTextPipeline reports the SR
 * size; SR parts that do not take the decoder's images or read prompts with
 * another text tower (config at load and write, weights at write) are refused.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { keyedRng, Rng, randomNormal } from '../../src/backend/random';
import { UNet, unetConfig, UNetConfig } from '../../src/models/unet';
import { Clip, l2Normalize } from '../../src/models/clip';
import { learnBpeMerges } from '../../src/models/tokenizer';
import { DiffusionPrior, PriorConfig, priorConfig, priorDenoiser, samplePriorEmbeddings } from '../../src/models/prior';
import { scheduleConfig } from '../../src/schedule/betas';
import { makeSchedule } from '../../src/schedule/schedule';
import { readModelConfig, saveModelWeights } from '../../src/io/checkpointFile';
import { WEIGHTS_FILE } from '../../src/io/checkpoint';
import { lowResConfig } from '../../src/sample/lowResConditioning';
import { PRIOR_WEIGHTS_FILE } from '../../src/train/priorTraining';
import { folderFiles, writePipelineManifest, readPipelineManifest } from '../../src/io/pipeline';
import { PipelinePart } from '../../src/io/pipelineManifest';
import { sample } from '../../src/sample/sample';
import { classifierFreeGuidance } from '../../src/sample/guidance';
import { Cond } from '../../src/sample/types';
import { ClipMode } from '../../src/sample/thresholding';
import { unetDenoiser } from '../../src/pipelines/unetDenoiser';
import { TextEncoderCheckpointConfig } from '../../src/pipelines/textConditioning';
import { loadTextEncoder, saveTextEncoder } from '../../src/node/pipelineParts';
import { TEXT_ENCODER_FILE } from '../../src/pipelines/textToImage';
import { generateUnclip, loadUnclipPipeline, UnclipPipeline } from '../../src/pipelines/unclip';
import { ClipProvenance, unclipDecoderCheckpointConfig } from '../../src/pipelines/unclipConfig';
import { imageVariations } from '../../src/pipelines/unclipVariations';
import { clipProvenance } from '../../src/node/pipelineParts';
import { writeUnclipPipeline } from '../../src/node/writePipeline';
import { loadTextPipeline } from '../../src/node/loadPipeline';

beforeAll(async () => useBackend('cpu'));

const CORPUS = ['a top digit', 'a left digit', 'a thin top digit', 'the left one', 'a top one'];
const SCHEDULE = scheduleConfig({ kind: 'cosine', timesteps: 50 });
const PRIOR_SCHEDULE = scheduleConfig({ kind: 'cosine', timesteps: 40 });
const E = 8;
// zeroInitOutput false: an untrained UNet whose output depends on every input (a zero output would hide wiring errors).
const DECODER = unetConfig({
  inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2,
  timeEmbeddingDim: 16, timeEmbeddingInputDim: 16, contextDim: 8, imageEmbeddingDim: E, imageEmbeddingTokens: 2,
  addPooledContextToTime: false, zeroInitOutput: false, predictionType: 'v',
});
const TEXT_DECODER = unetConfig({ ...DECODER, addPooledContextToTime: true });
const PRIOR = priorConfig({ embedDim: E, width: 16, depth: 1, timeEmbeddingDim: 8, seed: 1 });
const STATIC = { kind: 'static' as const, value: 1 };
const DYNAMIC: ClipMode = { kind: 'dynamic', percentile: 0.995 };
// The super-resolution stage: [x_t, z] at 16x16 (the decoder's 8x8 sample, factor 2) -> 16x16, reading the CLIP text tower's states (width 8).
const LOW_RES = lowResConfig({ factor: 2, maxAugLevel: 20 });
const SR_UNET = unetConfig({
  inChannels: 2, outChannels: 1, sampleSize: 16, baseChannels: 4, groups: 4, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [8], heads: 2,
  timeEmbeddingDim: 16, timeEmbeddingInputDim: 16, contextDim: 8, augLevelEmbedding: true, zeroInitOutput: false, predictionType: 'v',
});

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-unclip-'));
}

/**
 * A tiny CLIP (8x8 images, E 8, BPE text tower) saved as `file` with step / seed recorded.
 * perturbText: the same configs, other text-tower weights (another training run of one architecture).
 */
async function writeClip(file: string, o: { embedDim?: number; step?: number; seed?: number; perturbText?: boolean } = {}): Promise<void> {
  const e = o.embedDim ?? E;
  const clip = new Clip({
    image: { inChannels: 1, imageSize: 8, channels: [4, 8], groups: 2, embedDim: e },
    text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: e, seed: 4 },
    tokenizer: { merges: learnBpeMerges(CORPUS, { maxMerges: 6 }) },
    seed: 5,
  });
  if (o.perturbText === true) {
    for (const [name, v] of clip.namedParameters()) if (name.startsWith('text_encoder.')) tf.tidy(() => v.assign(tf.add(v, 0.05)));
  }
  await saveModelWeights(file, clip, { kind: 'clip', config: { clip: clip.config, dataset: 'toy' }, step: o.step ?? 7, seed: o.seed ?? 0 });
  clip.dispose();
}

interface SrOptions {
  readonly unet?: UNetConfig;
  readonly stage?: unknown;
  /** Side of its training data (default 12: the decoder's 6 at factor 2). */
  readonly imageSize?: number;
  readonly imageChannels?: number;
  readonly dataset?: string;
  /** The text encoder recorded in its config (default: the CLIP's text tower). */
  readonly textEncoder?: TextEncoderCheckpointConfig;
}

/** A super-resolution UNet checkpoint recording the config trainTextDiffusion writes for stage 'super-resolution' (step 34). */
async function writeSrStage(file: string, clip: ClipProvenance, o: SrOptions = {}): Promise<void> {
  const cfg = o.unet ?? SR_UNET;
  const unet = new UNet(cfg, new Rng('sr'));
  await saveModelWeights(file, unet, {
    kind: 'unet',
    config: {
      unet: cfg, schedule: SCHEDULE, dataset: o.dataset ?? 'toy', imageSize: o.imageSize ?? 12, imageChannels: o.imageChannels ?? 1, space: 'pixel', latentScaleFactor: null,
      textEncoder: o.textEncoder ?? { text: clip.config.text, tokenizer: clip.config.tokenizer },
      stage: o.stage ?? { kind: 'super-resolution', lowRes: LOW_RES },
    },
    step: 34,
  });
  unet.dispose();
}

/** A super-resolution run folder: model.safetensors and text_encoder.safetensors (the text tower of `towerFrom`, a CLIP file). */
async function srRunFolder(clipFile: string, towerFrom: string, o: SrOptions = {}): Promise<string> {
  const run = tmpDir();
  await writeSrStage(path.join(run, WEIGHTS_FILE), await clipProvenance(clipFile), o);
  const text = await loadTextEncoder(towerFrom);
  await saveTextEncoder(path.join(run, TEXT_ENCODER_FILE), text);
  text.dispose();
  return run;
}

/** Gives the prior a non-zero output layer (an untrained prior predicts x0 = 0: every sample would be the zero embedding). */
function randomizeOutput(prior: DiffusionPrior): void {
  const rng = new Rng('prior-out');
  for (const [name, v] of prior.namedParameters()) {
    if (name.startsWith('proj_out.')) v.assign(randomNormal(v.shape, rng, 0, 0.3));
  }
}

interface FolderOptions {
  readonly decoder?: UNetConfig;
  /** Record the CLIP's text tower in the decoder's config (a decoder that reads captions). */
  readonly withText?: boolean;
  readonly prior?: PriorConfig;
  /** The CLIP provenance recorded in the prior's / decoder's config (default: the folder's CLIP). */
  readonly priorClip?: ClipProvenance | null;
  readonly decoderClip?: ClipProvenance | null;
  readonly omit?: 'clip' | 'prior' | 'decoder';
  readonly defaults?: Record<string, unknown>;
  /** Add an 'sr' part (a super-resolution stage). */
  readonly sr?: SrOptions;
}

/** An unclip folder: clip, prior, decoder and pipeline.json. */
async function unclipFolder(o: FolderOptions = {}): Promise<string> {
  const dir = tmpDir();
  const clipFile = path.join(dir, 'clip.safetensors');
  await writeClip(clipFile);
  const provenance = await clipProvenance(clipFile);
  const prior = new DiffusionPrior(o.prior ?? PRIOR);
  randomizeOutput(prior);
  await saveModelWeights(path.join(dir, 'prior.safetensors'), prior, {
    kind: 'prior', config: { clip: o.priorClip === undefined ? provenance : o.priorClip, prior: prior.config, schedule: PRIOR_SCHEDULE }, step: 13,
  });
  prior.dispose();
  const unetCfg = o.decoder ?? (o.withText === true ? TEXT_DECODER : DECODER);
  const unet = new UNet(unetCfg, new Rng('decoder'));
  await saveModelWeights(path.join(dir, 'decoder.safetensors'), unet, {
    kind: 'unet',
    config: {
      unet: unetCfg, schedule: SCHEDULE, space: 'pixel', dataset: 'toy', imageSize: 6, imageChannels: 1, imageEmbeddingDim: unetCfg.imageEmbeddingDim,
      clip: o.decoderClip === undefined ? provenance : o.decoderClip,
      textEncoder: o.withText === true ? { text: provenance.config.text, tokenizer: provenance.config.tokenizer } : null,
    },
    step: 21,
  });
  unet.dispose();
  const parts: Record<string, PipelinePart> = {
    clip: { file: 'clip.safetensors', kind: 'clip' },
    prior: { file: 'prior.safetensors', kind: 'prior' },
    decoder: { file: 'decoder.safetensors', kind: 'unet' },
  };
  if (o.sr !== undefined) {
    await writeSrStage(path.join(dir, 'sr.safetensors'), provenance, o.sr);
    parts.sr = { file: 'sr.safetensors', kind: 'unet' };
  }
  if (o.omit !== undefined) delete parts[o.omit];
  await writePipelineManifest(dir, {
    design: 'unclip', parts, defaults: o.defaults ?? { sampler: 'ddim', steps: 3, guidance: 2, priorSampler: 'ddim', priorSteps: 2, priorGuidance: 1.5 },
  });
  return dir;
}

const diff = (u: tf.Tensor, v: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(u, v))).dataSync()[0]);
const crop = (x: tf.Tensor4D): tf.Tensor4D => tf.tidy(() => tf.slice(tf.clipByValue(x, -1, 1), [0, 1, 1, 0], [x.shape[0], 6, 6, 1]));
const P = ['a top digit', 'a left digit', 'the left one', 'a thin top digit'];
const OPTS = { sampler: 'ddim' as const, steps: 2, priorSampler: 'ddim' as const, priorSteps: 2, seed: 3 };

/** The decoder sampled by hand: CFG (when scale != 1) against `uncond`, static clipping, cropped 8 -> 6. */
async function decodeByHand(p: UnclipPipeline, cond: Cond, uncond: Cond, scale: number, b: number, firstIndex: number): Promise<tf.Tensor4D> {
  const base = unetDenoiser(p.decoder.unet);
  const denoise = scale === 1 ? base : classifierFreeGuidance(base, { scale, uncond });
  const x = await sample('ddim', denoise, [b, 8, 8, 1], p.decoder.schedule, { steps: 2, predictionType: 'v', seed: 3, firstIndex, cond, clip: STATIC });
  const out = crop(x as tf.Tensor4D);
  x.dispose();
  return out;
}

describe('loadUnclipPipeline and generateUnclip (image-embedding decoder)', () => {
  let p: UnclipPipeline;
  let dir: string;
  beforeAll(async () => {
    dir = await unclipFolder();
    p = await loadUnclipPipeline(folderFiles(dir));
  });
  afterAll(() => p?.dispose());

  it('loads the three parts (the CLIP frozen), their steps and the unclip defaults', () => {
    expect(p.prior.config).toEqual(PRIOR);
    expect(p.priorSchedule.timesteps).toBe(40);
    expect(p.decoder.unet.config).toEqual(DECODER);
    expect(p.decoder.config.imageSize).toBe(6);
    expect(p.decoder.config.textEncoder).toBeNull();
    expect(p.decoder.config.clip?.step).toBe(7);
    expect(p.clip.namedTrainableParameters()).toHaveLength(0);
    expect(p.steps).toEqual({ prior: 13, decoder: 21, sr: null });
    expect(p.sr).toBeNull();
    expect(p.defaults).toEqual({ sampler: 'ddim', steps: 3, guidance: 2, priorSampler: 'ddim', priorSteps: 2, priorGuidance: 1.5 });
  });

  it('is CLIP text embedding -> prior sample -> decoder sample -> crop (composed by hand), both stages guided', async () => {
    const before = tf.memory().numTensors;
    const prompts = P.slice(0, 2);
    const x = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 2.5, priorGuidance: 3, firstIndex: 5 });
    expect(x.shape).toEqual([2, 6, 6, 1]);

    const text = p.clip.embedTexts(p.clip.tokenizer(), prompts); // unit norm [2, 8]
    const z = await samplePriorEmbeddings(p.prior, makeSchedule(PRIOR_SCHEDULE), text, { sampler: 'ddim', steps: 2, guidance: 3, seed: '3/prior', firstIndex: 5 });
    const zeros = tf.zeros([1, E]);
    const ref = await decodeByHand(p, { imageEmbedding: z }, { imageEmbedding: zeros }, 2.5, 2, 5);
    await expectClose(x, ref, 1e-5);
    // the sampled embeddings are unit vectors, not the (null) zero embedding
    const norms = tf.tidy(() => tf.norm(z, 'euclidean', 1).dataSync());
    for (const v of norms) expect(v).toBeCloseTo(1, 4);
    tf.dispose([x, text, z, zeros, ref]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('guidance 0 is the null condition alone: the prior\'s learned null text embedding, the decoder\'s zero embedding', async () => {
    const before = tf.memory().numTensors;
    const prompts = P.slice(1, 3);
    // prior unconditional (cond null = the learned null embedding), by hand
    const priorNull = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 1, priorGuidance: 0 });
    const raw = await sample('ddim', priorDenoiser(p.prior), [2, E], p.priorSchedule, { steps: 2, predictionType: 'x0', seed: '3/prior', cond: null });
    const z = l2Normalize(raw as tf.Tensor2D);
    const refPrior = await decodeByHand(p, { imageEmbedding: z }, {}, 1, 2, 0);
    await expectClose(priorNull, refPrior, 1e-5);
    // decoder unconditional: every image is the zero-embedding sample, whatever the prompt
    const decoderNull = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 0 });
    const zeros = tf.zeros([2, E]);
    const refDecoder = await decodeByHand(p, { imageEmbedding: zeros }, {}, 1, 2, 0);
    await expectClose(decoderNull, refDecoder, 1e-5);
    // ... and guidance moves both stages away from it
    const guided = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 1, priorGuidance: 2 });
    const plain = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 1, priorGuidance: 1 });
    expect(diff(guided, plain)).toBeGreaterThan(1e-4);
    expect(diff(plain, priorNull)).toBeGreaterThan(1e-4);
    expect(diff(plain, decoderNull)).toBeGreaterThan(1e-4);
    tf.dispose([priorNull, raw, z, refPrior, decoderNull, zeros, refDecoder, guided, plain]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic; one prompt broadcasts; images differ per index; splits by firstIndex and batchSize', async () => {
    const before = tf.memory().numTensors;
    const o = { ...OPTS, guidance: 2, priorGuidance: 2 };
    const a = await generateUnclip(p, { ...o, prompts: ['a top digit'], n: 3 });
    const b = await generateUnclip(p, { ...o, prompts: ['a top digit', 'a top digit', 'a top digit'], n: 3 });
    expect(b.dataSync()).toEqual(a.dataSync());
    expect(tf.tidy(() => diff(tf.slice(a, [0], [1]), tf.slice(a, [1], [1])))).toBeGreaterThan(1e-4);
    const all = await generateUnclip(p, { ...o, prompts: P, n: 4 });
    const tail = await generateUnclip(p, { ...o, prompts: P.slice(2), n: 2, firstIndex: 2 });
    const chunked = await generateUnclip(p, { ...o, prompts: P, n: 4, batchSize: 3 });
    const allTail = tf.slice(all, [2], [2]);
    await expectClose(tail, allTail, 1e-5);
    await expectClose(chunked, all, 1e-5);
    const uncropped = await generateUnclip(p, { ...o, prompts: P, n: 4, cropToImageSize: false });
    expect(uncropped.shape).toEqual([4, 8, 8, 1]);
    const centre = tf.slice(uncropped, [0, 1, 1, 0], [4, 6, 6, 1]);
    await expectClose(centre, all, 1e-5);
    tf.dispose([a, b, all, tail, chunked, allTail, uncropped, centre]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('imageVariations: each image\'s CLIP embedding decoded n times (by hand), deterministic, split by firstIndex', async () => {
    const before = tf.memory().numTensors;
    const images = randomNormal([2, 6, 6, 1], new Rng('images'), -0.2, 0.5) as tf.Tensor4D;
    const v = await imageVariations(p, images, { n: 3, sampler: 'ddim', steps: 2, guidance: 1.5, seed: 3, firstIndex: 4 });
    expect(v.shape).toEqual([6, 6, 6, 1]);
    // by hand: pad 6 -> 8 with -1, embed, repeat each row 3 times, decode with noise indices 4..9
    const emb = tf.tidy(() => tf.gather(p.clip.embedImages(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], -1) as tf.Tensor4D), [0, 0, 0, 1, 1, 1]) as tf.Tensor2D);
    const zeros = tf.zeros([1, E]);
    const ref = await decodeByHand(p, { imageEmbedding: emb }, { imageEmbedding: zeros }, 1.5, 6, 4);
    await expectClose(v, ref, 1e-5);
    const again = await imageVariations(p, images, { n: 3, sampler: 'ddim', steps: 2, guidance: 1.5, seed: 3, firstIndex: 4, batchSize: 4 });
    await expectClose(again, v, 1e-5);
    expect(tf.tidy(() => diff(tf.slice(v, [0], [1]), tf.slice(v, [1], [1])))).toBeGreaterThan(1e-4);
    // the second image alone, its rows starting at index 4 + 3
    const secondImage = tf.slice(images, [1], [1]);
    const second = await imageVariations(p, secondImage, { n: 3, sampler: 'ddim', steps: 2, guidance: 1.5, seed: 3, firstIndex: 7 });
    const vSecond = tf.slice(v, [3], [3]);
    await expectClose(second, vSecond, 1e-5);
    await expect(imageVariations(p, images, { n: 1, prompts: ['a'] })).rejects.toThrow(/conditioned on the image embedding only; do not pass prompts/);
    const big = tf.zeros([1, 9, 9, 1]) as tf.Tensor4D;
    await expect(imageVariations(p, big, { n: 1 })).rejects.toThrow(/h, w <= the CLIP's imageSize 8, got \[1,9,9,1\]/);
    tf.dispose([images, v, emb, zeros, ref, again, secondImage, second, vSecond, big]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses bad n / prompts / batchSize / clipping, leaving no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const o = { ...OPTS, prompts: ['a'], n: 1 };
    await expect(generateUnclip(p, { ...o, n: 0 })).rejects.toThrow(/n must be a positive integer, got 0/);
    await expect(generateUnclip(p, { ...o, prompts: ['a', 'b'], n: 3 })).rejects.toThrow(/give one prompt or n = 3 prompts, got 2/);
    await expect(generateUnclip(p, { ...o, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer, got 0/);
    await expect(generateUnclip(p, { ...o, clip: { kind: 'dynamic', percentile: 2 } })).rejects.toThrow(/percentile must be in \(0, 1\]/);
    await expect(generateUnclip(p, { ...o, priorGuidance: -1 })).rejects.toThrow(/guidance must be a finite number >= 0, got -1/);
    await expect(generateUnclip(p, { ...o, srSteps: 2, augLevel: 3 })).rejects.toThrow(/srSteps, augLevel given, but the pipeline has no super-resolution stage \('sr' part\)/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loadTextPipeline: the unclip folder behind the common interface, with its manifest defaults', async () => {
    const before = tf.memory().numTensors;
    const t = await loadTextPipeline(dir);
    try {
      expect([t.design, t.dataset, t.imageSize, t.imageChannels, t.trainingStep]).toEqual(['unclip', 'toy', 6, 1, 21]);
      expect(t.describe()).toMatch(/unclip pipeline .*: CLIP E 8 -> prior \(step 13, width 16, depth 1\) -> decoder 8x8 \(step 21, image embedding only\), toy images 6x6x1/);
      expect(t.defaults.priorSteps).toBe(2);
      const x = await t.generate({ prompts: ['a top digit'], n: 2, seed: 1 });
      const ref = await generateUnclip(p, { prompts: ['a top digit'], n: 2, seed: 1, sampler: 'ddim', steps: 3, guidance: 2, priorSampler: 'ddim', priorSteps: 2, priorGuidance: 1.5 });
      await expectClose(x, ref, 1e-6);
      tf.dispose([x, ref]);
    } finally {
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('a decoder that also reads the caption', () => {
  it('conditions on the CLIP text tower\'s token states too; its null is the empty prompt with the zero embedding', async () => {
    const p = await loadUnclipPipeline(folderFiles(await unclipFolder({ withText: true })));
    const before = tf.memory().numTensors;
    try {
      expect(p.decoder.config.textEncoder?.text).toEqual(p.clip.config.text);
      const prompts = P.slice(0, 2);
      const x = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 2, priorGuidance: 1 });
      const text = p.clip.embedTexts(p.clip.tokenizer(), prompts);
      const z = await samplePriorEmbeddings(p.prior, p.priorSchedule, text, { sampler: 'ddim', steps: 2, guidance: 1, seed: '3/prior' });
      const states = p.clip.textEncoder.encodeTexts(p.clip.tokenizer(), prompts);
      const empty = p.clip.textEncoder.encodeTexts(p.clip.tokenizer(), ['']);
      const zeros = tf.zeros([1, E]);
      const ref = await decodeByHand(p,
        { imageEmbedding: z, context: states.states, contextMask: states.mask },
        { imageEmbedding: zeros, context: empty.states, contextMask: empty.mask }, 2, 2, 0);
      await expectClose(x, ref, 1e-5);
      // the caption matters
      const other = await generateUnclip(p, { ...OPTS, prompts: P.slice(2), n: 2, guidance: 2, priorGuidance: 0 });
      const same = await generateUnclip(p, { ...OPTS, prompts, n: 2, guidance: 2, priorGuidance: 0 }); // same (null) embedding, other captions
      expect(diff(other, same)).toBeGreaterThan(1e-4);
      const images = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
      await expect(imageVariations(p, images, { n: 1 })).rejects.toThrow(/this decoder also reads captions: give prompts/);
      const v = await imageVariations(p, images, { n: 2, prompts: ['a top digit'], steps: 2, sampler: 'ddim' });
      expect(v.shape).toEqual([2, 6, 6, 1]);
      tf.dispose([x, text, z, states.states, states.mask, states.pooled, empty.states, empty.mask, empty.pooled, zeros, ref, other, same, images, v]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      p.dispose();
    }
  });
});

describe('refusals when loading', () => {
  const refuses = async (dir: string, message: RegExp): Promise<void> => {
    const before = tf.memory().numTensors;
    await expect(loadUnclipPipeline(folderFiles(dir))).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  };

  it('a missing part', async () => {
    await refuses(await unclipFolder({ omit: 'prior' }), /no part 'prior' \(parts: clip, decoder\)/);
    await refuses(await unclipFolder({ omit: 'clip' }), /no part 'clip' \(parts: prior, decoder\)/);
  });

  it('embedding widths that differ (prior, decoder) and a decoder without imageEmbeddingDim', async () => {
    await refuses(await unclipFolder({ prior: priorConfig({ ...PRIOR, embedDim: 6 }), priorClip: null }), /the prior works on 6-dim embeddings, the CLIP's are 8-dim/);
    await refuses(await unclipFolder({ decoder: unetConfig({ ...DECODER, imageEmbeddingDim: 6 }), decoderClip: null }),
      /the decoder is conditioned on 6-dim image embeddings, the CLIP's are 8-dim/);
    await refuses(await unclipFolder({ decoder: unetConfig({ ...DECODER, imageEmbeddingDim: null }) }),
      /the UNet is not conditioned on CLIP image embeddings \(imageEmbeddingDim is null\): not an unCLIP decoder/);
  });

  it('a prior or decoder trained on another CLIP', async () => {
    const other = path.join(tmpDir(), 'other-clip.safetensors');
    await writeClip(other, { step: 99 });
    const otherProvenance = await clipProvenance(other);
    await refuses(await unclipFolder({ priorClip: otherProvenance }), /the prior was trained on another CLIP .*other-clip\.safetensors.*: training step 99 vs 7 differ/);
    await refuses(await unclipFolder({ decoderClip: otherProvenance }), /the decoder was trained on another CLIP .*: training step 99 vs 7 differ/);
    const wider = path.join(tmpDir(), 'wide-clip.safetensors');
    await writeClip(wider, { embedDim: 6 });
    await refuses(await unclipFolder({ decoderClip: await clipProvenance(wider) }), /the UNet takes 8-dim image embeddings, its recorded CLIP makes 6/);
  });

  it('bad prior defaults, and the wrong design', async () => {
    await refuses(await unclipFolder({ defaults: { priorSteps: -1 } }), /defaults\.priorSteps must be an integer in \[1, 100000\], got -1/);
    await refuses(await unclipFolder({ defaults: { priorSampler: 'euler' } }), /defaults\.priorSampler must be one of ddpm, ddim, dpm-solver\+\+, got "euler"/);
    const dir = await unclipFolder();
    await writePipelineManifest(dir, { design: 'cascade', parts: { clip: { file: 'clip.safetensors', kind: 'clip' } } });
    await refuses(dir, /design 'cascade' is not an unclip pipeline/);
  });

  it('unclipDecoderCheckpointConfig validates what it reads', () => {
    const cfg = { unet: DECODER, schedule: SCHEDULE, space: 'pixel', imageEmbeddingDim: E };
    expect(unclipDecoderCheckpointConfig(cfg, 'f')).toMatchObject({ space: 'pixel', imageEmbeddingDim: E, imageSize: 8, imageChannels: 1, clip: null, textEncoder: null, dataset: 'unknown' });
    expect(() => unclipDecoderCheckpointConfig({ ...cfg, space: 'latent' }, 'f')).toThrow(/works in pixel space, got space "latent"/);
    expect(() => unclipDecoderCheckpointConfig({ ...cfg, imageEmbeddingDim: 4 }, 'f')).toThrow(/imageEmbeddingDim 4 differs from the UNet's 8/);
    expect(() => unclipDecoderCheckpointConfig({ schedule: SCHEDULE }, 'f')).toThrow(/must hold \{ unet, schedule, imageEmbeddingDim/);
  });
});

describe('writeUnclipPipeline', () => {
  it('assembles a folder from a prior run and a decoder run (float16), which samples like the parts; refuses another CLIP', async () => {
    const src = await unclipFolder();
    const priorRun = tmpDir();
    const decoderRun = tmpDir();
    fs.copyFileSync(path.join(src, 'prior.safetensors'), path.join(priorRun, PRIOR_WEIGHTS_FILE));
    fs.copyFileSync(path.join(src, 'decoder.safetensors'), path.join(decoderRun, WEIGHTS_FILE));
    const out = path.join(tmpDir(), 'unclip');
    const before = tf.memory().numTensors;
    const m = await writeUnclipPipeline(out, {
      clip: path.join(src, 'clip.safetensors'), priorRun, decoderRun, storage: 'float16', defaults: { steps: 2, priorSteps: 2, priorGuidance: 2 },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.design).toBe('unclip');
    expect(Object.keys(m.parts).sort()).toEqual(['clip', 'decoder', 'prior']);
    expect((await readPipelineManifest(out)).defaults).toEqual({ steps: 2, priorSteps: 2, priorGuidance: 2 });
    // step and seed survive the copy (the provenance check depends on them)
    expect((await readModelConfig(path.join(out, 'clip.safetensors'))).step).toBe(7);
    expect((await readModelConfig(path.join(out, 'prior.safetensors'))).step).toBe(13);
    expect((await readModelConfig(path.join(out, 'decoder.safetensors'))).step).toBe(21);
    expect(fs.statSync(path.join(out, 'decoder.safetensors')).size).toBeLessThan(0.6 * fs.statSync(path.join(src, 'decoder.safetensors')).size);
    const a = await loadUnclipPipeline(folderFiles(src));
    const b = await loadUnclipPipeline(folderFiles(out));
    const o = { ...OPTS, prompts: ['a top digit'], n: 2, guidance: 2 };
    const x = await generateUnclip(a, o);
    const y = await generateUnclip(b, o);
    expect(diff(x, y)).toBeLessThan(0.1); // float16 weights: close, not equal
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
    const other = path.join(tmpDir(), 'other-clip.safetensors');
    await writeClip(other, { seed: 8 });
    await expect(writeUnclipPipeline(path.join(tmpDir(), 'x'), { clip: other, priorRun, decoderRun })).rejects.toThrow(/the prior was trained on another CLIP .*: training seed 0 vs 8 differ/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('an optional super-resolution stage after the decoder', () => {
  const SR_DEFAULTS = { sampler: 'ddim', steps: 2, guidance: 2, priorSampler: 'ddim', priorSteps: 2, priorGuidance: 1.5, srSampler: 'ddim', srSteps: 2, srGuidance: 1.5, augLevel: 6 };
  const SR_OPTS = { ...OPTS, guidance: 2, priorGuidance: 1, srSampler: 'ddim' as const, srSteps: 2, srGuidance: 1.5, augLevel: 8 };
  let p: UnclipPipeline;
  let dir: string;
  beforeAll(async () => {
    dir = await unclipFolder({ sr: {}, defaults: SR_DEFAULTS });
    p = await loadUnclipPipeline(folderFiles(dir));
  });
  afterAll(() => p?.dispose());

  it('loads the sr part: its UNet, low-res config, step and the SR defaults', () => {
    expect(p.sr?.unet.config).toEqual(SR_UNET);
    expect(p.sr?.lowRes).toEqual(LOW_RES);
    expect(p.sr?.config.imageSize).toBe(12);
    expect(p.steps).toEqual({ prior: 13, decoder: 21, sr: 34 });
    expect(p.defaults).toEqual(SR_DEFAULTS);
  });

  it('is the decoder\'s whole sample, resized, augmented with keyed noise, super-resolved (seed/sr, guided, dynamic) and cropped (composed by hand)', async () => {
    const before = tf.memory().numTensors;
    const sr = p.sr as NonNullable<UnclipPipeline['sr']>;
    const prompts = P.slice(0, 2);
    const o = { ...SR_OPTS, prompts, n: 2, firstIndex: 5 };
    const x = await generateUnclip(p, o);
    expect(x.shape).toEqual([2, 12, 12, 1]);
    // The decoder's sample, uncropped (CLIP -> prior -> decoder is composed by hand in the tests above); cropped it is the SR-less output.
    const low = await generateUnclip(p, { ...o, superResolution: false, cropToImageSize: false });
    expect(low.shape).toEqual([2, 8, 8, 1]);
    const small = await generateUnclip(p, { ...o, superResolution: false });
    const lowCentre = tf.slice(low, [0, 1, 1, 0], [2, 6, 6, 1]);
    await expectClose(small, lowCentre, 1e-6);

    // by hand: bilinear 8 -> 16 (half-pixel centres), z = sqrt(abar_8) up + sqrt(1 - abar_8) e, e keyed (3, 'cascade-aug', 5 + i)
    const abar = makeSchedule(SCHEDULE).alphasCumprod[8];
    const e = new Float32Array(2 * 256);
    for (let i = 0; i < 2; i++) keyedRng(3, 'cascade-aug', 5 + i).fillNormal(e.subarray(i * 256, (i + 1) * 256));
    const z = tf.tidy(() => tf.add(tf.mul(Math.sqrt(abar), tf.image.resizeBilinear(low, [16, 16], false, true)), tf.mul(Math.sqrt(1 - abar), tf.tensor4d(e, [2, 16, 16, 1]))));
    // the SR UNet reads the prompts' token states from the CLIP text tower; its null is the empty prompt with the same z and level
    const states = p.clip.textEncoder.encodeTexts(p.clip.tokenizer(), prompts);
    const empty = p.clip.textEncoder.encodeTexts(p.clip.tokenizer(), ['']);
    const augLevels = tf.tensor1d([8, 8], 'int32');
    const denoise = classifierFreeGuidance(unetDenoiser(sr.unet), { scale: 1.5, uncond: { context: empty.states, contextMask: empty.mask, lowRes: z, augLevels } });
    const hr = await sample('ddim', denoise, [2, 16, 16, 1], makeSchedule(SCHEDULE), {
      steps: 2, predictionType: 'v', seed: '3/sr', firstIndex: 5, cond: { context: states.states, contextMask: states.mask, lowRes: z, augLevels }, clip: DYNAMIC,
    });
    const ref = tf.tidy(() => tf.slice(tf.clipByValue(hr, -1, 1), [0, 2, 2, 0], [2, 12, 12, 1]));
    await expectClose(x, ref, 1e-5);

    // The SR stage reads its low-res input and its own guidance scale (first image only); the default level is min(100, maxAugLevel 20).
    const one = { ...o, prompts: prompts.slice(0, 1), n: 1 };
    const first = tf.slice(x, [0], [1]);
    const otherLevel = await generateUnclip(p, { ...one, augLevel: 0 });
    const otherGuidance = await generateUnclip(p, { ...one, srGuidance: 1 });
    expect(diff(otherLevel, first)).toBeGreaterThan(1e-4);
    expect(diff(otherGuidance, first)).toBeGreaterThan(1e-4);
    const { augLevel: _unused, ...noLevel } = one;
    const defaultLevel = await generateUnclip(p, noLevel);
    const level20 = await generateUnclip(p, { ...one, augLevel: 20 });
    await expectClose(defaultLevel, level20, 1e-6);
    tf.dispose([x, first, low, small, lowCentre, z, states.states, states.mask, states.pooled, empty.states, empty.mask, empty.pooled, augLevels, hr, ref,
      otherLevel, otherGuidance, defaultLevel, level20]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('splits by firstIndex and batchSize; refuses levels the SR stage was not trained with before sampling', async () => {
    const before = tf.memory().numTensors;
    const all = await generateUnclip(p, { ...SR_OPTS, prompts: P.slice(0, 2), n: 2 });
    const tail = await generateUnclip(p, { ...SR_OPTS, prompts: P.slice(1, 2), n: 1, firstIndex: 1 });
    const chunked = await generateUnclip(p, { ...SR_OPTS, prompts: P.slice(0, 2), n: 2, batchSize: 1 });
    const allTail = tf.slice(all, [1], [1]);
    await expectClose(tail, allTail, 1e-5);
    await expectClose(chunked, all, 1e-5);
    const uncropped = await generateUnclip(p, { ...SR_OPTS, prompts: P.slice(0, 1), n: 1, cropToImageSize: false });
    expect(uncropped.shape).toEqual([1, 16, 16, 1]);
    await expect(generateUnclip(p, { ...SR_OPTS, prompts: ['a'], n: 1, augLevel: 21 })).rejects.toThrow(/generateUnclip: augLevel must be an integer in \[0, 20\] .*got 21/);
    await expect(generateUnclip(p, { ...SR_OPTS, prompts: ['a'], n: 1, srClip: { kind: 'dynamic', percentile: 2 } })).rejects.toThrow(/percentile must be in \(0, 1\]/);
    tf.dispose([all, tail, chunked, allTail, uncropped]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('imageVariations stay at the decoder\'s size', async () => {
    const before = tf.memory().numTensors;
    const images = tf.zeros([1, 6, 6, 1]) as tf.Tensor4D;
    const v = await imageVariations(p, images, { n: 2, sampler: 'ddim', steps: 2 });
    expect(v.shape).toEqual([2, 6, 6, 1]);
    tf.dispose([images, v]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loadTextPipeline: images at the SR size, the SR step, its manifest defaults, one clipping for both stages', async () => {
    const before = tf.memory().numTensors;
    const t = await loadTextPipeline(dir);
    try {
      expect([t.design, t.dataset, t.imageSize, t.imageChannels, t.trainingStep]).toEqual(['unclip', 'toy', 12, 1, 34]);
      expect(t.describe()).toMatch(/-> decoder 8x8 \(step 21, image embedding only\) -> super-resolution 16x16 \(step 34, bilinear x2, trained augmentation levels 0\.\.20\), toy images 12x12x1/);
      const x = await t.generate({ prompts: ['a top digit'], n: 2, seed: 1 });
      const { augLevel, ...rest } = SR_DEFAULTS;
      const ref = await generateUnclip(p, { ...rest, sampler: 'ddim', priorSampler: 'ddim', srSampler: 'ddim', augLevel, prompts: ['a top digit'], n: 2, seed: 1 });
      expect(x.shape).toEqual([2, 12, 12, 1]);
      await expectClose(x, ref, 1e-6);
      const y = await t.generate({ prompts: ['a top digit'], n: 1, seed: 1, clip: STATIC });
      const yRef = await generateUnclip(p, { ...rest, sampler: 'ddim', priorSampler: 'ddim', srSampler: 'ddim', augLevel, prompts: ['a top digit'], n: 1, seed: 1, clip: STATIC, srClip: STATIC });
      await expectClose(y, yRef, 1e-6);
      tf.dispose([x, ref, y, yRef]);
    } finally {
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('super-resolution stages refused when loading', () => {
  const refuses = async (dir: string, message: RegExp): Promise<void> => {
    const before = tf.memory().numTensors;
    await expect(loadUnclipPipeline(folderFiles(dir))).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  };

  it('a low-res input that is not the decoder\'s image (size, data size, channels), or another dataset', async () => {
    await refuses(await unclipFolder({ sr: { stage: { kind: 'super-resolution', lowRes: { ...LOW_RES, factor: 4 } }, imageSize: 24 } }),
      /the super-resolution stage takes 4x4x1 inputs \(factor 4, it makes 16x16\); the decoder makes 8x8x1 images/);
    await refuses(await unclipFolder({ sr: { imageSize: 16 } }), /trained on 16x16 data \(in 16x16\), 8x8 at its input; the decoder's are 6x6 \(in 8x8\)/);
    await refuses(await unclipFolder({ sr: { unet: unetConfig({ ...SR_UNET, inChannels: 6, outChannels: 3 }), imageChannels: 3 } }),
      /takes 8x8x3 inputs \(factor 2, it makes 16x16\); the decoder makes 8x8x1 images/);
    await refuses(await unclipFolder({ sr: { dataset: 'other' } }), /the decoder was trained on 'toy', the super-resolution stage on 'other'/);
  });

  it('an SR stage trained with another text tower or tokenizer than the CLIP\'s', async () => {
    const clipFile = path.join(tmpDir(), 'clip.safetensors');
    await writeClip(clipFile);
    const tower = await clipProvenance(clipFile);
    const deeper = { text: { ...tower.config.text, layers: 2 }, tokenizer: tower.config.tokenizer };
    await refuses(await unclipFolder({ sr: { textEncoder: deeper } }),
      /the super-resolution stage was trained with another text tower than the CLIP's.*expected vs received: text tower \{.*"layers":1.*\} vs \{.*"layers":2/);
    const merges = learnBpeMerges(CORPUS, { maxMerges: 3 });
    const otherTokenizer = { text: { ...tower.config.text, vocabSize: 259 + merges.length }, tokenizer: { ...tower.config.tokenizer, merges } };
    await refuses(await unclipFolder({ sr: { textEncoder: otherTokenizer } }), new RegExp(`tokenizer ${tower.config.tokenizer.merges.length} BPE merges, 10 tokens vs 3 BPE merges, 10 tokens`));
  });

  it('a UNet of another stage in the sr role; SR defaults without an SR stage; a default level it was not trained with', async () => {
    await refuses(await unclipFolder({ sr: { unet: unetConfig({ ...SR_UNET, inChannels: 1, augLevelEmbedding: false }), stage: { kind: 'base', factor: 2 } } }),
      /part 'sr' is a 'base' UNet, expected a super-resolution stage/);
    await refuses(await unclipFolder({ defaults: { srSteps: 2, augLevel: 4 } }), /defaults\.srSteps, defaults\.augLevel set, but the pipeline has no super-resolution stage \('sr' part\)/);
    await refuses(await unclipFolder({ sr: {}, defaults: { augLevel: 21 } }), /defaults: augLevel must be an integer in \[0, 20\]/);
  });
});

describe('writeUnclipPipeline with a super-resolution run', () => {
  it('ships the SR stage as part sr with its defaults, which samples like the hand-made folder; refuses mismatched runs before writing', async () => {
    const src = await unclipFolder({ sr: {} });
    const clipFile = path.join(src, 'clip.safetensors');
    const priorRun = tmpDir();
    const decoderRun = tmpDir();
    fs.copyFileSync(path.join(src, 'prior.safetensors'), path.join(priorRun, PRIOR_WEIGHTS_FILE));
    fs.copyFileSync(path.join(src, 'decoder.safetensors'), path.join(decoderRun, WEIGHTS_FILE));
    const srRun = await srRunFolder(clipFile, clipFile);
    const defaults = { steps: 2, priorSteps: 2, srSteps: 2, srGuidance: 2, augLevel: 5 };
    const out = path.join(tmpDir(), 'unclip');
    const before = tf.memory().numTensors;
    const m = await writeUnclipPipeline(out, { clip: clipFile, priorRun, decoderRun, srRun, defaults });
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(m.parts).sort()).toEqual(['clip', 'decoder', 'prior', 'sr']);
    expect(m.parts.sr).toMatchObject({ file: 'sr.safetensors', kind: 'unet' });
    expect(m.parts.sr.description).toMatch(/super-resolution UNet 8x8 -> 16x16 \(EMA\) after 34 steps, toy, float32/);
    expect((await readPipelineManifest(out)).defaults).toEqual(defaults);
    expect((await readModelConfig(path.join(out, 'sr.safetensors'))).step).toBe(34);
    const a = await loadUnclipPipeline(folderFiles(src));
    const b = await loadUnclipPipeline(folderFiles(out));
    const o = { ...OPTS, prompts: ['a top digit'], n: 2, guidance: 2, srSteps: 2, augLevel: 5 };
    const x = await generateUnclip(a, o);
    const y = await generateUnclip(b, o);
    expect(y.shape).toEqual([2, 12, 12, 1]);
    await expectClose(y, x, 1e-6);
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();

    const refusesToWrite = async (assembly: Partial<Parameters<typeof writeUnclipPipeline>[1]>, message: RegExp): Promise<void> => {
      const to = path.join(tmpDir(), 'refused');
      await expect(writeUnclipPipeline(to, { clip: clipFile, priorRun, decoderRun, ...assembly })).rejects.toThrow(message);
      expect(fs.existsSync(to)).toBe(false); // refused before anything was written
    };
    // sizes that do not chain
    await refusesToWrite({ srRun: await srRunFolder(clipFile, clipFile, { stage: { kind: 'super-resolution', lowRes: { ...LOW_RES, factor: 4 } }, imageSize: 24 }) },
      /writeUnclipPipeline\(.*\): the super-resolution stage takes 4x4x1 inputs \(factor 4, it makes 16x16\); the decoder makes 8x8x1 images/);
    // another text tower: by config, and (same config) by weights
    const tower = await clipProvenance(clipFile);
    await refusesToWrite({ srRun: await srRunFolder(clipFile, clipFile, { textEncoder: { text: { ...tower.config.text, layers: 2 }, tokenizer: tower.config.tokenizer } }) },
      /trained with another text tower than the CLIP's/);
    const otherClip = path.join(tmpDir(), 'other-clip.safetensors');
    await writeClip(otherClip, { perturbText: true });
    await refusesToWrite({ srRun: await srRunFolder(clipFile, otherClip) },
      /the super-resolution stage was trained with another text tower \(.*text_encoder\.safetensors\) than the CLIP's .*: largest relative weight difference .*expected <= 0\.001/);
    const noText = await srRunFolder(clipFile, clipFile);
    fs.unlinkSync(path.join(noText, TEXT_ENCODER_FILE));
    await refusesToWrite({ srRun: noText }, /text_encoder\.safetensors: the super-resolution run's text encoder is needed/);
    // SR options without an SR run
    await refusesToWrite({ srUnet: 'model.safetensors' }, /srUnet model\.safetensors is a file of a super-resolution run: give srRun too/);
    await refusesToWrite({ defaults: { srSteps: 2 } }, /defaults\.srSteps set, but the pipeline has no super-resolution stage/);
    await refusesToWrite({ srRun, defaults: { augLevel: 30 } }, /defaults: augLevel must be an integer in \[0, 20\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('unetDenoiser', () => {
  it('passes imageEmbedding to the UNet (and still refuses unknown keys)', () => {
    const unet = new UNet(DECODER, new Rng('d'));
    const before = tf.memory().numTensors;
    const x = randomNormal([2, 8, 8, 1], new Rng('x'));
    const t = tf.tensor1d([3, 30], 'int32');
    const emb = randomNormal([2, E], new Rng('e'));
    const out = unetDenoiser(unet)(x, t, { imageEmbedding: emb });
    const ref = unet.apply({ x: x as tf.Tensor4D, t, imageEmbedding: emb as tf.Tensor2D });
    expect(diff(out, ref)).toBe(0);
    const zeros = tf.zerosLike(emb);
    const zero = unetDenoiser(unet)(x, t, { imageEmbedding: zeros });
    expect(diff(out, zero)).toBeGreaterThan(1e-4);
    expect(() => unetDenoiser(unet)(x, t, { imageEmbeddings: emb })).toThrow(/unknown condition key\(s\) imageEmbeddings/);
    tf.dispose([x, t, emb, out, ref, zeros, zero]);
    expect(tf.memory().numTensors).toBe(before);
    unet.dispose();
  });
});
