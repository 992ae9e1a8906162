/**
 * Text-to-image pipelines (src/pipelines/textToImage.ts), from tiny folders
 * assembled by hand: pixel and latent designs load; generateFromText is the
 * sampler + (latent: z'/scaleFactor -> decoder) + clip to [-1, 1] + crop,
 * deterministic, per-image noise (firstIndex), one prompt broadcast, guidance
 * against the empty prompt; mismatched parts and bad requests are refused.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig, UNetConfig } from '../../src/models/unet';
import { Autoencoder, autoencoderConfig } from '../../src/models/autoencoder';
import { Clip, ClipConfigPartial } from '../../src/models/clip';
import { learnBpeMerges } from '../../src/models/tokenizer';
import { scheduleConfig } from '../../src/schedule/betas';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { folderFiles, writePipelineManifest } from '../../src/io/pipeline';
import { PipelinePart } from '../../src/io/pipelineManifest';
import { sample } from '../../src/sample/sample';
import { NO_CLIP, ClipMode } from '../../src/sample/thresholding';
import { unetDenoiser } from '../../src/pipelines/unetDenoiser';
import { encodePrompts, TextEncoderCheckpointConfig } from '../../src/pipelines/textConditioning';
import { loadTextEncoder, saveTextEncoder } from '../../src/node/pipelineParts';
import { loadTextToImagePipeline, generateFromText, textUNetCheckpointConfig, TextToImagePipeline, DiffusionSpace } from '../../src/pipelines/textToImage';
import { writeTextPipeline } from '../../src/node/writePipeline';

beforeAll(async () => useBackend('cpu'));

const CORPUS = ['a top digit', 'a left digit', 'a thin top digit', 'the left one', 'a top one'];
const clipPartial = (maxMerges: number): ClipConfigPartial => ({
  image: { inChannels: 1, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
  text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
  tokenizer: { merges: learnBpeMerges(CORPUS, { maxMerges }) },
  seed: 5,
});
const SCHEDULE = scheduleConfig({ kind: 'cosine', timesteps: 50 });
const SCALE_FACTOR = 0.8;
const AE = autoencoderConfig({ inChannels: 1, sampleSize: 8, channelMults: [1, 2], baseChannels: 8, latentChannels: 2, groups: 4, heads: 2 });
// zeroInitOutput false: an untrained zero-init UNet outputs 0 whatever the prompt, and no test could see the text.
const PIXEL_UNET = unetConfig({
  inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2,
  timeEmbeddingDim: 16, timeEmbeddingInputDim: 16, contextDim: 8, zeroInitOutput: false,
});
const LATENT_UNET = unetConfig({ ...PIXEL_UNET, inChannels: 2, outChannels: null, sampleSize: 4, attentionResolutions: [2] });

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-t2i-'));
}

/** Writes a text-encoder file (from a tiny CLIP with `maxMerges` BPE merges) into dir; returns its config. */
async function writeTextEncoder(dir: string, maxMerges: number): Promise<TextEncoderCheckpointConfig> {
  const clip = new Clip(clipPartial(maxMerges));
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

interface FolderOptions {
  readonly design: DiffusionSpace;
  readonly unetSpace: DiffusionSpace;
  readonly unet: UNetConfig;
  /** BPE merges of the shipped text encoder (the UNet's config always records 6). */
  readonly textMerges?: number;
}

/** A pipeline folder: unet (+ text_encoder, + vae for the latent design) and pipeline.json. */
async function pipelineFolder(o: FolderOptions): Promise<string> {
  const dir = tmpDir();
  const textConfig = await writeTextEncoder(dir, 6);
  if (o.textMerges !== undefined) await writeTextEncoder(dir, o.textMerges); // overwrites the shipped one
  const unet = new UNet(o.unet, new Rng('unet'));
  await saveModelWeights(path.join(dir, 'unet.safetensors'), unet, {
    kind: 'unet',
    config: {
      unet: o.unet, schedule: SCHEDULE, dataset: 'toy', imageSize: o.unetSpace === 'pixel' ? 6 : 8, imageChannels: 1, space: o.unetSpace,
      latentScaleFactor: o.unetSpace === 'latent' ? SCALE_FACTOR : null, textEncoder: textConfig,
    },
  });
  unet.dispose();
  const parts: Record<string, PipelinePart> = {
    unet: { file: 'unet.safetensors', kind: 'unet' },
    text_encoder: { file: 'text_encoder.safetensors', kind: 'text-encoder' },
  };
  if (o.design === 'latent') {
    const ae = new Autoencoder(AE, new Rng('vae'));
    await saveModelWeights(path.join(dir, 'vae.safetensors'), ae, {
      kind: 'autoencoder', config: { autoencoder: AE, dataset: 'toy', imageHeight: 8, imageWidth: 8, scaleFactor: SCALE_FACTOR },
    });
    ae.dispose();
    parts.vae = { file: 'vae.safetensors', kind: 'autoencoder' };
  }
  await writePipelineManifest(dir, { design: o.design, parts, defaults: { sampler: 'ddim', steps: 3, guidance: 2 } });
  return dir;
}

/** Images of the pipeline's parts composed by hand (no guidance): sample, latent -> z / f -> decode, clip to [-1, 1], crop. */
async function reference(p: TextToImagePipeline, prompts: string[], seed: number, steps: number): Promise<tf.Tensor4D> {
  const { context, mask } = encodePrompts(p.text, prompts);
  const s = p.unet.config.sampleSize;
  const clip: ClipMode = p.space === 'latent' ? NO_CLIP : { kind: 'static', value: 1 };
  const x = await sample('ddim', unetDenoiser(p.unet), [prompts.length, s, s, p.unet.config.inChannels], p.schedule, {
    steps, predictionType: p.unet.config.predictionType, seed, firstIndex: 0, cond: { context, contextMask: mask }, clip,
  });
  tf.dispose([context, mask]);
  const out = tf.tidy(() => {
    const images = p.autoencoder === null ? x : p.autoencoder.decode(tf.div(x, SCALE_FACTOR) as tf.Tensor4D);
    const clipped = tf.clipByValue(images, -1, 1);
    const side = clipped.shape[1] as number;
    const size = p.config.imageSize;
    const off = (side - size) / 2;
    return tf.slice(clipped, [0, off, off, 0], [prompts.length, size, size, 1]) as tf.Tensor4D;
  });
  x.dispose();
  return out;
}

function expectInRange(x: tf.Tensor): void {
  const v = x.dataSync();
  expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
  expect(Math.max(...v)).toBeLessThanOrEqual(1);
}

const P = ['a top digit', 'a left digit', 'the left one', 'a thin top digit'];

describe('pixel design', () => {
  let pipe: TextToImagePipeline;
  beforeAll(async () => {
    pipe = await loadTextToImagePipeline(folderFiles(await pipelineFolder({ design: 'pixel', unetSpace: 'pixel', unet: PIXEL_UNET })));
  });
  afterAll(() => pipe?.dispose());

  it('loads: pixel space, no autoencoder, the frozen text encoder, the manifest defaults', () => {
    expect(pipe.space).toBe('pixel');
    expect(pipe.autoencoder).toBeNull();
    expect(pipe.defaults).toEqual({ sampler: 'ddim', steps: 3, guidance: 2 });
    expect(pipe.config.imageSize).toBe(6);
    expect(pipe.unet.config.contextDim).toBe(8);
    expect(pipe.text.encoder.namedTrainableParameters()).toHaveLength(0);
    expect(pipe.text.tokenizer.config.merges).toHaveLength(6);
  });

  it('guidance 1 is the sampler on the UNet with the prompts\' states, clipped and cropped to imageSize; in [-1, 1]', async () => {
    const before = tf.memory().numTensors;
    const x = await generateFromText(pipe, { prompts: P.slice(0, 2), n: 2, sampler: 'ddim', steps: 3, guidance: 1, seed: 7 });
    expect(x.shape).toEqual([2, 6, 6, 1]);
    expectInRange(x);
    const ref = await reference(pipe, P.slice(0, 2), 7, 3);
    await expectClose(x, ref, 1e-5);
    tf.dispose([x, ref]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic for a seed; one prompt broadcast equals n copies; prompts and guidance change the images', async () => {
    const before = tf.memory().numTensors;
    const opts = { n: 3, sampler: 'ddim' as const, steps: 3, guidance: 3, seed: 2 };
    const a = await generateFromText(pipe, { ...opts, prompts: ['a top digit'] });
    const b = await generateFromText(pipe, { ...opts, prompts: ['a top digit'] });
    const copies = await generateFromText(pipe, { ...opts, prompts: ['a top digit', 'a top digit', 'a top digit'] });
    const other = await generateFromText(pipe, { ...opts, prompts: ['the left one'] });
    const unguided = await generateFromText(pipe, { ...opts, prompts: ['a top digit'], guidance: 1 });
    const otherSeed = await generateFromText(pipe, { ...opts, prompts: ['a top digit'], seed: 3 });
    expect(a.shape).toEqual([3, 6, 6, 1]);
    expectInRange(a);
    expect(b.dataSync()).toEqual(a.dataSync());
    expect(copies.dataSync()).toEqual(a.dataSync());
    const diff = (u: tf.Tensor, v: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(u, v))).dataSync()[0]);
    expect(diff(other, a)).toBeGreaterThan(1e-4);
    expect(diff(unguided, a)).toBeGreaterThan(1e-4);
    expect(diff(otherSeed, a)).toBeGreaterThan(1e-4);
    // Images of one call differ from each other (noise per image index).
    expect(tf.tidy(() => diff(tf.slice(a, [0], [1]), tf.slice(a, [1], [1])))).toBeGreaterThan(1e-4);
    tf.dispose([a, b, copies, other, unguided, otherSeed]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('guides against the empty prompt: the empty prompt guided at any scale is the unguided empty prompt', async () => {
    const opts = { prompts: [''], n: 2, sampler: 'ddim' as const, steps: 3, seed: 4 };
    const guided = await generateFromText(pipe, { ...opts, guidance: 5 });
    const plain = await generateFromText(pipe, { ...opts, guidance: 1 });
    await expectClose(guided, plain, 1e-5);
    tf.dispose([guided, plain]);
  });

  it('splits a job with firstIndex and batchSize: images 2..3 of a 4-image call equal a 2-image call at firstIndex 2', async () => {
    const before = tf.memory().numTensors;
    const opts = { sampler: 'dpm-solver++' as const, steps: 3, guidance: 2, seed: 11 };
    const all = await generateFromText(pipe, { ...opts, prompts: P, n: 4 });
    const tail = await generateFromText(pipe, { ...opts, prompts: P.slice(2), n: 2, firstIndex: 2 });
    const chunked = await generateFromText(pipe, { ...opts, prompts: P, n: 4, batchSize: 3 });
    const allTail = tf.slice(all, [2], [2]);
    await expectClose(tail, allTail, 1e-5);
    await expectClose(chunked, all, 1e-5);
    const uncropped = await generateFromText(pipe, { ...opts, prompts: P, n: 4, cropToImageSize: false });
    expect(uncropped.shape).toEqual([4, 8, 8, 1]);
    const centre = tf.slice(uncropped, [0, 1, 1, 0], [4, 6, 6, 1]);
    await expectClose(centre, all, 1e-5);
    tf.dispose([all, tail, chunked, allTail, uncropped, centre]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses the wrong number of prompts, n <= 0, non-string prompts, leaving no tensor behind', async () => {
    const before = tf.memory().numTensors;
    await expect(generateFromText(pipe, { prompts: ['a', 'b'], n: 3 })).rejects.toThrow(/give one prompt or n = 3 prompts, got 2/);
    await expect(generateFromText(pipe, { prompts: [], n: 1 })).rejects.toThrow(/give one prompt or n = 1 prompts, got 0/);
    await expect(generateFromText(pipe, { prompts: ['a'], n: 0 })).rejects.toThrow(/n must be a positive integer, got 0/);
    await expect(generateFromText(pipe, { prompts: ['a'], n: -2 })).rejects.toThrow(/n must be a positive integer, got -2/);
    await expect(generateFromText(pipe, { prompts: ['a'], n: 1, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer, got 0/);
    await expect(generateFromText(pipe, { prompts: [3 as unknown as string], n: 1 })).rejects.toThrow(/prompt 0 is a number, expected a string/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('latent design', () => {
  let pipe: TextToImagePipeline;
  beforeAll(async () => {
    pipe = await loadTextToImagePipeline(folderFiles(await pipelineFolder({ design: 'latent', unetSpace: 'latent', unet: LATENT_UNET })));
  });
  afterAll(() => pipe?.dispose());

  it('loads with the autoencoder and the UNet\'s scale factor', () => {
    expect(pipe.space).toBe('latent');
    expect(pipe.autoencoder).not.toBeNull();
    expect(pipe.autoencoder?.latentShape(1)).toEqual([1, 4, 4, 2]);
    expect(pipe.config.latentScaleFactor).toBe(SCALE_FACTOR);
  });

  it('generates [n, 8, 8, 1] in [-1, 1]: sampled latents / scaleFactor through the decoder', async () => {
    const before = tf.memory().numTensors;
    const x = await generateFromText(pipe, { prompts: ['a top digit', 'a left digit'], n: 2, sampler: 'ddim', steps: 3, guidance: 1, seed: 5 });
    expect(x.shape).toEqual([2, 8, 8, 1]);
    expectInRange(x);
    const ref = await reference(pipe, ['a top digit', 'a left digit'], 5, 3);
    await expectClose(x, ref, 1e-5);
    const guided = await generateFromText(pipe, { prompts: ['a top digit', 'a left digit'], n: 2, sampler: 'ddim', steps: 3, guidance: 3, seed: 5 });
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(guided, x))).dataSync()[0])).toBeGreaterThan(1e-5);
    tf.dispose([x, ref, guided]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('writeTextPipeline', () => {
  it('ships every part of a latent run folder (float32: identical images; float16: close), with the new defaults', async () => {
    const run = await pipelineFolder({ design: 'latent', unetSpace: 'latent', unet: LATENT_UNET });
    const before = tf.memory().numTensors;
    const out32 = path.join(tmpDir(), 'shipped32');
    const m = await writeTextPipeline(out32, { run, defaults: { sampler: 'ddim', steps: 4, guidance: 1.5, prompts: ['a top digit'] } });
    expect(Object.keys(m.parts).sort()).toEqual(['text_encoder', 'unet', 'vae']);
    expect(m.design).toBe('latent');
    expect(m.defaults).toEqual({ sampler: 'ddim', steps: 4, guidance: 1.5, prompts: ['a top digit'] });
    const out16 = path.join(tmpDir(), 'shipped16');
    await writeTextPipeline(out16, { run, storage: 'float16' });
    expect(tf.memory().numTensors).toBe(before);
    expect(fs.statSync(path.join(out16, 'unet.safetensors')).size).toBeLessThan(0.6 * fs.statSync(path.join(out32, 'unet.safetensors')).size);
    const [a, b, c] = [await loadTextToImagePipeline(folderFiles(run)), await loadTextToImagePipeline(folderFiles(out32)), await loadTextToImagePipeline(folderFiles(out16))];
    try {
      expect(b.defaults.steps).toBe(4);
      const opts = { prompts: P.slice(0, 2), n: 2, sampler: 'ddim' as const, steps: 3, guidance: 2, seed: 9 };
      const [xa, xb, xc] = [await generateFromText(a, opts), await generateFromText(b, opts), await generateFromText(c, opts)];
      await expectClose(xb, xa, 1e-6);
      const diff16 = tf.tidy(() => tf.max(tf.abs(tf.sub(xc, xa))).dataSync()[0]);
      expect(diff16).toBeLessThan(0.05);
      tf.dispose([xa, xb, xc]);
    } finally {
      [a, b, c].forEach((p) => p.dispose());
    }
    await expect(writeTextPipeline(path.join(tmpDir(), 'x'), { run, unetFile: 'missing.safetensors' })).rejects.toThrow(/missing\.safetensors/);
  });
});

describe('refusals when loading', () => {
  it('a text encoder that is not the UNet\'s (another tokenizer)', async () => {
    const dir = await pipelineFolder({ design: 'pixel', unetSpace: 'pixel', unet: PIXEL_UNET, textMerges: 3 });
    const before = tf.memory().numTensors;
    await expect(loadTextToImagePipeline(folderFiles(dir))).rejects.toThrow(/the text encoder \(.*text_encoder\.safetensors\) is not the one the UNet was trained with/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a latent UNet whose shape does not match the autoencoder\'s latents', async () => {
    const wrong = unetConfig({ ...LATENT_UNET, sampleSize: 8, attentionResolutions: [4] });
    const dir = await pipelineFolder({ design: 'latent', unetSpace: 'latent', unet: wrong });
    const before = tf.memory().numTensors;
    await expect(loadTextToImagePipeline(folderFiles(dir))).rejects.toThrow(/the UNet works on \[8, 8, 2\], the autoencoder's latents are \[4, 4, 2\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('design pixel with a latent UNet, and design latent with a pixel UNet', async () => {
    const a = await pipelineFolder({ design: 'pixel', unetSpace: 'latent', unet: LATENT_UNET });
    await expect(loadTextToImagePipeline(folderFiles(a))).rejects.toThrow(/design 'pixel' but the UNet was trained in latent space/);
    const b = await pipelineFolder({ design: 'latent', unetSpace: 'pixel', unet: PIXEL_UNET });
    await expect(loadTextToImagePipeline(folderFiles(b))).rejects.toThrow(/design 'latent' but the UNet was trained in pixel space/);
  });
});

describe('textUNetCheckpointConfig', () => {
  const text: TextEncoderCheckpointConfig = {
    text: { vocabSize: 259, maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
    tokenizer: { maxLength: 10, merges: [] },
  };
  const base = { unet: PIXEL_UNET, schedule: SCHEDULE, space: 'pixel', textEncoder: text };

  it('fills imageSize / imageChannels from the UNet and reads latent factors', () => {
    const c = textUNetCheckpointConfig(base, 'f');
    expect([c.imageSize, c.imageChannels, c.latentScaleFactor, c.dataset]).toEqual([8, 1, null, 'unknown']);
    const l = textUNetCheckpointConfig({ ...base, unet: LATENT_UNET, space: 'latent', latentScaleFactor: 0.5, imageSize: 8 }, 'f');
    expect(l.latentScaleFactor).toBe(0.5);
  });

  it('refuses a non-text UNet config, a context width other than the text encoder\'s, an unknown space, a latent UNet without a factor', () => {
    expect(() => textUNetCheckpointConfig({ unet: PIXEL_UNET, schedule: SCHEDULE }, 'f')).toThrow(/is this a text-conditional UNet checkpoint/);
    expect(() => textUNetCheckpointConfig({ ...base, unet: { ...PIXEL_UNET, contextDim: 16 } }, 'f')).toThrow(/contextDim 16 differs from its text encoder's width 8/);
    expect(() => textUNetCheckpointConfig({ ...base, space: 'pixels' }, 'f')).toThrow(/space must be 'pixel' or 'latent', got "pixels"/);
    expect(() => textUNetCheckpointConfig({ ...base, space: 'latent' }, 'f')).toThrow(/a latent UNet needs a positive latentScaleFactor, got undefined/);
    expect(() => textUNetCheckpointConfig({ ...base, space: 'latent', latentScaleFactor: -1 }, 'f')).toThrow(/positive latentScaleFactor, got -1/);
  });
});
