import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig } from '../../src/models/unet';
import { scheduleConfig } from '../../src/schedule/betas';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { writePipelineManifest } from '../../src/io/pipeline';
import { generate, PixelPipeline } from '../../src/pipelines/pixelDiffusion';
import { loadPixelPipeline } from '../../src/node/loadPipeline';

beforeAll(async () => useBackend('wasm'));

async function tinyPipelineDir(defaults: Record<string, unknown>): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixel-pipe-'));
  const cfg = unetConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 16, numClasses: 3, zeroInitOutput: false });
  const unet = new UNet(cfg, new Rng(1));
  await saveModelWeights(path.join(dir, 'unet.safetensors'), unet, {
    kind: 'unet',
    config: { unet: cfg, schedule: scheduleConfig({ kind: 'cosine', timesteps: 50 }), dataset: 'toy', classNames: ['a', 'b', 'c'], imageSize: 6 },
  });
  unet.dispose();
  await writePipelineManifest(dir, { design: 'pixel', parts: { unet: { file: 'unet.safetensors', kind: 'unet' } }, defaults });
  return dir;
}

describe('pixel pipeline', () => {
  let dir: string;
  let pipe: PixelPipeline;
  beforeAll(async () => {
    dir = await tinyPipelineDir({ sampler: 'ddim', steps: 4, guidance: 2 });
    pipe = await loadPixelPipeline(dir);
  });
  afterAll(() => pipe.dispose());

  it('reads the manifest sampling defaults and the self-describing config', () => {
    expect(pipe.defaults).toEqual({ sampler: 'ddim', steps: 4, guidance: 2 });
    expect(pipe.config.classNames).toEqual(['a', 'b', 'c']);
    expect(pipe.unet.config.numClasses).toBe(3);
  });

  it('draws image i the same alone or inside a batch (noise keyed by image index), cropped to the data size', async () => {
    const before = tf.memory().numTensors;
    const batch = await generate(pipe, { n: 3, labels: [0, 1, 2], sampler: 'ddim', steps: 3, guidance: 2, seed: 5 });
    const alone = await generate(pipe, { n: 1, labels: [2], sampler: 'ddim', steps: 3, guidance: 2, seed: 5, firstIndex: 2 });
    expect(batch.shape).toEqual([3, 6, 6, 1]); // 8x8 model output cropped back to the 6x6 data
    const third = tf.slice(batch, [2, 0, 0, 0], [1, 6, 6, 1]);
    await expectClose(alone, third, 1e-5);
    const chunked = await generate(pipe, { n: 3, labels: [0, 1, 2], sampler: 'ddim', steps: 3, guidance: 2, seed: 5, batchSize: 2 });
    await expectClose(chunked, batch, 1e-5);
    tf.dispose([batch, alone, third, chunked]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reads nothing back to JS while sampling (labels are validated once, up front)', async () => {
    const sync = jest.spyOn(tf.Tensor.prototype, 'dataSync');
    const read = jest.spyOn(tf.Tensor.prototype, 'data');
    try {
      const x = await generate(pipe, { n: 2, labels: [0, 2], sampler: 'dpm-solver++', steps: 3, guidance: 2, seed: 1 });
      expect(sync).not.toHaveBeenCalled();
      expect(read).not.toHaveBeenCalled();
      x.dispose();
    } finally {
      sync.mockRestore();
      read.mockRestore();
    }
  });

  it('refuses missing or out-of-range labels with the class list', async () => {
    await expect(generate(pipe, { n: 2, labels: null })).rejects.toThrow(/class-conditional \(3 classes: a, b, c\); pass labels/);
    await expect(generate(pipe, { n: 2, labels: [3] })).rejects.toThrow(/label 3 outside \[0, 3\)/);
    await expect(generate(pipe, { n: 3, labels: [0, 1] })).rejects.toThrow(/one label or n = 3 labels/);
  });

  it('refuses a manifest with an unknown default sampler, naming the file', async () => {
    const bad = await tinyPipelineDir({ sampler: 'euler' });
    await expect(loadPixelPipeline(bad)).rejects.toThrow(/pipeline\.json: defaults\.sampler must be one of ddpm, ddim, dpm-solver\+\+/);
  });
});
