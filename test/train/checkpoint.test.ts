/**
 * Model checkpoints and training-state files: exact float32 round trips, half
 * precision storage, PyTorch-layout export, self-describing metadata, and errors
 * that name the file.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../../src/nn/module';
import { Rng, randomNormal } from '../../src/backend/random';
import { SafeTensor } from '../../src/io/safetensors';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensorsFile';
import { loadTrainingState, saveTrainingState } from '../../src/train/checkpoint';
import { loadModelWeights, readModelConfig, saveModelWeights } from '../../src/io/checkpointFile';
import { TFJS_LAYOUT } from '../../src/io/checkpoint';
import { version } from '../../package.json';
import { useBackend } from '../helpers';

interface TinyConfig {
  channels: number;
  hidden: number;
}

/** conv [3,3,2,C] + bias, child linear [C,H] + bias, a norm scale: every layout kind. */
class Tiny extends Module {
  constructor(readonly config: TinyConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    this.addParameter('weight', randomNormal([3, 3, 2, config.channels], rng), 'conv2d');
    this.addParameter('bias', randomNormal([config.channels], rng));
    this.addChild('proj', new TinyLinear(config.channels, config.hidden, rng));
  }
}

class TinyLinear extends Module {
  constructor(inDim: number, outDim: number, rng: Rng) {
    super();
    this.addParameter('weight', randomNormal([inDim, outDim], rng), 'linear');
    this.addParameter('bias', randomNormal([outDim], rng));
  }
}

let dir: string;
const cfg: TinyConfig = { channels: 4, hidden: 3 };

beforeAll(async () => {
  await useBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'checkpoint-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function weights(m: Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of m.namedParameters()) out.set(n, Float32Array.from(await v.data()));
  return out;
}

describe('model weights', () => {
  it('save -> readModelConfig -> rebuild -> load is exact in float32, with full metadata', async () => {
    const before = tf.memory().numTensors;
    const a = new Tiny(cfg, 1);
    const file = path.join(dir, 'tiny.safetensors');
    await saveModelWeights(file, a, { kind: 'unet', config: cfg, step: 1200, seed: 42, command: 'tfjs-diffusion train --steps 1200' });

    const info = await readModelConfig(file);
    expect(info).toEqual({
      kind: 'unet',
      config: cfg,
      layout: 'tfjs',
      library: `tfjs-diffusion@${version}`,
      step: 1200,
      seed: 42,
      command: 'tfjs-diffusion train --steps 1200',
      metadata: {
        format_version: '1',
        library: `tfjs-diffusion@${version}`,
        layout: 'tfjs: NHWC, conv HWIO, linear [in,out]',
        kind: 'unet',
        config: JSON.stringify(cfg),
        step: '1200',
        seed: '42',
        command: 'tfjs-diffusion train --steps 1200',
      },
    });
    const b = new Tiny(info.config as TinyConfig, 2); // different init
    const loaded = await loadModelWeights(file, b, { expectKind: 'unet' });
    expect(loaded.step).toBe(1200);
    expect(await weights(b)).toEqual(await weights(a));
    // The file holds exactly the dotted parameter names in tfjs layout.
    const raw = await readSafetensors(file);
    expect([...raw.tensors].map(([n, t]) => [n, t.dtype, t.shape]).sort()).toEqual([
      ['bias', 'F32', [4]],
      ['proj.bias', 'F32', [3]],
      ['proj.weight', 'F32', [4, 3]],
      ['weight', 'F32', [3, 3, 2, 4]],
    ]);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("storage 'float16' halves the data and loads within half precision", async () => {
    const before = tf.memory().numTensors;
    const a = new Tiny(cfg, 3);
    const f32File = path.join(dir, 'f32.safetensors');
    const f16File = path.join(dir, 'f16.safetensors');
    await saveModelWeights(f32File, a, { kind: 'unet', config: cfg });
    await saveModelWeights(f16File, a, { kind: 'unet', config: cfg, storage: 'float16' });
    expect([...(await readSafetensors(f16File)).tensors.values()].every((t) => t.dtype === 'F16')).toBe(true);
    const b = new Tiny(cfg, 4);
    await loadModelWeights(f16File, b);
    const wa = await weights(a);
    const wb = await weights(b);
    for (const [n, va] of wa) {
      const vb = wb.get(n) as Float32Array;
      for (let i = 0; i < va.length; i++) expect(Math.abs(vb[i] - va[i])).toBeLessThanOrEqual(Math.abs(va[i]) * 2 ** -11 + 2 ** -25);
    }
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("layout 'torch' stores OIHW / [out,in] and loads back exactly", async () => {
    const before = tf.memory().numTensors;
    const a = new Tiny(cfg, 5);
    const file = path.join(dir, 'torch.safetensors');
    await saveModelWeights(file, a, { kind: 'unet', config: cfg, layout: 'torch' });
    const raw = await readSafetensors(file);
    expect(raw.metadata.layout).toBe('torch');
    expect(raw.tensors.get('weight')?.shape).toEqual([4, 2, 3, 3]);
    expect(raw.tensors.get('proj.weight')?.shape).toEqual([3, 4]);
    // spot-check one element: tfjs[h=1, w=2, i=1, o=3] == torch[o=3, i=1, h=1, w=2]
    const wa = await weights(a);
    expect(raw.tensors.get('weight')?.data[((3 * 2 + 1) * 3 + 1) * 3 + 2]).toBe(wa.get('weight')?.[((1 * 3 + 2) * 2 + 1) * 4 + 3]);
    const b = new Tiny(cfg, 6);
    const info = await loadModelWeights(file, b);
    expect(info.layout).toBe('torch');
    expect(await weights(b)).toEqual(wa);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('errors name the file: wrong kind, missing parameter, wrong shape, unexpected tensor, foreign file', async () => {
    const before = tf.memory().numTensors;
    const a = new Tiny(cfg, 7);
    const file = path.join(dir, 'errs.safetensors');
    await saveModelWeights(file, a, { kind: 'autoencoder', config: cfg });
    await expect(loadModelWeights(file, a, { expectKind: 'unet' })).rejects.toThrow(`${file}: expected a 'unet' checkpoint, got kind 'autoencoder'`);
    const wider = new Tiny({ channels: 5, hidden: 3 }, 8);
    await expect(loadModelWeights(file, wider)).rejects.toThrow(`${file}: parameter 'weight': expected shape [3,3,2,5], got [3,3,2,4]`);

    // Edit the file: drop one tensor, add an extra one.
    const raw = await readSafetensors(file);
    const dropped = new Map(raw.tensors);
    dropped.delete('proj.bias');
    const missingFile = path.join(dir, 'missing.safetensors');
    await writeSafetensors(missingFile, dropped, raw.metadata);
    await expect(loadModelWeights(missingFile, a)).rejects.toThrow(`${missingFile}: missing 1 parameter(s): proj.bias`);
    const extra = new Map<string, SafeTensor>(raw.tensors);
    extra.set('ema.bias', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const extraFile = path.join(dir, 'extra.safetensors');
    await writeSafetensors(extraFile, extra, raw.metadata);
    await expect(loadModelWeights(extraFile, a)).rejects.toThrow(`${extraFile}: unexpected 1 tensor(s): ema.bias`);
    await expect(loadModelWeights(extraFile, a, { strict: false })).resolves.toMatchObject({ kind: 'autoencoder' });

    const foreign = path.join(dir, 'foreign.safetensors');
    await writeSafetensors(foreign, raw.tensors, { format: 'pt' });
    await expect(loadModelWeights(foreign, a)).rejects.toThrow(`${foreign}: no 'format_version' in __metadata__: not a tfjs-diffusion checkpoint`);
    await expect(readModelConfig(foreign)).rejects.toThrow(foreign);
    const future = path.join(dir, 'future.safetensors');
    await writeSafetensors(future, raw.tensors, { ...raw.metadata, format_version: '2' });
    await expect(readModelConfig(future)).rejects.toThrow(`${future}: unknown checkpoint format_version '2' (this library reads '1')`);
    const corrupt = path.join(dir, 'corrupt.safetensors');
    fs.writeFileSync(corrupt, fs.readFileSync(file).subarray(0, 100));
    await expect(loadModelWeights(corrupt, a)).rejects.toThrow(`${corrupt}: `);
    await expect(readModelConfig(corrupt)).rejects.toThrow(`${corrupt}: `);

    await expect(saveModelWeights(path.join(dir, 'nan.safetensors'), a, { kind: 'unet', config: { lr: NaN } })).rejects.toThrow(
      'config: lr is NaN, which JSON cannot store',
    );
    await expect(saveModelWeights(path.join(dir, 'step.safetensors'), a, { kind: 'unet', config: cfg, step: 1.5 })).rejects.toThrow(
      'step must be an integer >= 0, got 1.5',
    );
    a.dispose();
    wider.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a failed load leaves the module weights unchanged', async () => {
    const a = new Tiny(cfg, 9);
    const b = new Tiny(cfg, 10);
    const file = path.join(dir, 'partial.safetensors');
    await saveModelWeights(file, a, { kind: 'unet', config: cfg });
    const raw = await readSafetensors(file);
    raw.tensors.delete('bias');
    await writeSafetensors(file, raw.tensors, raw.metadata);
    const snapshot = await weights(b);
    await expect(loadModelWeights(file, b)).rejects.toThrow('missing');
    expect(await weights(b)).toEqual(snapshot);
    a.dispose();
    b.dispose();
  });
});

describe('training state', () => {
  it('round-trips step, tensors (bit-exact float32, int32) and json (RNG state etc.)', async () => {
    const before = tf.memory().numTensors;
    const rng = new Rng(11);
    const m = randomNormal([2, 3], rng);
    const v = tf.tensor([1e-30, 3.4e38, -0, 1e-45], [4]);
    const counter = tf.tensor([7], [1], 'int32');
    const json = { rng: new Rng(12).state(), data: { epoch: 3, index: 17, order: [2, 0, 1] }, lr: 1e-4, note: null, ok: true };
    const file = path.join(dir, 'state.safetensors');
    await saveTrainingState(file, {
      step: 500,
      tensors: new Map([
        ['optim.m.w', m],
        ['optim.v.w', v],
        ['count', counter],
      ]),
      json,
    }, 'diffusion');
    const s = await loadTrainingState(file);
    expect(s.step).toBe(500);
    expect(s.json).toEqual(json);
    expect([...s.tensors.keys()].sort()).toEqual(['count', 'optim.m.w', 'optim.v.w']);
    for (const [name, t] of [
      ['optim.m.w', m],
      ['optim.v.w', v],
      ['count', counter],
    ] as const) {
      const r = s.tensors.get(name) as tf.Tensor;
      expect([r.dtype, r.shape]).toEqual([t.dtype, t.shape]);
      const got = await r.data();
      const want = await t.data();
      for (let i = 0; i < want.length; i++) expect(Object.is(got[i], want[i])).toBe(true);
    }
    // The restored RNG continues the same sequence.
    const restored = Rng.fromState(s.json.rng as ReturnType<Rng['state']>);
    const reference = new Rng(12);
    expect([restored.uniform(), restored.uniform()]).toEqual([reference.uniform(), reference.uniform()]);
    s.tensors.forEach((t) => t.dispose());
    [m, v, counter].forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses json that would not survive, and non-state files', async () => {
    const file = path.join(dir, 'bad-state.safetensors');
    await expect(saveTrainingState(file, { step: 1, tensors: new Map(), json: { best: Infinity } }, 'diffusion')).rejects.toThrow(
      'training state json: best is Infinity, which JSON cannot store',
    );
    await expect(saveTrainingState(file, { step: 1, tensors: new Map(), json: { m: new Map() } }, 'diffusion')).rejects.toThrow('m is a Map');
    await expect(saveTrainingState(file, { step: 1, tensors: new Map(), json: { a: [1, undefined] } }, 'diffusion')).rejects.toThrow('a[1] is undefined');
    expect(fs.existsSync(file)).toBe(false);
    const model = new Tiny(cfg, 13);
    const weightsFile = path.join(dir, 'weights-not-state.safetensors');
    await saveModelWeights(weightsFile, model, { kind: 'unet', config: cfg });
    await expect(loadTrainingState(weightsFile)).rejects.toThrow(`${weightsFile}: expected a 'training-state' file, got kind 'unet'`);
    model.dispose();
  });

  it('metadata carries the tfjs layout string and the state json', async () => {
    const file = path.join(dir, 'meta-state.safetensors');
    await saveTrainingState(file, { step: 3, tensors: new Map(), json: { a: 1 } }, 'clip');
    const raw = await readSafetensors(file);
    expect(raw.metadata).toMatchObject({ format_version: '1', kind: 'training-state', family: 'clip', step: '3', state: '{"a":1}', layout: TFJS_LAYOUT });
    // another trainer's resume is refused (e.g. train-autoencoder --resume in a diffusion run: both use state.safetensors)
    await expect(loadTrainingState(file, 'autoencoder')).rejects.toThrow(`${file}: the training state of a clip run, resumed by the autoencoder trainer: is the output folder right?`);
    expect((await loadTrainingState(file, 'clip')).step).toBe(3);
  });
});
