/**
 * The threaded SIMD wasm build (src/backend/wasmThreads.ts), reached through
 * initBackend('wasm', { threads }). References: the single-thread SIMD build
 * (a different binary) and the pure-JS cpu backend. Whether the process can
 * exit is checked in child processes (a jest worker cannot watch its own exit).
 */
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { spawn, spawnSync } from 'child_process';
import fs = require('fs'); // the real module objects: jest.spyOn must reach the ones wasmThreads.ts uses
import os = require('os');
import * as path from 'path';
import { initBackend, shutdownBackend } from '../../src/backend/backend';
import { threadedWasmInfo } from '../../src/backend/wasmThreads';
import { keyedRng, randomNormal } from '../../src/backend/random';
import { relativeError } from '../helpers';

const CORES = os.cpus().length;
/** The threaded tests need 2 logical cores; a 1-core machine can only check the errors. */
const itMulti = CORES >= 2 ? it : it.skip;
if (CORES < 2) console.warn(`wasmThreads.test: skipping the 2-thread tests, this machine has ${CORES} logical core`);

type Outputs = Record<string, Float32Array>;

/** A forward + backward workload exercising the kernels the custom gradients use. Disposes all it makes. */
async function workload(big: boolean): Promise<Outputs> {
  const rng = keyedRng(7, 'wasmThreads', big ? 'big' : 'small');
  const [m, k, n] = big ? [256, 512, 384] : [48, 64, 40];
  const [b, hw, cin, cout] = big ? [4, 32, 32, 32] : [2, 10, 6, 8];
  const a = randomNormal([m, k], rng) as tf.Tensor2D;
  const bm = randomNormal([k, n], rng) as tf.Tensor2D;
  const x = randomNormal([b, hw, hw, cin], rng) as tf.Tensor4D; // [B, H, W, C]
  const w = tf.tidy(() => randomNormal([3, 3, cin, cout], rng).mul(0.2)) as tf.Tensor4D; // HWIO
  const outs: Record<string, tf.Tensor> = tf.tidy(() => {
    const conv = tf.conv2d(x, w, 1, 'same');
    const convStrided = tf.conv2d(x, w, 2, 'valid');
    const chain = tf.relu(tf.reshape(tf.transpose(conv, [0, 3, 1, 2]), [b * cout, hw * hw])).sum(1);
    // Gradients through matMul (transposed products) and relu, wrt both operands.
    const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.relu(tf.matMul(p as tf.Tensor2D, q as tf.Tensor2D)).square().mean())([a, bm]);
    const gx = tf.grad((xx: tf.Tensor) => tf.conv2d(xx as tf.Tensor4D, w, 1, 'same').square().sum())(x);
    return { matMul: tf.matMul(a, bm), conv, convStrided, chain, ga, gb, gx };
  });
  const data: Outputs = {};
  for (const [name, t] of Object.entries(outs)) data[name] = (await t.data()) as Float32Array;
  tf.dispose([a, bm, x, w, ...Object.values(outs)]);
  return data;
}

function expectAllClose(got: Outputs, ref: Outputs, rtol: number): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
  for (const name of Object.keys(ref)) {
    const err = relativeError(got[name], ref[name]);
    if (!(err <= rtol)) throw new Error(`${name}: relative error ${err.toExponential(3)} exceeds ${rtol}`);
  }
}

/** pthread workers of the active wasm backend: running XNNPACK's loop, and idle. */
function pthreadWorkers(): { running: number; idle: number } {
  const be = tf.backend() as unknown as { wasm: { PThread?: { runningWorkers: unknown[]; unusedWorkers: unknown[] } } };
  const pt = be.wasm.PThread;
  return pt === undefined ? { running: 0, idle: 0 } : { running: pt.runningWorkers.length, idle: pt.unusedWorkers.length };
}

let cpuSmall: Outputs;
let wasm1Small: Outputs;
let wasm1Big: Outputs;

beforeAll(async () => {
  await initBackend('cpu');
  cpuSmall = await workload(false);
  await initBackend('wasm');
  wasm1Small = await workload(false);
  wasm1Big = await workload(true);
});

afterAll(() => shutdownBackend());

describe('initBackend threads validation', () => {
  it('rejects more threads than logical cores, naming both numbers', async () => {
    await expect(initBackend('wasm', { threads: CORES + 1 })).rejects.toThrow(
      `threads: ${CORES + 1} requested but this machine has ${CORES} logical cores`,
    );
  });

  it('rejects zero, fractional and non-wasm thread requests', async () => {
    await expect(initBackend('wasm', { threads: 0 })).rejects.toThrow('threads must be a positive integer, received 0');
    await expect(initBackend('wasm', { threads: 1.5 })).rejects.toThrow('received 1.5');
    if (CORES >= 2) {
      await expect(initBackend('cpu', { threads: 2 })).rejects.toThrow("applies to the wasm backend only, received backend 'cpu'");
    }
    expect(tf.getBackend()).toBe('wasm'); // nothing was switched
  });
});

describe('threaded SIMD wasm backend', () => {
  itMulti('fails loudly, without fallback or leftovers, when the threaded start fails', async () => {
    const mkdtemp = jest.spyOn(fs, 'mkdtempSync');
    const write = jest.spyOn(fs, 'writeFileSync').mockImplementationOnce(() => {
      throw new Error('disk full (simulated)');
    });
    try {
      await expect(initBackend('wasm', { threads: 2 })).rejects.toThrow(
        /threaded wasm backend \(threads: 2\) failed: disk full \(simulated\)\. Use threads: 1/,
      );
      const dir = mkdtemp.mock.results[0].value as string;
      expect(dir.startsWith(os.tmpdir())).toBe(true);
      expect(fs.existsSync(dir)).toBe(false);
    } finally {
      mkdtemp.mockRestore();
      write.mockRestore();
    }
    expect(threadedWasmInfo()).toBeNull();
    expect(tf.getBackend()).toBe('wasm');
    expect(getThreadsCount()).toBe(1);
  });

  itMulti('runs 2 XNNPACK threads and matches the single-thread build and cpu', async () => {
    const kernelsBefore = tf.getKernelsForBackend('wasm').map((k) => k.kernelName).sort();
    const lines: string[] = [];
    const info = await initBackend('wasm', { threads: 2, onLog: (l) => lines.push(l) });
    expect(info).toEqual({ choice: 'wasm', tfBackend: 'wasm', reason: 'requested: embedded WASM backend (threaded SIMD build)', threads: 2 });
    expect(lines).toEqual(['backend: wasm, 2 threads (requested: embedded WASM backend (threaded SIMD build))']);
    expect(getThreadsCount()).toBe(2); // not silently capped to cores / 2 = 1
    expect(pthreadWorkers()).toEqual({ running: 1, idle: 0 }); // one pool thread besides the caller; idle ones ended
    expect(os.cpus().length).toBe(CORES); // the core-count patch was undone

    const t = threadedWasmInfo();
    expect(t).not.toBeNull();
    const workerFile = t === null ? '' : t.workerFile;
    expect(path.dirname(path.dirname(workerFile))).toBe(os.tmpdir());
    expect(path.basename(path.dirname(workerFile))).toMatch(/^tfjs-diffusion-wasm-threads-\w{6}$/);
    expect(fs.existsSync(workerFile)).toBe(true);

    // Same kernel set as the normal package import (removeBackend/registerBackend keep kernels).
    expect(tf.getKernelsForBackend('wasm').map((k) => k.kernelName).sort()).toEqual(kernelsBefore);
    expect(kernelsBefore.length).toBeGreaterThan(100);

    const before = tf.memory().numTensors;
    const small = await workload(false);
    const big = await workload(true);
    expect(tf.memory().numTensors).toBe(before);
    expectAllClose(small, wasm1Small, 1e-5);
    expectAllClose(big, wasm1Big, 1e-5);
    expectAllClose(small, cpuSmall, 1e-4);
  });

  itMulti('refuses a second start, threaded or not, while one runs', async () => {
    await expect(initBackend('wasm', { threads: 2 })).rejects.toThrow('already running with 2 threads; call shutdownBackend() first');
    await expect(initBackend('wasm')).rejects.toThrow('threaded wasm backend is running with 2 threads; call shutdownBackend() first');
    expect(getThreadsCount()).toBe(2);
  });

  itMulti('shutdown removes the worker file and restores the single-thread build', async () => {
    const t = threadedWasmInfo();
    const workerFile = t === null ? '' : t.workerFile;
    shutdownBackend();
    shutdownBackend(); // idempotent
    expect(threadedWasmInfo()).toBeNull();
    expect(fs.existsSync(workerFile)).toBe(false);
    expect(fs.existsSync(path.dirname(workerFile))).toBe(false);

    const info = await initBackend('wasm');
    expect(info.threads).toBe(1);
    expect(getThreadsCount()).toBe(1);
    expect(pthreadWorkers()).toEqual({ running: 0, idle: 0 });
    expectAllClose(await workload(false), wasm1Small, 0);
  });
});

describe('process exit with the threaded backend (child processes)', () => {
  const tsxRegister = require.resolve('tsx/cjs');
  let scriptDir = '';
  let script = '';

  beforeAll(() => {
    scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmThreads-test-'));
    script = path.join(scriptDir, 'child.ts');
    const tfjs = require.resolve('@tensorflow/tfjs'); // the project's copy (the script lives in os.tmpdir())
    const backendTs = path.resolve(__dirname, '../../src/backend/backend');
    const threadsTs = path.resolve(__dirname, '../../src/backend/wasmThreads');
    fs.writeFileSync(
      script,
      `import * as tf from ${JSON.stringify(tfjs)};
import { initBackend, shutdownBackend } from ${JSON.stringify(backendTs)};
import { threadedWasmInfo } from ${JSON.stringify(threadsTs)};
(async () => {
  const info = await initBackend('wasm', { threads: 2 });
  const value = tf.tidy(() => tf.matMul(tf.ones([128, 128]), tf.ones([128, 128])).sum().dataSync()[0]);
  const workerFile = threadedWasmInfo()?.workerFile;
  console.log(JSON.stringify({ threads: info.threads, value, workerFile }));
  if (process.argv[2] === 'shutdown') shutdownBackend();
})();
`,
    );
  });

  afterAll(() => fs.rmSync(scriptDir, { recursive: true, force: true }));

  itMulti('exits by itself after shutdownBackend()', () => {
    const r = spawnSync(process.execPath, ['--require', tsxRegister, script, 'shutdown'], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    if (r.status !== 0) throw new Error(`child exited with status ${r.status}, signal ${r.signal}; stderr:\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim()) as { threads: number; value: number; workerFile: string };
    expect(out.threads).toBe(2);
    expect(out.value).toBe(128 * 128 * 128);
    expect(fs.existsSync(out.workerFile)).toBe(false);
  });

  itMulti('stays alive without it (the documented reason shutdownBackend exists)', async () => {
    const child = spawn(process.execPath, ['--require', tsxRegister, script]);
    let stdout = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const computed = new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('\n')) resolve();
      }),
    );
    await Promise.race([computed, exited]);
    const stillRunning = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 3000))]);
    child.kill('SIGKILL');
    await exited;
    const out = JSON.parse(stdout.trim()) as { workerFile: string };
    fs.rmSync(path.dirname(out.workerFile), { recursive: true, force: true }); // SIGKILL skips the exit hook
    expect(stillRunning).toBe(true);
  });
});
