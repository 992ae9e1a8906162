import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, tinyTwoClassDataset } from '../helpers';
import { Rng } from '../../src/backend/random';
import { ImageDataset } from '../../src/data/dataset';
import { UNet, unetConfig } from '../../src/models/unet';
import { makeSchedule } from '../../src/schedule/schedule';
import { trainDiffusion, STATE_FILE, METRICS_FILE } from '../../src/train/diffusionTraining';
import { WEIGHTS_FILE } from '../../src/io/checkpoint';
import { trainConfig, TrainConfig } from '../../src/train/trainConfig';
import { readModelConfig } from '../../src/io/checkpointFile';

beforeAll(async () => useBackend('wasm'));

const tinyDataset = tinyTwoClassDataset;

const UNET = unetConfig({ inChannels: 1, sampleSize: 8, baseChannels: 8, channelMults: [1, 2], numResBlocks: 1, attentionResolutions: [4], heads: 2, timeEmbeddingDim: 32, timeEmbeddingInputDim: 16, numClasses: 2 });

function makeModels(seed: number): { model: UNet; ema: UNet } {
  return { model: new UNet(UNET, new Rng(`${seed}/init`)), ema: new UNet(UNET, new Rng(`${seed}/init`)) };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-loop-'));
}

async function run(cfg: TrainConfig, outDir: string, resume: boolean, abortAfter?: number, deadline?: number): Promise<number[]> {
  const { model, ema } = makeModels(cfg.seed);
  const controller = new AbortController();
  try {
    const result = await trainDiffusion({
      model, ema, schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train: tinyDataset(24, 1), validation: tinyDataset(8, 2),
      config: cfg, outDir, resume, checkpointConfig: { test: true }, signal: controller.signal, deadline,
      onMetrics: (row) => {
        if (abortAfter !== undefined && row.step >= abortAfter) controller.abort();
      },
    });
    return result.losses;
  } finally {
    model.dispose();
    ema.dispose();
  }
}

const BASE = trainConfig({ steps: 6, batchSize: 4, seed: 3, lr: 2e-3, warmupSteps: 2, logEvery: 1, valEvery: 3, valSize: 8, checkpointEvery: 3, sampleEvery: 0, condDropProb: 0.25 });

describe('trainDiffusion', () => {
  it('resumed after a stop, reproduces the losses of an uninterrupted run exactly', async () => {
    const full = await run(BASE, tmpDir(), false);
    expect(full).toHaveLength(6);
    const dir = tmpDir();
    const first = await run(BASE, dir, false, 2); // stops after step 2, checkpointing there
    expect(first).toHaveLength(2);
    const rest = await run(BASE, dir, true);
    expect([...first, ...rest]).toEqual(full);
    const rows = fs.readFileSync(path.join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; valLoss?: number });
    expect(rows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.filter((r) => r.valLoss !== undefined).map((r) => r.step)).toEqual([3, 6]); // every 3 and at the end
    const info = await readModelConfig(path.join(dir, WEIGHTS_FILE));
    expect(info.kind).toBe('unet');
    expect(info.step).toBe(6);
    expect((info.config as { unet: { numClasses: number } }).unet.numClasses).toBe(2);
    expect(fs.existsSync(path.join(dir, STATE_FILE))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'loss.png'))).toBe(true);
  });

  it('gradient accumulation over equal micro-batches gives the same losses as one batch', async () => {
    const one = await run({ ...BASE, steps: 3, condDropProb: 0 }, tmpDir(), false);
    const two = await run({ ...BASE, steps: 3, gradAccum: 2, condDropProb: 0 }, tmpDir(), false);
    // Same examples, timesteps and noise; only the summation order differs.
    // (The tiny model has no dropout: dropout masks are drawn per micro-batch, so with dropout the runs would differ.)
    two.forEach((l, i) => expect(Math.abs(l - one[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(one[i]))));
  });

  it('keeps the number of live tensors flat across steps', async () => {
    const { model, ema } = makeModels(5);
    const counts: number[] = [];
    try {
      await trainDiffusion({
        model, ema, schedule: makeSchedule({ kind: 'cosine', timesteps: 50 }), train: tinyDataset(24, 1), validation: null,
        config: { ...BASE, steps: 5, checkpointEvery: 100 }, outDir: tmpDir(), resume: false, checkpointConfig: {},
        onMetrics: () => counts.push(tf.memory().numTensors),
      });
    } finally {
      model.dispose();
      ema.dispose();
    }
    expect(counts).toHaveLength(5);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('stops with a clear error on a non-finite loss and keeps the last good checkpoint', async () => {
    const dir = tmpDir();
    const cfg = { ...BASE, steps: 40, lr: 1e12, warmupSteps: 0, checkpointEvery: 1, adamw: { ...BASE.adamw, clipGradNorm: 0, eps: 1e-30 } };
    await expect(run(cfg, dir, false)).rejects.toThrow(/loss became (NaN|Infinity|-Infinity) at step \d+.*last good checkpoint/);
    const info = await readModelConfig(path.join(dir, WEIGHTS_FILE));
    expect(info.step).not.toBeNull();
  });

  it('with a time budget, stops after the step that reaches it, with a checkpoint at that step', async () => {
    const dir = tmpDir();
    // 1e-6 minutes: reached by the end of the first step, whatever the machine.
    const losses = await run({ ...BASE, steps: 50, checkpointEvery: 100, timeBudgetMinutes: 1e-6 }, dir, false);
    expect(losses).toHaveLength(1);
    const info = await readModelConfig(path.join(dir, WEIGHTS_FILE));
    expect(info.step).toBe(1);
    // Resuming with the budget already spent (wall time is counted over sessions) trains one more step and stops again.
    const more = await run({ ...BASE, steps: 50, checkpointEvery: 100, timeBudgetMinutes: 1e-6 }, dir, true);
    expect(more).toHaveLength(1);
    expect(() => trainConfig({ timeBudgetMinutes: 0 })).toThrow(/timeBudgetMinutes must be a positive number or null/);
  });

  it('with a deadline (a budget shared with other stages), stops after the step that passes it, with a checkpoint', async () => {
    const dir = tmpDir();
    const losses = await run({ ...BASE, steps: 50, checkpointEvery: 100 }, dir, false, undefined, Date.now());
    expect(losses).toHaveLength(1);
    const info = await readModelConfig(path.join(dir, WEIGHTS_FILE));
    expect(info.step).toBe(1);
    // A deadline far ahead changes nothing: the run goes to its last step.
    const dir2 = tmpDir();
    expect(await run({ ...BASE, steps: 3 }, dir2, false, undefined, Date.now() + 3_600_000)).toHaveLength(3);
  });

  it('lets timers and signal handlers run at log steps: an abort from a timer stops the run at the next log step', async () => {
    const { model, ema } = makeModels(3);
    const controller = new AbortController();
    const logs: string[] = [];
    try {
      // The timer can only fire when the loop yields to the event loop; without a yield it would first fire at a
      // checkpoint's file writes (none before step 40 here), and the run would go to its end.
      setTimeout(() => controller.abort(), 0);
      const result = await trainDiffusion({
        model, ema, schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train: tinyDataset(24, 1), validation: null,
        config: { ...BASE, steps: 40, logEvery: 2, checkpointEvery: 40, valEvery: 0 }, outDir: tmpDir(), resume: false,
        checkpointConfig: { test: true }, signal: controller.signal, onLog: (l) => { logs.push(l); },
      });
      expect(result.stoppedEarly).toBe(true);
      expect(result.endStep).toBe(2);
      expect(logs.join('\n')).toMatch(/stopped at step 2 \(checkpoint written\)/);
    } finally {
      model.dispose();
      ema.dispose();
    }
  });

  it('with profile, logs the most expensive kernels of one step before training', async () => {
    const { model, ema } = makeModels(2);
    const lines: string[] = [];
    try {
      await trainDiffusion({
        model, ema, schedule: makeSchedule(), train: tinyDataset(8, 1), validation: null, config: { ...BASE, steps: 1 },
        outDir: tmpDir(), resume: false, checkpointConfig: {}, profile: true, onLog: (l) => lines.push(l),
      });
    } finally {
      model.dispose();
      ema.dispose();
    }
    const head = lines.findIndex((l) => l.startsWith('profile of one step (micro-batch 4)'));
    expect(head).toBeGreaterThanOrEqual(0);
    const rows = lines.slice(head + 1, head + 11);
    expect(rows).toHaveLength(10);
    for (const r of rows) expect(r).toMatch(/^ {2}\S+\s+\d+\.\d ms\s+\d+\.\d%\s+\d+ calls$/);
  });

  it('refuses a dataset whose channels do not match the model', async () => {
    const { model, ema } = makeModels(1);
    const rgb: ImageDataset = { ...tinyDataset(4, 1), channels: 3, images: new Uint8Array(4 * 64 * 3) };
    await expect(trainDiffusion({ model, ema, schedule: makeSchedule(), train: rgb, validation: null, config: BASE, outDir: tmpDir(), resume: false, checkpointConfig: {} }))
      .rejects.toThrow(/3 channel\(s\): the model must map 3 to 3 channels, it maps 1 to 1/);
    model.dispose();
    ema.dispose();
  });
});

describe('trainDiffusion: order of saves', () => {
  it('writes the checkpoint before the sample grid, so a kill while sampling loses no steps', async () => {
    const { model, ema } = makeModels(3);
    const dir = tmpDir();
    const seen: Array<[number, number | null]> = [];
    try {
      await trainDiffusion({
        model, ema, schedule: makeSchedule({ kind: 'linear', timesteps: 100 }), train: tinyDataset(24, 1), validation: null,
        config: trainConfig({ ...BASE, valEvery: 0, sampleEvery: 2, checkpointEvery: 2, steps: 4 }), outDir: dir, resume: false, checkpointConfig: { test: true },
        // what a kill during the grid would leave: the state's step must already be the grid's
        onSample: async (_ema, step) => {
          seen.push([step, (await readModelConfig(path.join(dir, STATE_FILE))).step]);
        },
      });
    } finally {
      model.dispose();
      ema.dispose();
    }
    expect(seen).toEqual([[2, 2], [4, 4]]);
  });
});
