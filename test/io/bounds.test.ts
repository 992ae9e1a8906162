/**
 * Numbers read from a file or a command line are bounded before anything is allocated,
 * and what would sample black images with exit code 0 is refused: non-finite weights,
 * a guidance scale out of its one range. Errors name the file and the field.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { scheduleConfig, MAX_TIMESTEPS } from '../../src/schedule/betas';
import { unetConfig } from '../../src/models/unet';
import { classifierFreeGuidance, MAX_GUIDANCE } from '../../src/sample/guidance';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors';
import { loadPipeline } from '../../src/pipelines/loadPipeline';

beforeAll(async () => useBackend('wasm'));

const PIXEL = path.join(__dirname, '..', '..', 'checkpoints', 'mnist-pixel');

/** mnist-pixel's files with its UNet's metadata config edited, or one weight replaced. */
function editedPixel(edit: { config?: (c: Record<string, unknown>) => void; manifest?: (m: Record<string, unknown>) => void; weight?: number }): Map<string, Uint8Array> {
  const file = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(PIXEL, 'unet.safetensors'))), 'unet');
  const meta = { ...file.metadata };
  if (edit.config !== undefined) {
    const c = JSON.parse(meta.config) as Record<string, unknown>;
    edit.config(c);
    meta.config = JSON.stringify(c);
  }
  if (edit.weight !== undefined) {
    const first = [...file.tensors.values()].find((t) => t.dtype === 'F32' || t.dtype === 'F16');
    (first as { data: Float32Array }).data[0] = edit.weight;
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(PIXEL, 'pipeline.json'), 'utf8')) as Record<string, unknown>;
  edit.manifest?.(manifest);
  return new Map([
    ['mnist-pixel/pipeline.json', new TextEncoder().encode(JSON.stringify(manifest))],
    ['mnist-pixel/unet.safetensors', serializeSafetensors(file.tensors, meta)],
  ]);
}

describe('bounds', () => {
  it('schedules and UNet configs refuse sizes that would allocate gigabytes, naming the field', () => {
    expect(() => scheduleConfig({ timesteps: 1e9 })).toThrow(`timesteps must be an integer in [1, ${MAX_TIMESTEPS}], got 1000000000`);
    expect(() => unetConfig({ sampleSize: 1e6 })).toThrow('unetConfig: sampleSize must be an integer in [1, 1024], got 1000000');
    expect(() => unetConfig({ baseChannels: 1e7 })).toThrow(/baseChannels must be an integer in \[1, 2048\]/);
    expect(() => unetConfig({ channelMults: [1, 2, 2, 2, 2, 2, 2, 2, 2] })).toThrow(/channelMults must be a list of 1 to 8 levels/);
  });

  it('a checkpoint whose metadata asks for 1e9 timesteps or a 1e6-pixel image is refused at load, naming the file', async () => {
    await expect(loadPipeline(editedPixel({ config: (c) => { (c.schedule as Record<string, unknown>).timesteps = 1e9; } })))
      .rejects.toThrow(/timesteps must be an integer in \[1, 100000\], got 1000000000/);
    await expect(loadPipeline(editedPixel({ config: (c) => { c.imageSize = 1e6; } })))
      .rejects.toThrow(/^mnist-pixel\/unet\.safetensors: config\.imageSize must be an integer in \[1, 4096\], got 1000000/);
  });

  it('refuses non-finite weights at load, naming the file and the tensor', async () => {
    const before = tf.memory().numTensors;
    await expect(loadPipeline(editedPixel({ weight: NaN }))).rejects.toThrow(/^mnist-pixel\/unet\.safetensors: tensor '.+' holds NaN at index 0: non-finite weights/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('has one guidance range, [0, MAX_GUIDANCE], in the sampler and the manifest reader', async () => {
    expect(MAX_GUIDANCE).toBe(50);
    const id = (x: tf.Tensor): tf.Tensor => x;
    expect(() => classifierFreeGuidance(id, { scale: 1e300, uncond: {} })).toThrow('classifierFreeGuidance: scale must be a guidance scale in [0, 50] (1 = no guidance), got 1e+300');
    await expect(loadPipeline(editedPixel({ manifest: (m) => { (m.defaults as Record<string, unknown>).guidance = 1e308; } })))
      .rejects.toThrow(/^mnist-pixel\/pipeline\.json: defaults\.guidance must be a guidance scale in \[0, 50\]/);
  });
});
