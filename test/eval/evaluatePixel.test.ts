import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng } from '../../src/backend/random';
import { UNet, unetConfig } from '../../src/models/unet';
import { scheduleConfig } from '../../src/schedule/betas';
import { saveModelWeights } from '../../src/io/checkpointFile';
import { MNIST_CLASS_NAMES } from '../../src/data/mnist';
import { evaluatePixelPipeline, evalMarkdownRow } from '../../src/eval/evaluatePixel';

beforeAll(async () => useBackend('wasm'));

describe('evaluatePixelPipeline', () => {
  it('streams generated images through FID, KID and the shipped MNIST classifier, leaking nothing', async () => {
    // An untrained tiny class-conditional UNet with a random (non-zero) output conv: its samples are noise,
    // so FID is large and accuracy is near chance; this checks the plumbing, counts and bounds.
    const cfg = unetConfig({ inChannels: 1, sampleSize: 32, baseChannels: 8, channelMults: [1, 2, 2], numResBlocks: 1, attentionResolutions: [8], heads: 2, timeEmbeddingDim: 32, numClasses: 10, zeroInitOutput: false });
    const unet = new UNet(cfg, new Rng(3));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'eval-')), 'unet.safetensors');
    await saveModelWeights(file, unet, { kind: 'unet', config: { unet: cfg, schedule: scheduleConfig({ kind: 'cosine', timesteps: 100 }), dataset: 'mnist', classNames: MNIST_CLASS_NAMES, imageSize: 28 } });
    unet.dispose();
    const before = tf.memory().numTensors;
    const grid = file.replace('.safetensors', '.png');
    const r = await evaluatePixelPipeline({ pipeline: file, dataset: 'mnist', n: 30, referenceLimit: 200, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, kid: true, batchSize: 12, gridFile: grid });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(30);
    expect(r.referenceCount).toBe(200);
    expect(r.step).toBeNull();
    expect(r.features).toBe('mnist');
    expect(Number.isFinite(r.fid) && r.fid > 0).toBe(true);
    expect(r.kid?.numSubsets).toBe(100);
    expect(r.kid?.subsetSize).toBe(30);
    expect(r.accuracy).not.toBeNull();
    expect(r.accuracy as number).toBeGreaterThanOrEqual(0);
    expect(r.accuracy as number).toBeLessThanOrEqual(1);
    // Labels cycle 0..9, so 3 images per class; the overall accuracy is the mean of the per-class ones.
    const per = r.perClassAccuracy as number[];
    expect(per).toHaveLength(10);
    expect(per.reduce((a, b) => a + b, 0) / 10).toBeCloseTo(r.accuracy as number, 10);
    expect(fs.existsSync(grid)).toBe(true);
    expect(r.clipScore).toBeNull();
    expect(evalMarkdownRow(r, 'cmd')).toMatch(/^\| .*unet\.safetensors \| - \| 30 \| ddim 2 \| 2 \| \d+\.\d\d \| .* \| \d+\.\d% \| - \| \d+\.\d{3} \| `cmd` \|$/);

    // With an evaluation CLIP: each image scored against its label's prompt; the same images as above
    // (same seed), so accuracy and FID do not change.
    const prompts = Array.from({ length: 10 }, (_, d) => `a handwritten ${d}`);
    const withClip = await evaluatePixelPipeline({
      pipeline: file, dataset: 'mnist', n: 30, referenceLimit: 200, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, kid: false, batchSize: 12,
      evalClip: 'checkpoints/mnist-clip-eval/clip.safetensors', classPrompts: prompts,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(withClip.accuracy).toBe(r.accuracy);
    expect(withClip.fid).toBeCloseTo(r.fid, 6);
    const cs = withClip.clipScore as { mean: number; std: number };
    expect(cs.mean).toBeGreaterThanOrEqual(0);
    expect(cs.mean).toBeLessThanOrEqual(100);
    expect(cs.std).toBeGreaterThanOrEqual(0);
    expect(evalMarkdownRow(withClip, 'cmd')).toMatch(/\| \d+\.\d\d \+- \d+\.\d\d \| \d+\.\d{3} \| `cmd` \|$/);
    await expect(evaluatePixelPipeline({
      pipeline: file, dataset: 'mnist', n: 4, sampler: 'ddim', steps: 2, guidance: 2, seed: 1, kid: false, batchSize: 4,
      evalClip: 'checkpoints/mnist-clip-eval/clip.safetensors', classPrompts: prompts.slice(0, 3),
    })).rejects.toThrow(/one prompt per class \(10\), got 3/);
  });

  it('refuses n < 2 (a covariance needs two images)', async () => {
    await expect(evaluatePixelPipeline({ pipeline: 'x', dataset: 'mnist', n: 1, sampler: 'ddim', steps: 2, guidance: 1, seed: 0, kid: false, batchSize: 1 })).rejects.toThrow(/n must be an integer >= 2/);
  });
});
