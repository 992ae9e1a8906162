/**
 * loadPipeline over every source (folder, map of bytes, URL) and design (latent, cascade,
 * unclip, class-conditional pixel), on the shipped pipelines: the same images from every
 * source, one step count over all stages, aborts between steps, and bad sources refused
 * with the file named.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AddressInfo } from 'net';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { loadPipeline as loadPipelineCore, Pipeline, PipelineGenerateOptions } from '../../src/pipelines/loadPipeline';
import { loadPipeline, loadTextPipeline } from '../../src/node/loadPipeline';
import { GenerateProgress } from '../../src/pipelines/progress';
import { LoadProgress } from '../../src/io/pipelineFiles';

beforeAll(async () => useBackend('wasm'));

const ROOT = path.join(__dirname, '..', '..', 'checkpoints');

/** Every file of a shipped pipeline folder, named as a browser's folder picker names them ('<folder>/<file>'). */
function folderAsMap(name: string): Map<string, Uint8Array> {
  const dir = path.join(ROOT, name);
  return new Map(fs.readdirSync(dir).map((f) => [`${name}/${f}`, new Uint8Array(fs.readFileSync(path.join(dir, f)))]));
}

const CASES: ReadonlyArray<{ name: string; design: string; conditioning: string; options: Omit<PipelineGenerateOptions, 'n' | 'seed'>; perImage: number }> = [
  { name: 'mnist-latent', design: 'latent', conditioning: 'text', options: { prompts: ['a handwritten 7'], steps: 2 }, perImage: 2 },
  // the cascade manifest sets srSteps 20: base 2 + SR 20
  { name: 'colored-mnist-cascade', design: 'cascade', conditioning: 'text', options: { prompts: ['a red 3 on a navy background'], steps: 2 }, perImage: 2 + 20 },
  // the unclip manifest sets priorSteps 20: prior 20 + decoder 2
  { name: 'colored-mnist-unclip', design: 'unclip', conditioning: 'text', options: { prompts: ['a red 3 on a navy background'], steps: 2 }, perImage: 20 + 2 },
  { name: 'mnist-pixel', design: 'pixel', conditioning: 'class', options: { labels: [4], steps: 2, sampler: 'ddim' }, perImage: 2 },
];

describe.each(CASES)('loadPipeline($name)', ({ name, design, conditioning, options, perImage }) => {
  it('gives the same images from the folder and from a map of its bytes; counts every step of every stage; leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const read: string[] = [];
    const fromFolder = await loadPipeline(path.join(ROOT, name), { onProgress: (p) => read.push(p.file) });
    const fromBytes = await loadPipelineCore(folderAsMap(name));
    try {
      expect(fromFolder.design).toBe(design);
      expect(fromFolder.conditioning).toBe(conditioning);
      expect(read.sort()).toEqual(fs.readdirSync(path.join(ROOT, name)).filter((f) => f.endsWith('.safetensors')).sort()); // progress from a folder too
      expect(fromBytes.source).toBe(name); // the dropped folder names the files in messages
      const seen: Array<Pick<GenerateProgress, 'step' | 'total' | 'stage'> & { x0: number[] | null }> = [];
      const a = await fromFolder.generate({ ...options, n: 2, seed: 3, batchSize: 2, onStep: (p) => seen.push({ step: p.step, total: p.total, stage: p.stage, x0: p.x0?.shape ?? null }) });
      const b = await fromBytes.generate({ ...options, n: 2, seed: 3, batchSize: 2 });
      expect(a.shape).toEqual([2, fromFolder.imageSize, fromFolder.imageSize, fromFolder.imageChannels]);
      expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
      // one batch of 2: perImage steps in all, numbered 1..total
      expect(seen.map((s) => s.step)).toEqual(Array.from({ length: perImage }, (_, i) => i + 1));
      expect(new Set(seen.map((s) => s.total))).toEqual(new Set([perImage]));
      // a preview x0 only where a stage works on pixels
      for (const s of seen) expect(s.x0 === null).toBe(s.stage === 'prior' || (design === 'latent' && s.stage === 'unet'));
      tf.dispose([a, b]);
    } finally {
      fromFolder.dispose();
      fromBytes.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('loadPipeline: abort, URLs and bad sources', () => {
  let pipe: Pipeline;
  beforeAll(async () => {
    pipe = await loadPipeline(path.join(ROOT, 'mnist-pixel'));
  });
  afterAll(() => pipe.dispose());

  it('stops between denoising steps on abort (an AbortError), leaking no tensor', async () => {
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const steps: number[] = [];
    const run = pipe.generate({
      labels: [1], n: 2, seed: 0, steps: 6, sampler: 'ddim', signal: controller.signal,
      onStep: (p) => {
        steps.push(p.step);
        if (p.step === 2) controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(steps).toEqual([1, 2]);
    expect(tf.memory().numTensors).toBe(before);
    // an already-aborted signal: no step at all
    const gone = new AbortController();
    gone.abort();
    await expect(pipe.generate({ labels: [1], n: 1, seed: 0, steps: 3, signal: gone.signal, onStep: () => steps.push(-1) })).rejects.toMatchObject({ name: 'AbortError' });
    expect(steps).toEqual([1, 2]);
    // abort('a reason') rejects with an AbortError that carries it
    const told = new AbortController();
    told.abort('user pressed Stop');
    await expect(pipe.generate({ labels: [1], n: 1, seed: 0, steps: 3, signal: told.signal })).rejects.toMatchObject({ name: 'AbortError', message: 'aborted: user pressed Stop' });
  });

  it('refuses conditioning of the wrong kind, naming what to pass', async () => {
    await expect(pipe.generate({ prompts: ['a 3'], n: 1, seed: 0 })).rejects.toThrow(/class-conditional: pass labels/);
    const text = await loadPipeline(path.join(ROOT, 'mnist-latent'));
    try {
      await expect(text.generate({ labels: [3], n: 1, seed: 0 })).rejects.toThrow(/text-to-image: pass prompts, not labels/);
    } finally {
      text.dispose();
    }
    await expect(loadTextPipeline(path.join(ROOT, 'mnist-pixel'))).rejects.toThrow(/not text-to-image/);
  });

  it('fetches a pipeline from a URL with progress over bytes, and names a missing file or a 404', async () => {
    const dir = path.join(ROOT, 'mnist-pixel');
    const server = http.createServer((req, res) => {
      const file = path.join(dir, decodeURIComponent((req.url ?? '').replace(/^\/p\//, '')));
      if (!file.startsWith(dir) || !fs.existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      const bytes = fs.readFileSync(file);
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const progress: LoadProgress[] = [];
      const fromUrl = await loadPipeline(`${base}/p/`, { onProgress: (p) => progress.push(p) });
      try {
        const unetBytes = fs.statSync(path.join(dir, 'unet.safetensors')).size;
        const last = progress.filter((p) => p.file === 'unet.safetensors').pop();
        expect(last).toEqual({ file: 'unet.safetensors', loaded: unetBytes, total: unetBytes });
        expect(fromUrl.source).toBe(`${base}/p/`);
        const a = await fromUrl.generate({ labels: [5], n: 1, seed: 1, steps: 2, sampler: 'ddim' });
        const b = await pipe.generate({ labels: [5], n: 1, seed: 1, steps: 2, sampler: 'ddim' });
        expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
        tf.dispose([a, b]);
      } finally {
        fromUrl.dispose();
      }
      await expect(loadPipeline(`${base}/nothing/`)).rejects.toThrow(`${base}/nothing/pipeline.json: HTTP 404`);
    } finally {
      server.close();
    }
  });

  it('refuses a map without a part, a corrupt part and a manifest reaching outside, naming the file', async () => {
    const files = folderAsMap('mnist-pixel');
    const noUnet = new Map([...files].filter(([k]) => !k.endsWith('.safetensors')));
    await expect(loadPipelineCore(noUnet)).rejects.toThrow(/^mnist-pixel: no file 'unet\.safetensors'/);
    const corrupt = new Map(files);
    corrupt.set('mnist-pixel/unet.safetensors', (files.get('mnist-pixel/unet.safetensors') as Uint8Array).slice(0, 1000));
    await expect(loadPipelineCore(corrupt)).rejects.toThrow(/^mnist-pixel\/unet\.safetensors: .*truncated/);
    const manifest = JSON.parse(new TextDecoder().decode(files.get('mnist-pixel/pipeline.json'))) as { parts: { unet: { file: string } } };
    manifest.parts.unet.file = '../mnist-latent/unet.safetensors';
    const escaping = new Map(files);
    escaping.set('mnist-pixel/pipeline.json', new TextEncoder().encode(JSON.stringify(manifest)));
    // a map without a common folder is '<files>' unless labelled
    await expect(loadPipelineCore(new Map([['pipeline.json', new Uint8Array([123])]]))).rejects.toThrow(/^<files>\/pipeline\.json: not valid JSON/);
    await expect(loadPipelineCore(escaping)).rejects.toThrow(/part 'unet': file '\.\.\/mnist-latent\/unet\.safetensors' escapes the pipeline folder/);
    await expect(loadPipeline(path.join(ROOT, 'no-such-pipeline'))).rejects.toThrow(/no-such-pipeline: no such pipeline folder/);
  });
});
