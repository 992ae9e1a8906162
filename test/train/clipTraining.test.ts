/**
 * CLIP training loop on a tiny model and tiny synthetic data: the loss falls,
 * checkpoints are self-describing and reload, a resumed run continues exactly,
 * evaluation runs on schedule; plus the dataset recipe wired end to end on a
 * few MNIST / Colored MNIST images.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Clip } from '../../src/models/clip';
import { readCaptionsFile } from '../../src/data/captions';
import { readModelConfig } from '../../src/io/checkpointFile';
import { clipTrainConfig, CLIP_METRICS_FILE, CLIP_WEIGHTS_FILE, ClipMetricsRow, trainClip, trainClipOnDataset } from '../../src/train/clipTraining';
import { loadClip } from '../../src/node/pipelineParts';
import { useBackend } from '../helpers';
import { colourDataset } from './tinyData';

beforeAll(async () => {
  await useBackend('wasm');
});

const TINY = {
  image: { inChannels: 3, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
  text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
  seed: 5,
};


function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'clip-train-'));
}

describe('trainClip', () => {
  it('lowers the loss, evaluates on schedule, writes a self-describing checkpoint that reloads', async () => {
    const before = tf.memory().numTensors;
    const out = tmpDir();
    const clip = new Clip(TINY);
    const evalSteps: number[] = [];
    const config = clipTrainConfig({ steps: 16, batchSize: 8, lr: 3e-3, warmupSteps: 2, lrDecay: 'constant', logEvery: 4, evalEvery: 8, checkpointEvery: 8, seed: 1 });
    const result = await trainClip({
      clip, train: colourDataset(), config, outDir: out, resume: false,
      evaluate: async (_c, step) => {
        evalSteps.push(step);
        return { probe: step / 100 };
      },
      checkpointConfig: { dataset: 'patches' },
    });
    expect(result.losses).toHaveLength(16);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(result.losses.slice(-4))).toBeLessThan(mean(result.losses.slice(0, 4)) - 0.3);
    expect(evalSteps).toEqual([8, 16]);
    expect(result.lastEval).toEqual({ probe: 0.16 });
    const rows = fs.readFileSync(path.join(out, CLIP_METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ClipMetricsRow);
    expect(rows.map((r) => r.step)).toEqual([4, 8, 12, 16]);
    expect(rows[1].eval).toEqual({ probe: 0.08 });
    expect(rows[0].logitScale).toBeGreaterThan(10);

    const info = await readModelConfig(path.join(out, CLIP_WEIGHTS_FILE));
    expect(info.kind).toBe('clip');
    expect(info.step).toBe(16);
    expect((info.config as { dataset: string }).dataset).toBe('patches');
    const loaded = await loadClip(path.join(out, CLIP_WEIGHTS_FILE));
    expect(loaded.config).toEqual(clip.config);
    for (const [n, v] of clip.namedParameters()) {
      expect(Array.from((loaded.stateDict().get(n) as tf.Tensor).dataSync())).toEqual(Array.from(v.dataSync()));
    }
    loaded.dispose();
    clip.dispose();
    fs.rmSync(out, { recursive: true });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes exactly: 6 + 6 steps give the losses and weights of 12 straight', async () => {
    const config = clipTrainConfig({ steps: 12, batchSize: 8, lr: 2e-3, warmupSteps: 3, logEvery: 3, evalEvery: 0, checkpointEvery: 6, seed: 2 });
    const data = colourDataset();
    const outA = tmpDir();
    const a = new Clip(TINY);
    const ra = await trainClip({ clip: a, train: data, config, outDir: outA, resume: false });
    const outB = tmpDir();
    const b1 = new Clip(TINY);
    const controller = new AbortController();
    const rb1 = await trainClip({
      clip: b1, train: data, config, outDir: outB, resume: false, signal: controller.signal,
      onMetrics: (row) => { if (row.step === 6) controller.abort(); },
    });
    expect(rb1.stoppedEarly).toBe(true);
    expect(rb1.endStep).toBe(6);
    b1.dispose();
    const b2 = new Clip({ ...TINY, seed: 99, text: { ...TINY.text, seed: 98 } }); // different init: everything must come from the state file
    const rb2 = await trainClip({ clip: b2, train: data, config, outDir: outB, resume: true });
    expect(rb2.startStep).toBe(6);
    expect([...rb1.losses, ...rb2.losses]).toEqual(ra.losses);
    for (const [n, v] of a.namedParameters()) expect(Array.from((b2.stateDict().get(n) as tf.Tensor).dataSync())).toEqual(Array.from(v.dataSync()));
    const rows = fs.readFileSync(path.join(outB, CLIP_METRICS_FILE), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as ClipMetricsRow).step);
    expect(rows).toEqual([3, 6, 9, 12]);
    a.dispose();
    b2.dispose();
    fs.rmSync(outA, { recursive: true });
    fs.rmSync(outB, { recursive: true });
  });

  it('refuses data it cannot train on, and bad configs', async () => {
    const clip = new Clip(TINY);
    const config = clipTrainConfig({ steps: 1, batchSize: 4 });
    const out = tmpDir();
    await expect(trainClip({ clip, train: { ...colourDataset(), captions: null }, config, outDir: out, resume: false })).rejects.toThrow(/has no captions/);
    const gray = { ...colourDataset(), channels: 1, images: new Uint8Array(32 * 64) };
    await expect(trainClip({ clip, train: gray, config, outDir: out, resume: false })).rejects.toThrow(/1 channel\(s\), the CLIP expects 3/);
    fs.rmSync(out, { recursive: true });
    expect(() => clipTrainConfig({ batchSize: 1 })).toThrow(/batchSize must be >= 2/);
    clip.dispose();
  });
});

describe('trainClipOnDataset', () => {
  const SMALL = {
    image: { channels: [8], groups: 4, embedDim: 8 },
    text: { dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8 },
  };

  it('mnist with attributes: captions + thresholds files, zero-shot evaluation, text length fitted to the captions', async () => {
    const out = tmpDir();
    const logs: string[] = [];
    const r = await trainClipOnDataset({
      dataset: 'mnist', limit: 32, attributes: true, evalLimit: 20, clip: SMALL,
      train: { steps: 2, batchSize: 16, logEvery: 1, evalEvery: 0, checkpointEvery: 2 },
      outDir: out, resume: false, onLog: (l) => logs.push(l),
    });
    const caps = readCaptionsFile(path.join(out, 'captions-train.txt'));
    expect(caps).toHaveLength(32);
    expect(fs.existsSync(path.join(out, 'caption-thresholds.json'))).toBe(true);
    expect(Object.keys(r.lastEval ?? {})).toEqual(['zeroShot']);
    // Default tokenizer: BPE merges learned from these captions; every caption fits (+ BOS, EOS), length a multiple of 8.
    const tokenizer = r.clip.tokenizer();
    expect(r.clip.config.tokenizer.merges.length).toBeGreaterThan(0);
    expect(tokenizer.vocabSize).toBe(r.clip.config.text.vocabSize);
    const longestTokens = Math.max(...caps.map((c) => tokenizer.tokens(c).length));
    expect(longestTokens).toBeLessThan(Math.max(...caps.map((c) => Buffer.byteLength(c))) / 2);
    expect(r.clip.config.text.maxLength).toBeGreaterThanOrEqual(longestTokens + 2);
    expect(r.clip.config.text.maxLength % 8).toBe(0);
    expect(r.clip.config.image.inChannels).toBe(1);
    expect(logs.some((l) => l.includes('distinct captions'))).toBe(true);
    r.clip.dispose();
    fs.rmSync(out, { recursive: true });
  });

  it('bpeMerges 0: plain bytes, the length fits the longest caption in bytes (a multiple of 16)', async () => {
    const out = tmpDir();
    const r = await trainClipOnDataset({
      dataset: 'mnist', limit: 16, attributes: true, evalLimit: 10, bpeMerges: 0, clip: SMALL,
      train: { steps: 1, batchSize: 8, logEvery: 1, evalEvery: 0, checkpointEvery: 1 },
      outDir: out, resume: false,
    });
    const caps = readCaptionsFile(path.join(out, 'captions-train.txt'));
    expect(r.clip.config.tokenizer.merges).toEqual([]);
    expect(r.clip.config.text.vocabSize).toBe(259);
    expect(r.clip.config.text.maxLength).toBeGreaterThanOrEqual(Math.max(...caps.map((c) => Buffer.byteLength(c))) + 2);
    expect(r.clip.config.text.maxLength % 16).toBe(0);
    r.clip.dispose();
    fs.rmSync(out, { recursive: true });
  });

  it('colored-mnist: RGB tower and seen / held-out retrieval numbers', async () => {
    const out = tmpDir();
    const r = await trainClipOnDataset({
      dataset: 'colored-mnist', limit: 16, attributes: false, evalLimit: 16, clip: SMALL,
      train: { steps: 1, batchSize: 8, logEvery: 1, evalEvery: 0, checkpointEvery: 1 },
      outDir: out, resume: false,
    });
    expect(r.clip.config.image.inChannels).toBe(3);
    expect(Object.keys(r.lastEval ?? {}).sort()).toEqual(['background', 'color', 'digit', 'exact', 'heldOutBackground', 'heldOutColor', 'heldOutDigit', 'heldOutExact']);
    r.clip.dispose();
    fs.rmSync(out, { recursive: true });
  });
});
